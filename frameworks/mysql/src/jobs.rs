//! The Ocean job of each database: its service-tree id, and its spec
//! running a real `mariadbd` with every setting on its command line.
//!
//! One job per database, `instances` tasks under `hostname UNIQUE`: the
//! primary and its standbys are tasks of one job, so no standby shares a
//! host with another, whichever task is primary now. Each task keeps its
//! datadir in the job's persistent volume (`$OCEAN_VOLUME/data`), so an
//! instance that restarts on the same host comes back with its data.
//!
//! The job is named `primary` and its health check passes only on the
//! writable instance: Ocean's DNS serves a job's name with its healthy
//! tasks, so `primary.<db>.<pdl>.<cluster>.<zone>` is the primary's
//! address and follows a failover by itself (a standby is "unhealthy" in
//! that sense only; the check never kills: `max_consecutive_failures` 0).
//!
//! Every instance starts as a read-only standby (`--read-only`,
//! `--skip-slave-start`, `--init-rpl-role=SLAVE`, semi-sync's primary side
//! off: a standby that waited for acknowledgements of what it applies
//! would wait forever): only the operator makes one writable, and turns
//! semi-sync's primary side on as it does. A former primary that crashed therefore restarts as a
//! standby, and MariaDB truncates the transactions its binlog holds that no
//! standby acknowledged (semi-sync recovery), so it never comes back with
//! errant transactions.

use serde_json::{json, Value};

use crate::admin::Secrets;
use crate::framework::RestoreSource;
use crate::seed::SeedRecord;
use crate::spec::DatabaseSpec;
use crate::templates::Template;

/// Label naming the database a job belongs to.
pub const LABEL_DATABASE: &str = "mysql.database";
/// Label with a digest of the job the framework built.
pub const LABEL_DIGEST: &str = "mysql.digest";
/// The job's port name.
pub const PORT_NAME: &str = "mysql";
/// The second port: where an instance that waits for a seed listens.
pub const SEED_PORT_NAME: &str = "seed";
/// The unlogged schema that condemns an instance's datadir: created by
/// the operator before it shuts the instance down, seen by the command
/// at the next start (a schema is a directory of the datadir).
pub const REBUILD_MARK: &str = "ocean_rebuild";
/// The administrator the operator connects as (created, unlogged, on
/// every instance at start by `--init-file`).
pub const ADMIN_USER: &str = "ocean_admin";
/// The replication user (the same way).
pub const REPL_USER: &str = "ocean_repl";
/// The application user (created through the primary, replicated):
/// all rights on the database's schema, nothing global, so `read_only`
/// holds for it on the standbys.
pub const APP_USER: &str = "app";
/// The application's schema.
pub const APP_SCHEMA: &str = "app";
/// Semi-sync's wait for an acknowledgement, ms: a year. A primary that
/// gets no acknowledgement blocks its commits (and its status says so)
/// rather than fall back to asynchronous replication.
pub const SEMI_SYNC_TIMEOUT_MS: u64 = 31_536_000_000;

/// The job id of `spec`: `..._service.<name>_job.primary_cluster.<cluster>`.
pub fn job_id(spec: &DatabaseSpec) -> String {
    format!(
        "cop.ocean_owt.{}_pdl.{}_servicegroup.rds_service.{}_job.primary_cluster.{}",
        spec.department, spec.product_line, spec.name, spec.cluster
    )
}

/// The primary's DNS name relative to the zone.
pub fn primary_dns_name(spec: &DatabaseSpec) -> String {
    format!(
        "primary.{}.{}.{}",
        spec.name, spec.product_line, spec.cluster
    )
}

