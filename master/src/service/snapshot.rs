//! Master backup and restore: `ocean operator snapshot save FILE` and
//! `restore FILE`. A snapshot is the leader's whole state at one applied
//! index, in the encoding raft snapshots already use (`StateImage`), in a
//! file that names its index, term and version and carries a SHA-256 of
//! the image:
//!
//! ```text
//! OCEAN-SNAPSHOT 1\n
//! {"format":1,"index":..,"term":..,"version":..,"jobs":..,...,"sha256":".."}\n
//! <StateImage bytes>
//! ```
//!
//! Restoring checks the file, then commits one `RestoreState` command
//! through raft, so every master of the restoring cluster applies the same
//! state. A cluster that holds any job, task or key is refused unless
//! forced (a restore onto the wrong cluster would replace its jobs).

use ocean_proto::internal::{command, Command, RestoreState, StateImage};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{invalid, ReadOptions, Service};
use crate::error::{Error, Result};
use crate::kernel::state::Outcome;
use crate::master::Master;

/// The file's first line.
const MAGIC: &[u8] = b"OCEAN-SNAPSHOT 1\n";

/// What a snapshot file says about itself (its second line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotHeader {
    /// The file format (1).
    pub format: u32,
    /// The raft index the state was applied up to.
    pub index: u64,
    /// The leader's term at that index.
    pub term: u64,
    /// The state version.
    pub version: u64,
    pub jobs: u64,
    pub agents: u64,
    pub tasks: u64,
    pub keys: u64,
    /// Bytes of the state image.
    pub size: u64,
    /// SHA-256 of the state image, hex.
    pub sha256: String,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RestoreResult {
    /// The header of the file restored.
    pub snapshot: SnapshotHeader,
    /// The restoring cluster's state version after it.
    pub version: u64,
    /// `restored`.
    pub outcome: String,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Builds a snapshot file around `image`.
pub fn encode_file(index: u64, term: u64, image: &[u8]) -> Result<Vec<u8>> {
    let decoded = StateImage::decode(image).map_err(|e| crate::error::corrupt("state image", e))?;
    let header = SnapshotHeader {
        format: 1,
        index,
        term,
        version: decoded.version,
        jobs: decoded.jobs.len() as u64,
        agents: decoded.agents.len() as u64,
        tasks: decoded.tasks.len() as u64,
        keys: decoded.kv.len() as u64,
        size: image.len() as u64,
        sha256: hex(&Sha256::digest(image)),
    };
    let mut out = MAGIC.to_vec();
    out.extend(serde_json::to_vec(&header).unwrap_or_default());
    out.push(b'\n');
    out.extend_from_slice(image);
    Ok(out)
}

/// Checks a snapshot file: its magic line, header, size and checksum, and
/// that the image decodes. Returns the header and the image.
pub fn decode_file(file: &[u8]) -> Result<(SnapshotHeader, &[u8])> {
    let rest = file.strip_prefix(MAGIC).ok_or_else(|| {
        invalid(
            "snapshot",
            "not an Ocean snapshot file (no OCEAN-SNAPSHOT 1 line)",
        )
    })?;
    let nl = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| invalid("snapshot", "the header line is cut short"))?;
    let header: SnapshotHeader = serde_json::from_slice(&rest[..nl])
        .map_err(|e| invalid("snapshot", format!("the header is not valid: {e}")))?;
    let image = &rest[nl + 1..];
    if header.format != 1 {
        return Err(invalid(
            "snapshot",
            format!(
                "format {} is not known (this master reads 1)",
                header.format
            ),
        ));
    }
    if image.len() as u64 != header.size {
        return Err(invalid(
            "snapshot",
            format!(
                "the image is {} bytes, the header says {}: the file is truncated or damaged",
                image.len(),
                header.size
            ),
        ));
    }
    let sum = hex(&Sha256::digest(image));
    if sum != header.sha256 {
        return Err(invalid(
            "snapshot",
            format!(
                "checksum mismatch: the image's SHA-256 is {sum}, the header says {}",
                header.sha256
            ),
        ));
    }
    let decoded = StateImage::decode(image)
        .map_err(|e| invalid("snapshot", format!("the state image does not decode: {e}")))?;
    if let Some(why) = crate::kernel::state::format::image_problem(&decoded) {
        return Err(invalid("snapshot", why));
    }
    Ok((header, image))
}

