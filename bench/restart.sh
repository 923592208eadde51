#!/usr/bin/env bash
# Memory at start and restart time after a crash, as a node's data grows (README, "Memory and
# restart"). Release build on 127.0.0.1: a fresh `percore serve` with RESTART_CORES cores (6)
# stores RESTART_GB GiB of 1 MiB objects with the loadgen; then the node is killed with
# SIGKILL (no final checkpoint) and started again. Reported: the restart time (launch to the
# first answered signed ListObjectsV2 of the bucket), the peak RSS of the restarted process
# (VmHWM, sampled after RESTART_IDLE_S seconds idle, so its replay and a reclaim pass are in),
# the log bytes its cores replayed, the data size on disk, and 2 s of GETs of random keys with
# their bytes checked (any error fails the run). Writes OUT/restart.json and OUT/summary.md.
#
# Usage: bench/restart.sh [OUT_DIR]   (default target/restart-bench)
# Env: RESTART_GB (3), RESTART_QUICK=1 (0.25 GiB, 2 cores: < 1 min after the build),
#      RESTART_CORES (6), RESTART_DIR (where the data directory goes; default /var/tmp),
#      RESTART_IDLE_S (7), PERCORE_BIN (a percore binary to measure instead of building one).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/restart-bench}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
gb="${RESTART_GB:-3}"
cores="${RESTART_CORES:-6}"
idle="${RESTART_IDLE_S:-7}"
if [ "${RESTART_QUICK:-0}" = 1 ]; then
  gb=0.25
  cores="${RESTART_CORES:-2}"
  idle="${RESTART_IDLE_S:-1}"
fi
ulimit -l unlimited 2>/dev/null || true
. bench/lib.sh
release_bins
loadgen="$LOADGEN_BIN"
work="$(mktemp -d "${RESTART_DIR:-/var/tmp}/percore-restart-bench.XXXXXX")"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(free_port)
ep="http://127.0.0.1:$port"
keys=$(python3 -c "print(max(1, int(float('$gb') * 1024)))")

start_node() {
  RUST_LOG="${RUST_LOG:-info}" "$PERCORE_BIN" serve --data "$work/data" --listen "127.0.0.1:$port" \
    --cores "$cores" >"$out/$1.out" 2>"$out/$1.err" &
  pid=$!
}

# Seconds (float) until a signed ListObjectsV2 of the bucket answers 200; 120 s at most.
wait_answer() {
  local t0=$1
  for _ in $(seq 1 4000); do
    kill -0 "$pid" 2>/dev/null || { tail -5 "$out/$2.err"; echo "percore exited" >&2; exit 1; }
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
      --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
      "$ep/restart-bench?list-type=2&max-keys=1" 2>/dev/null || true)
    if [ "$code" = 200 ]; then
      python3 -c "import time; print(f'{time.time() - $t0:.3f}')"
      return 0
    fi
    sleep 0.02
  done
  echo "no answer from $ep" >&2
  exit 1
}

hwm_mib() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status"; }

echo "== fresh node: $cores cores, storing ${gb} GiB of 1 MiB objects ($keys keys)"
start_node first
wait_started "$out/first.out" "$out/first.err"
fresh_hwm=$(hwm_mib)
t=$(date +%s.%N)
"$loadgen" --endpoint "$ep" --bucket restart-bench --prepare --prepare-concurrency 16 \
  --keys "$keys" --size 1MiB --no-run --quiet
store_s=$(python3 -c "import time; print(f'{time.time() - $t:.1f}')")
loaded_hwm=$(hwm_mib)
data_bytes=$(du -sb "$work/data" | cut -f1)

echo "== kill -9, restart"
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
t=$(date +%s.%N)
start_node restart
restart_s=$(wait_answer "$t" restart) || exit 1
answer_hwm=$(hwm_mib)
sleep "$idle"
restart_hwm=$(hwm_mib)
# Bytes the cores' replay read (each core logs its stats once serving).
replayed=$({ grep -o 'replayed_bytes: [0-9]*' "$out/restart.err" || true; } | awk '{s += $2} END {print s + 0}')

echo "== GETs of random keys for 2 s, bytes checked"
"$loadgen" --endpoint "$ep" --bucket restart-bench --keys "$keys" --size 1MiB --workload get \
  --verify full --warmup 0s --duration 2s --concurrency 8 --max-error-ratio 0 --quiet \
  --json "$out/verify.json"

python3 - "$out" "$gb" "$cores" "$data_bytes" "$store_s" "$fresh_hwm" "$loaded_hwm" \
  "$restart_s" "$answer_hwm" "$restart_hwm" "$replayed" "$idle" <<'EOF'
import json, os, sys
out, gb, cores, data, store_s, fresh, loaded, restart, answer, hwm, replayed, idle = sys.argv[1:]
verify = json.load(open(os.path.join(out, "verify.json")))["endpoints"][0]["ops"][0]
r = {
    "stored_gib": float(gb), "cores": int(cores), "data_on_disk_bytes": int(data),
    "store_s": float(store_s), "fresh_peak_rss_mib": float(fresh),
    "loaded_peak_rss_mib": float(loaded), "restart_after_kill9_s": float(restart),
    "restart_peak_rss_at_answer_mib": float(answer), "restart_peak_rss_mib": float(hwm), "restart_peak_rss_per_core_mib": float(hwm) / int(cores),
    "replayed_log_bytes": int(replayed), "verify_gets": verify["ok"],
    "verify_errors": verify["errors"],
}
json.dump(r, open(os.path.join(out, "restart.json"), "w"), indent=1)
lines = [f"# Restart after kill -9: {cores} cores, {float(gb):g} GiB stored "
         f"({int(data) / 2**30:.2f} GiB on disk)", "",
         "| figure | value |", "|---|---|",
         f"| restart (launch to first answered ListObjectsV2) | {float(restart):.2f} s |",
         f"| peak RSS after restart (VmHWM), at the first answer | {float(answer):.0f} MiB |",
         f"| peak RSS after restart (VmHWM), after {idle}s idle | {float(hwm):.0f} MiB ({float(hwm) / int(cores):.0f} MiB/core) |",
         f"| log replayed at restart (all cores) | {int(replayed) / 2**20:.0f} MiB |",
         f"| peak RSS of the first run (fresh start / after storing) | {float(fresh):.0f} / {float(loaded):.0f} MiB |",
         f"| GETs after restart, bytes checked: ok / errors | {verify['ok']} / {verify['errors']} |"]
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