/// The mariadbd command line (a `/bin/sh -c` script: the port, volume and
/// passwords come from the task's environment).
pub fn command(t: &Template) -> String {
    format!(
        r#"set -e
V="${{OCEAN_VOLUME:?the job needs its persistent volume}}"
D="$V/data"
ME="$(id -un)"
if [ ! -f "$V/initialized" ]; then
  rm -rf "$D" "$D.restore"
  if [ -n "${{DB_RESTORE_FROM:-}}" ]; then
    # A database restored from a backup starts from it (checked first).
    (cd "$DB_RESTORE_FROM" && sha256sum -c --quiet MANIFEST.sha256) >"$V/restore.log" 2>&1
    cp -a "$DB_RESTORE_FROM" "$D.restore"
    rm -f "$D.restore/MANIFEST.sha256"
    cut -f3 "$D.restore/xtrabackup_binlog_info" >"$V/seed-gtid"
    G=$(cat "$V/seed-gtid"); U="${{DB_RESTORE_UNTIL:-}}"
    if [ -n "${{DB_RESTORE_UNTIL_TIME:-}}" ]; then
      # To a time (YYMMDDHHMMSS, UTC): the last transaction committed in a
      # second before it, from an archive that starts at or before the
      # backup and holds DB_RESTORE_REACH (the primary's position seen
      # after the time) or a transaction from the time on; none: the
      # backup as it is.
      R=""
      for a in "$DB_RESTORE_BINLOGS"/*/; do
        F=$(ls "$a"binlog.[0-9]* 2>/dev/null | sort | head -n 1)
        [ -n "$F" ] || continue
        L=$(mariadb-binlog "$F" 2>/dev/null | sed -n 's/.*Gtid list \[\(.*\)\].*/\1/p' | head -n 1)
        if [ -n "$L" ] && [ "${{L##*-}}" -gt "${{G##*-}}" ]; then continue; fi
        R=$(TZ=UTC mariadb-binlog --start-position="$G" $(ls "$a"binlog.[0-9]* | sort) 2>>"$V/replay.log" | awk -v t="$DB_RESTORE_UNTIL_TIME" -v r="${{DB_RESTORE_REACH:-}}" '
          /^#[0-9]+ +[0-9]+:[0-9]+:[0-9]+ server id .*[ \t]GTID [0-9]+-[0-9]+-[0-9]+/ {{
            split($2, h, ":"); k = substr($1, 2) * 1000000 + h[1] * 10000 + h[2] * 100 + h[3]
            for (i = 1; i < NF; i++) if ($i == "GTID") g = $(i + 1)
            if (g == r) reached = 1
            if (!past && k < t + 0) last = g; else past = 1
          }}
          END {{ if (past || reached || r == "") print "ok " last; else print "no" }}')
        case "$R" in ok*) U="${{R#ok}}"; U="${{U# }}"; break;; esac
      done
      case "$R" in ok*) ;; *) echo "no archived binlog from $G reaches $DB_RESTORE_UNTIL_TIME (UTC) yet" >&2; exit 1;; esac
    fi
    if [ -n "$U" ]; then
      # To a point: the archived binlogs from the backup's GTID to U, from
      # a source whose archive starts at or before the backup and reaches
      # it, replayed on a private server (no network, no binlog of its own).
      rm -f "$V/replay.sql"
      for a in "$DB_RESTORE_BINLOGS"/*/; do
        F=$(ls "$a"binlog.[0-9]* 2>/dev/null | sort | head -n 1)
        [ -n "$F" ] || continue
        L=$(mariadb-binlog "$F" 2>/dev/null | sed -n 's/.*Gtid list \[\(.*\)\].*/\1/p' | head -n 1)
        if [ -n "$L" ] && [ "${{L##*-}}" -gt "${{G##*-}}" ]; then continue; fi
        mariadb-binlog --start-position="$G" --stop-position="$U" $(ls "$a"binlog.[0-9]* | sort) >"$V/replay.try" 2>>"$V/replay.log" || :
        if grep -q "GTID $U " "$V/replay.try"; then mv "$V/replay.try" "$V/replay.sql"; break; fi
      done
      if [ ! -s "$V/replay.sql" ]; then echo "no archived binlog leads from $G to $U" >&2; exit 1; fi
      printf '[client]\nuser=%s\npassword=%s\n' "{ADMIN_USER}" "$DB_ADMIN_PASSWORD" >"$V/replay.cnf"
      RS="/tmp/ocean-mysqld-$PORT0-replay.sock"
      mariadbd --no-defaults --user="$ME" --datadir="$D.restore" --skip-networking --socket="$RS" \
        --pid-file="$V/replay.pid" --skip-log-error --innodb-log-file-size=48M &
      RP=$!
      i=0
      until mariadb --defaults-file="$V/replay.cnf" --protocol=socket --socket="$RS" -e 'SELECT 1' >/dev/null 2>&1; do
        i=$((i+1)); if [ "$i" -gt 600 ]; then kill "$RP"; exit 1; fi; sleep 0.1
      done
      mariadb --defaults-file="$V/replay.cnf" --protocol=socket --socket="$RS" <"$V/replay.sql" >"$V/replay.log" 2>&1 || {{ kill "$RP"; wait "$RP" || :; cat "$V/replay.log" >&2; exit 1; }}
      kill "$RP"; wait "$RP" || :
      printf %s "$U" >"$V/seed-gtid"
    fi
    mv "$D.restore" "$D"
  else
    mariadb-install-db --no-defaults --datadir="$D" --user="$ME" --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve >"$V/install.log" 2>&1
  fi
  touch "$V/initialized"
