//! Tokens and policies as replicated state: JSON records in the reserved
//! KV namespace [`NAMESPACE`], written with the ordinary `PutKv`/`DeleteKv`
//! commands (no raft command of their own). Framework KV calls cannot
//! reach it: their namespaces are DNS labels, and `ocean.acl` is not one;
//! watches leave it out.
//!
//! | key                 | value                                        |
//! |---------------------|----------------------------------------------|
//! | `bootstrap`         | when the first admin token was made (once)   |
//! | `policy/<name>`     | [`PolicyRecord`]: rules `{node, rights}`     |
//! | `token/<accessor>`  | [`TokenRecord`]: name, policies, SHA-256     |
//!
//! A secret is `<accessor>.<64 hex digits>` (256 random bits): the
//! accessor finds the record in one lookup, and only the SHA-256 of the
//! whole secret is stored, so a copy of the state or of the log lets
//! nobody in.

use std::sync::Arc;

use ocean_client::Secret;
use ocean_spec::id::is_dns_label;
use ocean_spec::TreeNode;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Caller, Grants, Identity, Right};
use crate::error::{Error, Result};
use crate::kernel::state::{delete_kv_command, put_kv_command};
use crate::service::{invalid, Kernel, Service};

/// The reserved namespace of tokens and policies.
pub const NAMESPACE: &str = "ocean.acl";
/// The policy `ocean acl bootstrap` makes: admin on the root.
pub const BOOTSTRAP_POLICY: &str = "admin";

/// One rule of a policy: a right on a node (and its subtree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A service-tree node (`pdl.demo`, `cop.x_owt.y`); empty = the root.
    #[serde(default)]
    pub node: String,
    /// `read`, `write`, `operate` or `admin`.
    pub rights: Right,
}

/// A named set of rules, as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub rules: Vec<Rule>,
    pub created_ms: u64,
}

/// A token as stored: never its secret, only the secret's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub accessor: String,
    pub name: String,
    pub policies: Vec<String>,
    /// SHA-256 of the whole secret, hex.
    pub secret_sha256: String,
    pub created_ms: u64,
}

/// A token as the API lists it (no secret, no hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenView {
    pub accessor: String,
    pub name: String,
    pub policies: Vec<String>,
    pub created_ms: u64,
}

/// A new token: the only time its secret is shown.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: TokenView,
    /// The secret, exposed for this one answer.
    pub secret: String,
}

/// A policy to create or replace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub rules: Vec<RuleRequest>,
}

/// A rule as a client writes it (the right as text, checked here so the
/// error names the field).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRequest {
    #[serde(default)]
    pub node: String,
    pub rights: String,
}

/// A token to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    pub policies: Vec<String>,
}

/// SHA-256 of `secret`, hex.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh secret for `acl.local_secret` (256 random bits, no accessor:
/// it names no stored token).
pub fn new_local_secret() -> Secret {
    let mut s = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut s);
    Secret::new(format!("local-{}", hex(&s)))
}

/// A fresh accessor (64 random bits) and secret (the accessor, then 256
/// random bits).
fn new_secret() -> (String, Secret) {
    let mut rng = rand::rngs::OsRng;
    let mut a = [0u8; 8];
    rng.fill_bytes(&mut a);
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    let accessor = hex(&a);
    let secret = Secret::new(format!("{accessor}.{}", hex(&s)));
    (accessor, secret)
}

fn token_key(accessor: &str) -> String {
    format!("token/{accessor}")
}

fn policy_key(name: &str) -> String {
    format!("policy/{name}")
}

fn check_name(name: &str, field: &str) -> Result<()> {
    if is_dns_label(name) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("'{name}' must be 1 to 63 lowercase letters, digits or inner '-'"),
        ))
    }
}

fn encode(v: &impl Serialize) -> Vec<u8> {
    // Records hold only strings, numbers and lists.
    serde_json::to_vec(v).unwrap_or_default()
}

