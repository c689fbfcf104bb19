//! Frameworks' stores and leader leases, validated here before they reach
//! the log (`state::kv` applies them).
//!
//! A namespace is a framework's name (an RFC 1123 label). Keys are 1 to
//! 512 bytes of `[A-Za-z0-9._/:-]`, not starting with `.` (the system's,
//! where leases live) or `/`. Values are at most 1 MiB.

use ocean_spec::id::is_dns_label;

use super::types::{KvList, KvView, LeaseView, WriteResult};
use super::{invalid, Kernel, ReadOptions, Service};
use crate::error::{Error, Result};
use crate::kernel::state::kv::{lease_key, lease_record};
use crate::kernel::state::{delete_kv_command, lease_command, put_kv_command};

/// The largest value a key holds.
pub const MAX_VALUE: usize = 1024 * 1024;
/// The longest key.
pub const MAX_KEY: usize = 512;
/// Lease durations allowed, in ms.
pub const LEASE_TTL_MS: std::ops::RangeInclusive<u64> = 500..=600_000;

fn check_namespace(ns: &str) -> Result<()> {
    if is_dns_label(ns) {
        Ok(())
    } else {
        Err(invalid(
            "framework",
            format!("'{ns}' must be 1 to 63 lowercase letters, digits or inner '-'"),
        ))
    }
}

fn check_key(key: &str, field: &str) -> Result<()> {
    let reason = if key.is_empty() {
        Some("must not be empty".to_string())
    } else if key.len() > MAX_KEY {
        Some(format!("is {} bytes long; at most {MAX_KEY}", key.len()))
    } else if key.starts_with('.') || key.starts_with('/') {
        Some(format!("'{key}' must not start with '.' or '/' (reserved)"))
    } else {
        key.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._/:-".contains(*c)))
            .map(|c| format!("'{key}' holds '{c}'; allowed: letters, digits and . _ / : -"))
    };
    reason.map_or(Ok(()), |r| Err(invalid(field, r)))
}

fn check_lease_name(name: &str) -> Result<()> {
    if is_dns_label(name) {
        Ok(())
    } else {
        Err(invalid(
            "name",
            format!("'{name}' must be 1 to 63 lowercase letters, digits or inner '-'"),
        ))
    }
}

fn check_holder(holder: &str) -> Result<()> {
    if holder.is_empty() || holder.len() > 256 || holder.chars().any(|c| c.is_control()) {
        Err(invalid(
            "holder",
            "must be 1 to 256 printable characters (e.g. host:pid)",
        ))
    } else {
        Ok(())
    }
}

impl<K: Kernel> Service<K> {
    /// Writes a key, compare-and-set when `expected` is given (0: the key
    /// must not exist).
    pub async fn kv_put(
        &self,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
        expected: Option<u64>,
    ) -> Result<WriteResult> {
        check_namespace(namespace)?;
        // Frameworks' stores belong to no node: the root's rights.
        self.authorize("", super::acl::Right::Operate)?;
        check_key(key, "key")?;
        if value.len() > MAX_VALUE {
            return Err(invalid(
                "value",
                format!("is {} bytes; at most {MAX_VALUE}", value.len()),
            ));
        }
        let applied = self
            .commit("key", key, put_kv_command(namespace, key, value, expected))
            .await?;
        let revision = self
            .kernel
            .read(|st| st.kv_get(namespace, key).map(|e| e.revision));
        Ok(WriteResult {
            id: key.to_string(),
            version: applied.version,
            outcome: applied.outcome.as_str().to_string(),
            spec_version: None,
            instances: None,
            revision,
        })
    }

    /// One key.
    pub async fn kv_get(&self, namespace: &str, key: &str, opts: ReadOptions) -> Result<KvView> {
        check_namespace(namespace)?;
        // Frameworks' stores belong to no node: the root's rights.
        self.authorize("", super::acl::Right::Read)?;
        self.kernel.wait_read(opts).await?;
        self.kernel
            .read(|st| st.kv_get(namespace, key).map(|e| KvView::from(e.as_ref())))
            .ok_or_else(|| Error::NotFound {
                kind: "key",
                id: key.to_string(),
            })
    }