fi
# A datadir that is gone, or that the operator condemned (the unlogged
# schema {REBUILD_MARK}), is replaced by a seed: a mariadb-backup stream
# from a healthy instance, received on the seed port ($PORT1) and checked
# by a token only the database's instances can compute. An open seed
# port is how the operator knows this instance waits for one.
if [ ! -d "$D/mysql" ] || [ -d "$D/{REBUILD_MARK}" ]; then
  TOKEN=$(printf %s "ocean-seed:$DB_REPL_PASSWORD" | sha256sum | cut -d' ' -f1)
  while :; do
    rm -rf "$V/seed"; mkdir -p "$V/seed"
    socat -u TCP-LISTEN:"$PORT1",reuseaddr STDOUT | {{ IFS= read -r got && [ "$got" = "$TOKEN" ] && mbstream -x -C "$V/seed"; }} || continue
    mariadb-backup --prepare --target-dir="$V/seed" >"$V/prepare.log" 2>&1 && [ -s "$V/seed/xtrabackup_binlog_info" ] && break
  done
  cut -f3 "$V/seed/xtrabackup_binlog_info" >"$V/seed-gtid"
  rm -rf "$D"; mv "$V/seed" "$D"
fi
umask 077
# A seeded datadir has no binlog until its first start: its position is
# the backup's.
SEEDPOS=""
if [ -s "$V/seed-gtid" ] && [ ! -e "$D/binlog.index" ]; then SEEDPOS="SET GLOBAL gtid_slave_pos='$(cat "$V/seed-gtid")';"; fi
cat >"$V/init.sql" <<SQL
SET sql_log_bin=0;
CREATE USER IF NOT EXISTS '{ADMIN_USER}'@'%' IDENTIFIED BY '$DB_ADMIN_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS '{REPL_USER}'@'%' IDENTIFIED BY '$DB_REPL_PASSWORD';
GRANT REPLICATION SLAVE, REPLICATION SLAVE ADMIN, BINLOG MONITOR ON *.* TO '{REPL_USER}'@'%';
$SEEDPOS
SQL
# One server id per instance for its life, not per task: a restarted
# former primary must recognise its own transactions in its binlog.
[ -s "$V/server-id" ] || printf %s "$OCEAN_TASK_ID" | cksum | cut -d' ' -f1 >"$V/server-id"
SID=$(cat "$V/server-id")
# The socket: a unix path has at most 107 bytes, too few for the volume's;
# the port is this instance's alone on the host.
exec mariadbd --no-defaults --user="$ME" --datadir="$D" --port="$PORT0" --bind-address=0.0.0.0 \
  --socket="/tmp/ocean-mysqld-$PORT0.sock" --pid-file="$V/mysqld.pid" --init-file="$V/init.sql" \
  --server-id="$SID" --log-bin=binlog --relay-log=relay --binlog-format=ROW \
  --sync-binlog=1 --innodb-flush-log-at-trx-commit=1 --log-slave-updates=ON --gtid-strict-mode=ON \
  --rpl-semi-sync-master-enabled=OFF --rpl-semi-sync-slave-enabled=ON \
  --rpl-semi-sync-master-wait-point=AFTER_SYNC --rpl-semi-sync-master-timeout={SEMI_SYNC_TIMEOUT_MS} \
  --rpl-semi-sync-master-wait-no-slave=ON --init-rpl-role=SLAVE \
  --read-only=ON --skip-slave-start --skip-name-resolve --relay-log-recovery=ON --slave-net-timeout=1 \
  --innodb-buffer-pool-size={}M --max-connections={} --innodb-log-file-size=48M \
  --skip-log-error
