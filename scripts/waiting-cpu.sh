#!/usr/bin/env bash
# The cost of jobs that fit nowhere: starts `ocean dev` on a scratch data
# dir, submits N jobs (1 instance of 500 cpus each) with 32 concurrent
# `POST /v1/jobs`, then prints the master's CPU ticks (10 ms each, utime +
# stime from /proc) over 10 s of waiting, twice, and its RSS.
#
#   cargo build --release --bins && scripts/waiting-cpu.sh [N]
set -euo pipefail
N=${1:-20000}
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
target/release/ocean dev --data-dir "$dir" --http 127.0.0.1:17700 --grpc 127.0.0.1:17701 \
  --no-dns >"$dir/dev.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf http://127.0.0.1:17700/v1/leader >/dev/null && break; sleep 0.2; done
python3 - "$N" <<'PY'
import concurrent.futures, json, sys, urllib.request
def put(n):
    spec = {"id": f"cop.test_owt.qa_pdl.ocean_service.itest_job.w{n}_cluster.local",
            "cmd": "sleep 3600", "instances": 1, "resources": {"cpus": 500, "mem": 16}}
    req = urllib.request.Request("http://127.0.0.1:17700/v1/jobs", data=json.dumps(spec).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    return urllib.request.urlopen(req).status
with concurrent.futures.ThreadPoolExecutor(32) as ex:
    codes = list(ex.map(put, range(int(sys.argv[1]))))
print(f"submitted {len(codes)} jobs, statuses {sorted(set(codes))}")
PY
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
sleep 5
for window in 1 2; do
  a=$(ticks); sleep 10; b=$(ticks)
  echo "window $window: $((b - a)) CPU ticks of 10 ms over 10 s; $(grep VmRSS /proc/$pid/status)"
done