    /// A namespace's keys starting with `prefix` (the system's `.` keys
    /// only when the prefix asks for them).
    pub async fn kv_list(
        &self,
        namespace: &str,
        prefix: &str,
        opts: ReadOptions,
    ) -> Result<KvList> {
        check_namespace(namespace)?;
        // Frameworks' stores belong to no node: the root's rights.
        self.authorize("", super::acl::Right::Read)?;
        if prefix.len() > MAX_KEY {
            return Err(invalid("prefix", format!("at most {MAX_KEY} bytes")));
        }
        self.kernel.wait_read(opts).await?;
        Ok(self.kernel.read(|st| KvList {
            version: st.version,
            keys: st
                .kv_list(namespace, prefix)
                .filter(|e| prefix.starts_with('.') || !e.key.starts_with('.'))
                .map(|e| KvView::from(e.as_ref()))
                .collect(),
        }))
    }

    /// Deletes a key, compare-and-set when `expected` is given.
    pub async fn kv_delete(
        &self,
        namespace: &str,
        key: &str,
        expected: Option<u64>,
    ) -> Result<WriteResult> {
        check_namespace(namespace)?;
        // Frameworks' stores belong to no node: the root's rights.
        self.authorize("", super::acl::Right::Operate)?;
        check_key(key, "key")?;
        let applied = self
            .commit("key", key, delete_kv_command(namespace, key, expected))
            .await?;
        Ok(WriteResult {
            id: key.to_string(),
            version: applied.version,
            outcome: applied.outcome.as_str().to_string(),
            spec_version: None,
            instances: None,
            revision: None,
        })
    }

    /// Takes or renews a framework's lease `name` for `holder`; refused
    /// with [`Error::LeaseHeld`] while another holds it unexpired.
    pub async fn lease_acquire(
        &self,
        namespace: &str,
        name: &str,
        holder: &str,
        ttl_ms: u64,
    ) -> Result<LeaseView> {
        check_namespace(namespace)?;
        // Frameworks' stores belong to no node: the root's rights.
        self.authorize("", super::acl::Right::Operate)?;
        check_lease_name(name)?;
        check_holder(holder)?;
        if !LEASE_TTL_MS.contains(&ttl_ms) {
            return Err(invalid(
                "ttl_ms",
                format!(
                    "must be {}..={} ms; got {ttl_ms}",
                    LEASE_TTL_MS.start(),
                    LEASE_TTL_MS.end()
                ),
            ));
        }
        // `now_ms` is the leader's to stamp (Master::propose_local).
        let cmd = lease_command(
            namespace,
            name,
            holder,
            ttl_ms,
            crate::kernel::now_ms(),
            false,
        );
        self.commit("lease", name, cmd).await?;
        self.lease_get(namespace, name, ReadOptions::default())
            .await
    }

    /// Releases the lease if `holder` holds it, so another may take it at
    /// once.
    pub async fn lease_release(&self, namespace: &str, name: &str, holder: &str) -> Result<()> {
        check_namespace(namespace)?;
        // Frameworks' stores belong to no node: the root's rights.
        self.authorize("", super::acl::Right::Operate)?;
        check_lease_name(name)?;
        check_holder(holder)?;
        let cmd = lease_command(namespace, name, holder, 0, crate::kernel::now_ms(), true);
        self.commit("lease", name, cmd).await.map(|_| ())
    }

