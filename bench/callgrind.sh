#!/usr/bin/env bash
# Instructions per request, per function, for levee under two policies (noise-free: valgrind's
# callgrind counts instructions, so a busy machine does not change the numbers).
#
#   bench/callgrind.sh [--levee PATH] [--seconds S] [--path /1k] BASE.yaml VARIANT.yaml
#
# BASE and VARIANT are bench/peers templates (levee.yaml, levee-route.yaml, ...). Each is run
# under callgrind with --concurrency 1 behind wrk -c10 against the bench origin; the counts
# cover only the measured seconds (instrumentation is switched on after a warm-up). Prints the
# user-space instructions per request of each and the functions whose cost differs most.
# LEVEE_CALLGRIND_KEEP=1 keeps the callgrind files (callgrind_annotate --tree=caller ...).
# Needs valgrind (apt-get install valgrind; not installed by scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
levee_bin=build/levee
seconds=5
path=/1k
while (($# > 2)); do
  case "$1" in
    --levee) levee_bin="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --path) path="$2"; shift 2 ;;
    *) echo "usage: bench/callgrind.sh [--levee PATH] [--seconds S] [--path P] BASE.yaml VARIANT.yaml" >&2; exit 2 ;;
  esac
done
(($# == 2)) || { echo "usage: bench/callgrind.sh [--levee PATH] [--seconds S] [--path P] BASE.yaml VARIANT.yaml" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "bench/callgrind.sh: valgrind not found (apt-get install valgrind)" >&2; exit 2; }
work="$(mktemp -d /tmp/levee-callgrind.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n "${LEVEE_CALLGRIND_KEEP:-}" ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
read -r origin_port port admin_port probe_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(4)]
[x.bind(("127.0.0.1", 0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')
mkdir -p "$work/tmp"
body_100="$(printf 'x%.0s' $(seq 100))"
body_1k="$(printf 'x%.0s' $(seq 1024))"
render() { # TEMPLATE DEST: every levee port placeholder gets the same three ports
  sed -e "s|@WORKDIR@|$work|g" -e "s|@NOFILE@|4096|g" -e "s|@WORKER_CONNECTIONS@|1024|g" \
    -e "s|@ORIGIN_PORT@|$origin_port|g" -e "s|@BODY_100@|$body_100|g" -e "s|@BODY_1K@|$body_1k|g" \
    -e "s|@LEVEE[A-Z_]*_ADMIN_PORT@|$admin_port|g" -e "s|@LEVEE[A-Z_]*_PROBE_PORT@|$probe_port|g" \
    -e "s|@LEVEE[A-Z_]*PORT@|$port|g" "bench/peers/$1" >"$2"
}
wait_200() {
  for _ in $(seq 300); do
    [[ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$1$path" || true)" == 200 ]] && return 0
    sleep 0.1
  done
  echo "bench/callgrind.sh: nothing answered 200 on 127.0.0.1:$1$path within 30 s" >&2
  exit 1
}
render nginx-origin.conf "$work/origin.conf"
nginx -p "$work/" -e "$work/origin.error.log" -c "$work/origin.conf" >"$work/origin.log" 2>&1 &
pids+=($!)
wait_200 "$origin_port"
for name in base variant; do
  tpl=$1; shift
  render "$tpl" "$work/$name.yaml"
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/$name.out" \
    "$levee_bin" run --config "$work/$name.yaml" --concurrency 1 >"$work/$name.log" 2>&1 &
  vp=$!
  pids+=("$vp")
  wait_200 "$port"
  wrk -t1 -c10 -d2s "http://127.0.0.1:$port$path" >/dev/null
  callgrind_control -i on "$vp" >/dev/null 2>&1
  reqs="$(wrk -t1 -c10 -d"${seconds}s" "http://127.0.0.1:$port$path" | awk '/ requests in /{print $1}')"
  callgrind_control -i off "$vp" >/dev/null 2>&1
  kill -INT "$vp"
  for _ in $(seq 300); do kill -0 "$vp" 2>/dev/null || break; sleep 0.1; done
  echo "$name ($tpl): $reqs requests measured"
  echo "$reqs" >"$work/$name.reqs"
done
python3 - "$work" <<'PY'
import re, subprocess, sys
work = sys.argv[1]
def load(name):
    reqs = int(open(f"{work}/{name}.reqs").read())
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", f"{work}/{name}.out"],
                         capture_output=True, text=True).stdout
    d = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*)", line)
        if not m or "=>" in line:
            continue
        name_ = m.group(2)
        if not name_.startswith("PROGRAM"):
            name_ = re.sub(r" \[[^\]]*\]$", "", re.sub(r"^\S*?:", "", name_, count=1))
        d[name_] = d.get(name_, 0) + int(m.group(1).replace(",", "")) / reqs
    return d
a, b = load("base"), load("variant")
ta, tb = a.get("PROGRAM TOTALS", 0), b.get("PROGRAM TOTALS", 0)
print(f"instructions per request (user space): base {ta:.0f}, variant {tb:.0f}, "
      f"ratio {tb / ta:.3f} ({(tb - ta) / ta * 100:+.1f}%)")
print("largest differences (instructions per request: base, variant, difference):")
keys = [k for k in set(a) | set(b) if not k.startswith(("PROGRAM", "events annotated"))]
for k in sorted(keys, key=lambda k: -abs(b.get(k, 0) - a.get(k, 0)))[:25]:
    print(f"  {a.get(k, 0):8.0f} {b.get(k, 0):8.0f} {b.get(k, 0) - a.get(k, 0):+7.0f}  {k[:110]}")
PY
