use super::*;
use crate::admin::ReplicaObs;

fn m(task: &str, port: u16, obs: Option<Observed>) -> Member {
    Member {
        task: task.into(),
        host: format!("h-{task}"),
        ip: "10.0.0.1".into(),
        port,
        seed_port: 0,
        obs,
    }
}

fn primary(pos: &str) -> Observed {
    Observed {
        read_only: false,
        gtid_current_pos: pos.into(),
        semi_sync_enabled: true,
        semi_sync_clients: 1,
        app_ready: true,
        ..Default::default()
    }
}

fn standby(of: u16, applied: &str, received: &str, io: bool) -> Observed {
    Observed {
        read_only: true,
        gtid_current_pos: applied.into(),
        replica: Some(ReplicaObs {
            master_host: "10.0.0.1".into(),
            master_port: of,
            io_running: io,
            sql_running: true,
            gtid_io_pos: received.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn bootstrap_waits_for_a_standby_and_picks_the_most_advanced() {
    let fresh = || Some(Observed::default());
    assert_eq!(bootstrap(3, &[m("a", 1, fresh()), m("b", 2, None)]), None);
    let ms = [m("b", 2, fresh()), m("a", 1, fresh())];
    assert_eq!(bootstrap(3, &ms).unwrap().task, "a");
    let ahead = Observed {
        gtid_current_pos: "0-1-3".into(),
        ..Default::default()
    };
    let ms = [m("a", 1, fresh()), m("b", 2, Some(ahead))];
    assert_eq!(bootstrap(3, &ms).unwrap().task, "b");
    assert_eq!(bootstrap(1, &[m("a", 1, fresh())]).unwrap().task, "a");
}

#[test]
fn steady_promotes_a_read_only_primary_points_standbys_and_creates_the_app_user() {
    let mut p = primary("");
    p.read_only = true;
    p.app_ready = false;
    p.semi_sync_clients = 0;
    let ms = [
        m("a", 1, Some(p)),
        m("b", 2, Some(Observed::default())),
        m("c", 3, Some(standby(1, "", "", true))),
        m("d", 4, None),
    ];
    assert_eq!(
        steady(3, &ms[0], &ms),
        vec![
            AdminCmd::Promote {
                on: "10.0.0.1:1".into(),
                alone: false
            },
            AdminCmd::Follow {
                on: "10.0.0.1:2".into(),
                host: "10.0.0.1".into(),
                port: 1
            },
        ]
    );
    let mut p = primary("0-1-5");
    p.app_ready = false;
    let mut stray = standby(1, "", "", true);
    stray.read_only = false;
    let ms = [m("a", 1, Some(p)), m("c", 3, Some(stray))];
    assert_eq!(
        steady(2, &ms[0], &ms),
        vec![
            AdminCmd::Demote {
                on: "10.0.0.1:3".into()
            },
            AdminCmd::EnsureApp {
                on: "10.0.0.1:1".into()
            },
        ]
    );
}

#[test]
fn semi_sync_is_off_at_one_instance_and_on_again_once_a_standby_replicates() {
    let alone = [m("a", 1, Some(primary("0-1-5")))];
    assert_eq!(
        steady(1, &alone[0], &alone),
        vec![AdminCmd::SemiSync {
            on: "10.0.0.1:1".into(),
            enabled: false
        }]
    );
    let mut off = primary("0-1-5");
    off.semi_sync_enabled = false;
    // Scaled out: the new instance does not replicate yet; commits must
    // not wait for it.
    let ms = [
        m("a", 1, Some(off.clone())),
        m("b", 2, Some(Observed::default())),
    ];
    assert!(!steady(2, &ms[0], &ms)
        .iter()
        .any(|c| matches!(c, AdminCmd::SemiSync { .. })));
    let ms = [
        m("a", 1, Some(off)),
        m("b", 2, Some(standby(1, "0-1-5", "0-1-5", true))),
    ];
    assert_eq!(
        steady(2, &ms[0], &ms),
        vec![AdminCmd::SemiSync {
            on: "10.0.0.1:1".into(),
            enabled: true
        }]
    );
}

#[test]
fn a_diverged_standby_is_left_for_a_rebuild() {
    let mut bad = standby(1, "0-9-7", "0-9-7", false);
    if let Some(r) = bad.replica.as_mut() {
        r.last_error = "Error 1236: errant".into();
        r.last_io_errno = 1236;
    }
    let ms = [m("a", 1, Some(primary("0-1-5"))), m("b", 2, Some(bad))];
    assert!(diverged(&ms[1], &ms[0]));
    assert_eq!(steady(2, &ms[0], &ms), vec![]);
}

#[test]
fn failover_fences_then_waits_for_the_relay_log_then_promotes_the_one_with_everything() {
    let c = [
        m("b", 2, Some(standby(1, "0-1-5", "0-1-6", true))),
        m("c", 3, Some(standby(1, "0-1-6", "0-1-7", false))),
        m("d", 4, None),
    ];
    assert_eq!(
        failover_step(&c),
        FailoverStep::StopIo(vec![AdminCmd::StopIo {
            on: "10.0.0.1:2".into()
        }])
    );
    let c = [
        m("b", 2, Some(standby(1, "0-1-5", "0-1-6", false))),
        m("c", 3, Some(standby(1, "0-1-7", "0-1-7", false))),
    ];
    assert!(matches!(failover_step(&c), FailoverStep::Wait(_)));
    let c = [
        m("b", 2, Some(standby(1, "0-1-6", "0-1-6", false))),
        m("c", 3, Some(standby(1, "0-1-7", "0-1-7", false))),
    ];
    assert_eq!(failover_step(&c), FailoverStep::Promote("c".into()));
    assert_eq!(failover_step(&[m("b", 2, None)]), FailoverStep::NoCandidate);
}

#[test]
fn failover_refuses_histories_that_do_not_contain_each_other() {
    let c = [
        m("b", 2, Some(standby(1, "0-1-6", "0-1-6", false))),
        m("c", 3, Some(standby(1, "1-2-9", "1-2-9", false))),
    ];
    assert_eq!(failover_step(&c), FailoverStep::NoCandidate);
}
