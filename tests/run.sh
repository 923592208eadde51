#!/usr/bin/env bash
# percore's whole test suite: the Rust tests of every crate, then the S3 suite (pytest + boto3
# against a real `percore serve`). Installs the Python clients into tests/.venv itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -l unlimited 2>/dev/null || true
# took WHAT: how long the part that just ended took (CI's log shows where the time goes).
t=$SECONDS
took() { echo "   (took $((SECONDS - t)) s: $1)"; t=$SECONDS; }
cargo build --locked --bin percore
took "cargo build"
cargo test --workspace --locked
took "cargo test"
venv=tests/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" 2>/dev/null || {
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$venv"
  }
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
took "python clients"
# A passing test's data directory is removed when it ends (its servers preallocate segments:
# kept, a whole run's directories take ~10 GB); a failing test's stays for a look.
# --durations: the slowest tests in the log, where to look when the suite grows slow.
# -n: the tests mostly wait (on servers starting and stopping, timeouts, sleeps), so more
# workers than cores pay (PYTEST_WORKERS=0 runs them in this process, one after another);
# each worker has its own session server and its own ports (conftest.py).
PERCORE_BIN="$PWD/target/debug/percore" "$venv/bin/python" -m pytest -q --durations=30 \
  -n "${PYTEST_WORKERS:-3}" -o tmp_path_retention_policy=failed tests/python
took "S3 suite (pytest)"
bash tests/clients.sh "$PWD/target/debug/percore" "$venv"
took "command-line clients"
