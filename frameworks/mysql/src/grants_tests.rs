use super::*;

const APP: &str = "cop.test_owt.qa_pdl.x_service.s_job.app_cluster.local";
const OTHER: &str = "cop.test_owt.qa_pdl.x_service.s_job.other_cluster.local";

fn task(job: &str, n: u32, state: &str, address: &str) -> Task {
    Task {
        id: format!("{job}.{n}"),
        job_id: job.into(),
        state: state.into(),
        address: address.into(),
        ..Default::default()
    }
}

fn secrets() -> Secrets {
    let mut s = Secrets::default();
    s.jobs.insert(
        APP.into(),
        JobCredential {
            user: "oj_app".into(),
            password: "pw".into(),
        },
    );
    s
}

fn acct(user: &str, host: &str) -> Account {
    Account {
        user: user.into(),
        host: host.into(),
    }
}

#[test]
fn only_live_tasks_of_allowed_jobs_are_wanted() {
    let tasks = [
        task(APP, 1, "RUNNING", "10.0.0.1"),
        task(APP, 2, "STARTING", "10.0.0.2"),
        task(APP, 3, "KILLED", "10.0.0.3"),
        task(APP, 4, "FINISHED", "10.0.0.4"),
        task(APP, 5, "RUNNING", ""),
        task(APP, 6, "RUNNING", "10.0.0.1"),
        task(OTHER, 1, "RUNNING", "10.0.0.9"),
    ];
    let w = wanted(&[APP.to_string()], &tasks);
    assert_eq!(
        w,
        BTreeMap::from([(
            APP.to_string(),
            BTreeSet::from(["10.0.0.1".to_string(), "10.0.0.2".to_string()])
        )])
    );
    // An allowed job with no task is listed with no host.
    let w = wanted(&[APP.to_string(), OTHER.to_string()], &tasks[..1]);
    assert_eq!(w[OTHER], BTreeSet::new());
}

#[test]
fn the_diff_grants_new_hosts_and_drops_hosts_left() {
    let tasks = [
        task(APP, 1, "RUNNING", "10.0.0.1"),
        task(APP, 2, "RUNNING", "10.0.0.2"),
    ];
    let w = accounts(&wanted(&[APP.to_string()], &tasks), &secrets());
    let present = BTreeSet::from([acct("oj_app", "10.0.0.2"), acct("oj_app", "10.0.0.7")]);
    assert_eq!(
        diff("p:1", &w, &present),
        vec![
            AdminCmd::Grant {
                on: "p:1".into(),
                job: APP.into(),
                user: "oj_app".into(),
                host: "10.0.0.1".into(),
            },
            AdminCmd::Revoke {
                on: "p:1".into(),
                user: "oj_app".into(),
                host: "10.0.0.7".into(),
            },
        ]
    );
    // In step: nothing to do, twice.
    let present: BTreeSet<Account> = w.keys().cloned().collect();
    assert_eq!(diff("p:1", &w, &present), vec![]);
}

#[test]
fn a_job_removed_from_the_list_loses_every_account() {
    let tasks = [task(APP, 1, "RUNNING", "10.0.0.1")];
    let mut s = secrets();
    let present = BTreeSet::from([acct("oj_app", "10.0.0.1")]);
    s = credentials_for(&[], &s);
    assert!(s.jobs.is_empty());
    let w = accounts(&wanted(&[], &tasks), &s);
    assert_eq!(
        diff("p:1", &w, &present),
        vec![AdminCmd::Revoke {
            on: "p:1".into(),
            user: "oj_app".into(),
            host: "10.0.0.1".into(),
        }]
    );
}

#[test]
fn credentials_are_kept_made_and_dropped_with_the_list() {
    let s = credentials_for(&[APP.to_string(), OTHER.to_string()], &secrets());
    assert_eq!(s.jobs[APP].user, "oj_app");
    let new = &s.jobs[OTHER];
    assert!(new.user.starts_with(JOB_USER_PREFIX) && new.user.len() == 15);
    assert_eq!(new.password.len(), 24);
    assert!(new.user[3..]
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    let again = credentials_for(&[OTHER.to_string()], &s);
    assert_eq!(again.jobs.len(), 1);
    assert_eq!(&again.jobs[OTHER], new);
    // A job allowed again gets a new user.
    let readded = credentials_for(&[APP.to_string()], &again);
    assert_ne!(readded.jobs[APP].user, "oj_app");
}

#[test]
fn the_status_shows_each_allowed_job_and_its_granted_hosts() {
    let present = BTreeSet::from([
        acct("oj_app", "10.0.0.1"),
        acct("oj_app", "10.0.0.2"),
        acct("oj_gone", "10.0.0.3"),
    ]);
    let shown = shown(&[APP.to_string(), OTHER.to_string()], &secrets(), &present);
    assert_eq!(
        shown,
        vec![
            JobGrants {
                job: APP.into(),
                user: "oj_app".into(),
                hosts: vec!["10.0.0.1".into(), "10.0.0.2".into()],
            },
            JobGrants {
                job: OTHER.into(),
                user: String::new(),
                hosts: vec![],
            },
        ]
    );
}

#[test]
fn a_credential_never_prints_its_password() {
    let c = JobCredential {
        user: "oj_x".into(),
        password: "s3cret-pw".into(),
    };
    let mut s = Secrets::default();
    s.jobs.insert(APP.into(), c.clone());
    let printed = format!("{c:?} {s:?} {s:#?}");
    assert!(!printed.contains("s3cret-pw"), "{printed}");
    assert!(printed.contains("oj_x"), "{printed}");
}