    /// The lease as it stands (it may have expired: compare `expires_ms`).
    pub async fn lease_get(
        &self,
        namespace: &str,
        name: &str,
        opts: ReadOptions,
    ) -> Result<LeaseView> {
        check_namespace(namespace)?;
        // Frameworks' stores belong to no node: the root's rights.
        self.authorize("", super::acl::Right::Read)?;
        check_lease_name(name)?;
        self.kernel.wait_read(opts).await?;
        self.kernel
            .read(|st| {
                let e = st.kv_get(namespace, &lease_key(name))?;
                lease_record(e).map(|r| LeaseView::new(namespace, name, &r, e.revision))
            })
            .ok_or_else(|| Error::NotFound {
                kind: "lease",
                id: name.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::LocalKernel;

    fn service() -> Service<LocalKernel> {
        Service::new(LocalKernel::new())
    }

    #[tokio::test]
    async fn keys_compare_and_set_and_bad_input_names_the_field() {
        let s = service();
        let r = s
            .kv_put("elb", "lb/web", b"{\"vip\":1}".to_vec(), Some(0))
            .await
            .unwrap();
        let rev = r.revision.unwrap();
        assert_eq!(r.outcome, "created");
        match s.kv_put("elb", "lb/web", b"2".to_vec(), Some(0)).await {
            Err(Error::VersionConflict {
                expected: 0,
                actual,
                ..
            }) => assert_eq!(actual, rev),
            other => panic!("expected a conflict, got {other:?}"),
        }
        let got = s
            .kv_get("elb", "lb/web", ReadOptions::default())
            .await
            .unwrap();
        assert_eq!(got.value, Some(serde_json::json!({"vip": 1})));
        let before = s.kernel().version();
        for (result, field) in [
            (s.kv_put("ELB", "k", vec![], None).await, "framework"),
            (s.kv_put("elb", "", vec![], None).await, "key"),
            (s.kv_put("elb", ".lease/x", vec![], None).await, "key"),
            (s.kv_put("elb", "a b", vec![], None).await, "key"),
            (
                s.kv_put("elb", "k", vec![0; MAX_VALUE + 1], None).await,
                "value",
            ),
        ] {
            match result {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected invalid {field}, got {other:?}"),
            }
        }
        assert_eq!(s.kernel().version(), before, "nothing invalid was written");
        s.kv_put("elb", "lb/api", b"x".to_vec(), None)
            .await
            .unwrap();
        let list = s
            .kv_list("elb", "lb/", ReadOptions::default())
            .await
            .unwrap();
        let keys: Vec<_> = list.keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, vec!["lb/api", "lb/web"]);
        assert_eq!(list.keys[0].value_text.as_deref(), Some("x"));
        s.kv_delete("elb", "lb/api", None).await.unwrap();
        assert!(matches!(
            s.kv_delete("elb", "lb/api", None).await,
            Err(Error::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn a_lease_moves_only_when_it_expires_or_is_released() {
        let s = service();
        s.kernel().set_now_ms(10_000);
        let l = s
            .lease_acquire("cron", "leader", "m1", 2_000)
            .await
            .unwrap();
        assert_eq!(
            (l.holder.as_str(), l.epoch, l.expires_ms),
            ("m1", 1, 12_000)
        );
        match s.lease_acquire("cron", "leader", "m2", 2_000).await {
            Err(Error::LeaseHeld {
                holder, expires_ms, ..
            }) => {
                assert_eq!((holder.as_str(), expires_ms), ("m1", 12_000))
            }
            other => panic!("expected held, got {other:?}"),
        }
        s.kernel().set_now_ms(11_000);
        let l = s
            .lease_acquire("cron", "leader", "m1", 2_000)
            .await
            .unwrap();
        assert_eq!((l.epoch, l.expires_ms), (1, 13_000), "renewed");
        s.kernel().set_now_ms(13_000);
        let l = s
            .lease_acquire("cron", "leader", "m2", 2_000)
            .await
            .unwrap();
        assert_eq!(
            (l.holder.as_str(), l.epoch),
            ("m2", 2),
            "taken over after expiry"
        );
        s.lease_release("cron", "leader", "m2").await.unwrap();
        let l = s
            .lease_acquire("cron", "leader", "m1", 2_000)
            .await
            .unwrap();
        assert_eq!(
            (l.holder.as_str(), l.epoch),
            ("m1", 3),
            "taken at once after release"
        );
        // Leases are not listed with the framework's own keys.
        let list = s.kv_list("cron", "", ReadOptions::default()).await.unwrap();
        assert!(list.keys.is_empty());
        for (result, field) in [
            (s.lease_acquire("cron", "leader", "m1", 10).await, "ttl_ms"),
            (s.lease_acquire("cron", "leader", "", 1_000).await, "holder"),
            (s.lease_acquire("cron", "Lead", "m1", 1_000).await, "name"),
        ] {
            match result {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected invalid {field}, got {other:?}"),
            }
        }
    }
}