"#,
        t.buffer_pool_mb, t.max_connections
    )
}

/// How often the agent runs the primary check, ms: a new primary enters
/// DNS at its first passing check, so this is most of what a failover
/// takes after the promotion (at 1 s it was the p99's floor).
pub const HEALTH_EVERY_MS: u32 = 250;

/// The health check's command: the instance answers, is writable, and
/// can commit: semi-sync's primary side off (a one-instance database) or
/// at least one standby acknowledging. A fenced former primary that wakes
/// up writable but without standbys therefore never comes back into DNS.
pub fn primary_check() -> String {
    format!(
        "mariadb --no-defaults -h127.0.0.1 -P\"$PORT0\" -u{ADMIN_USER} -p\"$DB_ADMIN_PASSWORD\" --connect-timeout=1 -N -B -e \
         \"SELECT @@read_only = 0 AND (@@rpl_semi_sync_master_enabled = 0 OR (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS') > 0)\" \
         | grep -qx 1"
    )
}

/// Label naming the task a seed job seeds.
pub const LABEL_SEED: &str = "mysql.seed";

/// The seed job of `target`: `..._job.seed-<digest of the task id>_cluster.<cluster>`
/// (a task id is too long for a service-tree value).
pub fn seed_job_id(spec: &DatabaseSpec, target: &str) -> String {
    format!(
        "cop.ocean_owt.{}_pdl.{}_servicegroup.rds_service.{}_job.seed-{:08x}_cluster.{}",
        spec.department,
        spec.product_line,
        spec.name,
        fnv1a(target.as_bytes()) as u32,
        spec.cluster
    )
}

/// The seed's command, on the source's host: the token line, then
/// `mariadb-backup --backup --stream=xbstream` of the source instance
/// (it finds the datadir through the server), sent with `socat` (a
/// dependency of Debian's mariadb-server) to the waiting instance, which
/// retries its connection while the instance gets ready to listen. A
/// backup that failed fails the task (and the stream is cut short, which
/// the receiver's `mbstream`/`--prepare` refuse).
pub fn seed_command() -> String {
    format!(
        r#"set -e
umask 077
W="$OCEAN_SANDBOX/seed"
mkdir -p "$W/tmp"
rm -f "$W/failed"
TOKEN=$(printf %s "ocean-seed:$DB_REPL_PASSWORD" | sha256sum | cut -d' ' -f1)
printf '[client]
user=%s
password=%s
host=127.0.0.1
port=%s
' "{ADMIN_USER}" "$DB_ADMIN_PASSWORD" "$SEED_FROM_PORT" >"$W/my.cnf"
{{ printf '%s
' "$TOKEN"
  mariadb-backup --defaults-file="$W/my.cnf" --backup --stream=xbstream --target-dir="$W/tmp" 2>"$W/backup.log" || : >"$W/failed"
}} | socat -u STDIN TCP:"$SEED_TO",retry=120,interval=0.5
if [ -e "$W/failed" ]; then tail -n 20 "$W/backup.log" >&2; exit 1; fi
tail -n 1 "$W/backup.log"
"#
    )
}

