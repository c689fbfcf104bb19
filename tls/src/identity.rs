//! The identity in a certificate: a role and a name, carried as the URI
//! subject alternative name `ocean://<role>/<name>`.

use std::fmt;
use std::str::FromStr;

use crate::TlsError;

/// The URI scheme of an identity.
const SCHEME: &str = "ocean://";

/// What a certificate's holder may act as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A master: raft traffic, forwarded writes, and the servers' own
    /// certificate.
    Master,
    /// An agent: one agent session, as the agent named.
    Agent,
    /// A client of the API (the CLI, frameworks, tools).
    Client,
}

impl Role {
    /// The role's name as written in certificates and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Agent => "agent",
            Role::Client => "client",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = TlsError;
    fn from_str(s: &str) -> Result<Self, TlsError> {
        match s {
            "master" => Ok(Role::Master),
            "agent" => Ok(Role::Agent),
            "client" => Ok(Role::Client),
            _ => Err(TlsError::Invalid {
                field: "role".into(),
                reason: format!("'{s}' is not one of master, agent, client"),
            }),
        }
    }
}

/// A role and a name: who a certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The role.
    pub role: Role,
    /// The name: an agent's id, a master's name, a client's user name.
    pub name: String,
}

/// Names are agent ids in the agent protocol's charset, so an identity
/// compares with a registration byte for byte.
fn check_name(name: &str) -> Result<(), TlsError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(TlsError::Invalid {
            field: "name".into(),
            reason: format!("'{name}' must be 1-64 characters of letters, digits, '-', '_', '.'"),
        })
    }
}

impl Identity {
    /// An identity, checking the name.
    pub fn new(role: Role, name: &str) -> Result<Self, TlsError> {
        check_name(name)?;
        Ok(Identity {
            role,
            name: name.to_string(),
        })
    }

    /// The URI subject alternative name that carries it.
    pub fn uri(&self) -> String {
        format!("{SCHEME}{}/{}", self.role, self.name)
    }

    /// Parses `ocean://<role>/<name>`.
    pub fn from_uri(uri: &str) -> Result<Self, TlsError> {
        let bad = |why: &str| TlsError::Identity(format!("'{uri}' {why}"));
        let rest = uri
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("is not an ocean:// URI"))?;
        let (role, name) = rest
            .split_once('/')
            .ok_or_else(|| bad("has no name after the role"))?;
        let role = role.parse().map_err(|_| bad("names an unknown role"))?;
        check_name(name).map_err(|_| bad("has an invalid name"))?;
        Identity::new(role, name)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.role, self.name)
    }
}

/// The identity in a DER certificate: its one `ocean://` URI SAN.
pub fn identity_of(der: &[u8]) -> Result<Identity, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::Identity(format!("unparsable certificate: {e}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::Identity(format!("bad subject alternative names: {e}")))?;
    let mut found = None;
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        if let x509_parser::extensions::GeneralName::URI(uri) = name {
            if uri.starts_with(SCHEME) {
                if found.is_some() {
                    // Two identities would let the holder pick either.
                    return Err(TlsError::Identity(
                        "the certificate carries more than one ocean:// identity".into(),
                    ));
                }
                found = Some(Identity::from_uri(uri)?);
            }
        }
    }
    found.ok_or_else(|| {
        TlsError::Identity("the certificate carries no ocean://<role>/<name> identity".into())
    })
}

/// The identity in the first certificate of a PEM file.
pub fn identity_of_pem(pem: &str) -> Result<Identity, TlsError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| TlsError::Identity(format!("not a PEM certificate: {e}")))?;
    identity_of(&pem.contents)
}

/// The identity of the peer of a gRPC request served over TLS, from the
/// certificate it presented (the server checked the chain to the CA).
pub fn peer_identity<T>(req: &tonic::Request<T>) -> Result<Identity, TlsError> {
    let certs = req
        .peer_certs()
        .ok_or_else(|| TlsError::Identity("no client certificate was presented".into()))?;
    let leaf = certs
        .first()
        .ok_or_else(|| TlsError::Identity("no client certificate was presented".into()))?;
    identity_of(leaf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_round_trips() {
        let id = Identity::new(Role::Agent, "web-17.c3").unwrap();
        assert_eq!(id.uri(), "ocean://agent/web-17.c3");
        assert_eq!(Identity::from_uri(&id.uri()).unwrap(), id);
        assert_eq!(id.to_string(), "agent:web-17.c3");
    }

    #[test]
    fn bad_uris_are_refused_with_a_reason() {
        for (uri, why) in [
            ("https://agent/a", "is not an ocean:// URI"),
            ("ocean://agent", "has no name after the role"),
            ("ocean://root/a", "names an unknown role"),
            ("ocean://agent/", "has an invalid name"),
            ("ocean://agent/a/b", "has an invalid name"),
            ("ocean://agent/a b", "has an invalid name"),
        ] {
            let err = Identity::from_uri(uri).unwrap_err().to_string();
            assert!(err.contains(why), "{uri}: {err}");
        }
        let long = format!("ocean://master/{}", "m".repeat(65));
        assert!(Identity::from_uri(&long).is_err());
    }

    #[test]
    fn roles_parse_and_print() {
        for r in [Role::Master, Role::Agent, Role::Client] {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        let err = "admin".parse::<Role>().unwrap_err().to_string();
        assert!(err.starts_with("role:"), "{err}");
    }
}
