//! Reads back what the kernel holds (`nft -j list table ip ocean_elb`)
//! as a [`DataPlane`], so the next change is a diff against the truth, not
//! against what a previous run of the agent believed.
//!
//! A table whose chains are not the ones [`nft_script::chain_names`] lists
//! (another version of the agent, or hand edits) reads as `None`: the next
//! apply rebuilds it whole. So does one whose VS ids do not add up (a
//! served VS without an id, an id without a served VS or held twice, a
//! slot under an unknown id).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde_json::Value;

use crate::nft_script::{self, Capacity};
use crate::plane::{DataPlane, Dispatch, RealServer, Service, SlotTable, VsKey};
use crate::spec::Protocol;
use crate::vs_ids::VsIds;

/// The listing could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reading nft's JSON listing: {0}")]
pub struct ReadError(pub String);

fn err(s: impl Into<String>) -> ReadError {
    ReadError(s.into())
}

fn ip(v: &Value) -> Result<Ipv4Addr, ReadError> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err(format!("{v} is not an IPv4 address")))
}

fn num(v: &Value) -> Result<u64, ReadError> {
    v.as_u64()
        .ok_or_else(|| err(format!("{v} is not a number")))
}

fn proto(v: &Value) -> Result<Protocol, ReadError> {
    match v {
        Value::String(s) if s == "tcp" => Ok(Protocol::Tcp),
        Value::String(s) if s == "udp" => Ok(Protocol::Udp),
        Value::Number(n) if n.as_u64() == Some(6) => Ok(Protocol::Tcp),
        Value::Number(n) if n.as_u64() == Some(17) => Ok(Protocol::Udp),
        _ => Err(err(format!("{v} is not tcp or udp"))),
    }
}

pub(crate) fn concat(v: &Value) -> Result<&Vec<Value>, ReadError> {
    v.get("concat")
        .and_then(Value::as_array)
        .ok_or_else(|| err(format!("{v} is not a concatenation")))
}

pub(crate) fn vs(parts: &[Value]) -> Result<VsKey, ReadError> {
    if parts.len() < 3 {
        return Err(err("a VS key has three parts"));
    }
    Ok(VsKey {
        vip: ip(&parts[0])?,
        proto: proto(&parts[1])?,
        port: u16::try_from(num(&parts[2])?).map_err(|_| err("port out of range"))?,
    })
}

pub(crate) fn elems(obj: &Value) -> &[Value] {
    obj.get("elem")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Parses a listing; `Ok(None)` when the table is not as this version
/// builds it.
pub fn parse(json: &str) -> Result<Option<DataPlane>, ReadError> {
    Ok(parse_installed(json)?.map(|i| i.plane))
}

/// What the kernel's table holds, as the programmer diffs against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The data plane.
    pub plane: DataPlane,
    /// The id each served VS holds.
    pub ids: VsIds,
    /// The sizes the big sets are declared with.
    pub capacity: Capacity,
}