/// The seed's batch job: one task pinned to the source's host.
pub fn seed_job(spec: &DatabaseSpec, seed: &SeedRecord, secrets: &Secrets) -> Value {
    json!({
        "id": seed_job_id(spec, &seed.target),
        "type": "batch",
        "instances": 1,
        "cmd": seed_command(),
        "resources": {"cpus": 0.1, "mem": 128},
        "constraints": [["hostname", "CLUSTER", seed.source_host]],
        "env": {
            "DB_ADMIN_PASSWORD": secrets.admin_password,
            "DB_REPL_PASSWORD": secrets.repl_password,
            "SEED_FROM_PORT": seed.source_port.to_string(),
            "SEED_TO": seed.to,
        },
        "labels": { LABEL_DATABASE: spec.name, LABEL_SEED: seed.target },
    })
}

/// FNV-1a, 64 bits: a stable digest (stored in job labels).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The job spec (JSON) of a database, with its digest label.
pub fn database_job(
    spec: &DatabaseSpec,
    t: &Template,
    admin_password: &str,
    repl_password: &str,
    restore: Option<&RestoreSource>,
) -> Value {
    let mut job = json!({
        "id": job_id(spec),
        "cmd": command(t),
        "instances": spec.instances,
        "resources": {"cpus": 0.2, "mem": t.memory_mb, "disk": t.disk_mb},
        "ports": [{"name": PORT_NAME}, {"name": SEED_PORT_NAME}],
        "constraints": [["hostname", "UNIQUE"]],
        "placement_policy": "spread",
        "persistent_volume": true,
        "env": {
            "DB_ADMIN_PASSWORD": admin_password,
            "DB_REPL_PASSWORD": repl_password,
        },
        "health_checks": [{
            "protocol": "command", "command": primary_check(),
            "grace_period_seconds": 0, "interval_seconds": 1, "interval_ms": HEALTH_EVERY_MS,
            "timeout_seconds": 1,
            "max_consecutive_failures": 0
        }],
        "kill_grace_period_seconds": 10,
        // A crashed instance comes back quickly (as a standby), and crashes
        // or failover drills do not freeze the database as flapping.
        "backoff": {"backoff_seconds": 0.2, "backoff_factor": 1.5, "max_launch_delay_seconds": 10.0},
        "flapping": {"max_failures": 1000, "window_seconds": 60},
        "labels": { LABEL_DATABASE: spec.name },
    });
    if let Some(r) = restore {
        job["env"]["DB_RESTORE_FROM"] = r.path.clone().into();
        if let Some(until) = &r.until {
            job["env"]["DB_RESTORE_UNTIL"] = until.clone().into();
            job["env"]["DB_RESTORE_BINLOGS"] = r.binlogs.clone().into();
        }
        if let Some(ms) = r.until_ms {
            job["env"]["DB_RESTORE_UNTIL_TIME"] = crate::archive::binlog_second(ms).into();
            job["env"]["DB_RESTORE_REACH"] = r.reach.clone().into();
            job["env"]["DB_RESTORE_BINLOGS"] = r.binlogs.clone().into();
        }
    }
    let digest = format!("{:016x}", fnv1a(job.to_string().as_bytes()));
    job["labels"][LABEL_DIGEST] = digest.into();
    job
}

