//! The operator keeping job accounts on the primary in step with the
//! allowed job's tasks (in-memory instances).

use super::*;
use crate::grants::{Account, JobCredential};
use crate::spec::tests::APP_JOB;

fn app_task(n: u32, state: &str, address: &str) -> Task {
    Task {
        id: format!("{APP_JOB}.{n}"),
        job_id: APP_JOB.into(),
        host: format!("app-host-{n}"),
        address: address.into(),
        state: state.into(),
        ..Default::default()
    }
}

/// The view with the record carrying `app`'s credential (and `allowed`
/// as its allowed jobs).
fn view_with(tasks: &[Task], keys: &Keys, allowed: &[&str]) -> View {
    let mut v = view(tasks, keys);
    let mut r = rec();
    r.spec.allowed_jobs = allowed.iter().map(|s| s.to_string()).collect();
    r.secrets.jobs.insert(
        APP_JOB.into(),
        JobCredential {
            user: "oj_app".into(),
            password: "pw".into(),
        },
    );
    r.secrets.jobs.retain(|j, _| allowed.contains(&j.as_str()));
    let k = format!("databases/{}", r.spec.name);
    v.keys.get_mut(&k).unwrap().value = serde_json::to_vec(&r).unwrap();
    v
}

fn held(admin: &MemAdmin, addr: &str) -> Vec<String> {
    admin
        .accounts
        .lock()
        .unwrap()
        .get(addr)
        .map(|s| s.iter().map(|a| format!("{}@{}", a.user, a.host)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn job_accounts_follow_the_tasks_on_the_primary_and_go_with_the_job() {
    let admin = Arc::new(MemAdmin::default());
    let keys = Arc::new(Keys::default());
    let mut op = Operator::new(keys.clone(), admin.clone(), OperatorOptions::new("me"));
    let db = vec![task(1, 101, "RUNNING"), task(2, 102, "RUNNING")];
    for p in [101, 102] {
        admin.set(&format!("10.0.0.1:{p}"), fresh());
    }
    let mut app = vec![app_task(1, "RUNNING", "10.0.1.1")];
    let all = |app: &[Task]| [db.clone(), app.to_vec()].concat();
    // Bootstrap round: the primary is made writable; once a standby
    // acknowledges, the next one makes its schema; grants follow once it
    // has both.
    op.round(&view_with(&all(&app), &keys, &[APP_JOB])).await;
    let mut p = admin.get("10.0.0.1:101").unwrap();
    p.semi_sync_clients = 1;
    admin.set("10.0.0.1:101", Some(p));
    op.round(&view_with(&all(&app), &keys, &[APP_JOB])).await;
    assert!(
        held(&admin, "10.0.0.1:101").is_empty(),
        "not before the schema"
    );
    op.round(&view_with(&all(&app), &keys, &[APP_JOB])).await;
    assert_eq!(held(&admin, "10.0.0.1:101"), ["oj_app@10.0.1.1"]);
    assert!(
        held(&admin, "10.0.0.1:102").is_empty(),
        "standbys get them by replication"
    );
    let st = status_of(&keys);
    assert_eq!(st.grants.len(), 1);
    assert_eq!(
        (st.grants[0].user.as_str(), &st.grants[0].hosts[..]),
        ("oj_app", &["10.0.1.1".to_string()][..])
    );

    // Scale-up: a second host; then the first task moves away.
    app.push(app_task(2, "STARTING", "10.0.1.2"));
    op.round(&view_with(&all(&app), &keys, &[APP_JOB])).await;
    assert_eq!(
        held(&admin, "10.0.0.1:101"),
        ["oj_app@10.0.1.1", "oj_app@10.0.1.2"]
    );
    app[0].state = "KILLED".into();
    app.push(app_task(3, "RUNNING", "10.0.1.3"));
    op.round(&view_with(&all(&app), &keys, &[APP_JOB])).await;
    assert_eq!(
        held(&admin, "10.0.0.1:101"),
        ["oj_app@10.0.1.2", "oj_app@10.0.1.3"]
    );
    // In step: a round sends nothing.
    admin.sent.lock().unwrap().clear();
    op.round(&view_with(&all(&app), &keys, &[APP_JOB])).await;
    assert!(
        !admin
            .sent
            .lock()
            .unwrap()
            .iter()
            .any(|c| matches!(c, AdminCmd::Grant { .. } | AdminCmd::Revoke { .. })),
        "{:?}",
        admin.sent.lock().unwrap()
    );

    // A stray account of the job prefix (a job removed earlier) and the
    // job taken off the list: every account goes.
    admin
        .accounts
        .lock()
        .unwrap()
        .get_mut("10.0.0.1:101")
        .unwrap()
        .insert(Account {
            user: "oj_old".into(),
            host: "10.9.9.9".into(),
        });
    op.round(&view_with(&all(&app), &keys, &[])).await;
    assert!(
        held(&admin, "10.0.0.1:101").is_empty(),
        "{:?}",
        held(&admin, "10.0.0.1:101")
    );
}
