//! The LB host's VRRP settings (from `ocean elb agent --vrrp-*`) and the
//! keepalived.conf they render for the VIPs the agent serves: one VRRP
//! instance holding every VIP, so the LB host with the highest priority
//! holds them all and another takes them over when it fails.
//!
//! Every VIP Ocean puts on the interface carries the address label
//! `<interface>:elb` ([`vip_label`]); that is how a later run of the agent
//! recognises, and removes, the VIPs a crashed run left behind
//! (`keepalived_run`).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::keepalived::{render_vrrp, VrrpInstance};

/// The suffix of the address label on Ocean's VIPs.
pub const LABEL_SUFFIX: &str = ":elb";

/// An interface name's longest length (IFNAMSIZ less the NUL).
const IFNAMSIZ: usize = 15;

/// keepalived puts at most this many addresses in an advertisement; more
/// go to `virtual_ipaddress_excluded` (still moved, not advertised).
const ADVERTISED_VIPS: usize = 20;

/// How this LB host takes part in VRRP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrrpConfig {
    /// The interface the VIPs go on and adverts are sent from.
    pub interface: String,
    /// The VRRP router id (1..=255), the same on every LB host of the pair.
    pub virtual_router_id: u16,
    /// 1..=254; the host with the highest holds the VIPs.
    pub priority: u16,
    /// Advertisement interval in milliseconds (VRRPv3: centiseconds,
    /// 10..=40950).
    pub advert_int_ms: u32,
    /// Where keepalived.conf, its pid files and its log are kept; one per
    /// agent, so two agents on one machine never share them.
    pub data_dir: PathBuf,
    /// keepalived's `router_id` (a name for its logs).
    pub name: String,
}

/// A VRRP setting is wrong: the flag and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidVrrp {
    /// The flag (`--vrrp-interface`, ...).
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl VrrpConfig {
    /// Checks every setting, naming the flag of the first wrong one.
    pub fn validate(&self) -> Result<(), InvalidVrrp> {
        let err = |field, reason: String| Err(InvalidVrrp { field, reason });
        let max_if = IFNAMSIZ - LABEL_SUFFIX.len();
        if self.interface.is_empty()
            || !self
                .interface
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
        {
            return err(
                "--vrrp-interface",
                format!(
                    "{:?} is not an interface name (letters, digits, '.', '_', '-', '@')",
                    self.interface
                ),
            );
        }
        if self.interface.len() > max_if {
            return err(
                "--vrrp-interface",
                format!(
                    "{:?} is longer than {max_if} characters: the VIPs' label \"{}\" must fit in {IFNAMSIZ}",
                    self.interface,
                    vip_label(&self.interface)
                ),
            );
        }
        if !(1..=255).contains(&self.virtual_router_id) {
            return err(
                "--vrrp-router-id",
                format!("{} is not in 1..=255", self.virtual_router_id),
            );
        }
        if !(1..=254).contains(&self.priority) {
            return err(
                "--vrrp-priority",
                format!(
                    "{} is not in 1..=254 (255 is the address owner's)",
                    self.priority
                ),
            );
        }
        if !(10..=40_950).contains(&self.advert_int_ms) || !self.advert_int_ms.is_multiple_of(10) {
            return err(
                "--vrrp-advert-ms",
                format!(
                    "{} is not a multiple of 10 in 10..=40950 (VRRPv3 counts centiseconds)",
                    self.advert_int_ms
                ),
            );
        }
        if self.name.is_empty() || self.name.chars().any(|c| c.is_whitespace() || c == '#') {
            return err(
                "--vrrp-name",
                format!("{:?} is empty or has spaces or '#'", self.name),
            );
        }
        Ok(())
    }

    /// keepalived.conf for `vips`; `None` when there is none (keepalived
    /// then does not run: it would hold nothing).
    pub fn render(&self, vips: &BTreeSet<Ipv4Addr>) -> Option<String> {
        if vips.is_empty() {
            return None;
        }
        let mut all: Vec<(Ipv4Addr, u8)> = vips.iter().map(|v| (*v, 32)).collect();
        let excluded = all.split_off(all.len().min(ADVERTISED_VIPS));
        Some(render_vrrp(
            &self.name,
            &[VrrpInstance {
                name: "ocean_elb".into(),
                interface: self.interface.clone(),
                // Validated to fit.
                virtual_router_id: self.virtual_router_id as u8,
                priority: self.priority as u8,
                advert_int_ms: self.advert_int_ms,
                vips: all,
                excluded_vips: excluded,
                label: Some(vip_label(&self.interface)),
            }],
        ))
    }
}

/// The address label on the VIPs Ocean manages on `interface`.
pub fn vip_label(interface: &str) -> String {
    format!("{interface}{LABEL_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> VrrpConfig {
        VrrpConfig {
            interface: "eth0".into(),
            virtual_router_id: 61,
            priority: 150,
            advert_int_ms: 200,
            data_dir: "/tmp/x".into(),
            name: "lb1".into(),
        }
    }

    #[test]
    fn each_bad_setting_names_its_flag() {
        type Case = (fn(&mut VrrpConfig), &'static str, &'static str);
        let cases: [Case; 7] = [
            (
                |c| c.interface = "".into(),
                "--vrrp-interface",
                "is not an interface name",
            ),
            (
                |c| c.interface = "eth 0".into(),
                "--vrrp-interface",
                "is not an interface name",
            ),
            (
                |c| c.interface = "averylongname0".into(),
                "--vrrp-interface",
                "longer than 11",
            ),
            (
                |c| c.virtual_router_id = 0,
                "--vrrp-router-id",
                "not in 1..=255",
            ),
            (|c| c.priority = 255, "--vrrp-priority", "address owner"),
            (
                |c| c.advert_int_ms = 205,
                "--vrrp-advert-ms",
                "multiple of 10",
            ),
            (|c| c.name = "a b".into(), "--vrrp-name", "spaces"),
        ];
        for (edit, field, reason) in cases {
            let mut c = config();
            edit(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!(e.field, field);
            assert!(e.reason.contains(reason), "{e}");
        }
        config().validate().unwrap();
    }

    #[test]
    fn no_vip_no_config_and_every_vip_labelled() {
        assert_eq!(config().render(&BTreeSet::new()), None);
        let vips: BTreeSet<Ipv4Addr> = (1..=22).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        let conf = config().render(&vips).unwrap();
        assert!(conf.contains("  virtual_router_id 61\n  priority 150\n  advert_int 0.20\n"));
        assert!(conf.contains("  virtual_ipaddress {\n    10.0.0.1/32 dev eth0 label eth0:elb\n"));
        // The 21st and later are moved too, but not advertised.
        assert!(conf.contains(
            "  virtual_ipaddress_excluded {\n    10.0.0.21/32 dev eth0 label eth0:elb\n    10.0.0.22/32 dev eth0 label eth0:elb\n  }\n"
        ));
        assert_eq!(conf.matches("label eth0:elb").count(), 22);
    }
}