/// The labels of a stored job (from its canonical spec JSON).
pub fn labels_of(spec_json: &[u8]) -> Option<serde_json::Map<String, Value>> {
    let v: Value = serde_json::from_slice(spec_json).ok()?;
    v.get("labels")?.as_object().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::builtin;

    #[test]
    fn a_database_is_one_unique_host_job_with_a_volume_and_lossless_flags() {
        let spec = crate::spec::tests::ok();
        let j = database_job(&spec, &builtin()[0], "a", "r", None);
        assert_eq!(
            j["id"],
            "cop.ocean_owt.miui_pdl.browser_servicegroup.rds_service.browser-key_job.primary_cluster.staging"
        );
        assert_eq!(
            primary_dns_name(&spec),
            "primary.browser-key.browser.staging"
        );
        assert_eq!(j["instances"], 3);
        assert_eq!(j["persistent_volume"], true);
        assert_eq!(j["constraints"], json!([["hostname", "UNIQUE"]]));
        assert_eq!(j["health_checks"][0]["max_consecutive_failures"], 0);
        let cmd = j["cmd"].as_str().unwrap();
        for flag in [
            "--no-defaults",
            "--gtid-strict-mode=ON",
            "--sync-binlog=1",
            "--log-slave-updates=ON",
            "--rpl-semi-sync-master-wait-point=AFTER_SYNC",
            "--rpl-semi-sync-master-enabled=OFF",
            "--rpl-semi-sync-master-timeout=31536000000",
            "--init-rpl-role=SLAVE",
            "--read-only=ON",
            "--innodb-buffer-pool-size=128M",
            "--max-connections=200",
            "SET sql_log_bin=0;",
        ] {
            assert!(cmd.contains(flag), "{flag} missing from {cmd}");
        }
        assert_eq!(j["ports"], json!([{"name": "mysql"}, {"name": "seed"}]));
        for step in [
            "socat -u TCP-LISTEN:\"$PORT1\"",
            "mbstream -x",
            "--prepare",
            "gtid_slave_pos",
        ] {
            assert!(cmd.contains(step), "{step} missing from {cmd}");
        }
        let other = database_job(&spec, &builtin()[1], "a", "r", None);
        assert_ne!(j["labels"][LABEL_DIGEST], other["labels"][LABEL_DIGEST]);
        let from = RestoreSource {
            path: "/b/x/b-1".into(),
            ..Default::default()
        };
        let restored = database_job(&spec, &builtin()[0], "a", "r", Some(&from));
        assert_eq!(restored["env"]["DB_RESTORE_FROM"], "/b/x/b-1");
        assert!(j["env"].get("DB_RESTORE_FROM").is_none());
    }
}

#[cfg(test)]
mod seed_tests {
    use super::*;

    #[test]
    fn a_seed_is_a_batch_job_pinned_to_the_source_s_host() {
        let spec = crate::spec::tests::ok();
        let seed = SeedRecord {
            database: spec.name.clone(),
            target: "t.1".into(),
            to: "10.0.0.2:31001".into(),
            source: "t.2".into(),
            source_host: "host-b".into(),
            source_port: 31000,
            started_ms: 1,
        };
        let j = seed_job(&spec, &seed, &Secrets::default());
        assert_eq!(j["type"], "batch");
        assert_eq!(j["constraints"], json!([["hostname", "CLUSTER", "host-b"]]));
        assert_eq!(j["env"]["SEED_TO"], "10.0.0.2:31001");
        assert_eq!(j["env"]["SEED_FROM_PORT"], "31000");
        assert_eq!(j["labels"][LABEL_SEED], "t.1");
        let id = j["id"].as_str().unwrap_or_default();
        assert!(
            id.contains("_service.browser-key_job.seed-") && id.ends_with("_cluster.staging"),
            "{id}"
        );
        assert_ne!(seed_job_id(&spec, "t.1"), seed_job_id(&spec, "t.2"));
        let cmd = j["cmd"].as_str().unwrap_or_default();
        assert!(
            cmd.contains("--backup --stream=xbstream") && cmd.contains("socat -u STDIN"),
            "{cmd}"
        );
        assert!(
            !cmd.contains("--password="),
            "the password stays off the command line"
        );
    }
}
