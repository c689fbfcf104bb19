//! `ocean dns`: the DNS server, following the masters' watch stream.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;
use ocean_dns::DnsConfig;

/// Flags of `ocean dns`.
#[derive(Debug, Args)]
pub struct DnsArgs {
    /// Masters' gRPC addresses, HOST:PORT, comma-separated; any of them
    /// will do, the others are tried in turn when one fails.
    #[arg(long, required = true, value_delimiter = ',')]
    master: Vec<String>,
    /// Where to serve DNS (UDP and TCP), e.g. 127.0.0.1:53.
    #[arg(long)]
    listen: SocketAddr,
    /// The zone Ocean's names live in.
    #[arg(long, default_value = ocean_spec::dns::DEFAULT_DOMAIN)]
    domain: String,
    /// Resolvers for names outside the zone, HOST:PORT (repeatable or
    /// comma-separated); without any such names are REFUSED.
    #[arg(long, value_delimiter = ',')]
    upstream: Vec<SocketAddr>,
    /// TTL of every record, in seconds.
    #[arg(long, default_value_t = ocean_dns::config::default_ttl())]
    ttl: u32,
    /// UDP worker threads (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    udp_workers: usize,
    /// Token for masters with ACLs on (needs read on the root).
    #[arg(long, env = "OCEAN_TOKEN", hide_env_values = true)]
    token: Option<ocean_client::Secret>,
}

impl DnsArgs {
    fn config(self, tls: &crate::client_tls::ClientTlsArgs) -> anyhow::Result<DnsConfig> {
        Ok(DnsConfig {
            masters: self
                .master
                .into_iter()
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect(),
            listen: self.listen,
            domain: self.domain,
            upstreams: self.upstream,
            ttl: self.ttl,
            udp_workers: self.udp_workers,
            token: self.token.unwrap_or_default(),
            tls: tls.grpc()?,
        })
    }
}

/// `ocean dns`.
pub async fn dns(args: DnsArgs, tls: &crate::client_tls::ClientTlsArgs) -> anyhow::Result<()> {
    let cfg = args.config(tls)?;
    cfg.validate().context("invalid flag")?;
    ocean_dns::run(cfg, crate::cmd_server::shutdown_signal()).await?;
    Ok(())
}
