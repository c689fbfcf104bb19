//! What a task sees: environment, ports, working dir, log files.

use std::time::Duration;

use ocean_agent::{PortRequest, Reason, TaskCommand, TaskSpec, TaskState};

use crate::harness::{bounded, wait_for, Harness};

#[tokio::test]
async fn the_task_sees_its_ports_ids_and_env_in_its_sandbox() -> anyhow::Result<()> {
    let Some(h) = Harness::new("env")? else {
        return Ok(());
    };
    bounded(async {
        let (executor, mut rx) = h.executor();
        let cmd = r#"echo "PORT0=$PORT0 PORT1=$PORT1 PORT_HTTP=$PORT_HTTP PORT_ADMIN_UI=$PORT_ADMIN_UI"; echo "OCEAN_TASK_ID=$OCEAN_TASK_ID OCEAN_JOB_ID=$OCEAN_JOB_ID HOST=$HOST GREETING=$GREETING"; pwd; echo oops >&2"#;
        let mut spec = TaskSpec::shell("envtask", "job-env", cmd);
        spec.env.insert("GREETING".into(), "hello world".into());
        spec.ports = vec![
            PortRequest { name: "http".into(), port: 0 },
            PortRequest { name: "admin-ui".into(), port: 31050 },
        ];
        let task = executor.launch(spec).await?;
        assert_eq!(task.ports.len(), 2);
        assert_eq!(task.ports[1], 31050);
        assert_eq!(executor.free_ports(), 98);
        let finished = wait_for(&mut rx, "envtask", TaskState::Finished, Duration::from_secs(10)).await?;
        assert_eq!((finished.exit_code, finished.reason), (Some(0), Some(Reason::Exited)));

        let out = std::fs::read_to_string(task.sandbox.join("stdout"))?;
        let p0 = task.ports[0];
        assert!(out.contains(&format!("PORT0={p0} PORT1=31050 PORT_HTTP={p0} PORT_ADMIN_UI=31050")), "{out}");
        assert!(out.contains("OCEAN_TASK_ID=envtask OCEAN_JOB_ID=job-env HOST=test-host GREETING=hello world"), "{out}");
        assert!(out.contains(&task.sandbox.display().to_string()), "cwd is the sandbox: {out}");
        assert_eq!(std::fs::read_to_string(task.sandbox.join("stderr"))?, "oops\n");
        assert_eq!(executor.free_ports(), 100, "ports released at the end");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn args_are_execd_directly_and_failures_are_reported() -> anyhow::Result<()> {
    let Some(h) = Harness::new("args")? else {
        return Ok(());
    };
    bounded(async {
        let (executor, mut rx) = h.executor();
        let mut spec = TaskSpec::shell("argv", "job1", "");
        spec.command = TaskCommand::Args(vec!["printenv".into(), "OCEAN_TASK_ID".into()]);
        let task = executor.launch(spec).await?;
        wait_for(
            &mut rx,
            "argv",
            TaskState::Finished,
            Duration::from_secs(10),
        )
        .await?;
        assert_eq!(
            std::fs::read_to_string(task.sandbox.join("stdout"))?,
            "argv\n"
        );

        let mut missing = TaskSpec::shell("missing", "job1", "");
        missing.command = TaskCommand::Args(vec!["/nonexistent/program".into()]);
        executor.launch(missing).await?;
        let failed = wait_for(
            &mut rx,
            "missing",
            TaskState::Failed,
            Duration::from_secs(10),
        )
        .await?;
        assert_eq!(failed.exit_code, Some(127), "{failed:?}");

        let exit3 = executor
            .launch(TaskSpec::shell("exit3", "job1", "exit 3"))
            .await?;
        let failed = wait_for(&mut rx, "exit3", TaskState::Failed, Duration::from_secs(10)).await?;
        assert_eq!(
            (failed.exit_code, failed.reason),
            (Some(3), Some(Reason::Exited))
        );
        for dir in exit3.cgroup.dirs() {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }

        // A wrapper that cannot be started: an error, a FAILED status, nothing left.
        let mut config = h.config();
        config.wrapper.program = "/nonexistent/wrapper".into();
        let (broken, mut broken_rx) = h.executor_with(config);
        assert!(broken
            .launch(TaskSpec::shell("nowrapper", "job1", "true"))
            .await
            .is_err());
        let failed = wait_for(
            &mut broken_rx,
            "nowrapper",
            TaskState::Failed,
            Duration::from_secs(5),
        )
        .await?;
        assert_eq!(failed.reason, Some(Reason::LaunchFailed));
        assert_eq!(broken.free_ports(), 100);
        assert!(!h.cgroups.task_cgroup("nowrapper").pids.exists());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn logs_over_the_cap_keep_the_most_recent_bytes() -> anyhow::Result<()> {
    let Some(h) = Harness::new("logcap")? else {
        return Ok(());
    };
    bounded(async {
        let mut config = h.config();
        config.log_cap_bytes = 1000;
        let (executor, mut rx) = h.executor_with(config);
        let cmd = "i=0; while [ $i -lt 500 ]; do echo line-$i; i=$((i+1)); done";
        let task = executor
            .launch(TaskSpec::shell("chatty", "job1", cmd))
            .await?;
        wait_for(
            &mut rx,
            "chatty",
            TaskState::Finished,
            Duration::from_secs(10),
        )
        .await?;
        let current = std::fs::read_to_string(task.sandbox.join("stdout"))?;
        let rotated = std::fs::read_to_string(task.sandbox.join("stdout.1"))?;
        assert!(
            current.len() <= 1000 && rotated.len() <= 1000,
            "{} {}",
            current.len(),
            rotated.len()
        );
        let all = format!("{rotated}{current}");
        assert!(
            all.ends_with("line-499\n"),
            "most recent output kept: {all}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_persistent_volume_outlives_the_task_and_a_replacement_finds_its_data(
) -> anyhow::Result<()> {
    let Some(h) = Harness::new("volume")? else {
        return Ok(());
    };
    bounded(async {
        let (executor, mut rx) = h.executor();
        let mut first = TaskSpec::shell(
            "vol1",
            "job-vol",
            r#"echo kept > "$OCEAN_VOLUME/data"; echo "$OCEAN_VOLUME""#,
        );
        first.persistent_volume = true;
        let t1 = executor.launch(first).await?;
        wait_for(
            &mut rx,
            "vol1",
            TaskState::Finished,
            Duration::from_secs(10),
        )
        .await?;
        let volume = std::fs::read_to_string(t1.sandbox.join("stdout"))?;
        let volume = volume.trim();
        assert!(volume.ends_with("/volumes/job-vol"), "{volume}");

        // A replacement: another task of the same job, a new sandbox.
        let mut second = TaskSpec::shell("vol2", "job-vol", r#"cat "$OCEAN_VOLUME/data""#);
        second.persistent_volume = true;
        let t2 = executor.launch(second).await?;
        wait_for(
            &mut rx,
            "vol2",
            TaskState::Finished,
            Duration::from_secs(10),
        )
        .await?;
        assert_ne!(t1.sandbox, t2.sandbox);
        assert_eq!(
            std::fs::read_to_string(t2.sandbox.join("stdout"))?,
            "kept\n"
        );

        // Without the field a task has no volume.
        let plain = executor
            .launch(TaskSpec::shell(
                "vol3",
                "job-vol",
                r#"echo "[${OCEAN_VOLUME:-none}]""#,
            ))
            .await?;
        wait_for(
            &mut rx,
            "vol3",
            TaskState::Finished,
            Duration::from_secs(10),
        )
        .await?;
        assert_eq!(
            std::fs::read_to_string(plain.sandbox.join("stdout"))?,
            "[none]\n"
        );
        Ok(())
    })
    .await
}
