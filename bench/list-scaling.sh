#!/usr/bin/env bash
# Does a ListObjectsV2 page cost the same on 1 node and on 8 (PERF.md)? Release builds on
# 127.0.0.1: the same 1,000 objects and the same closed-loop LIST workload (1,000-key pages)
# against one `percore serve` node of 3 cores, a 3-node and an 8-node `percore dev` cluster
# (1 core per node). A page merges the 3 replicas of the bucket's listing index in every case,
# so the work per page does not grow with the nodes; the cluster runs pay TCP hops the single
# node does not. Writes OUT/summary.md and each run's loadgen JSON.
#
# Usage: bench/list-scaling.sh OUT_DIR     Env: LIST_DURATION (10s), LIST_QUICK=1 (2 s runs)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: bench/list-scaling.sh OUT_DIR" >&2; exit 2; }
mkdir -p "$1"
out="$(cd "$1" && pwd)"
duration="${LIST_DURATION:-10s}"
[ "${LIST_QUICK:-0}" = 1 ] && duration=2s
ulimit -l unlimited 2>/dev/null || true
cargo build --release --locked --quiet --bin percore --bin percore-loadgen
bin="$PWD/target/release"
work="$(mktemp -d /var/tmp/percore-list-bench.XXXXXX)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_base() {
  python3 - "$1" <<'EOF'
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
EOF
}

# wait_for FILE PATTERN: until FILE has a matching line (120 s at most, or the process exits).
wait_for() {
  for _ in $(seq 1 1200); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$1" "$1.err"; echo "exited"; exit 1; }
    sleep 0.1
  done
  echo "no '$2' in $1"; exit 1
}

# measure NAME ENDPOINT: prepare the objects, then LIST for $duration.
measure() {
  local name=$1 ep=$2
  echo "== $name ($ep)"
  "$bin/percore-loadgen" --endpoint "$ep" --bucket list-bench --prepare --keys 1000 \
    --size 1KiB --workload get --warmup 0s --duration 1s --concurrency 4 --label "$name-prep" \
    --json "$out/$name-prep.json" >/dev/null
  "$bin/percore-loadgen" --endpoint "$ep" --bucket list-bench --keys 1000 --size 1KiB \
    --workload list --list-max-keys 1000 --warmup 1s --duration "$duration" --concurrency 4 \
    --label "$name" --json "$out/$name.json"
}

stop() {
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
}

port=$(free_base 1)
"$bin/percore" serve --data "$work/single" --listen "127.0.0.1:$port" --cores 3 \
  >"$out/single.out" 2>"$out/single.out.err" &
pid=$!
wait_for "$out/single.out" '^cores:'
export AWS_ACCESS_KEY_ID=$(sed -n 's/^access_key: //p' "$out/single.out")
export AWS_SECRET_ACCESS_KEY=$(sed -n 's/^secret_key: //p' "$out/single.out")
measure list-1-node "http://127.0.0.1:$port"
stop

for n in 3 8; do
  # percore dev's port plan: n S3 ports, n core ports, 3 control plane voters.
  base=$(free_base $((2 * n + 3)))
  "$bin/percore" dev --nodes "$n" --cores-per-node 1 --data "$work/dev$n" --listen-base "$base" \
    >"$out/dev$n.out" 2>"$out/dev$n.out.err" &
  pid=$!
  wait_for "$out/dev$n.out" '^ready$'
  export AWS_ACCESS_KEY_ID=$(sed -n 's/^access_key: //p' "$out/dev$n.out")
  export AWS_SECRET_ACCESS_KEY=$(sed -n 's/^secret_key: //p' "$out/dev$n.out")
  measure "list-$n-nodes" "$(sed -n 's/^node 1: endpoint \([^ ]*\) .*/\1/p' "$out/dev$n.out")"
  stop
done

python3 - "$out" <<'EOF'
import json, os, sys
out = sys.argv[1]
rows = []
for name in ["list-1-node", "list-3-nodes", "list-8-nodes"]:
    op = json.load(open(os.path.join(out, f"{name}.json")))["endpoints"][0]["ops"][0]
    lat = op["latency"]
    rows.append((name, op["ops_per_s"], lat["p50_us"] / 1000, lat["p99_us"] / 1000, op["errors"]))
lines = ["# ListObjectsV2 pages of 1,000 keys, closed loop, 4 in flight", "",
         "| cluster | pages/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|"]
lines += [f"| {n} | {o:.1f} | {p50:.2f} | {p99:.2f} | {e} |" for n, o, p50, p99, e in rows]
lines += ["", f"8 nodes / 3 nodes, pages/s: {rows[2][1] / rows[1][1]:.2f}; "
          f"8 nodes / 1 node: {rows[2][1] / rows[0][1]:.2f}."]
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
