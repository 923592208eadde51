#!/usr/bin/env bash
# percore's perf suite: starts a release `percore serve` on 127.0.0.1 with a fresh data dir,
# runs the standard percore-loadgen workloads against it and writes one report:
#   OUT/suite.json   every run's full loadgen JSON, with the suite's settings
#   OUT/suite.html   one self-contained page: headline table + every run's own report
#   OUT/<run>.json, OUT/<run>.html   each run alone
# Workloads: 4 KiB GET and PUT (closed loop to find the peak, then open loop at 80% of it, as
# PERF.md asks), 1 MiB and 64 MiB PUT/GET, and a mixed get/put/delete/list open-loop run at
# half the GET peak.
#
# Usage: bench/run-suite.sh [OUT_DIR]        (default: target/perf-suite)
# Env:   SUITE_DURATION (default 20s), SUITE_WARMUP (5s), SUITE_CORES (all CPUs),
#        SUITE_DATA (a fresh dir under /var/tmp), SUITE_PORT (a free port), SUITE_QUICK=1
#        (3 s runs, small key sets: a smoke test of the suite itself).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/perf-suite}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
duration="${SUITE_DURATION:-20s}"
warmup="${SUITE_WARMUP:-5s}"
keys_small=2000
keys_1m=200
keys_64m=8
if [ "${SUITE_QUICK:-0}" = 1 ]; then
  duration=3s warmup=1s keys_small=200 keys_1m=20 keys_64m=2
fi
ulimit -l unlimited 2>/dev/null || true

cargo build --release --locked --quiet --bin percore --bin percore-loadgen
bin="$PWD/target/release"

data="${SUITE_DATA:-$(mktemp -d /var/tmp/percore-suite.XXXXXX)}"
port="${SUITE_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
cores_flag=()
[ -n "${SUITE_CORES:-}" ] && cores_flag=(--cores "$SUITE_CORES")
"$bin/percore" serve --data "$data" --listen "127.0.0.1:$port" "${cores_flag[@]}" \
  >"$out/serve.out" 2>"$out/serve.err" &
server=$!
cleanup() {
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  [ -z "${SUITE_DATA:-}" ] && rm -rf "$data"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  grep -q '^cores:' "$out/serve.out" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$out/serve.err"; exit 1; }
  sleep 0.1
done
grep -q '^cores:' "$out/serve.out" || { echo "percore serve did not start"; exit 1; }
endpoint=$(sed -n 's/^endpoint: //p' "$out/serve.out")
export AWS_ACCESS_KEY_ID=$(sed -n 's/^access_key: //p' "$out/serve.out")
export AWS_SECRET_ACCESS_KEY=$(sed -n 's/^secret_key: //p' "$out/serve.out")
echo "percore serve at $endpoint (data $data); reports in $out"

runs=()
# run NAME BUCKET ARGS…: one loadgen run with its own JSON and HTML report. A run with
# endpoint errors still keeps its report (loadgen exits 3) and the suite goes on.
run() {
  local name=$1 bucket=$2
  shift 2
  echo "== $name"
  local code=0
  "$bin/percore-loadgen" --endpoint "$endpoint" --bucket "suite-$bucket" \
    --warmup "$warmup" --duration "$duration" \
    --json "$out/$name.json" --html "$out/$name.html" "$@" || code=$?
  if [ "$code" -ne 0 ] && [ ! -s "$out/$name.json" ]; then
    echo "run $name failed (exit $code) without a report"
    exit 1
  fi
  runs+=("$name")
}
# peak NAME OP: the closed-loop rate of OP in NAME's report.
peak() {
  python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))
print(next(o["ops_per_s"] for o in r["endpoints"][0]["ops"] if o["op"] == sys.argv[2]))' \
    "$out/$1.json" "$2"
}
rate50() { python3 -c 'import sys; print(max(1.0, round(0.5 * float(sys.argv[1]), 1)))' "$1"; }
rate80() { python3 -c 'import sys; print(max(1.0, round(0.8 * float(sys.argv[1]), 1)))' "$1"; }

run get-4k-peak get4k --workload get --size 4KiB --keys "$keys_small" --prepare --concurrency 64
run get-4k-open get4k --workload get --size 4KiB --keys "$keys_small" \
  --rate "$(rate80 "$(peak get-4k-peak get)")" --cleanup --delete-bucket
run put-4k-peak put4k --workload put --size 4KiB --keys "$keys_small" --prepare --concurrency 64
run put-4k-open put4k --workload put --size 4KiB --keys "$keys_small" \
  --rate "$(rate80 "$(peak put-4k-peak put)")" --cleanup --delete-bucket
run put-1m 1m --workload put --size 1MiB --keys "$keys_1m" --prepare --concurrency 8
run get-1m 1m --workload get --size 1MiB --keys "$keys_1m" --concurrency 8 --cleanup --delete-bucket
run put-64m 64m --workload put --size 64MiB --keys "$keys_64m" --prepare --prepare-concurrency 2 \
  --concurrency 2
run get-64m 64m --workload get --size 64MiB --keys "$keys_64m" --concurrency 2 --cleanup \
  --delete-bucket
run mixed mixed --workload get=70,put=20,delete=5,list=5 --size 4KiB --keys "$keys_small" --prepare \
  --rate "$(rate50 "$(peak get-4k-peak get)")" --list-max-keys 100 --cleanup --delete-bucket

python3 bench/suite_report.py "$out" "${runs[@]}"