/// Like [`parse`], with the VS ids and the declared set sizes.
pub fn parse_installed(json: &str) -> Result<Option<Installed>, ReadError> {
    let doc: Value = serde_json::from_str(json).map_err(|e| err(e.to_string()))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| err("no `nftables` array"))?;
    // The shape first: the elements of a table of another version (whose
    // keys may have other parts) are not read at all.
    let mut chains: BTreeMap<String, usize> = BTreeMap::new();
    let mut sets = Vec::new();
    let (mut slots_size, mut rs_size) = (None, None);
    for item in items {
        if let Some(c) = item.get("chain") {
            if let Some(name) = c.get("name").and_then(Value::as_str) {
                chains.entry(name.to_string()).or_default();
            }
        } else if let Some(r) = item.get("rule") {
            if let Some(name) = r.get("chain").and_then(Value::as_str) {
                *chains.entry(name.to_string()).or_default() += 1;
            }
        } else if let Some(s) = item.get("set").or_else(|| item.get("map")) {
            let name = s.get("name").and_then(Value::as_str).unwrap_or("");
            let size = s.get("size").and_then(Value::as_u64);
            match name {
                "slots" => slots_size = size,
                "rs_addrs" => rs_size = size,
                _ => {}
            }
            sets.push(name);
        }
    }
    let want: BTreeMap<String, usize> = nft_script::chain_names().into_iter().collect();
    sets.sort_unstable();
    if chains != want
        || sets
            != [
                "empty",
                "ids",
                "rs_addrs",
                "services",
                "slots",
                "vs_new",
                "vs_traffic",
            ]
    {
        return Ok(None);
    }
    let (Some(slots_size), Some(rs_size)) = (slots_size, rs_size) else {
        return Ok(None);
    };
    let capacity = Capacity {
        slots: usize::try_from(slots_size).map_err(|_| err("size out of range"))?,
        rs_addrs: usize::try_from(rs_size).map_err(|_| err("size out of range"))?,
    };
    let mut plane = DataPlane::default();
    // Slots by id, resolved to their VS once `ids` is read.
    let mut by_id: BTreeMap<u32, BTreeMap<u32, RealServer>> = BTreeMap::new();
    let mut ids: BTreeMap<VsKey, u32> = BTreeMap::new();
    let mut stats: BTreeMap<String, BTreeSet<VsKey>> = BTreeMap::new();
    for item in items {
        if let Some(s) = item.get("set").or_else(|| item.get("map")) {
            let name = s.get("name").and_then(Value::as_str).unwrap_or("");
            match name {
                "services" => {
                    for e in elems(s) {
                        let pair = e.as_array().ok_or_else(|| err("a map element is a pair"))?;
                        let key = vs(concat(&pair[0])?)?;
                        let target = pair
                            .get(1)
                            .and_then(|v| v.pointer("/goto/target"))
                            .and_then(Value::as_str)
                            .ok_or_else(|| err(format!("{e} has no goto")))?;
                        let Some(svc) = parse_target(target) else {
                            return Ok(None);
                        };
                        plane.services.insert(key, svc);
                    }
                }
                "ids" => {
                    for e in elems(s) {
                        let pair = e.as_array().ok_or_else(|| err("a map element is a pair"))?;
                        let key = vs(concat(&pair[0])?)?;
                        let id = u32::from(ip(pair.get(1).ok_or_else(|| err("no id"))?)?);
                        ids.insert(key, id);
                    }
                }
                "slots" => {
                    for e in elems(s) {
                        let pair = e.as_array().ok_or_else(|| err("a map element is a pair"))?;
                        let k = concat(&pair[0])?;
                        let id = u32::from(ip(k.first().ok_or_else(|| err("no id"))?)?);
                        let slot = u32::try_from(num(k.get(1).ok_or_else(|| err("no slot"))?)?)
                            .map_err(|_| err("slot out of range"))?;
                        let v = concat(pair.get(1).ok_or_else(|| err("no value"))?)?;
                        let rs = RealServer {
                            addr: ip(&v[0])?,
                            port: u16::try_from(num(v.get(1).ok_or_else(|| err("no port"))?)?)
                                .map_err(|_| err("port out of range"))?,
                        };
                        by_id.entry(id).or_default().insert(slot, rs);
                    }
                }
                "empty" => {
                    for e in elems(s) {
                        plane.empty.insert(vs(concat(e)?)?);
                    }
                }
                "rs_addrs" => {
                    for e in elems(s) {
                        plane.rs_addrs.insert(ip(e)?);
                    }
                }
                "vs_new" | "vs_traffic" => {
                    let keys = stats.entry(name.to_string()).or_default();
                    for e in elems(s) {
                        keys.insert(vs(concat(counted(e))?)?);
                    }
                }
                _ => return Ok(None),
            }
        }
    }
    // Every served VS holds one id of its own, and every slot is under
    // one of them.
    let vs_of: BTreeMap<u32, VsKey> = ids.iter().map(|(k, id)| (*id, *k)).collect();
    if vs_of.len() != ids.len() || !ids.keys().eq(plane.services.keys()) {
        return Ok(None);
    }
    for (id, table) in by_id {
        let Some(vs) = vs_of.get(&id) else {
            return Ok(None);
        };
        plane.slots.insert(*vs, SlotTable::of(table));
    }
    // Counter sets missing a VS (or holding one no longer there) are
    // repaired by a rebuild: rare (hand edits), and the diff stays simple.
    let keys: BTreeSet<VsKey> = plane.vs_keys().copied().collect();
    if nft_script::STATS_SETS
        .iter()
        .any(|set| stats.get(*set).unwrap_or(&BTreeSet::new()) != &keys)
    {
        return Ok(None);
    }
    Ok(Some(Installed {
        plane,
        ids: VsIds::from_map(ids),
        capacity,
    }))
}

/// An element of a set declared with `counter` is listed as
/// `{"elem": {"val": ..., "counter": ...}}`; others as the value itself.
pub fn counted(e: &Value) -> &Value {
    e.pointer("/elem/val").unwrap_or(e)
}

