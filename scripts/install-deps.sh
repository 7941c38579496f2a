#!/usr/bin/env bash
# Installs every Debian 12 package levee needs to build, test and benchmark.
# Idempotent: re-running it only installs what is missing. Used by the README,
# .ci/run and the Dockerfile (which passes --runtime for the slim image).
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake pkg-config git ca-certificates
  libuv1-dev node-llhttp libyaml-cpp-dev libnghttp2-dev libssl-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libpq-dev libhiredis-dev libcurl4-openssl-dev zlib1g-dev
)
TEST_PKGS=(
  nginx-light haproxy wrk nghttp2-client curl procps iproute2 prometheus python3
  postgresql-15 postgresql-client-15 redis-server redis-tools tar
)
RUNTIME_PKGS=(
  libuv1 libyaml-cpp0.7 libnghttp2-14 libssl3 libspdlog1.10 libfmt9 libpq5 libhiredis0.14
  libcurl4 ca-certificates zlib1g postgresql-client-15 redis-tools tar
)

mode="${1:-all}"
case "$mode" in
  all) pkgs=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}") ;;
  --build) pkgs=("${BUILD_PKGS[@]}") ;;
  --runtime) pkgs=("${RUNTIME_PKGS[@]}") ;;
  *) echo "usage: $0 [all|--build|--runtime]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian starts nginx/haproxy/prometheus services on install; tests run their own
# instances on loopback ports, so stop the system ones where a service manager exists.
if [[ "$mode" == all ]] && command -v service >/dev/null 2>&1; then
  for s in nginx haproxy prometheus prometheus-node-exporter postgresql redis-server; do
    $SUDO service "$s" stop >/dev/null 2>&1 || true
  done
fi
