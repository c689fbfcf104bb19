//! `ocean tls ca|cert`: the built-in CA, and the `--tls-*` flags masters
//! and agents take.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ocean_tls::{Identity, Role, TlsFiles};

/// `ocean tls ...`.
#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Make a CA: DIR/ca.pem and DIR/ca-key.pem (keep the key off the
    /// cluster's hosts).
    Ca {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "Ocean CA")]
        name: String,
    },
    /// Issue a certificate: DIR/cert.pem, DIR/key.pem and the CA's
    /// DIR/ca.pem, for `--tls-dir DIR`. Its identity is the URI SAN
    /// `ocean://ROLE/NAME`.
    Cert {
        /// The CA's directory (`ocean tls ca --out`).
        #[arg(long)]
        ca: PathBuf,
        /// The holder's name: an agent's id, a master's name, a user.
        #[arg(long)]
        name: String,
        /// master, agent or client.
        #[arg(long)]
        role: String,
        /// DNS names and IP addresses the holder serves on (repeatable or
        /// comma-separated); a master without any gets localhost and
        /// 127.0.0.1.
        #[arg(long, value_delimiter = ',')]
        san: Vec<String>,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `ocean tls ...`.
pub fn tls(cmd: TlsCommand) -> anyhow::Result<()> {
    match cmd {
        TlsCommand::Ca { out, name } => {
            let path = ocean_tls::new_ca(&out, &name)?;
            println!("CA certificate: {}", path.display());
        }
        TlsCommand::Cert {
            ca,
            name,
            role,
            san,
            out,
        } => {
            let role: Role = role.parse()?;
            let identity = Identity::new(role, &name)?;
            let path = ocean_tls::issue(&ca, &identity, &san, &out)?;
            println!(
                "{} certificate: {} (ocean://{role}/{name})",
                role,
                path.display()
            );
        }
    }
    Ok(())
}

/// Certificate flags of a master or an agent: one `--tls-dir`, or the
/// three files.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// A directory from `ocean tls cert --out`: cert.pem, key.pem, ca.pem.
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    /// This process's certificate (PEM); with --tls-key and --tls-ca.
    #[arg(long, conflicts_with = "tls_dir")]
    tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, conflicts_with = "tls_dir")]
    tls_key: Option<PathBuf>,
    /// The CA's certificate (PEM).
    #[arg(long, conflicts_with = "tls_dir")]
    tls_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The files, if TLS was asked for, checked to hold PEM.
    pub fn files(&self) -> anyhow::Result<Option<TlsFiles>> {
        let files = match (&self.tls_dir, &self.tls_cert, &self.tls_key, &self.tls_ca) {
            (Some(dir), ..) => TlsFiles::from_dir(dir),
            (None, None, None, None) => return Ok(None),
            (None, Some(cert), Some(key), Some(ca)) => TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            },
            _ => anyhow::bail!("--tls-cert, --tls-key, --tls-ca: give all three (or --tls-dir)"),
        };
        files.check().context("--tls")?;
        Ok(Some(files))
    }
}