fn parse_target(t: &str) -> Option<Service> {
    let (d, size) = t.split_once('_')?;
    let dispatch = match d {
        "conn" => Dispatch::Conn,
        "source" => Dispatch::Source,
        _ => return None,
    };
    Some(Service {
        dispatch,
        size: size.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(elems: &str) -> String {
        let mut items = vec![
            r#"{"metainfo": {"version": "1.0.6"}}"#.to_string(),
            r#"{"table": {"family": "ip", "name": "ocean_elb", "handle": 1}}"#.to_string(),
        ];
        items.push(elems.to_string());
        for (name, rules) in nft_script::chain_names() {
            items.push(format!(
                r#"{{"chain": {{"family": "ip", "table": "ocean_elb", "name": "{name}"}}}}"#
            ));
            for _ in 0..rules {
                items.push(format!(r#"{{"rule": {{"family": "ip", "table": "ocean_elb", "chain": "{name}", "expr": []}}}}"#));
            }
        }
        format!(r#"{{"nftables": [{}]}}"#, items.join(", "))
    }

    const SETS: &str = r#"{"map": {"name": "services", "elem": [[{"concat": ["10.0.0.1", "tcp", 80]}, {"goto": {"target": "source_7"}}]]}},
        {"set": {"name": "empty", "elem": [{"concat": ["10.0.0.2", "udp", 53]}]}},
        {"set": {"name": "rs_addrs", "size": 65536, "elem": ["10.1.0.2"]}},
        {"map": {"name": "slots", "size": 131072, "elem": [[{"concat": ["0.0.0.9", 3]}, {"concat": ["10.1.0.2", 8080]}]]}},
        {"map": {"name": "ids", "elem": [[{"concat": ["10.0.0.1", "tcp", 80]}, "0.0.0.9"]]}},
        {"set": {"name": "vs_new", "elem": [{"elem": {"val": {"concat": ["10.0.0.1", "tcp", 80]}, "counter": {"packets": 1, "bytes": 60}}},
            {"elem": {"val": {"concat": ["10.0.0.2", "udp", 53]}, "counter": {"packets": 0, "bytes": 0}}}]}},
        {"set": {"name": "vs_traffic", "elem": [{"elem": {"val": {"concat": ["10.0.0.1", "tcp", 80]}, "counter": {"packets": 9, "bytes": 600}}},
            {"elem": {"val": {"concat": ["10.0.0.2", "udp", 53]}, "counter": {"packets": 0, "bytes": 0}}}]}}"#;

    #[test]
    fn a_listing_reads_back_as_the_plane_it_holds() {
        let Installed {
            plane: p,
            ids,
            capacity,
        } = parse_installed(&listing(SETS)).unwrap().unwrap();
        assert_eq!(
            capacity,
            Capacity {
                slots: 131072,
                rs_addrs: 65536
            }
        );
        let key = VsKey {
            vip: "10.0.0.1".parse().unwrap(),
            proto: Protocol::Tcp,
            port: 80,
        };
        assert_eq!(ids, VsIds::from_map(BTreeMap::from([(key, 9)])));
        assert_eq!(
            p.services[&key],
            Service {
                dispatch: Dispatch::Source,
                size: 7
            }
        );
        assert_eq!(
            p.slot(&key, 3).unwrap(),
            RealServer {
                addr: "10.1.0.2".parse().unwrap(),
                port: 8080
            }
        );
        assert_eq!(
            p.empty.iter().next().unwrap().to_string(),
            "10.0.0.2:53/udp"
        );
        assert_eq!(p.rs_addrs.len(), 1);
    }

    #[test]
    fn a_table_of_another_shape_reads_as_none() {
        let extra = format!(r#"{SETS}, {{"chain": {{"name": "hand_made"}}}}"#);
        assert_eq!(parse(&listing(&extra)).unwrap(), None);
        let other_set = format!(r#"{SETS}, {{"set": {{"name": "mine"}}}}"#);
        assert_eq!(parse(&listing(&other_set)).unwrap(), None);
        // A counter set missing a VS: rebuilt.
        let short = SETS.replacen(
            r#",
            {"elem": {"val": {"concat": ["10.0.0.2", "udp", 53]}, "counter": {"packets": 0, "bytes": 0}}}"#,
            "",
            1,
        );
        assert_ne!(short, SETS);
        assert_eq!(parse(&listing(&short)).unwrap(), None);
        // Ids that do not add up: a slot under an unknown id, a served VS
        // without one, one id held twice.
        let stray = SETS.replace(r#"["0.0.0.9", 3]"#, r#"["0.0.0.8", 3]"#);
        assert_eq!(parse(&listing(&stray)).unwrap(), None);
        let no_id = SETS.replace(
            r#"[[{"concat": ["10.0.0.1", "tcp", 80]}, "0.0.0.9"]]"#,
            "[]",
        );
        assert_ne!(no_id, SETS);
        assert_eq!(parse(&listing(&no_id)).unwrap(), None);
        let twice = SETS.replace(
            r#"[[{"concat": ["10.0.0.1", "tcp", 80]}, "0.0.0.9"]]"#,
            r#"[[{"concat": ["10.0.0.1", "tcp", 80]}, "0.0.0.9"], [{"concat": ["10.0.0.2", "udp", 53]}, "0.0.0.9"]]"#,
        );
        assert_eq!(parse(&listing(&twice)).unwrap(), None);
        // The table of the version before ids (a four-part slot key, no
        // `ids` map): rebuilt.
        let old = SETS
            .replace(r#"["0.0.0.9", 3]"#, r#"["10.0.0.1", "tcp", 80, 3]"#)
            .replace(
                r#"{"map": {"name": "ids", "elem": [[{"concat": ["10.0.0.1", "tcp", 80]}, "0.0.0.9"]]}},"#,
                "",
            );
        assert_ne!(old, SETS);
        assert_eq!(parse(&listing(&old)).unwrap(), None);
        // Big sets declared without a size: rebuilt.
        let unsized_ = SETS.replace(r#""size": 131072, "#, "");
        assert_ne!(unsized_, SETS);
        assert_eq!(parse(&listing(&unsized_)).unwrap(), None);
        assert!(parse("{}").is_err());
    }
}
