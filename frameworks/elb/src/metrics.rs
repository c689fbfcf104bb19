//! `GET /metrics` on the LB agent: per-VS series in the Prometheus text
//! format, labelled `elb`, `vip`, `port`, `protocol`:
//!
//! - `ocean_elb_vs_connections_total`: new connections (the packets the
//!   `vs_new` counter set saw in conntrack state new; a retransmitted SYN
//!   counts again),
//! - `ocean_elb_vs_packets_total`, `ocean_elb_vs_bytes_total`: every packet
//!   of the VS's connections, both ways (`vs_traffic`),
//! - `ocean_elb_vs_real_servers`: real servers in rotation (healthy).
//!
//! The counters are read from the kernel at scrape time (two `list set`s
//! through an nft context of their own, on a blocking thread); the real
//! servers from the agent's model, which the HTTP side asks the agent's
//! loop for (a copy of its VS).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use tracing::warn;

use crate::nft::Nft;
use crate::nft_read::{concat, counted, elems, vs, ReadError};
use crate::nft_script::STATS_SETS;
use crate::plane::{VirtualServer, VsKey};

/// Packets and bytes one counter holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The counters of a counter set's listing (`nft -j list set`), by VS.
pub fn parse_counters(json: &str) -> Result<Counters, ReadError> {
    let doc: Value = serde_json::from_str(json).map_err(|e| ReadError(e.to_string()))?;
    let mut out = BTreeMap::new();
    for item in doc
        .get("nftables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(set) = item.get("set") else {
            continue;
        };
        for e in elems(set) {
            let key = vs(concat(counted(e))?)?;
            let c = e.pointer("/elem/counter");
            let n = |f: &str| {
                c.and_then(|c| c.get(f))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            out.insert(
                key,
                Counter {
                    packets: n("packets"),
                    bytes: n("bytes"),
                },
            );
        }
    }
    Ok(out)
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The counters of one counter set, by VS.
pub type Counters = BTreeMap<VsKey, Counter>;

/// The Prometheus text for `vss` with the counters read, `vs_new`'s then
/// `vs_traffic`'s (`None`: they could not be read;
/// `ocean_elb_counters_up` says so).
pub fn render<'a>(
    vss: impl IntoIterator<Item = &'a VirtualServer>,
    counters: Option<(&Counters, &Counters)>,
) -> String {
    let mut vss: Vec<&VirtualServer> = vss.into_iter().collect();
    vss.sort_by_key(|v| v.key);
    let labels = |v: &VirtualServer| {
        format!(
            "elb=\"{}\",vip=\"{}\",port=\"{}\",protocol=\"{}\"",
            escape(&v.elb),
            v.key.vip,
            v.key.port,
            v.key.proto.as_str()
        )
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# HELP ocean_elb_counters_up Whether the per-VS counters could be read from the kernel.\n# TYPE ocean_elb_counters_up gauge\nocean_elb_counters_up {}",
        u8::from(counters.is_some())
    );
    let _ = writeln!(
        s,
        "# HELP ocean_elb_vs_real_servers Real servers of the VS in rotation (running, healthy, not draining).\n# TYPE ocean_elb_vs_real_servers gauge"
    );
    for v in &vss {
        let _ = writeln!(
            s,
            "ocean_elb_vs_real_servers{{{}}} {}",
            labels(v),
            v.real_servers.len()
        );
    }
    let Some((new, traffic)) = counters else {
        return s;
    };
    type Pick = fn(&Counter) -> u64;
    let series: [(&str, &str, &BTreeMap<VsKey, Counter>, Pick); 3] = [
        (
            "ocean_elb_vs_connections_total",
            "New connections to the VS.",
            new,
            |c| c.packets,
        ),
        (
            "ocean_elb_vs_packets_total",
            "Packets of the VS's connections, both directions.",
            traffic,
            |c| c.packets,
        ),
        (
            "ocean_elb_vs_bytes_total",
            "Bytes of the VS's connections, both directions.",
            traffic,
            |c| c.bytes,
        ),
    ];
    for (name, help, map, pick) in series {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
        for v in &vss {
            let value = map.get(&v.key).map(pick).unwrap_or(0);
            let _ = writeln!(s, "{name}{{{}}} {value}", labels(v));
        }
    }
    s
}

