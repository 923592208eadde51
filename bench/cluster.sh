#!/usr/bin/env bash
# percore's cluster benchmark (issue "Cluster"): release 3-node `percore dev` clusters on
# 127.0.0.1 (2 cores per node: EC 4+2, two fragments per node), driven by percore-loadgen,
# closed loop, 1 MiB objects, always through node 1.
#   cluster 1 (fresh):  get-healthy   GETs, all nodes up
#                       (node 3 killed with SIGKILL, by pid)
#                       get-degraded  the same GETs with node 3 down: stripes with a data
#                                     fragment on node 3 are decoded from parity
#                                     (target: >= 50% of get-healthy's MiB/s)
#   cluster 2 (fresh):  put-cluster   PUTs, all nodes up
#                       (node 3 killed)
#                       put-degraded  PUTs with node 3 down
#   one node (fresh):   put-single    PUTs against `percore serve` on the same machine (six
#                                     cores: the same EC 4+2 policy and partition count)
# Each phase starts from fresh data: overwriting PUTs leave dead segments that the reclaimer
# compacts later, which would slow whatever runs next (a first run that put GETs after PUTs
# saw healthy GETs at 148 MiB/s with a p99 of 811 ms, against 860 MiB/s on fresh data).
# Writes OUT/summary.md and OUT/summary.json (the headline figures), each run's loadgen JSON
# and HTML report, and the cluster's output and logs.
#
# Usage: bench/cluster.sh OUT_DIR
# Env:   CLUSTER_DURATION (default 20s), CLUSTER_WARMUP (5s), CLUSTER_KEYS (200 objects of
#        1 MiB), CLUSTER_CONCURRENCY (8), CLUSTER_SINGLE_CORES (6), CLUSTER_QUICK=1 (3 s runs,
#        40 keys: a smoke test of this script).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: bench/cluster.sh OUT_DIR" >&2; exit 2; }
out="$1"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
duration="${CLUSTER_DURATION:-20s}"
warmup="${CLUSTER_WARMUP:-5s}"
keys="${CLUSTER_KEYS:-200}"
conc="${CLUSTER_CONCURRENCY:-8}"
single_cores="${CLUSTER_SINGLE_CORES:-6}"
if [ "${CLUSTER_QUICK:-0}" = 1 ]; then
  duration=3s warmup=1s keys=40
fi
ulimit -l unlimited 2>/dev/null || true

cargo build --release --locked --quiet --bin percore --bin percore-loadgen
bin="$PWD/target/release"
work="$(mktemp -d /var/tmp/percore-cluster-bench.XXXXXX)"
nodes=3 cores=2

# A base port with nodes + nodes*cores free ports after it, and the control plane's 3 voters'
# ports (percore dev's port plan).
base=$(python3 - "$((nodes + nodes * cores + 3))" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    b = random.randrange(20000, 60000 - n)
    socks = []
    try:
        for p in range(b, b + n):
            s = socket.socket(); socks.append(s); s.bind(("127.0.0.1", p))
        print(b); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
else:
    sys.exit("no free port block")
EOF
)

dev_pid="" single_pid=""
cleanup() {
  for pid in $dev_pid $single_pid; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $dev_pid $single_pid; do
    wait "$pid" 2>/dev/null || true
  done
  for d in get put; do
    for f in "$work/$d"/node-*.log; do
      if [ -e "$f" ]; then cp "$f" "$out/$d-$(basename "$f")"; fi
    done
  done
  rm -rf "$work"
}
trap cleanup EXIT

# wait_line FILE PATTERN PID: until FILE has a line matching PATTERN (60 s at most, or PID exits).
wait_line() {
  for _ in $(seq 1 600); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "process $3 exited:"; cat "$1" "$1.err" 2>/dev/null; exit 1; }
    sleep 0.1
  done
  echo "no '$2' in $1 within 60 s"; exit 1
}

