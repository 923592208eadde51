# Shared by the bench scripts that start their own `percore serve` (sourced, not run).

# free_port: a TCP port of 127.0.0.1 free right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# release_bins: builds what PERCORE_BIN / LOADGEN_BIN do not name, and sets them.
release_bins() {
  if [ -z "${LOADGEN_BIN:-}" ]; then
    cargo build --release --locked --quiet --bin percore-loadgen
    LOADGEN_BIN="$PWD/target/release/percore-loadgen"
  fi
  if [ -z "${PERCORE_BIN:-}" ]; then
    cargo build --release --locked --quiet --bin percore
    PERCORE_BIN="$PWD/target/release/percore"
  fi
}

# wait_banner OUT ERR: waits (60 s at most) until the server writing OUT printed its banner;
# stops the script with the end of ERR if it did not.
wait_banner() {
  for _ in $(seq 1 600); do grep -q '^cores:' "$1" 2>/dev/null && break; sleep 0.1; done
  grep -q '^cores:' "$1" || { tail -5 "$2"; echo "percore did not start" >&2; exit 1; }
}

# wait_started OUT ERR: wait_banner, then exports the server's keys as AWS_ACCESS_KEY_ID /
# AWS_SECRET_ACCESS_KEY.
wait_started() {
  wait_banner "$1" "$2"
  AWS_ACCESS_KEY_ID=$(sed -n 's/^access_key: //p' "$1")
  AWS_SECRET_ACCESS_KEY=$(sed -n 's/^secret_key: //p' "$1")
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
}