impl<K: Kernel> Service<K> {
    fn acl_records<T: serde::de::DeserializeOwned>(&self, prefix: &str) -> Vec<T> {
        self.kernel.read(|st| {
            st.kv_list(NAMESPACE, prefix)
                .filter_map(|e| serde_json::from_slice(&e.value).ok())
                .collect()
        })
    }

    fn acl_record<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.kernel.read(|st| {
            st.kv_get(NAMESPACE, key)
                .and_then(|e| serde_json::from_slice(&e.value).ok())
        })
    }

    /// Makes the first admin token (and the `admin` policy: admin on the
    /// root). Needs no token, and works once: the `bootstrap` key is
    /// claimed by compare-and-set, so two racing bootstraps cannot both
    /// succeed.
    pub async fn acl_bootstrap(&self) -> Result<CreatedToken> {
        let now = crate::kernel::now_ms();
        let claim = put_kv_command(NAMESPACE, "bootstrap", encode(&now), Some(0));
        match self.commit("acl", "bootstrap", claim).await {
            Err(Error::VersionConflict { .. }) => {
                return Err(Error::Conflict(
                    "ACLs are already bootstrapped: ask an admin for a token \
                     (`ocean acl token create`)"
                        .into(),
                ))
            }
            other => other?,
        };
        let policy = PolicyRecord {
            name: BOOTSTRAP_POLICY.into(),
            description: "every right on the whole tree (made by bootstrap)".into(),
            rules: vec![Rule {
                node: String::new(),
                rights: Right::Admin,
            }],
            created_ms: now,
        };
        self.commit(
            "policy",
            BOOTSTRAP_POLICY,
            put_kv_command(
                NAMESPACE,
                &policy_key(BOOTSTRAP_POLICY),
                encode(&policy),
                None,
            ),
        )
        .await?;
        self.store_token("bootstrap", vec![BOOTSTRAP_POLICY.into()])
            .await
    }

    async fn store_token(&self, name: &str, policies: Vec<String>) -> Result<CreatedToken> {
        let (accessor, secret) = new_secret();
        let record = TokenRecord {
            accessor: accessor.clone(),
            name: name.to_string(),
            policies,
            secret_sha256: hash_secret(secret.expose()),
            created_ms: crate::kernel::now_ms(),
        };
        self.commit(
            "token",
            &accessor,
            put_kv_command(NAMESPACE, &token_key(&accessor), encode(&record), Some(0)),
        )
        .await?;
        Ok(CreatedToken {
            token: TokenView::from(&record),
            secret: secret.expose().to_string(),
        })
    }

    /// Creates a token bound to existing policies (admin on the root).
    pub async fn acl_create_token(&self, req: TokenRequest) -> Result<CreatedToken> {
        self.authorize("", Right::Admin)?;
        check_name(&req.name, "name")?;
        if req.policies.is_empty() {
            return Err(invalid("policies", "name at least one policy"));
        }
        for (i, p) in req.policies.iter().enumerate() {
            let field = format!("policies[{i}]");
            check_name(p, &field)?;
            if self.acl_record::<PolicyRecord>(&policy_key(p)).is_none() {
                return Err(invalid(field, format!("no policy '{p}' (create it first)")));
            }
        }
        self.store_token(&req.name, req.policies).await
    }

    /// Every token, without secrets (admin on the root).
    pub fn acl_tokens(&self) -> Result<Vec<TokenView>> {
        self.authorize("", Right::Admin)?;
        Ok(self
            .acl_records::<TokenRecord>("token/")
            .iter()
            .map(TokenView::from)
            .collect())
    }

    /// Deletes a token (admin on the root); it stops working at once.
    pub async fn acl_delete_token(&self, accessor: &str) -> Result<()> {
        self.authorize("", Right::Admin)?;
        if self
            .acl_record::<TokenRecord>(&token_key(accessor))
            .is_none()
        {
            return Err(Error::NotFound {
                kind: "token",
                id: accessor.to_string(),
            });
        }
        self.commit(
            "token",
            accessor,
            delete_kv_command(NAMESPACE, &token_key(accessor), None),
        )
        .await?;
        Ok(())
    }

    /// Creates or replaces a policy (admin on the root).
    pub async fn acl_put_policy(&self, req: PolicyRequest) -> Result<PolicyRecord> {
        self.authorize("", Right::Admin)?;
        check_name(&req.name, "name")?;
        if req.rules.is_empty() {
            return Err(invalid("rules", "give at least one {node, rights} rule"));
        }
        let mut rules = Vec::with_capacity(req.rules.len());
        for (i, r) in req.rules.iter().enumerate() {
            let node = TreeNode::parse_field(&r.node, &format!("rules[{i}].node"))
                .map_err(|e| invalid(e.field, e.reason))?;
            let rights = Right::parse(&r.rights, &format!("rules[{i}].rights"))?;
            rules.push(Rule {
                node: node.to_string(),
                rights,
            });
        }
        let record = PolicyRecord {
            name: req.name.clone(),
            description: req.description,
            rules,
            created_ms: crate::kernel::now_ms(),
        };
        self.commit(
            "policy",
            &req.name,
            put_kv_command(NAMESPACE, &policy_key(&req.name), encode(&record), None),
        )
        .await?;
        Ok(record)
    }

    /// Every policy (admin on the root).
    pub fn acl_policies(&self) -> Result<Vec<PolicyRecord>> {
        self.authorize("", Right::Admin)?;
        Ok(self.acl_records("policy/"))
    }

    /// Deletes a policy (admin on the root); tokens bound to it lose its
    /// rules at once.
    pub async fn acl_delete_policy(&self, name: &str) -> Result<()> {
        self.authorize("", Right::Admin)?;
        if self.acl_record::<PolicyRecord>(&policy_key(name)).is_none() {
            return Err(Error::NotFound {
                kind: "policy",
                id: name.to_string(),
            });
        }
        self.commit(
            "policy",
            name,
            delete_kv_command(NAMESPACE, &policy_key(name), None),
        )
        .await?;
        Ok(())
    }

    /// The latest `limit` writes this master recorded (admin on the root).
    pub fn acl_audit(&self, limit: usize) -> Result<Vec<crate::kernel::audit::AuditEntry>> {
        self.authorize("", Right::Admin)?;
        Ok(self.kernel.audit_recent(limit))
    }

    /// Who presents `secret`: [`Caller::Invalid`] (with a reason that
    /// never repeats the secret) when the cluster does not know it.
    pub fn authenticate(&self, secret: &Secret) -> Caller {
        let unknown = || Caller::Invalid("unknown or deleted token".into());
        let Some((accessor, _)) = secret.expose().split_once('.') else {
            return Caller::Invalid("malformed token (expected <accessor>.<secret>)".into());
        };
        let Some(token) = self.acl_record::<TokenRecord>(&token_key(accessor)) else {
            return unknown();
        };
        if token.secret_sha256 != hash_secret(secret.expose()) {
            return unknown();
        }
        let mut rules = Vec::new();
        for p in &token.policies {
            let Some(policy) = self.acl_record::<PolicyRecord>(&policy_key(p)) else {
                continue;
            };
            for r in policy.rules {
                if let Ok(node) = TreeNode::parse(&r.node) {
                    rules.push((node, r.rights));
                }
            }
        }
        Caller::Token(Arc::new(Identity {
            accessor: token.accessor,
            name: token.name,
            grants: Grants::new(rules),
        }))
    }
}

