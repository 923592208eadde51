#!/usr/bin/env bash
# percore's perf suite: starts a release `percore serve` on 127.0.0.1 with a fresh data dir,
# runs the standard percore-loadgen workloads against it and writes one report:
#   OUT/suite.json   every run's full loadgen JSON, the ceilings, the ratios and targets
#   OUT/suite.html   one self-contained page: ratio table, headline table, every run's report
#   OUT/<run>.json, OUT/<run>.html   each run alone
# Workloads: small objects on disk first (4 KiB and 1 KiB PUTs into fresh buckets; the log and
# LMDB bytes they took, from /-/metrics, per byte the policy stores), 4 KiB GET and PUT (closed
# loop to find the peak, then open loop at 25%, 50% and 80% of the GET peak and 80% of the PUT
# peak; PUTs of new keys), zipfian 4 KiB GETs with the cache's hit ratio, 1 MiB and 64 MiB
# PUT/GET, and a mixed get/put/delete/list open-loop run at half the GET peak. Every run
# charges the server's CPU per request (`--server-pid`).
# Side by side in the same run: the HTTP ceiling (nginx, one worker, serving the 4 KiB key set
# as static files, GET with the same generator and settings: bytes checked), the device
# (fio, O_DIRECT sequential 1 MiB read and write on the data dir's filesystem), and, when
# SUITE_PEER_ENDPOINT is set, a peer S3 server (4 KiB and 1 MiB GET/PUT with the same
# settings). nginx and fio are installed from Debian's packages when missing and the suite
# runs as root; otherwise their rows say "not measured".
#
# Usage: bench/run-suite.sh [OUT_DIR]        (default: target/perf-suite)
# Env:   SUITE_DURATION (default 20s), SUITE_WARMUP (5s), SUITE_CORES (all CPUs),
#        SUITE_DATA (a fresh dir under /var/tmp), SUITE_PORT (a free port), SUITE_QUICK=1
#        (3 s runs, small key sets: a smoke test of the suite itself),
#        SUITE_PEER_ENDPOINT, SUITE_PEER_ACCESS_KEY, SUITE_PEER_SECRET_KEY (a peer to compare),
#        SUITE_PEER_PIDS (its local processes, comma-separated, to charge their CPU).
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
keys_disk=10000
keys_zipf=10000
keys_new=1000000
if [ "${SUITE_QUICK:-0}" = 1 ]; then
  duration=3s warmup=1s keys_small=200 keys_1m=20 keys_64m=2 keys_disk=1000 keys_zipf=1000
  keys_new=100000
fi
ulimit -l unlimited 2>/dev/null || true

cargo build --release --locked --quiet --bin percore --bin percore-loadgen
bin="$PWD/target/release"

data="${SUITE_DATA:-$(mktemp -d /var/tmp/percore-suite.XXXXXX)}"
. bench/lib.sh
port="${SUITE_PORT:-$(free_port)}"
cores_flag=()
[ -n "${SUITE_CORES:-}" ] && cores_flag=(--cores "$SUITE_CORES")
"$bin/percore" serve --data "$data" --listen "127.0.0.1:$port" "${cores_flag[@]}" \
  >"$out/serve.out" 2>"$out/serve.err" &
