#!/usr/bin/env bash
# percore's whole test suite: the Rust tests of every crate, then the S3 suite (pytest + boto3
# against a real `percore serve`). Installs the Python clients into tests/.venv itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -l unlimited 2>/dev/null || true
cargo build --locked --bin percore
cargo test --workspace --locked
venv=tests/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" 2>/dev/null || {
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$venv"
  }
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
# A passing test's data directory is removed when it ends (its servers preallocate segments:
# kept, a whole run's directories take ~10 GB); a failing test's stays for a look.
PERCORE_BIN="$PWD/target/debug/percore" "$venv/bin/python" -m pytest -q \
  -o tmp_path_retention_policy=failed tests/python
bash tests/clients.sh "$PWD/target/debug/percore" "$venv"