impl From<&TokenRecord> for TokenView {
    fn from(t: &TokenRecord) -> Self {
        TokenView {
            accessor: t.accessor.clone(),
            name: t.name.clone(),
            policies: t.policies.clone(),
            created_ms: t.created_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::LocalKernel;

    fn service() -> Service<LocalKernel> {
        let k = LocalKernel::new();
        k.set_acl_enabled(true);
        Service::new(k)
    }

    #[test]
    fn the_hash_is_sha256_hex() {
        // `printf abc | sha256sum`
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (a, s) = new_secret();
        assert_eq!(a.len(), 16);
        assert_eq!(s.expose().len(), 16 + 1 + 64);
        assert!(s.expose().starts_with(&format!("{a}.")));
        assert_ne!(new_secret().1, s, "fresh randomness every time");
    }

    #[tokio::test]
    async fn bootstrap_once_then_tokens_carry_their_policies_rights() {
        let svc = service();
        let admin = svc.acl_bootstrap().await.unwrap();
        match svc.acl_bootstrap().await {
            Err(Error::Conflict(m)) => assert!(m.contains("already bootstrapped"), "{m}"),
            other => panic!("a second bootstrap must be refused, got {other:?}"),
        }
        // Only the hash is stored.
        let stored = svc.kernel.read(|st| {
            st.kv_list(NAMESPACE, "")
                .map(|e| String::from_utf8_lossy(&e.value).to_string())
                .collect::<Vec<_>>()
                .join("\n")
        });
        let secret_part = admin.secret.split_once('.').unwrap().1;
        assert!(!stored.contains(secret_part), "{stored}");

        let as_admin = svc
            .clone()
            .with_caller(svc.authenticate(&Secret::new(admin.secret.clone())));
        as_admin
            .acl_put_policy(PolicyRequest {
                name: "demo-read".into(),
                description: String::new(),
                rules: vec![RuleRequest {
                    node: "pdl.demo".into(),
                    rights: "read".into(),
                }],
            })
            .await
            .unwrap();
        let t = as_admin
            .acl_create_token(TokenRequest {
                name: "reader".into(),
                policies: vec!["demo-read".into()],
            })
            .await
            .unwrap();
        let reader = svc
            .clone()
            .with_caller(svc.authenticate(&Secret::new(t.secret)));
        let demo = "cop.c_owt.o_pdl.demo_service.s_job.j_cluster.c";
        assert!(reader.may_read(demo));
        match reader.authorize(demo, Right::Write) {
            Err(Error::Forbidden { node, right, .. }) => {
                assert_eq!((node.as_str(), right), (demo, "write"))
            }
            other => panic!("expected 403, got {other:?}"),
        }
        match reader.acl_tokens() {
            Err(Error::Forbidden { right: "admin", .. }) => {}
            other => panic!("a reader cannot list tokens, got {other:?}"),
        }
        // Wrong secret for a real accessor, and no token at all.
        let forged = Secret::new(format!("{}.{}", t.token.accessor, "0".repeat(64)));
        assert!(matches!(svc.authenticate(&forged), Caller::Invalid(_)));
        let anon = svc.clone().with_caller(Caller::Anonymous);
        assert!(matches!(
            anon.authorize(demo, Right::Read),
            Err(Error::Unauthenticated(_))
        ));
        // A deleted token stops working.
        as_admin.acl_delete_token(&t.token.accessor).await.unwrap();
        let listed = as_admin.acl_tokens().unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert!(matches!(
            svc.authenticate(&Secret::new(format!("{}.x", t.token.accessor))),
            Caller::Invalid(_)
        ));
    }

    #[tokio::test]
    async fn bad_policies_and_tokens_name_the_field() {
        let svc = service().with_caller(Caller::System);
        let rule = |node: &str, rights: &str| RuleRequest {
            node: node.into(),
            rights: rights.into(),
        };
        for (rules, field) in [
            (vec![], "rules"),
            (vec![rule("pdl", "read")], "rules[0].node"),
            (
                vec![rule("", "read"), rule("pdl.x", "root")],
                "rules[1].rights",
            ),
        ] {
            let req = PolicyRequest {
                name: "p".into(),
                description: String::new(),
                rules,
            };
            match svc.acl_put_policy(req).await {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected invalid {field}, got {other:?}"),
            }
        }
        let req = TokenRequest {
            name: "t".into(),
            policies: vec!["missing".into()],
        };
        match svc.acl_create_token(req).await {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "policies[0]"),
            other => panic!("expected invalid policies[0], got {other:?}"),
        }
    }
}