server=$!
nginx_pid="" www=""
cleanup() {
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  if [ -n "$nginx_pid" ]; then kill -TERM "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
  [ -n "$www" ] && rm -rf "$www"
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
target="$endpoint" target_pids="$server"
# run NAME BUCKET ARGS…: one loadgen run against $target with its own JSON and HTML report,
# charging $target_pids' CPU. A run with endpoint errors still keeps its report (loadgen exits
# 3) and the suite goes on.
run() {
  local name=$1 bucket=$2
  shift 2
  echo "== $name"
  local code=0
  local pids=()
  [ -n "$target_pids" ] && pids=(--server-pid "$target_pids")
  "$bin/percore-loadgen" --endpoint "$target" --bucket "suite-$bucket" \
    --warmup "$warmup" --duration "$duration" "${pids[@]}" \
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
# share FRACTION RATE: FRACTION of RATE, at least 1/s.
share() { python3 -c 'import sys; print(max(1.0, round(float(sys.argv[1]) * float(sys.argv[2]), 1)))' "$1" "$2"; }
# core_sum NAME…: each named core metric summed over the server's cores, one line (engine
# counters, refreshed every 2 s: read after a pause).
core_sum() {
  sleep 3
  curl -s --max-time 5 "$endpoint/-/metrics" | awk -v names="$*" '
    BEGIN { n = split(names, want, " ") }
    { for (i = 1; i <= n; i++) if (index($0, want[i] "{") == 1) s[i] += $NF }
    END { for (i = 1; i <= n; i++) printf "%.0f%s", s[i], (i < n ? " " : "\n") }'
}
# settle: waits (at most 180 s) until the server's background work is done: no job waiting in a
# background worker (retire...) and the cores' log unchanged over three counter refreshes in a
# row (two 3 s intervals: longer than the reclaimer's 5 s between passes, so a pass that is
# still to come is waited for), so the retiring and reclaiming an earlier phase left behind is
# not counted in the next one's log bytes. Prints how long it waited.
settle() {
  local waited=0 quiet=0 last now queued
  last=$(core_sum percore_core_log_appended_bytes)
  while [ "$waited" -lt 180 ]; do
    now=$(core_sum percore_core_log_appended_bytes)
    waited=$((waited + 3))
    queued=$(curl -s --max-time 5 "$endpoint/-/metrics" |
      awk 'index($0, "percore_background_queued{") == 1 {s += $NF} END {printf "%.0f", s}')
    if [ "$now" = "$last" ] && [ "$queued" = 0 ]; then
      quiet=$((quiet + 1))
    else
      quiet=0
    fi
    if [ "$quiet" -ge 2 ]; then
      echo "   (background settled after ${waited} s)"
      return 0
    fi
    last=$now
  done
  echo "   (background still busy after ${waited} s)"
}
# cache_reads: the cores' cache reads, then those that hit (two lines).
cache_reads() {
  core_sum percore_core_cache_reads
  curl -s --max-time 5 "$endpoint/-/metrics" | awk 'index($0, "percore_core_cache_reads{") == 1 &&
    index($0, "result=\"hit\"") {s += $NF} END {printf "%.0f\n", s}'
}
# have TOOL PACKAGE: TOOL is on PATH, installed from Debian's PACKAGE if it was not (as root).
have() {
  command -v "$1" >/dev/null && return 0
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  { apt-get install -y -qq --no-install-recommends "$2" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends "$2" >/dev/null 2>&1; }; } || return 1
  command -v "$1" >/dev/null
}
ceilings="$out/ceilings.json"
echo '{}' >"$ceilings"
# ceiling KEY JSON: records one measured ceiling for the report.
ceiling() {
  python3 -c 'import json,sys
p = sys.argv[1]; c = json.load(open(p)); c[sys.argv[2]] = json.loads(sys.argv[3])
json.dump(c, open(p, "w"), indent=2)' "$ceilings" "$1" "$2"
}

# Small objects on disk, on the fresh server (no reclaim running): what a fresh bucket of
# KEYS objects of SIZE took of the log (records and padding) and of LMDB, per byte the
# policy stores (the object bytes times the copies it keeps: fragments added per object,
# each a whole copy for objects this small).
disk_use() {
  local size=$1 bytes=$2 keys=$3
  echo "== small objects on disk: $keys x $size"
  local before after
  before=$(core_sum percore_core_log_appended_bytes percore_core_meta_bytes percore_core_fragments)
  "$bin/percore-loadgen" --endpoint "$endpoint" --bucket "suite-disk-${size,,}" --workload put \
    --size "$size" --keys "$keys" --prepare --prepare-concurrency 64 --no-run --quiet
  after=$(core_sum percore_core_log_appended_bytes percore_core_meta_bytes percore_core_fragments)
  ceiling "disk_${size,,}" "$(python3 -c 'import json,sys
b = [float(x) for x in sys.argv[1].split()]; a = [float(x) for x in sys.argv[2].split()]
size, keys = int(sys.argv[3]), int(sys.argv[4])
log, meta, frags = a[0] - b[0], a[1] - b[1], a[2] - b[2]
copies = frags / keys
print(json.dumps({"objects": keys, "object_bytes": size, "log_bytes": log, "meta_bytes": meta,
                  "copies": copies,
                  "amplification": round((log + meta) / (keys * size * copies), 3) if copies else None}))' \
    "$before" "$after" "$bytes" "$keys")"
}
disk_use 4KiB 4096 "$keys_disk"
disk_use 1KiB 1024 "$((keys_disk * 2))"

get4k=(--workload get --size 4KiB --keys "$keys_small")
run get-4k-peak get4k "${get4k[@]}" --prepare --concurrency 64
get_peak=$(peak get-4k-peak get)
run get-4k-open25 get4k "${get4k[@]}" --rate "$(share 0.25 "$get_peak")"
run get-4k-open50 get4k "${get4k[@]}" --rate "$(share 0.5 "$get_peak")"
run get-4k-open get4k "${get4k[@]}" --rate "$(share 0.8 "$get_peak")" --cleanup --delete-bucket
# The cache: zipfian 4 KiB GETs (exponent 0.99) over a key set that fits its budget; the hit
# ratio over the run (loadgen's warmup included) from the cores' counters.
"$bin/percore-loadgen" --endpoint "$endpoint" --bucket suite-zipf --workload put --size 4KiB \
  --keys "$keys_zipf" --prepare --prepare-concurrency 64 --no-run --quiet
cache_before=$(cache_reads | paste -sd' ')
run get-4k-zipf zipf --workload get --size 4KiB --keys "$keys_zipf" --key-dist zipf \
  --concurrency 64 --cleanup --delete-bucket
cache_after=$(cache_reads | paste -sd' ')
ceiling cache_zipf "$(python3 -c 'import json,sys
(r0, h0), (r1, h1) = ([float(x) for x in a.split()] for a in sys.argv[1:3])
reads, hits = r1 - r0, h1 - h0
print(json.dumps({"reads": reads, "hits": hits, "hit_ratio": round(hits / reads, 4) if reads else None}))' \
  "$cache_before" "$cache_after")"
run put-4k-peak put4k --workload put --size 4KiB --keys "$keys_small" --prepare --concurrency 64
run put-4k-open put4k --workload put --size 4KiB --keys "$keys_small" \
  --rate "$(share 0.8 "$(peak put-4k-peak put)")" --cleanup --delete-bucket
# Ingest: 4 KiB PUTs over a million keys into an empty bucket, nearly all of them new keys
# (`--prepare` would PUT every key first and make the run overwrites). The peak above
# overwrites 2,000 keys; a new key's head and listing entry each dirty another LMDB page, which
# the next commit writes (engine/DESIGN.md, "What a key costs in LMDB").
"$bin/percore-loadgen" --endpoint "$endpoint" --bucket suite-put4knew --workload put \
  --size 4KiB --keys 1 --prepare --no-run --quiet
run put-4k-new put4knew --workload put --size 4KiB --keys "$keys_new" --concurrency 64
run put-1m 1m --workload put --size 1MiB --keys "$keys_1m" --prepare --concurrency 8
run get-1m 1m --workload get --size 1MiB --keys "$keys_1m" --concurrency 8 --cleanup --delete-bucket
# What 64 MiB objects cost the device: log bytes the key set takes per object byte stored
# (measured on a fresh bucket, before the PUT run overwrites it). The 1 MiB phases leave
# thousands of overwritten versions to retire and their segments to reclaim, and that
# work's relocations went into this count (3.2 where the key set alone takes 2.0): it is
# waited for before and after.
settle
log_before=$(core_sum percore_core_log_appended_bytes)
"$bin/percore-loadgen" --endpoint "$endpoint" --bucket suite-64m --workload put --size 64MiB \
  --keys "$keys_64m" --prepare --prepare-concurrency 2 --no-run --quiet
settle
log_after=$(core_sum percore_core_log_appended_bytes)
run put-64m 64m --workload put --size 64MiB --keys "$keys_64m" --concurrency 2
ceiling put_64m_amplification "$(python3 -c 'import sys
gained, stored = float(sys.argv[1]) - float(sys.argv[2]), float(sys.argv[3]) * 64 * 2**20
print(round(gained / stored, 3) if gained > 0 else "null")' "$log_after" "$log_before" "$keys_64m")"
run get-64m 64m --workload get --size 64MiB --keys "$keys_64m" --concurrency 2 --cleanup \
  --delete-bucket
run mixed mixed --workload get=70,put=20,delete=5,list=5 --size 4KiB --keys "$keys_small" --prepare \
  --rate "$(share 0.5 "$get_peak")" --list-max-keys 100 --cleanup --delete-bucket

# The HTTP ceiling: nginx (one worker) serving the 4 KiB key set as files.
if have nginx nginx-light; then
  # Its own directory, readable by the unprivileged worker (the data dir is private).
  www="$(mktemp -d /var/tmp/percore-suite-www.XXXXXX)"
  chmod 755 "$www"
  mkdir -p "$www/root" "$www/tmp"
  "$bin/percore-loadgen" --endpoint "$endpoint" --bucket suite-get4k "${get4k[@]}" \
    --write-files "$www/root" --quiet
  nport=$(free_port)
  cat >"$www/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $www/nginx.pid;
error_log $www/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $www/tmp; proxy_temp_path $www/tmp; fastcgi_temp_path $www/tmp;
  uwsgi_temp_path $www/tmp; scgi_temp_path $www/tmp;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$nport; root $www/root; }
}
CONF
  nginx -c "$www/nginx.conf" -p "$www" &
  nginx_pid=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$nport/" && break; sleep 0.1; done
  workers=$(pgrep -P "$nginx_pid" | paste -sd, -)
  target="http://127.0.0.1:$nport" target_pids="$nginx_pid${workers:+,$workers}"
  run nginx-get-4k-peak get4k "${get4k[@]}" --concurrency 64
  target="$endpoint" target_pids="$server"
  kill -TERM "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  nginx_pid=""
  rm -rf "$www"
