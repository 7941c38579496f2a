#!/usr/bin/env bash
# Newcomer's first run: installs the packages, builds levee, starts the demo upstream on
# 127.0.0.1:18080 and runs levee in the foreground with config/examples/quickstart.yaml.
#   scripts/quickstart.sh [--no-deps]
# Ctrl-C stops levee and the demo upstream.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

deps=1
case "${1:-}" in
  "") ;;
  --no-deps) deps=0 ;;
  -h | --help)
    sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: $0 [--no-deps]" >&2
    exit 2
    ;;
esac

policy=config/examples/quickstart.yaml
upstream_py=tests/test_common/test_upstream.py
upstream_port=18080

if ((deps)); then bash scripts/install-deps.sh; fi
bash scripts/build.sh normal

for f in "$policy" "$upstream_py"; do
  if [[ ! -f "$f" ]]; then
    echo "quickstart: missing $f" >&2
    exit 1
  fi
done
build/levee validate "$policy"

port_in_use() {
  python3 -c 'import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"
}
for p in "$upstream_port" 15006 15021 15000; do
  if port_in_use "$p"; then
    echo "quickstart: 127.0.0.1:$p is already in use; stop whatever listens there and retry" >&2
    exit 1
  fi
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/levee-quickstart.XXXXXX")"
upstream_pid=""
cleanup() {
  if [[ -n "$upstream_pid" ]] && kill -0 "$upstream_pid" 2>/dev/null; then
    kill "$upstream_pid" 2>/dev/null || true
    wait "$upstream_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

python3 "$upstream_py" --port "$upstream_port" --ready-file "$tmp/upstream.ready" \
  >"$tmp/upstream.log" 2>&1 &
upstream_pid=$!
for _ in $(seq 100); do # up to 10 s
  [[ -f "$tmp/upstream.ready" ]] && break
  if ! kill -0 "$upstream_pid" 2>/dev/null; then
    echo "quickstart: the demo upstream exited:" >&2
    cat "$tmp/upstream.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ ! -f "$tmp/upstream.ready" ]]; then
  echo "quickstart: the demo upstream did not become ready within 10 s" >&2
  exit 1
fi

cat <<'MSG'

Demo upstream is up on 127.0.0.1:18080. Starting levee; in another terminal try:

  curl -i http://127.0.0.1:15006/              # proxied to the demo upstream
  curl -i http://127.0.0.1:15006/echo          # echoes the request back
  curl -i http://127.0.0.1:15006/slow/300      # answers after 300 ms
  curl -i http://127.0.0.1:15006/status/503    # upstream answers 503
  curl -i http://127.0.0.1:15006/api/items     # route "api"; after `kill <demo upstream pid>`
                                               # the same request is answered stale (fallback)
  curl -i http://127.0.0.1:15021/health/ready  # readiness probe
  curl -s http://127.0.0.1:15021/metrics       # Prometheus metrics
  curl -s http://127.0.0.1:15000/admin/clusters  # admin API: upstream endpoints and health

Press Ctrl-C to stop levee and the demo upstream.

MSG
echo "demo upstream pid $upstream_pid"
build/levee run --config "$policy"
