//! Unit tests of the RocksDB store.

use super::*;
use raft::Storage;

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![index as u8; 3].into(),
        ..Default::default()
    }
}

fn member(id: u64) -> Member {
    Member {
        id,
        grpc_addr: format!("127.0.0.1:{id}"),
        http_addr: String::new(),
    }
}

#[test]
fn bootstrap_append_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = RaftStore::open(dir.path(), true).unwrap();
        assert!(s.is_empty());
        s.bootstrap(&[member(1), member(2), member(3)]).unwrap();
        assert_eq!(s.first_index().unwrap(), INIT_INDEX + 1);
        assert_eq!(s.last_index().unwrap(), INIT_INDEX);
        let ents: Vec<_> = (6..=10).map(|i| entry(i, 6)).collect();
        let mut hs = s.hard_state();
        hs.term = 6;
        s.persist(&ents, Some(&hs)).unwrap();
        // A new leader overwrites 9..=10 with one entry at term 7.
        s.persist(&[entry(9, 7)], None).unwrap();
        assert_eq!(s.last_index().unwrap(), 9);
    }
    let s = RaftStore::open(dir.path(), true).unwrap();
    assert!(!s.is_empty());
    assert_eq!(s.last_index().unwrap(), 9);
    assert_eq!(s.term(9).unwrap(), 7);
    assert_eq!(s.term(8).unwrap(), 6);
    assert_eq!(s.initial_state().unwrap().hard_state.term, 6);
    assert_eq!(s.initial_state().unwrap().conf_state.voters, vec![1, 2, 3]);
    let got = s
        .entries(6, 10, None, GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(s.state().read().unwrap().members.len(), 3);
}

#[test]
fn compact_then_snapshot_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let s = RaftStore::open(dir.path(), false).unwrap();
    s.bootstrap(&[member(1)]).unwrap();
    let ents: Vec<_> = (6..=20).map(|i| entry(i, 6)).collect();
    s.persist(&ents, None).unwrap();
    {
        let state = s.state();
        let mut st = state.write().unwrap();
        st.apply(&crate::kernel::state::put_job_command(
            "a".into(),
            b"{}".to_vec(),
        ));
        st.applied_index = 15;
    }
    assert!(s.compact(15).unwrap());
    assert_eq!(s.first_index().unwrap(), 16);
    assert!(matches!(
        s.entries(10, 12, None, GetEntriesContext::empty(false)),
        Err(raft::Error::Store(StorageError::Compacted))
    ));
    assert_eq!(s.term(15).unwrap(), 6);
    let snap = s.snapshot(0, 2).unwrap();
    assert_eq!(snap.get_metadata().index, 15);

    // A fresh store takes the snapshot whole.
    let dir2 = tempfile::tempdir().unwrap();
    let t = RaftStore::open(dir2.path(), false).unwrap();
    t.apply_snapshot(&snap).unwrap();
    assert_eq!(t.first_index().unwrap(), 16);
    assert_eq!(t.state().read().unwrap().jobs.len(), 1);
    drop(t);
    let t = RaftStore::open(dir2.path(), false).unwrap();
    assert_eq!(t.state().read().unwrap().jobs.len(), 1);
    assert_eq!(t.state().read().unwrap().applied_index, 15);
    assert_eq!(t.initial_state().unwrap().conf_state.voters, vec![1]);
}

#[test]
fn a_batch_writes_each_key_once_and_its_last_change_wins() {
    use crate::kernel::state::Change;
    use ocean_proto::internal::Task;
    use std::sync::Arc;

    let task = |id: &str, state: &str| {
        Change::TaskPut(Arc::new(Task {
            id: id.into(),
            job_id: "j".into(),
            agent_id: "a".into(),
            state: state.into(),
            ..Default::default()
        }))
    };
    let dir = tempfile::tempdir().unwrap();
    {
        let s = RaftStore::open(dir.path(), false).unwrap();
        s.bootstrap(&[member(1)]).unwrap();
        // Out of key order, with repeats: placed then running, placed then
        // removed, removed then placed again.
        let changes = vec![
            task("j.2", "STAGING"),
            task("j.1", "STAGING"),
            task("j.3", "STAGING"),
            task("j.1", "RUNNING"),
            Change::TaskRemoved("j.3".into()),
            Change::TaskRemoved("j.4".into()),
            task("j.4", "STAGING"),
        ];
        let mut b = s.batch();
        b.applied(&changes, &[], &[], None, 7, 3).unwrap();
        s.write_batch(b).unwrap();
    }
    let s = RaftStore::open(dir.path(), false).unwrap();
    let state = s.state();
    let st = state.read().unwrap();
    let states: Vec<(&str, &str)> = st
        .tasks
        .values()
        .map(|t| (t.id.as_str(), t.state.as_str()))
        .collect();
    assert_eq!(
        states,
        vec![("j.1", "RUNNING"), ("j.2", "STAGING"), ("j.4", "STAGING")]
    );
    assert_eq!((st.applied_index, st.version), (7, 3));
}