else
  echo "== nginx: not installed and cannot be: the HTTP ceiling is not measured"
fi

# The device: fio O_DIRECT sequential 1 MiB write then read on the data dir's filesystem.
if have fio fio; then
  fio_s=$(python3 -c 'import sys; v=sys.argv[1]; print(max(2, int(float(v[:-1]) * (60 if v.endswith("m") else 1))))' "$duration")
  fio_size=$([ "${SUITE_QUICK:-0}" = 1 ] && echo 256M || echo 4G)
  for rw in write read; do
    echo "== fio $rw"
    fio --name="suite-$rw" --filename="$data/fio.bin" --size="$fio_size" --bs=1M --direct=1 \
      --ioengine=io_uring --iodepth=16 --rw="$rw" --time_based --runtime="$fio_s" \
      --end_fsync=1 --output-format=json --output="$out/fio-$rw.json" >/dev/null
    ceiling "fio_${rw}_mib_per_s" "$(python3 -c 'import json,sys
j = json.load(open(sys.argv[1]))["jobs"][0][sys.argv[2]]
print(round(j["bw_bytes"] / 2**20, 1))' "$out/fio-$rw.json" "$rw")"
  done
  rm -f "$data/fio.bin"
else
  echo "== fio: not installed and cannot be: the device ceiling is not measured"
