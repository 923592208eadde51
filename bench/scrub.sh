#!/usr/bin/env bash
# The scrub's cost to foreground reads, and its throughput (README "Scrub"). Release build on
# 127.0.0.1: a fresh `percore serve` with SCRUB_CORES cores (2) stores SCRUB_GB GiB of 1 MiB
# objects and 1000 objects of 4 KiB; then 4 KiB GETs at SCRUB_GET_RATE/s (open loop) run for
# SCRUB_GET_S seconds: idle, then during a pass at each pace of SCRUB_PACES (MiB/s; the
# default pace among them) and during an unpaced pass (--scrub-bytes-per-sec 1 TiB). Every
# phase starts the node afresh (at its pace; the passes with SIGUSR1), so each GET phase
# begins from the same cold cache, and stops it when the GETs end; the pass's rate is `percore_scrub_bytes_total` over the GET phase. Last,
# an unpaced pass alone is timed to its end (every core's `percore_scrub_passes_total` moved).
# Reported: GET p50/p99 per phase and the p99's ratio to idle (target <= 1.2x at the default
# pace), and each pass's MiB/s. Writes OUT/scrub.json and OUT/summary.md. One run, ratios
# within it; no test asserts a time.
#
# Usage: bench/scrub.sh [OUT_DIR]   (default target/scrub-bench)
# Env: SCRUB_GB (1), SCRUB_CORES (2), SCRUB_GET_RATE (500), SCRUB_GET_S (30),
#      SCRUB_PACES ("8 16 32"), SCRUB_ROUNDS (1: idle and the paced phases repeated, p99s
#      reported per round and compared by their medians), SCRUB_DIR (where the data directory goes; default /var/tmp),
#      PERCORE_BIN / LOADGEN_BIN (binaries to measure instead of building them).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/scrub-bench}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
gb="${SCRUB_GB:-1}"
cores="${SCRUB_CORES:-2}"
rate="${SCRUB_GET_RATE:-500}"
secs="${SCRUB_GET_S:-30}"
paces="${SCRUB_PACES:-8 16 32}"
rounds="${SCRUB_ROUNDS:-1}"
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

# during PHASE: SIGUSR1, then GETs while the pass runs; writes "seconds bytes" of the GET phase
# to OUT/pass-PHASE.txt (the node is stopped afterwards, so the pass need not end).
during() {
  local bytes0 t0
  bytes0=$(metric percore_scrub_bytes_total)
  t0=$(date +%s.%N)
  kill -USR1 "$pid"
  gets "$1"
  python3 -c "import time; print(f'{time.time() - $t0:.2f}', $(metric percore_scrub_bytes_total) - $bytes0)" \
    >"$out/pass-$1.txt"
}

# alone: an unpaced pass with no GETs, timed until every core has finished it.
alone() {
  local before bytes0 t0
  before=$(metric percore_scrub_passes_total)
  bytes0=$(metric percore_scrub_bytes_total)
  t0=$(date +%s.%N)
  kill -USR1 "$pid"
  for _ in $(seq 1 12000); do
    [ "$(metric percore_scrub_passes_total)" -ge $((before + cores)) ] && break
    sleep 0.05
  done
  python3 -c "import time; print(f'{time.time() - $t0:.2f}', $(metric percore_scrub_bytes_total) - $bytes0)" \
    >"$out/pass-alone.txt"
}

echo "== $cores cores: ${gb} GiB of 1 MiB objects, 1000 of 4 KiB"
start_node fill 1099511627776
"$LOADGEN_BIN" --endpoint "$ep" --bucket scrub-fill --prepare --prepare-concurrency 16 \
  --keys "$keys" --size 1MiB --no-run --quiet
"$LOADGEN_BIN" --endpoint "$ep" --bucket scrub-get --prepare --prepare-concurrency 16 \
  --keys 1000 --size 4KiB --no-run --quiet
stop_node
for round in $(seq 1 "$rounds"); do
  echo "== round $round: GETs, idle"
  start_node "idle-r$round" 1099511627776
  gets "idle-r$round"
  stop_node
  for pace in $paces; do
    echo "== round $round: GETs during a pass at $pace MiB/s"
    start_node "pace-$pace-r$round" $((pace * 1048576))
    during "pace-$pace-r$round"
    stop_node
  done
done
echo "== GETs during an unpaced pass"
start_node unpaced 1099511627776
during unpaced
echo "== an unpaced pass alone"
alone
stop_node

python3 - "$out" "$gb" "$cores" "$rate" "$paces" "$rounds" <<'EOF'
import json, os, statistics, sys
out, gb, cores, rate, paces, rounds = sys.argv[1:]
rounds = int(rounds)
kinds = ["idle"] + [f"pace-{p}" for p in paces.split()]
default_pace = 32  # MiB/s: objects::scrub::BYTES_PER_SEC_DEFAULT
def get(phase):
    op = json.load(open(os.path.join(out, f"get-{phase}.json")))["endpoints"][0]["ops"][0]
    lat = op["latency"]
    return {"ok": op["ok"], "errors": op["errors"], "p50_ms": lat["p50_us"] / 1000,
            "p99_ms": lat["p99_us"] / 1000}
def scrub(phase):
    s, b = open(os.path.join(out, f"pass-{phase}.txt")).read().split()
    b = int(float(b))
    return {"seconds": float(s), "bytes": b, "mib_per_s": b / 2**20 / float(s)}
runs = {k: [f"{k}-r{i}" for i in range(1, rounds + 1)] for k in kinds}
runs["unpaced"] = ["unpaced"]
r = {"stored_gib": float(gb), "cores": int(cores), "get_rate": int(rate), "rounds": rounds,
     "get": {p: get(p) for ps in runs.values() for p in ps},
     "pass": {p: scrub(p) for k, ps in runs.items() if k != "idle" for p in ps}}
r["pass"]["alone"] = scrub("alone")
json.dump(r, open(os.path.join(out, "scrub.json"), "w"), indent=1)
def median(kind, field):
    return statistics.median(r["get"][p][field] for p in runs[kind])
idle_p99 = median("idle", "p99_ms")
lines = [f"# Scrub: {cores} cores, {float(gb):g} GiB of 1 MiB objects, 4 KiB GETs at {rate}/s, "
         f"{rounds} round(s)", "",
         "| phase | GET p50 (median) | GET p99 per round | p99 median / idle | errors | pass MiB/s |",
         "|---|---|---|---|---|---|"]
for kind in kinds + ["unpaced"]:
    label = {"idle": "idle", "unpaced": "during an unpaced pass"}.get(kind)
    if label is None:
        pace = int(kind.split("-")[1])
        label = f"during a pass, {pace} MiB/s pace" + (" (default)" if pace == default_pace else "")
    p99s = " / ".join(f"{r['get'][p]['p99_ms']:.2f}" for p in runs[kind])
    errors = sum(r["get"][p]["errors"] for p in runs[kind])
    rate_col = ("–" if kind == "idle" else
                " / ".join(f"{r['pass'][p]['mib_per_s']:.0f}" for p in runs[kind]))
    lines.append(f"| {label} | {median(kind, 'p50_ms'):.2f} ms | {p99s} ms | "
                 f"{median(kind, 'p99_ms') / idle_p99:.2f}x | {errors} | {rate_col} |")
a = r["pass"]["alone"]
lines.append(f"| an unpaced pass, no GETs ({a['bytes'] / 2**20:.0f} MiB in {a['seconds']:.1f} s) "
             f"| – | – | – | – | {a['mib_per_s']:.0f} |")
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
