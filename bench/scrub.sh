#!/usr/bin/env bash
# The scrub's cost to foreground reads, and its throughput (README "Scrub"). Release build on
# 127.0.0.1: a fresh `percore serve` with SCRUB_CORES cores (2) stores SCRUB_GB GiB of 1 MiB
# objects and 1000 objects of 4 KiB; then 4 KiB GETs at SCRUB_GET_RATE/s (open loop) run for
# SCRUB_GET_S seconds three times: idle, during a pass at the default pace, and during a pass
# with no pace (the node restarted with --scrub-bytes-per-sec 1 TiB). Each pass is started with
# SIGUSR1 and timed until every core's `percore_scrub_passes_total` has moved; its bytes come
# from `percore_scrub_bytes_total`. Reported: GET p50/p99 per phase and their ratio to idle
# (target p99 <= 1.2x idle at the default pace), each pass's duration and MiB/s. Writes
# OUT/scrub.json and OUT/summary.md. One run, ratios within it; no test asserts a time.
#
# Usage: bench/scrub.sh [OUT_DIR]   (default target/scrub-bench)
# Env: SCRUB_GB (1), SCRUB_CORES (2), SCRUB_GET_RATE (500), SCRUB_GET_S (15),
#      SCRUB_DIR (where the data directory goes; default /var/tmp),
#      PERCORE_BIN / LOADGEN_BIN (binaries to measure instead of building them).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/scrub-bench}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
gb="${SCRUB_GB:-1}"
cores="${SCRUB_CORES:-2}"
rate="${SCRUB_GET_RATE:-500}"
secs="${SCRUB_GET_S:-15}"
ulimit -l unlimited 2>/dev/null || true
. bench/lib.sh
release_bins
work="$(mktemp -d "${SCRUB_DIR:-/var/tmp}/percore-scrub-bench.XXXXXX")"
pid=""
stop_node() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  pid=""
}
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(free_port)
ep="http://127.0.0.1:$port"
keys=$(python3 -c "print(max(1, int(float('$gb') * 1024)))")

# start_node NAME PACE: a node that scrubs only at SIGUSR1, at PACE bytes/s.
start_node() {
  RUST_LOG="${RUST_LOG:-warn}" "$PERCORE_BIN" serve --data "$work/data" --listen "127.0.0.1:$port" \
    --cores "$cores" --scrub-days 0 --scrub-bytes-per-sec "$2" >"$out/$1.out" 2>"$out/$1.err" &
  pid=$!
  wait_started "$out/$1.out" "$out/$1.err"
}

# metric NAME: the sum of a per-core metric over the cores.
metric() {
  curl -s --max-time 5 "$ep/-/metrics" | awk -v n="$1" 'index($0, n "{") == 1 {s += $NF} END {printf "%.0f\n", s}'
}

# gets PHASE: 4 KiB GETs at the fixed rate; the JSON report in OUT/get-PHASE.json.
gets() {
  "$LOADGEN_BIN" --endpoint "$ep" --bucket scrub-get --keys 1000 --size 4KiB --workload get \
    --rate "$rate" --warmup 2s --duration "${secs}s" --quiet --json "$out/get-$1.json"
}

# scrub_pass PHASE: SIGUSR1, then GETs while it runs (when PHASE is not "alone"); waits for the
# end of the pass and writes "seconds bytes" to OUT/pass-PHASE.txt.
scrub_pass() {
  local before bytes0 t0
  before=$(metric percore_scrub_passes_total)
  bytes0=$(metric percore_scrub_bytes_total)
  t0=$(date +%s.%N)
  kill -USR1 "$pid"
  if [ "$1" != alone ]; then gets "$1"; fi
  for _ in $(seq 1 12000); do
    [ "$(metric percore_scrub_passes_total)" -ge $((before + cores)) ] && break
    sleep 0.05
  done
  python3 -c "import time; print(f'{time.time() - $t0:.2f}', $(metric percore_scrub_bytes_total) - $bytes0)" \
    >"$out/pass-$1.txt"
  if [ "$1" != alone ] && [ "$(cut -d' ' -f1 "$out/pass-$1.txt" | cut -d. -f1)" -lt "$((secs + 2))" ]; then
    echo "warning: the $1 pass ended before the GETs did: raise SCRUB_GB" >&2
  fi
}

echo "== $cores cores: ${gb} GiB of 1 MiB objects, 1000 of 4 KiB"
start_node paced 33554432
"$LOADGEN_BIN" --endpoint "$ep" --bucket scrub-fill --prepare --prepare-concurrency 16 \
  --keys "$keys" --size 1MiB --no-run --quiet
"$LOADGEN_BIN" --endpoint "$ep" --bucket scrub-get --prepare --prepare-concurrency 16 \
  --keys 1000 --size 4KiB --no-run --quiet
echo "== GETs, idle"
gets idle
echo "== GETs during a pass at the default pace (32 MiB/s)"
scrub_pass paced
stop_node
echo "== GETs during an unpaced pass"
start_node unpaced 1099511627776
scrub_pass unpaced
echo "== an unpaced pass alone"
scrub_pass alone
stop_node

python3 - "$out" "$gb" "$cores" "$rate" <<'EOF'
import json, os, sys
out, gb, cores, rate = sys.argv[1:]
def get(phase):
    op = json.load(open(os.path.join(out, f"get-{phase}.json")))["endpoints"][0]["ops"][0]
    lat = op["latency"]
    return {"ok": op["ok"], "errors": op["errors"], "p50_ms": lat["p50_us"] / 1000,
            "p99_ms": lat["p99_us"] / 1000}
def scrub(phase):
    s, b = open(os.path.join(out, f"pass-{phase}.txt")).read().split()
    b = int(float(b))
    return {"seconds": float(s), "bytes": b, "mib_per_s": b / 2**20 / float(s)}
r = {"stored_gib": float(gb), "cores": int(cores), "get_rate": int(rate),
     "get": {p: get(p) for p in ["idle", "paced", "unpaced"]},
     "pass": {p: scrub(p) for p in ["paced", "unpaced", "alone"]}}
idle = r["get"]["idle"]
json.dump(r, open(os.path.join(out, "scrub.json"), "w"), indent=1)
lines = [f"# Scrub: {cores} cores, {float(gb):g} GiB of 1 MiB objects, 4 KiB GETs at {rate}/s", "",
         "| phase | GET p50 | GET p99 | p99 / idle | errors | pass | pass bytes | pass MiB/s |",
         "|---|---|---|---|---|---|---|---|"]
for phase, label in [("idle", "idle"), ("paced", "during a pass, 32 MiB/s pace"),
                     ("unpaced", "during an unpaced pass")]:
    g = r["get"][phase]
    p = r["pass"].get(phase)
    tail = (f"{p['seconds']:.1f} s | {p['bytes'] / 2**20:.0f} MiB | {p['mib_per_s']:.0f}"
            if p else "– | – | –")
    lines.append(f"| {label} | {g['p50_ms']:.2f} ms | {g['p99_ms']:.2f} ms | "
                 f"{g['p99_ms'] / idle['p99_ms']:.2f}x | {g['errors']} | {tail} |")
a = r["pass"]["alone"]
lines.append(f"| an unpaced pass, no GETs | – | – | – | – | {a['seconds']:.1f} s | "
             f"{a['bytes'] / 2**20:.0f} MiB | {a['mib_per_s']:.0f} |")
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