/// The `/metrics` listener and the nft context it reads the counters
/// through (its own: a read does not wait for, or delay, the agent's
/// syncs).
#[derive(Debug)]
pub struct MetricsServer {
    /// Where `GET /metrics` is served.
    pub listener: tokio::net::TcpListener,
    /// The LB table's nft (in its namespace).
    pub nft: std::sync::Arc<dyn Nft>,
}

/// The `/metrics` text for `vss`, the counters read through `nft` now.
pub fn scrape(nft: &dyn Nft, vss: &[VirtualServer]) -> String {
    let read = |set: &str| -> Result<Counters, String> {
        match nft.list_set(set).map_err(|e| e.to_string())? {
            Some(json) => parse_counters(&json).map_err(|e| e.to_string()),
            // No table yet: nothing counted.
            None => Ok(Counters::new()),
        }
    };
    let counters = match (read(STATS_SETS[0]), read(STATS_SETS[1])) {
        (Ok(new), Ok(traffic)) => Some((new, traffic)),
        (Err(error), _) | (_, Err(error)) => {
            warn!(%error, "reading the per-VS counters failed");
            None
        }
    };
    render(vss, counters.as_ref().map(|(n, t)| (n, t)))
}

/// A scrape handed to the agent's loop: it answers with the text.
pub type Scrape = oneshot::Sender<String>;

/// `GET /metrics`, answered by whoever holds the other end of `scrapes`.
pub fn router(scrapes: mpsc::Sender<Scrape>) -> Router {
    Router::new()
        .route("/metrics", get(serve))
        .with_state(scrapes)
}

async fn serve(State(scrapes): State<mpsc::Sender<Scrape>>) -> impl IntoResponse {
    let (tx, rx) = oneshot::channel();
    let text = match scrapes.send(tx).await {
        Ok(()) => rx.await.ok(),
        Err(_) => None,
    };
    match text {
        Some(t) => (
            axum::http::StatusCode::OK,
            [(CONTENT_TYPE, "text/plain; version=0.0.4")],
            t,
        ),
        None => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(CONTENT_TYPE, "text/plain; version=0.0.4")],
            "the LB agent is stopping\n".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plane::RealServer;
    use crate::spec::{Algorithm, Protocol};

    fn key() -> VsKey {
        VsKey {
            vip: "10.0.0.1".parse().unwrap(),
            proto: Protocol::Tcp,
            port: 80,
        }
    }

    #[test]
    fn counters_are_read_per_vs() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "ip", "name": "vs_traffic", "table": "ocean_elb",
            "elem": [{"elem": {"val": {"concat": ["10.0.0.1", "tcp", 80]}, "counter": {"packets": 6, "bytes": 300}}}]}}]}"#;
        let c = parse_counters(json).unwrap();
        assert_eq!(
            c[&key()],
            Counter {
                packets: 6,
                bytes: 300
            }
        );
        assert!(parse_counters("{").is_err());
    }

    #[test]
    fn each_vs_has_its_labelled_series() {
        let vs = VirtualServer {
            key: key(),
            elb: "pdl.web_service.front".into(),
            algorithm: Algorithm::Rr,
            real_servers: vec![(
                RealServer {
                    addr: "10.1.0.2".parse().unwrap(),
                    port: 8080,
                },
                1,
            )],
        };
        let new = BTreeMap::from([(
            key(),
            Counter {
                packets: 2,
                bytes: 120,
            },
        )]);
        let traffic = BTreeMap::from([(
            key(),
            Counter {
                packets: 14,
                bytes: 900,
            },
        )]);
        let text = render([&vs], Some((&new, &traffic)));
        let labels = r#"{elb="pdl.web_service.front",vip="10.0.0.1",port="80",protocol="tcp"}"#;
        for line in [
            "ocean_elb_counters_up 1".to_string(),
            format!("ocean_elb_vs_real_servers{labels} 1"),
            format!("ocean_elb_vs_connections_total{labels} 2"),
            format!("ocean_elb_vs_packets_total{labels} 14"),
            format!("ocean_elb_vs_bytes_total{labels} 900"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        let down = render([&vs], None);
        assert!(down.contains("ocean_elb_counters_up 0\n"));
        assert!(!down.contains("_total"));
    }
}
