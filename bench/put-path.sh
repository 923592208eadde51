#!/usr/bin/env bash
# The PUT path before and after a change, in one run: `bash bench/put-path.sh BEFORE_BIN [OUT]`
# starts `percore serve` from BEFORE_BIN (a release build of an older commit) and from this
# tree's release build, each on its own data directory, and runs the same percore-loadgen
# PUT workloads against them in turns (before, after, before, after), so both see the same
# machine. Writes OUT/summary.md (default target/put-path): 4 KiB and 64 MiB PUT throughput
# per turn, the after/before ratios, and the metadata calls per 4 KiB PUT of a build that
# counts them (`percore_meta_calls` in /-/metrics; an older build without it shows "-").
set -euo pipefail
cd "$(dirname "$0")/.."
before_bin=${1:?usage: bench/put-path.sh BEFORE_BIN [OUT]}
out=${2:-target/put-path}
mkdir -p "$out"
duration=${PUT_PATH_DURATION:-10s}
warmup=${PUT_PATH_WARMUP:-2s}
rounds=${PUT_PATH_ROUNDS:-2}
ulimit -l unlimited 2>/dev/null || true
# PUT_PATH_AFTER_BIN: an already built "after" percore (then nothing is built; the loadgen
# must be in target/release).
if [ -z "${PUT_PATH_AFTER_BIN:-}" ]; then
  cargo build --release --locked --quiet --bin percore --bin percore-loadgen
fi
after_bin=${PUT_PATH_AFTER_BIN:-$PWD/target/release/percore}
loadgen="$PWD/target/release/percore-loadgen"

pids=()
dirs=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for d in "${dirs[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT

# start NAME BIN: a server on a free port; sets NAME_endpoint, NAME_key, NAME_secret.
start() {
  local name=$1 bin=$2 data port
  data=$(mktemp -d /var/tmp/percore-putpath.XXXXXX)
  dirs+=("$data")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$bin" serve --data "$data" --listen "127.0.0.1:$port" >"$out/$name.out" 2>"$out/$name.err" &
  pids+=($!)
  for _ in $(seq 1 100); do
    grep -q '^cores:' "$out/$name.out" 2>/dev/null && break
    sleep 0.1
  done
  grep -q '^cores:' "$out/$name.out" || { cat "$out/$name.err"; exit 1; }
  printf -v "${name}_endpoint" '%s' "$(sed -n 's/^endpoint: //p' "$out/$name.out")"
  printf -v "${name}_key" '%s' "$(sed -n 's/^access_key: //p' "$out/$name.out")"
  printf -v "${name}_secret" '%s' "$(sed -n 's/^secret_key: //p' "$out/$name.out")"
}

# calls ENDPOINT: metadata calls so far (all kinds), or "-" when the build does not count them.
calls() {
  python3 - "$1" <<'EOF'
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1] + "/-/metrics", timeout=10).read().decode()
found = re.findall(r'^percore_meta_calls\{kind="[a-z_]+"\} (\S+)', text, re.M)
print(sum(int(float(v)) for v in found) if found else "-")
EOF
}

# run NAME LABEL ARGS…: one loadgen run against server NAME; prints "PUT/s MiB/s PUTs".
run() {
  local name=$1 label=$2
  shift 2
  local endpoint=${name}_endpoint key=${name}_key secret=${name}_secret
  "$loadgen" --endpoint "${!endpoint}" --access-key "${!key}" --secret-key "${!secret}" \
    --quiet --json "$out/$label.json" "$@" >/dev/null
  python3 - "$out/$label.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
op = next(o for o in r["endpoints"][0]["ops"] if o["op"] == "put")
print(f'{op["ops_per_s"]:.1f} {op["mib_per_s"]:.1f} {op["ok"] + op["errors"]}')
EOF
}

# per_put NAME: metadata calls per PUT on server NAME: a short closed-loop run of 4 KiB PUTs
# into an existing bucket, no warm-up (every PUT the server saw is in the report).
per_put() {
  local name=$1 c0 c1 ops mib puts
  local endpoint=${1}_endpoint
  c0=$(calls "${!endpoint}")
  read -r ops mib puts <<<"$(run "$name" "$name-calls" --bucket "putpath-$name-4k-1" \
    --workload put --size 4KiB --keys 2000 --concurrency 4 --warmup 0s --duration 3s)"
  c1=$(calls "${!endpoint}")
  if [ "$c0" = - ]; then
    echo -
  else
    python3 -c 'import sys; print(f"{(int(sys.argv[2]) - int(sys.argv[1])) / int(sys.argv[3]):.2f}")' \
      "$c0" "$c1" "$puts"
  fi
}

start before "$before_bin"
start after "$after_bin"
{
  echo "| turn | build | workload | PUT/s | MiB/s |"
  echo "|---|---|---|---|---|"
} >"$out/summary.md"
for round in $(seq 1 "$rounds"); do
  for name in before after; do
    for w in 4k 64m; do
      if [ "$w" = 4k ]; then
        args=(--workload put --size 4KiB --keys 2000 --prepare --concurrency 64)
      else
        args=(--workload put --size 64MiB --keys 4 --prepare --prepare-concurrency 2 --concurrency 2)
      fi
      read -r ops mib _ <<<"$(run "$name" "$name-$w-$round" --bucket "putpath-$name-$w-$round" \
        --warmup "$warmup" --duration "$duration" "${args[@]}")"
      echo "| $round | $name | PUT $w | $ops | $mib |" | tee -a "$out/summary.md"
    done
  done
done
{
  echo
  echo "Metadata calls per 4 KiB PUT (each one round trip to a record's replicas): before" \
    "$(per_put before), after $(per_put after)"
} | tee -a "$out/summary.md"
python3 - "$out/summary.md" <<'EOF' | tee -a "$out/summary.md"
import collections, sys
rows = [l.split("|")[1:-1] for l in open(sys.argv[1]) if l.startswith("| ") and l[2].isdigit()]
by = collections.defaultdict(list)
for turn, build, work, ops, mib in rows:
    by[(build.strip(), work.strip())].append(float(ops))
print()
for work in ("PUT 4k", "PUT 64m"):
    b, a = by[("before", work)], by[("after", work)]
    if b and a:
        print(f"{work}: after/before = {sum(a) / len(a) / (sum(b) / len(b)):.2f}x "
              f"(mean PUT/s {sum(b) / len(b):.1f} -> {sum(a) / len(a):.1f})")
EOF
