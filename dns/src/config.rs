//! The DNS server's settings, from `ocean dns` flags or `ocean dev`.

use std::net::SocketAddr;

use ocean_spec::dns::{validate_domain, DEFAULT_DOMAIN};

use crate::error::{Error, Result};

/// Settings of one DNS server.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// gRPC addresses of the masters to follow (any of them will do).
    pub masters: Vec<String>,
    /// Where to serve DNS, UDP and TCP.
    pub listen: SocketAddr,
    /// The zone Ocean's names live in.
    pub domain: String,
    /// Resolvers that answer names outside the zone; none means REFUSED.
    pub upstreams: Vec<SocketAddr>,
    /// TTL of every record, and the negative-caching TTL of the SOA.
    pub ttl: u32,
    /// UDP worker threads, each with its own socket on the port
    /// (`SO_REUSEPORT`); 0 means one per CPU.
    pub udp_workers: usize,
    /// The token the watch is opened with when the masters run with ACLs
    /// on (read on the root); empty for none.
    pub token: ocean_client::Secret,
    /// TLS to masters with certificates (trust their CA); `None`: plain.
    pub tls: Option<tonic::transport::ClientTlsConfig>,
}

/// Default for [`DnsConfig::ttl`]: short, because tasks move.
pub fn default_ttl() -> u32 {
    5
}

/// Default listen address of the DNS server embedded in `ocean dev`: a
/// loopback port that needs no privileges (53 would).
pub fn default_dev_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7753))
}

impl DnsConfig {
    /// Settings with defaults for everything but the masters and address.
    pub fn new(masters: Vec<String>, listen: SocketAddr) -> Self {
        DnsConfig {
            masters,
            listen,
            domain: DEFAULT_DOMAIN.to_string(),
            upstreams: Vec::new(),
            ttl: default_ttl(),
            udp_workers: 0,
            token: Default::default(),
            tls: None,
        }
    }

    /// Checks every field; the error names the flag.
    pub fn validate(&self) -> Result<()> {
        if self.masters.is_empty() {
            return Err(Error::Config {
                field: "master",
                reason: "at least one master gRPC address (HOST:PORT) is needed".into(),
            });
        }
        for m in &self.masters {
            let uri_ok = tonic::transport::Endpoint::from_shared(format!("http://{m}")).is_ok();
            if m.trim().is_empty() || !m.contains(':') || !uri_ok {
                return Err(Error::Config {
                    field: "master",
                    reason: format!("'{m}' is not HOST:PORT"),
                });
            }
        }
        validate_domain(&self.domain).map_err(|reason| Error::Config {
            field: "domain",
            reason,
        })?;
        if self.ttl > 86_400 {
            return Err(Error::Config {
                field: "ttl",
                reason: format!("must be at most 86400 seconds; got {}", self.ttl),
            });
        }
        if self.udp_workers > 64 {
            return Err(Error::Config {
                field: "udp-workers",
                reason: format!("must be at most 64; got {}", self.udp_workers),
            });
        }
        if self.listen.port() != 0 && self.upstreams.contains(&self.listen) {
            return Err(Error::Config {
                field: "upstream",
                reason: format!("{} is this server's own address", self.listen),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_their_flag() {
        let ok = DnsConfig::new(vec!["127.0.0.1:7701".into()], default_dev_listen());
        assert!(ok.validate().is_ok());
        let mut c = ok.clone();
        c.masters = vec!["a b:1".into()];
        assert!(c.validate().unwrap_err().to_string().starts_with("master:"));
        let mut c = ok.clone();
        c.masters.clear();
        assert!(c.validate().unwrap_err().to_string().starts_with("master:"));
        let mut c = ok.clone();
        c.domain = "Bad_Domain".into();
        assert!(c.validate().unwrap_err().to_string().starts_with("domain:"));
        let mut c = ok.clone();
        c.ttl = 100_000;
        assert!(c.validate().unwrap_err().to_string().starts_with("ttl:"));
        let mut c = ok;
        c.upstreams = vec![c.listen];
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("upstream:"));
    }
}