impl Service<Master> {
    /// The leader's state at one applied index, as a snapshot file. Served
    /// by the leader only, after a read index so nothing acknowledged
    /// before the call is missing.
    pub async fn snapshot_save(&self) -> Result<Vec<u8>> {
        // The whole state, tokens' hashes included: admin on the root.
        self.authorize("", super::acl::Right::Admin)?;
        let m = self.kernel();
        let before = m.status();
        if before.leader != m.id() {
            return Err(not_leader(m));
        }
        super::Kernel::wait_read(
            m,
            ReadOptions {
                min_version: None,
                consistent: true,
            },
        )
        .await?;
        let (index, image) = m.read(|st| (st.applied_index, st.to_image()));
        let after = m.status();
        // The term of the applied index is the leader's own: after the
        // read index, every entry it applied since its election is of its
        // term. A leader change in between makes that unsure: say so.
        if after.leader != m.id() || after.term != before.term {
            return Err(Error::NoLeader(
                "the leader changed while saving; try again".into(),
            ));
        }
        encode_file(index, after.term, &image)
    }

    /// Restores a snapshot file onto this cluster (see the module doc).
    pub async fn snapshot_restore(&self, file: &[u8], force: bool) -> Result<RestoreResult> {
        self.authorize("", super::acl::Right::Admin)?;
        let (header, image) = decode_file(file)?;
        let m = self.kernel();
        if m.status().leader != m.id() {
            return Err(not_leader(m));
        }
        let applied = m
            .propose(Command {
                min_version: 0,
                kind: Some(command::Kind::RestoreState(RestoreState {
                    image: image.to_vec(),
                    force,
                })),
            })
            .await?;
        match applied.outcome {
            Outcome::Conflict { .. } => Err(Error::Conflict(
                "the cluster holds jobs, tasks or keys: restore onto a fresh cluster, or pass force to replace them".into(),
            )),
            Outcome::Updated => Ok(RestoreResult {
                snapshot: header,
                version: applied.version,
                outcome: "restored".into(),
            }),
            other => Err(invalid(
                "snapshot",
                format!("the cluster did not apply it ({})", other.as_str()),
            )),
        }
    }
}

fn not_leader(m: &Master) -> Error {
    let leader = m.status().leader;
    Error::NoLeader(format!(
        "snapshots are saved and restored by the leader; this is master {}, the leader is {}",
        m.id(),
        if leader == 0 {
            "unknown".to_string()
        } else {
            format!("master {leader}")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::state::ClusterState;

    #[test]
    fn a_file_round_trips_and_damage_is_named() {
        let mut st = ClusterState::default();
        st.apply(&Command {
            min_version: 0,
            kind: Some(command::Kind::PutKv(ocean_proto::internal::PutKv {
                namespace: "redis".into(),
                key: "k".into(),
                value: b"v".to_vec(),
                expected_revision: None,
            })),
        });
        let image = st.to_image();
        let file = encode_file(7, 2, &image).expect("encode");
        let (h, img) = decode_file(&file).expect("decode");
        assert_eq!((h.index, h.term, h.keys), (7, 2, 1));
        assert_eq!(img, &image[..]);

        let mut flipped = file.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let e = decode_file(&flipped).unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        let e = decode_file(&file[..file.len() - 1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        let e = decode_file(b"hello").unwrap_err().to_string();
        assert!(e.contains("not an Ocean snapshot"), "{e}");
    }
}