# start_cluster NAME: a fresh 3-node dev cluster in $work/NAME; sets ep1 and the credentials.
start_cluster() {
  "$bin/percore" dev --nodes "$nodes" --cores-per-node "$cores" --data "$work/$1" \
    --listen-base "$base" >"$out/$1.out" 2>"$out/$1.out.err" &
  dev_pid=$!
  dev_out="$out/$1.out"
  wait_line "$dev_out" '^ready$' "$dev_pid"
  export AWS_ACCESS_KEY_ID=$(sed -n 's/^access_key: //p' "$dev_out")
  export AWS_SECRET_ACCESS_KEY=$(sed -n 's/^secret_key: //p' "$dev_out")
  ep1=$(endpoint 1)
  echo "3-node cluster $1: $ep1 $(endpoint 2) $(endpoint 3); reports in $out"
}
endpoint() { sed -n "s/^node $1: endpoint \\([^ ]*\\) .*/\\1/p" "$dev_out"; }
node_pid() { sed -n "s/^node $1: endpoint [^ ]* pid \\([0-9]*\\) .*/\\1/p" "$dev_out"; }
# kill_node3 NAME: SIGKILL to node 3 by pid, wait until it is gone, save `percore status`.
kill_node3() {
  local victim
  victim=$(node_pid 3)
  echo "== killing node 3 (pid $victim) with SIGKILL"
  kill -KILL "$victim"
  for _ in $(seq 1 100); do
    case "$(ps -o stat= -p "$victim" 2>/dev/null | cut -c1)" in ""|Z) break ;; esac
    sleep 0.1
  done
  "$bin/percore" status --config "$work/$1/cluster.toml" >"$out/status-$1.txt" || true
}
stop_cluster() {
  kill -TERM "$dev_pid"
  wait "$dev_pid" || true
  dev_pid=""
}

runs=()
# run NAME ENDPOINT ARGS…: one loadgen run with its own JSON and HTML report. A run with
# errors keeps its report (loadgen exits 3) and the benchmark goes on.
run() {
  local name=$1 ep=$2
  shift 2
  echo "== $name"
  local code=0
  "$bin/percore-loadgen" --endpoint "$ep" --warmup "$warmup" --duration "$duration" \
    --size 1MiB --keys "$keys" --concurrency "$conc" --label "$name" \
    --json "$out/$name.json" --html "$out/$name.html" "$@" || code=$?
  if [ "$code" -ne 0 ] && [ ! -s "$out/$name.json" ]; then
    echo "run $name failed (exit $code) without a report"
    exit 1
  fi
  runs+=("$name")
}

start_cluster get
run get-healthy "$ep1" --workload get --bucket bench-get --prepare
kill_node3 get
run get-degraded "$ep1" --workload get --bucket bench-get
stop_cluster

start_cluster put
run put-cluster "$ep1" --workload put --bucket bench-put --prepare
kill_node3 put
run put-degraded "$ep1" --workload put --bucket bench-put
stop_cluster

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin/percore" serve --data "$work/single" --listen "127.0.0.1:$port" --cores "$single_cores" \
  >"$out/single.out" 2>"$out/single.out.err" &
single_pid=$!
wait_line "$out/single.out" '^cores:' "$single_pid"
export AWS_ACCESS_KEY_ID=$(sed -n 's/^access_key: //p' "$out/single.out")
export AWS_SECRET_ACCESS_KEY=$(sed -n 's/^secret_key: //p' "$out/single.out")
run put-single "http://127.0.0.1:$port" --workload put --bucket bench-put --prepare

python3 - "$out" "${runs[@]}" <<'EOF'
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
rows = {}
for name in names:
    r = json.load(open(os.path.join(out, f"{name}.json")))
    e = r["endpoints"][0]
    op = e["ops"][0] if e["ops"] else {}
    lat = op.get("latency", {})
    rows[name] = {
        "ops_per_s": op.get("ops_per_s", 0.0),
        "mib_per_s": op.get("mib_per_s", 0.0),
        "errors": op.get("errors", 0),
        "p50_ms": lat.get("p50_us", 0) / 1000,
        "p99_ms": lat.get("p99_us", 0) / 1000,
    }
def ratio(a, b):
    return rows[a]["mib_per_s"] / rows[b]["mib_per_s"] if rows.get(b, {}).get("mib_per_s") else None
summary = {
    "runs": rows,
    "degraded_over_healthy_get": ratio("get-degraded", "get-healthy"),
    "cluster_over_single_put": ratio("put-cluster", "put-single"),
    "degraded_target": 0.5,
}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
lines = ["# percore cluster benchmark (3 nodes x 2 cores on 127.0.0.1, 1 MiB objects)", "",
         "| run | ops/s | MiB/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|"]
for name, r in rows.items():
    lines.append(f"| {name} | {r['ops_per_s']:.1f} | {r['mib_per_s']:.1f} | {r['p50_ms']:.1f} "
                 f"| {r['p99_ms']:.1f} | {r['errors']} |")
d, p = summary["degraded_over_healthy_get"], summary["cluster_over_single_put"]
lines.append("")
if d is not None:
    verdict = "meets" if d >= 0.5 else "MISSES"
    lines.append(f"Degraded / healthy GET throughput: {d:.2f} ({verdict} the >= 0.50 target).")
if p is not None:
    lines.append(f"PUT throughput, 3-node cluster / single node: {p:.2f}.")
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