fi

# A peer S3 server, when given: the same 4 KiB and 1 MiB workloads.
if [ -n "${SUITE_PEER_ENDPOINT:-}" ]; then
  AWS_ACCESS_KEY_ID="${SUITE_PEER_ACCESS_KEY:?SUITE_PEER_ACCESS_KEY}"
  AWS_SECRET_ACCESS_KEY="${SUITE_PEER_SECRET_KEY:?SUITE_PEER_SECRET_KEY}"
  # SUITE_PEER_PIDS: the peer's processes on this machine, to charge their CPU (optional).
  target="$SUITE_PEER_ENDPOINT" target_pids="${SUITE_PEER_PIDS:-}"
  run peer-get-4k-peak get4k "${get4k[@]}" --prepare --concurrency 64 --cleanup --delete-bucket
  run peer-put-4k-peak put4k --workload put --size 4KiB --keys "$keys_small" --prepare \
    --concurrency 64 --cleanup --delete-bucket
  run peer-put-1m 1m --workload put --size 1MiB --keys "$keys_1m" --prepare --concurrency 8
  run peer-get-1m 1m --workload get --size 1MiB --keys "$keys_1m" --concurrency 8 --cleanup \
    --delete-bucket
fi

python3 bench/suite_report.py "$out" "${runs[@]}"
