#!/usr/bin/env bash
# The per-core cache (README "Cache"): zipfian 4 KiB GETs whose key set fits the budget, cache
# on (A: cache_mib = CACHE_MIB) against cache off (B: cache_mib = 0) in one loadgen run in
# compare mode (1 s slices, A and B interleaved, so both see the same machine noise). Release
# build on 127.0.0.1: two fresh `percore serve` processes with CACHE_CORES cores each, the same
# CACHE_KEYS objects of 4 KiB on both; then a warm pass of CACHE_WARM_PASS seconds of the same
# GETs (not measured), then CACHE_RUN seconds of closed-loop GETs (CACHE_CONCURRENCY in flight,
# keys zipfian with exponent 0.99). Reported: ops/s and latency per endpoint and B/A, and A's
# hit ratio from /-/metrics (percore_core_cache_reads) over the measured run (loadgen's own
# warmup included) and from a cold cache (the warm pass included). Writes OUT/cache.json
# (loadgen's) and OUT/summary.md. One run, ratios within it; no test asserts a time.
#
# Usage: bench/cache.sh [OUT_DIR]   (default target/cache-bench)
# Env: CACHE_KEYS (10000), CACHE_MIB (64), CACHE_CORES (2), CACHE_CONCURRENCY (64),
#      CACHE_RUN (40s), CACHE_WARMUP (5s), CACHE_WARM_PASS (10s), CACHE_DIR (where the data goes; /var/tmp),
#      PERCORE_BIN / LOADGEN_BIN (binaries to measure instead of building them).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/cache-bench}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
keys="${CACHE_KEYS:-10000}"
cache_mib="${CACHE_MIB:-64}"
cores="${CACHE_CORES:-2}"
concurrency="${CACHE_CONCURRENCY:-64}"
run_for="${CACHE_RUN:-40s}"
warmup="${CACHE_WARMUP:-5s}"
warm_pass="${CACHE_WARM_PASS:-10s}"
ulimit -l unlimited 2>/dev/null || true
. bench/lib.sh
release_bins
work="$(mktemp -d "${CACHE_DIR:-/var/tmp}/percore-cache-bench.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start NAME CACHE_MIB: a node with that cache budget per core; sets EP_NAME, AK_NAME, SK_NAME.
start() {
  local name=$1 port
  port=$(free_port)
  mkdir -p "$work/$name"
  printf 'cache_mib = %s\n' "$2" >"$work/$name/node.toml"
  RUST_LOG="${RUST_LOG:-warn}" "$PERCORE_BIN" serve --config "$work/$name/node.toml" \
    --data "$work/$name/data" --listen "127.0.0.1:$port" --cores "$cores" \
    >"$out/$name.out" 2>"$out/$name.err" &
  pids+=($!)
  wait_banner "$out/$name.out" "$out/$name.err"
  printf -v "EP_$name" '%s' "http://127.0.0.1:$port"
  printf -v "AK_$name" '%s' "$(sed -n 's/^access_key: //p' "$out/$name.out")"
  printf -v "SK_$name" '%s' "$(sed -n 's/^secret_key: //p' "$out/$name.out")"
}

start on "$cache_mib"
start off 0
loadgen() {
  "$LOADGEN_BIN" --endpoint "$EP_on" --endpoint "$EP_off" \
    --access-key "$AK_on" --secret-key "$SK_on" --access-key "$AK_off" --secret-key "$SK_off" \
    --bucket cache-bench --workload get --size 4KiB --keys "$keys" --key-dist zipf "$@"
}

# cache_reads RESULT: A's reads with that result, summed over its cores (after the gateway's
# next refresh of core counters, every 2 s).
cache_reads() {
  curl -s "$EP_on/-/metrics" |
    awk -v r="result=\"$1\"" '/^percore_core_cache_reads\{/ && index($0, r) { s += $NF } END { print s + 0 }'
}

echo "== prepare: $keys objects of 4 KiB on both nodes"
loadgen --prepare --no-run --quiet
sleep 3
cold_hits=$(cache_reads hit) cold_misses=$(cache_reads miss)
echo "== warm pass: $warm_pass of the same GETs, not measured"
loadgen --concurrency "$concurrency" --warmup 0s --duration "$warm_pass" --quiet >/dev/null || true
sleep 3
hits0=$(cache_reads hit) misses0=$(cache_reads miss)
echo "== run: zipfian GET, $concurrency in flight, $run_for (+$warmup warmup)"
loadgen --concurrency "$concurrency" --warmup "$warmup" --duration "$run_for" \
  --json "$out/cache.json" --quiet || true
sleep 3
hits1=$(cache_reads hit) misses1=$(cache_reads miss)
budget=$(curl -s "$EP_on/-/metrics" | awk '/^percore_core_cache_budget_bytes\{/ { s += $NF } END { print s + 0 }')
used=$(curl -s "$EP_on/-/metrics" | awk '/^percore_core_cache_bytes\{/ { s += $NF } END { print s + 0 }')

python3 - "$out/cache.json" "$((hits1 - hits0))" "$((misses1 - misses0))" "$budget" "$used" \
  "$keys" "$cores" "$concurrency" "$cache_mib" "$((hits1 - cold_hits))" \
  "$((misses1 - cold_misses))" >"$out/summary.md" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
hits, misses, budget, used = (int(x) for x in sys.argv[2:6])
keys, cores, conc, mib = sys.argv[6:10]
cold_hits, cold_misses = int(sys.argv[10]), int(sys.argv[11])
get = lambda e: next(o for o in e["ops"] if o["op"] == "get")
a, b = (get(e) for e in r["endpoints"])
row = next(c for c in r["compare"] if c["op"] == "get")
ms = lambda us: f"{us / 1000:.2f}"
print(f"zipfian 4 KiB GET, {keys} keys, {conc} in flight, {cores} cores per node, "
      f"cache_mib = {mib} (A) vs 0 (B)\n")
print("| endpoint | ops/s | p50 ms | p99 ms | p99.9 ms | errors |")
print("|---|---|---|---|---|---|")
for name, o in (("A cache on", a), ("B cache off", b)):
    l = o["latency"]
    print(f"| {name} | {o['ops_per_s']:,.0f} | {ms(l['p50_us'])} | {ms(l['p99_us'])} | "
          f"{ms(l['p999_us'])} | {o['errors']} |")
f = lambda x: "-" if x is None else f"{x:.2f}"
print(f"| B/A | {f(row['ops_per_s'])} | {f(row['p50'])} | {f(row['p99'])} | {f(row['p999'])} | |")
share = lambda h, m: h / (h + m) if h + m else 0.0
print(f"\nA's cache over the measured run (loadgen's warmup included): {hits:,} hits, "
      f"{misses:,} misses, hit ratio {share(hits, misses):.1%}; from a cold cache (the warm "
      f"pass too): {cold_hits:,} hits, {cold_misses:,} misses, "
      f"{share(cold_hits, cold_misses):.1%}. {used / 2**20:.1f} MiB held of a "
      f"{budget / 2**20:.0f} MiB budget (all cores).")
EOF
cat "$out/summary.md"
