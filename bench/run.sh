#!/usr/bin/env bash
# levee benchmark: levee vs HAProxy vs NGINX in front of the same nginx origin, on loopback.
#
#   bench/run.sh [options]
#     --rounds N         measured rounds per scenario (default 3)
#     --duration S       seconds per wrk measurement (default 10)
#     --warmup S         seconds of warm-up per target and scenario (default 3)
#     --connections N    connections for the c50 scenarios (default 50)
#     --threads N        wrk threads (default 1)
#     --idle-conns N     idle keep-alive connections for the memory test (default 5000)
#     --levee PATH       levee binary (default build/levee)
#     --skip-levee       bench only direct/HAProxy/NGINX (for testing this script)
#     --skip-resilient   leave out levee-res (levee with breaker + outlier detection + health checks)
#     --skip-route       leave out levee-route (levee with the route's timeout, retry, rate limit, fallback)
#     --skip-memory      skip the idle-connection memory test
#     --no-pin           do not pin processes to CPUs
#     --out DIR          keep results (results.tsv, memory.tsv, summary.txt, configs, logs)
#     --pairs N          paired rounds per c50 scenario for levee and its variants (default 30; 0: none)
#     --pair-seconds S   seconds per target in a paired round (default 1)
#     --quick            smoke run: 1 round of 2 s, 1 s warm-up, 500 idle connections, 3 pairs
#
# Scenarios: c50 with a 100-byte body, c1 with a 100-byte body, c50 with a 1 KiB body.
# Targets, interleaved in every round: direct (wrk -> origin), HAProxy, NGINX, levee,
# levee-res (bench/peers/levee-resilient.yaml: levee.yaml plus circuit breaker, outlier
# detection and health checks; budget 3% of levee's req/s) and levee-route
# (bench/peers/levee-route.yaml: levee.yaml plus the route's timeout, retry with a budget, rate
# limit and fallback chain with the stale store; budget 5%). The summary reports both against
# levee in the same rounds.
# Paired rounds (the verdict for the variants): on a shared VM the throughput of one process
# drifts by 20% between 10 s windows, more than the budgets being checked. So after the rounds
# above, each c50 scenario is measured again as "paired-SCENARIO": --pairs rounds of
# --pair-seconds per target, levee between its variants (each next to it), the sides swapped
# every round. Drift slower than a round cancels in the per-round ratio; the verdict is the median.
# Pinning (when >= 2 CPUs): wrk and the idle-connection client on CPU 0; the origin and all
# proxies on CPU 1. Every process this script starts is killed by PID on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

rounds=3
duration=10
warmup=3
connections=50
threads=1
idle_conns=5000
levee_bin=build/levee
skip_levee=0
skip_resilient=0
skip_route=0
skip_memory=0
pin=1
out_dir=""
quick=0
pairs=30
pair_seconds=1

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
need_arg() { if (($1 < 2)); then echo "bench: $2 needs a value" >&2; exit 2; fi; }
while (($# > 0)); do
  case "$1" in
    --rounds) need_arg $# "$1"; rounds="$2"; shift 2 ;;
    --duration) need_arg $# "$1"; duration="$2"; shift 2 ;;
    --warmup) need_arg $# "$1"; warmup="$2"; shift 2 ;;
    --connections) need_arg $# "$1"; connections="$2"; shift 2 ;;
    --threads) need_arg $# "$1"; threads="$2"; shift 2 ;;
    --idle-conns) need_arg $# "$1"; idle_conns="$2"; shift 2 ;;
    --levee) need_arg $# "$1"; levee_bin="$2"; shift 2 ;;
    --out) need_arg $# "$1"; out_dir="$2"; shift 2 ;;
    --skip-levee) skip_levee=1; shift ;;
    --skip-resilient) skip_resilient=1; shift ;;
    --skip-route) skip_route=1; shift ;;
    --skip-memory) skip_memory=1; shift ;;
    --no-pin) pin=0; shift ;;
    --pairs) need_arg $# "$1"; pairs="$2"; shift 2 ;;
    --pair-seconds) need_arg $# "$1"; pair_seconds="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
if ((quick)); then
  rounds=1 duration=2 warmup=1 idle_conns=500 pairs=3 pair_seconds=1
fi
for v in rounds duration warmup connections threads idle_conns pairs pair_seconds; do
  if ! [[ "${!v}" =~ ^[0-9]+$ ]]; then
    echo "bench: --${v//_/-} must be a non-negative integer (got '${!v}')" >&2
    exit 2
  fi
done
if ((rounds < 1 || duration < 1 || connections < 1 || threads < 1)); then
  echo "bench: --rounds, --duration, --connections and --threads must be >= 1" >&2
  exit 2
fi

# ---- preflight ---------------------------------------------------------------------------
missing=()
for tool in nginx haproxy wrk curl python3 taskset pgrep timeout; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "bench: missing tools: ${missing[*]} (run scripts/install-deps.sh)" >&2
  exit 1
fi
if ((!skip_levee && !skip_resilient)) && ! command -v ss >/dev/null 2>&1; then
  echo "bench: ss not found; the levee-res check needs it (apt-get install iproute2), or pass --skip-resilient" >&2
  exit 1
fi
if ((!skip_levee)); then
  if [[ ! -x "$levee_bin" ]]; then
    echo "bench: levee binary not found at $levee_bin." >&2
    echo "       Build it with scripts/build.sh, pass --levee PATH, or use --skip-levee." >&2
    exit 1
  fi
  levee_bin="$(cd "$(dirname "$levee_bin")" && pwd)/$(basename "$levee_bin")"
fi

# Every connection is a file descriptor in the client and in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile="$(ulimit -n)"
if [[ "$nofile" == unlimited ]] || ((nofile > 65536)); then
  ulimit -n 65536 2>/dev/null || true
  nofile="$(ulimit -n)"
fi
if ((!skip_memory && idle_conns + 1000 > nofile)); then
  echo "bench: open-file limit is $nofile; lowering --idle-conns from $idle_conns to $((nofile - 1000))" >&2
  idle_conns=$((nofile - 1000))
fi
worker_connections=$((nofile - 100))
haproxy_maxconn=$(((nofile - 200) / 2))
if ((haproxy_maxconn > 16000)); then haproxy_maxconn=16000; fi

client_cpu=() server_cpu=()
if ((pin)) && (($(nproc) >= 2)); then
  client_cpu=(taskset -c 0)
  server_cpu=(taskset -c 1)
  pin_note="wrk + idle client on CPU 0; origin + proxies on CPU 1"
else
  pin=0
  pin_note="not pinned"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/levee-bench.XXXXXX")"
chmod 755 "$work" # nginx workers run as nobody when started by root
mkdir -p "$work/tmp"
results="$work/results.tsv"
memory="$work/memory.tsv"
printf 'scenario\tround\ttarget\trps\tp50_us\tp99_us\tcpu_us_per_req\trequests\terrors\n' >"$results"
printf 'target\tidle_rss_kb\tloaded_rss_kb\tconns_alive\tbytes_per_conn\n' >"$memory"

# ---- process bookkeeping -----------------------------------------------------------------
pids=()     # every background process we started
declare -A pid_of

# Children of PID (nginx workers), one per line.
children() { pgrep -P "$1" 2>/dev/null || true; }

cleanup() {
  local rc=$? p c
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      for c in $(children "$p"); do kill "$c" 2>/dev/null || true; done
      kill "$p" 2>/dev/null || true
    fi
  done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
    wait "$p" 2>/dev/null || true
  done
  if [[ -n "$out_dir" ]]; then
    mkdir -p "$out_dir"
    cp "$work"/*.tsv "$work"/*.conf "$work"/*.cfg "$work"/*.log "$out_dir"/ 2>/dev/null || true
    cp "$work"/levee.yaml "$work"/levee-resilient.yaml "$work"/levee-route.yaml "$work"/summary.txt "$out_dir"/ 2>/dev/null || true
    cp "$work"/levee-res.metrics.txt "$work"/levee-res.*.json "$work"/levee-route.*metrics.txt \
      "$work"/resilience-check.txt "$out_dir"/ 2>/dev/null || true
    echo "bench: results kept in $out_dir"
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Free loopback ports, chosen by the kernel.
read -r origin_port haproxy_port nginx_port levee_port levee_admin_port levee_probe_port \
  levee_res_port levee_res_admin_port levee_res_probe_port \
  levee_route_port levee_route_admin_port levee_route_probe_port < <(
  python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(12)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
)

body_100="$(printf 'x%.0s' $(seq 100))"
body_1k="$(printf 'x%.0s' $(seq 1024))"

# render TEMPLATE DEST: fill the @NAME@ placeholders of a peer config.
render() {
  sed -e "s|@WORKDIR@|$work|g" -e "s|@NOFILE@|$nofile|g" \
    -e "s|@WORKER_CONNECTIONS@|$worker_connections|g" -e "s|@HAPROXY_MAXCONN@|$haproxy_maxconn|g" \
    -e "s|@ORIGIN_PORT@|$origin_port|g" -e "s|@HAPROXY_PORT@|$haproxy_port|g" \
    -e "s|@NGINX_PORT@|$nginx_port|g" -e "s|@LEVEE_PORT@|$levee_port|g" \
    -e "s|@LEVEE_ADMIN_PORT@|$levee_admin_port|g" -e "s|@LEVEE_PROBE_PORT@|$levee_probe_port|g" \
    -e "s|@LEVEE_RES_PORT@|$levee_res_port|g" -e "s|@LEVEE_RES_ADMIN_PORT@|$levee_res_admin_port|g" \
    -e "s|@LEVEE_RES_PROBE_PORT@|$levee_res_probe_port|g" \
    -e "s|@LEVEE_ROUTE_PORT@|$levee_route_port|g" -e "s|@LEVEE_ROUTE_ADMIN_PORT@|$levee_route_admin_port|g" \
    -e "s|@LEVEE_ROUTE_PROBE_PORT@|$levee_route_probe_port|g" \
    -e "s|@BODY_100@|$body_100|g" -e "s|@BODY_1K@|$body_1k|g" \
    "$repo/bench/peers/$1" >"$work/$2"
  if grep -v '^[[:space:]]*#' "$work/$2" | grep -q '@[A-Z0-9_]*@'; then
    echo "bench: unfilled placeholder in $2: $(grep -v '^[[:space:]]*#' "$work/$2" | grep -o '@[A-Z0-9_]*@' | head -1)" >&2
    exit 1
  fi
}

# start NAME PORT CMD...: run a server on the server CPU, then wait until GET /100 answers 200.
start() {
  local name="$1" port="$2" code=""
  shift 2
  "${server_cpu[@]}" "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  pid_of[$name]=$!
  for _ in $(seq 100); do # up to 10 s
    if ! kill -0 "${pid_of[$name]}" 2>/dev/null; then
      echo "bench: $name exited during start-up; its log:" >&2
      cat "$work/$name.log" "$work/$name.error.log" >&2 2>/dev/null || true
      exit 1
    fi
    code="$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$port/100" || true)"
    [[ "$code" == 200 ]] && return 0
    sleep 0.1
  done
  echo "bench: $name did not answer 200 on 127.0.0.1:$port/100 within 10 s (last: '$code'); its log:" >&2
  cat "$work/$name.log" >&2 || true
  exit 1
}

# cpu_ticks PID: utime+stime of PID and its children (clock ticks).
cpu_ticks() {
  local total=0 p stat rest
  local -a f
  for p in "$1" $(children "$1"); do
    stat="$(cat "/proc/$p/stat" 2>/dev/null)" || continue
    rest="${stat##*") "}" # the command name may contain spaces; fields resume after ')'
    read -ra f <<<"$rest"
    total=$((total + f[11] + f[12])) # fields 14 (utime) and 15 (stime)
  done
  echo "$total"
}

# rss_kb PID: VmRSS of PID plus its children (kB).
rss_kb() {
  local total=0 p kb
  for p in "$1" $(children "$1"); do
    kb="$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)"
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}

clk_tck="$(getconf CLK_TCK)"
res_on=0   # levee-res started
route_on=0 # levee-route started
res_check="$work/resilience-check.txt"
: >"$res_check"

# ---- start everything --------------------------------------------------------------------
render nginx-origin.conf origin.conf
render nginx-proxy.conf nginx.conf
render haproxy.cfg haproxy.cfg
targets=(direct haproxy nginx)
declare -A port_of=([direct]=$origin_port [haproxy]=$haproxy_port [nginx]=$nginx_port)
declare -A proc_of=([direct]=origin [haproxy]=haproxy [nginx]=nginx)

start origin "$origin_port" nginx -p "$work/" -e "$work/origin.error.log" -c "$work/origin.conf"
start haproxy "$haproxy_port" haproxy -db -f "$work/haproxy.cfg"
start nginx "$nginx_port" nginx -p "$work/" -e "$work/nginx.error.log" -c "$work/nginx.conf"
# start_levee NAME PORT TEMPLATE: render and validate a levee policy, start it, add the target.
start_levee() {
  local name="$1" port="$2" tpl="$3"
  render "$tpl" "$tpl"
  if ! "$levee_bin" validate "$work/$tpl" >"$work/$name-validate.log" 2>&1; then
    echo "bench: levee rejected bench/peers/$tpl:" >&2
    cat "$work/$name-validate.log" >&2
    exit 1
  fi
  start "$name" "$port" "$levee_bin" run --config "$work/$tpl" --concurrency 1
  targets+=("$name")
  port_of[$name]=$port
  proc_of[$name]=$name
}
if ((!skip_levee)); then
  start_levee levee "$levee_port" levee.yaml
  if ((!skip_resilient)); then
    start_levee levee-res "$levee_res_port" levee-resilient.yaml
    res_on=1
  fi
  if ((!skip_route)); then
    start_levee levee-route "$levee_route_port" levee-route.yaml
    route_on=1
  fi
fi

scenarios=("c50-100B:$connections:/100" "c1-100B:1:/100" "c50-1KiB:$connections:/1k")
per_scenario=$((${#targets[@]} * (warmup + rounds * duration)))
paired_targets=()
if ((!skip_levee && pairs > 0 && pair_seconds > 0)); then
  for t in levee levee-res levee-route; do
    [[ " ${targets[*]} " == *" $t "* ]] && paired_targets+=("$t")
  done
  ((${#paired_targets[@]} >= 2)) || paired_targets=()
fi
paired_secs=$((${#paired_targets[@]} * pairs * pair_seconds * 2))  # two c50 scenarios
echo "levee bench: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
echo "  $pin_note; wrk -t$threads, ${duration}s x $rounds rounds after ${warmup}s warm-up; nofile $nofile"
levee_ports="  levee: skipped"
if ((!skip_levee)); then
  levee_ports="  levee :$levee_port"
  if ((res_on)); then
    levee_ports+="  levee-res :$levee_res_port (admin :$levee_res_admin_port, probes :$levee_res_probe_port)"
  else
    levee_ports+="  levee-res: skipped"
  fi
  if ((route_on)); then
    levee_ports+="  levee-route :$levee_route_port (admin :$levee_route_admin_port, probes :$levee_route_probe_port)"
  else
    levee_ports+="  levee-route: skipped"
  fi
fi
echo "  origin :$origin_port  haproxy :$haproxy_port  nginx :$nginx_port$levee_ports"
echo "  $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v 2>&1 | head -1 | awk '{print "haproxy/" $3}'), $(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}')$( ((skip_levee)) || echo ", $("$levee_bin" version 2>&1 | head -1)")"
echo "  estimated time: ~$(((${#scenarios[@]} * per_scenario + paired_secs + 60) / 60)) min"

# ---- memory: idle RSS and the cost of idle keep-alive connections ------------------------
cat >"$work/idle_conns.py" <<'PY'
# Opens N keep-alive connections, sends one GET on each, reads the response and keeps the
# connection open; then reports how many are still open and sleeps until killed.
import socket, sys, time

port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
req = b"GET /100 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
deadline = time.monotonic() + 60
socks, ok, failed = [], 0, 0

def read_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before headers")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(b":") for l in lines[1:])}
    if hdrs.get(b"transfer-encoding", b"").lower() == b"chunked":
        while not body.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed in body")
            body += chunk
    else:
        need = int(hdrs.get(b"content-length", b"0"))
        while len(body) < need:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed in body")
            body += chunk
    return status

for _ in range(n):
    if time.monotonic() > deadline:
        break
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(req)
        if read_response(s) == 200:
            ok += 1
        socks.append(s)
    except OSError:
        failed += 1
time.sleep(2)  # let the server settle (deferred frees, pool growth)
alive = 0
for s in socks:
    s.setblocking(False)  # a socket with a timeout would wait in recv() even with MSG_DONTWAIT
    try:
        alive += 1 if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) else 0
    except BlockingIOError:
        alive += 1
    except OSError:
        pass
with open(ready + ".tmp", "w") as f:
    f.write(f"{len(socks)} {ok} {failed} {alive}\n")
import os
os.rename(ready + ".tmp", ready)
while True:
    time.sleep(3600)
PY

if ((!skip_memory)); then
  echo
  echo "memory: idle RSS after start, then RSS with $idle_conns idle keep-alive connections (one GET each)"
  for t in "${targets[@]}"; do
    [[ "$t" == direct ]] && continue
    pid="${pid_of[${proc_of[$t]}]}"
    rss0="$(rss_kb "$pid")"
    ready="$work/idle-$t.ready"
    "${client_cpu[@]}" python3 "$work/idle_conns.py" "${port_of[$t]}" "$idle_conns" "$ready" \
      >"$work/idle-$t.log" 2>&1 &
    client=$!
    pids+=("$client")
    for _ in $(seq 900); do # up to 90 s
      [[ -f "$ready" ]] && break
      kill -0 "$client" 2>/dev/null || break
      sleep 0.1
    done
    if [[ ! -f "$ready" ]]; then
      echo "bench: idle-connection client for $t failed:" >&2
      cat "$work/idle-$t.log" >&2
      exit 1
    fi
    rss1="$(rss_kb "$pid")"
    read -r opened ok failed alive <"$ready"
    kill "$client" 2>/dev/null || true
    wait "$client" 2>/dev/null || true
    per_conn=0
    if ((alive > 0)); then per_conn=$(((rss1 - rss0) * 1024 / alive)); fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$rss0" "$rss1" "$alive" "$per_conn" >>"$memory"
    printf '  %-11s idle RSS %7.1f MiB   with %5d conns %7.1f MiB   %6d bytes/conn  (opened %d, 200 OK %d, failed %d, still open %d)\n' \
      "$t" "$(awk -v k="$rss0" 'BEGIN {print k / 1024}')" "$alive" \
      "$(awk -v k="$rss1" 'BEGIN {print k / 1024}')" "$per_conn" "$opened" "$ok" "$failed" "$alive"
    sleep 1 # let the server close the connections before the next target
  done
fi

# ---- throughput and latency --------------------------------------------------------------
to_us() { # wrk duration ("161.00us", "1.23ms", "2.00s", "1.5m") -> microseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    m = (u == "us") ? 1 : (u == "ms") ? 1e3 : (u == "s") ? 1e6 : (u == "m") ? 6e7 : (u == "h") ? 3.6e9 : -1
    if (m < 0) { print "nan" } else { printf "%.1f", n * m } }'
}

# measure SCENARIO ROUND TARGET CONNS PATH SECONDS [warmup]
measure() {
  local scenario="$1" round="$2" t="$3" conns="$4" path="$5" secs="$6" mode="${7:-}"
  local pid log th c0 c1 rps p50 p99 reqs errs non2xx sockerr cpu
  pid="${pid_of[${proc_of[$t]}]}"
  log="$work/wrk-$scenario-$round-$t.txt"
  th=$((threads < conns ? threads : conns))
  c0="$(cpu_ticks "$pid")"
  if ! timeout $((secs + 30)) "${client_cpu[@]}" wrk -t"$th" -c"$conns" -d"${secs}s" --timeout 5s \
    --latency "http://127.0.0.1:${port_of[$t]}$path" >"$log" 2>&1; then
    echo "bench: wrk failed against $t:" >&2
    cat "$log" >&2
    exit 1
  fi
  c1="$(cpu_ticks "$pid")"
  [[ "$mode" == warmup ]] && return 0
  rps="$(awk '/^Requests\/sec:/ {print $2}' "$log")"
  reqs="$(awk '/ requests in / {print $1}' "$log")"
  p50="$(to_us "$(awk '$1 == "50%" {print $2}' "$log")")"
  p99="$(to_us "$(awk '$1 == "99%" {print $2}' "$log")")"
  non2xx="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$log")"
  sockerr="$(awk -F'[ ,]+' '/Socket errors:/ {print $4 + $6 + $8 + $10}' "$log")"
  errs=$((${non2xx:-0} + ${sockerr:-0}))
  if [[ -z "$rps" || -z "$reqs" ]] || ((reqs == 0)); then
    echo "bench: could not parse wrk output for $t:" >&2
    cat "$log" >&2
    exit 1
  fi
  cpu="$(awk -v d=$((c1 - c0)) -v hz="$clk_tck" -v n="$reqs" 'BEGIN {printf "%.2f", d * 1e6 / hz / n}')"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$round" "$t" "$rps" "$p50" "$p99" \
    "$cpu" "$reqs" "$errs" >>"$results"
  printf '  [%-8s] round %d  %-11s %10.0f req/s   p50 %8.1f us   p99 %8.1f us   cpu %6.2f us/req%s\n' \
    "$scenario" "$round" "$t" "$rps" "$p50" "$p99" "$cpu" "$( ((errs)) && echo "   ERRORS $errs" || true)"
}

for spec in "${scenarios[@]}"; do
  IFS=: read -r scenario conns path <<<"$spec"
  echo
  echo "scenario $scenario: wrk -c$conns GET $path"
  if ((warmup > 0)); then
    for t in "${targets[@]}"; do measure "$scenario" 0 "$t" "$conns" "$path" "$warmup" warmup; done
  fi
  for ((r = 1; r <= rounds; r++)); do
    for t in "${targets[@]}"; do measure "$scenario" "$r" "$t" "$conns" "$path" "$duration"; done
  done
done

# ---- paired rounds: levee between its variants, sides swapped every round ---------------
if ((${#paired_targets[@]})); then
  for spec in "${scenarios[@]}"; do
    IFS=: read -r scenario conns path <<<"$spec"
    [[ "$scenario" == c1-* ]] && continue
    echo
    echo "scenario paired-$scenario: wrk -c$conns GET $path, ${pair_seconds}s per target, $pairs rounds (${paired_targets[*]}, levee between its variants, sides swapped every round)"
    for ((r = 1; r <= pairs; r++)); do
      # levee in the middle, next to each variant; the variants swap sides every round.
      variants_=("${paired_targets[@]:1}")
      if ((${#variants_[@]} == 1)); then
        order=(levee "${variants_[0]}")
        ((r % 2 == 0)) && order=("${variants_[0]}" levee)
      else
        order=("${variants_[0]}" levee "${variants_[1]}")
        ((r % 2 == 0)) && order=("${variants_[1]}" levee "${variants_[0]}")
      fi
      for t in "${order[@]}"; do measure "paired-$scenario" "$r" "$t" "$conns" "$path" "$pair_seconds"; done
    done
  done
fi

# ---- resilience check: were the features of levee-res really on? ------------------------
# client_ports: the client-side port of every TCP socket to or from the origin port (both
# ends of each loopback connection, in any state including TIME_WAIT), sorted and unique.
client_ports() {
  ss -Htan 2>/dev/null | awk -v o="127.0.0.1:$origin_port" '
    $4 == o { n = split($5, a, ":"); print a[n] }
    $5 == o { n = split($4, a, ":"); print a[n] }' | sort -u
}
res_ok=1
if ((res_on)); then
  echo
  echo "resilience check (levee-res, after the run)"
  res_fail() { echo "  FAIL $*" | tee -a "$res_check"; res_ok=0; }
  res_pass() { echo "  ok   $*" | tee -a "$res_check"; }
  # 1. The breaker exists and is closed (the gauge is only exported for upstreams with one).
  curl -s -m 5 "http://127.0.0.1:$levee_res_probe_port/metrics" >"$work/levee-res.metrics.txt" || true
  if grep -qx 'levee_circuit_breaker_state{upstream="origin"} 0' "$work/levee-res.metrics.txt"; then
    res_pass 'circuit breaker on and closed: levee_circuit_breaker_state{upstream="origin"} 0'
  else
    res_fail "circuit breaker: no 'levee_circuit_breaker_state{upstream=\"origin\"} 0' in /metrics ($(grep '^levee_circuit_breaker_state' "$work/levee-res.metrics.txt" | head -1 || true))"
  fi
  # 2. The breaker counted the load (its sliding window is 10 s; levee-res was measured last).
  curl -s -m 5 "http://127.0.0.1:$levee_res_admin_port/admin/circuit-breakers" >"$work/levee-res.circuit-breakers.json" || true
  # 3. Outlier detection and health checks are on, and the origin is healthy and not ejected.
  curl -s -m 5 "http://127.0.0.1:$levee_res_admin_port/admin/clusters" >"$work/levee-res.clusters.json" || true
  while IFS= read -r line; do
    case "$line" in
      ok*) res_pass "${line#ok }" ;;
      *) res_fail "${line#fail }" ;;
    esac
  done < <(python3 - "$work/levee-res.circuit-breakers.json" "$work/levee-res.clusters.json" <<'PY'
import json, sys
try:
    cb = [b for b in json.load(open(sys.argv[1]))["circuit_breakers"] if b["upstream"] == "origin"]
    if not cb:
        raise ValueError("no circuit breaker for upstream origin")
    cb = cb[0]
    w = cb["window"]
    print(f"{'ok' if cb['state'] == 'closed' else 'fail'} /admin/circuit-breakers: state {cb['state']}, "
          f"mode {cb['mode']}, window {w['requests']} requests / {w['failures']} failures, "
          f"rejected {cb['rejected_total']}")
except Exception as e:
    print(f"fail /admin/circuit-breakers: {e}")
try:
    up = [u for u in json.load(open(sys.argv[2]))["upstreams"] if u["name"] == "origin"]
    if not up:
        raise ValueError("no upstream origin")
    up = up[0]
    hosts = [h for ep in up["endpoints"] for h in ep["resolved"]]
    good = up["health_check"] and up["outlier_detection"] and hosts and all(h["state"] == "healthy" for h in hosts)
    print(f"{'ok' if good else 'fail'} /admin/clusters: health_check {str(up['health_check']).lower()}, "
          f"outlier_detection {str(up['outlier_detection']).lower()}, endpoints "
          + (", ".join(f"{h['address']} {h['state']}" for h in hosts) or "none"))
except Exception as e:
    print(f"fail /admin/clusters: {e}")
PY
  )
  # 5. Health checks reach the origin: every check is a fresh connection (Connection: close).
  # Nothing else opens connections to the origin now (no traffic; the proxies' pooled
  # connections are already open, and closing one adds no port), so new client ports in
  # 3.5 s are health checks.
  before="$(client_ports)"
  sleep 3.5
  new_conns="$(comm -13 <(echo "$before") <(client_ports) | grep -c . || true)"
  if ((new_conns >= 1)); then
    res_pass "health checks reach the origin: $new_conns new connection(s) to it in 3.5 s while idle (interval 1s)"
  else
    res_fail "health checks: no new connection to the origin in 3.5 s while idle (interval 1s)"
  fi
  if ((res_ok)); then
    echo "  => resilience features were active in levee-res" | tee -a "$res_check"
  else
    echo "  => levee-res did NOT have every resilience feature active; its numbers are not the overhead" | tee -a "$res_check"
  fi
fi
if ((route_on)); then
  route_ok=1
  echo
  echo "request resilience check (levee-route, after the run)" | tee -a "$res_check"
  route_fail() { echo "  FAIL $*" | tee -a "$res_check"; route_ok=0; res_ok=0; }
  route_pass() { echo "  ok   $*" | tee -a "$res_check"; }
  curl -s -m 5 "http://127.0.0.1:$levee_route_probe_port/metrics" >"$work/levee-route.metrics.txt" || true
  # Retry and rate limit registered (never limiting, nothing retried), the stale store captured
  # responses.
  for want in 'levee_rate_limited_total{route="all",mode="enforce"} 0' \
    'levee_upstream_rq_retries_total{upstream="origin",route="all",result="attempted"} 0'; do
    if grep -qxF "$want" "$work/levee-route.metrics.txt"; then
      route_pass "registered, idle: $want"
    else
      route_fail "no '$want' in /metrics ($(grep -F "${want%% *}" "$work/levee-route.metrics.txt" | head -1 || true))"
    fi
  done
  stale_entries="$(awk '/^levee_fallback_stale_entries\{route="all"\}/ {print $2}' "$work/levee-route.metrics.txt")"
  if [[ -n "$stale_entries" ]] && awk -v n="$stale_entries" 'BEGIN {exit !(n >= 1)}'; then
    route_pass "fallback stale store captured responses: levee_fallback_stale_entries{route=\"all\"} $stale_entries"
  else
    route_fail "fallback: levee_fallback_stale_entries{route=\"all\"} is '${stale_entries:-absent}'"
  fi
  if ((route_ok)); then
    echo "  => request resilience features were active in levee-route" | tee -a "$res_check"
  else
    echo "  => levee-route did NOT have every feature active; its numbers are not the overhead" | tee -a "$res_check"
  fi
fi

# ---- the stale store under a key flood (levee-route) -------------------------------------
# Every request has a new query string, so every response is a new key for the route's stale
# store (max_bytes 8MiB in levee-route.yaml): its bytes must stay bounded, and so must RSS.
flood="$work/flood.txt"
: >"$flood"
if ((route_on)); then
  flood_secs=$((quick ? 2 : 5))
  cat >"$work/flood.lua" <<'LUA'
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/100?flood=" .. counter)
end
LUA
  pid="${pid_of[levee-route]}"
  rss0="$(rss_kb "$pid")"
  timeout $((flood_secs + 30)) "${client_cpu[@]}" wrk -t1 -c"$connections" -d"${flood_secs}s" \
    -s "$work/flood.lua" "http://127.0.0.1:$levee_route_port/" >"$work/wrk-flood.txt" 2>&1 || true
  rss1="$(rss_kb "$pid")"
  curl -s -m 5 "http://127.0.0.1:$levee_route_probe_port/metrics" >"$work/levee-route.flood-metrics.txt" || true
  keys="$(awk '/requests in/ {print $1}' "$work/wrk-flood.txt")"
  sbytes="$(awk '/^levee_fallback_stale_bytes\{route="all"\}/ {print $2}' "$work/levee-route.flood-metrics.txt")"
  sentries="$(awk '/^levee_fallback_stale_entries\{route="all"\}/ {print $2}' "$work/levee-route.flood-metrics.txt")"
  {
    echo
    echo "stale store under a key flood (levee-route, ${flood_secs}s of wrk -c$connections, every request a new key)"
    echo "  distinct keys sent: ${keys:-?}; store after: ${sbytes:-?} bytes in ${sentries:-?} responses (max_bytes 8MiB = 8388608)"
    echo "  levee-route RSS: $((rss0 / 1024)) MiB before, $((rss1 / 1024)) MiB after (+$(((rss1 - rss0) / 1024)) MiB)"
  } | tee "$flood"
fi

# ---- summary -----------------------------------------------------------------------------
python3 - "$results" "$memory" "$pin_note" "$res_check" <<'PY' | tee "$work/summary.txt"
import csv, statistics, sys

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
mem = list(csv.DictReader(open(sys.argv[2]), delimiter="\t"))
order = ["direct", "haproxy", "nginx", "levee", "levee-res", "levee-route"]
res_check = open(sys.argv[4]).read().rstrip()
res_valid = "FAIL" not in res_check  # the feature check after the run passed
# Each variant against levee in the same rounds, with its budget (share of levee's req/s).
variants = [
    ("levee-res", 0.03, "circuit breaker + outlier detection + health checks", "--skip-resilient"),
    ("levee-route", 0.05, "route timeout + retry with budget + rate limit + fallback with the stale store",
     "--skip-route"),
]
verdicts = {v[0]: [] for v in variants}
med = lambda xs: statistics.median(xs) if xs else float("nan")

def by(scen, target, key):
    return {int(r["round"]): float(r[key]) for r in rows if r["scenario"] == scen and r["target"] == target}

print("\n==== summary (medians over rounds; cpu = the proxy's own CPU time, origin's for direct) ====")
print(f"pinning: {sys.argv[3]}")
scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
for scen in scenarios:
    targets = [t for t in order if any(r["scenario"] == scen and r["target"] == t for r in rows)]
    direct_p50 = by(scen, "direct", "p50_us")
    print(f"\n{scen}")
    print(f"  {'target':<11} {'req/s':>10} {'p50 us':>9} {'p99 us':>9} {'+p50 vs direct':>15} {'cpu us/req':>11} {'errors':>7}")
    for t in targets:
        rps, p50, p99, cpu = (by(scen, t, k) for k in ("rps", "p50_us", "p99_us", "cpu_us_per_req"))
        errs = sum(int(r["errors"]) for r in rows if r["scenario"] == scen and r["target"] == t)
        added = med([p50[k] - direct_p50[k] for k in p50 if k in direct_p50]) if t != "direct" else 0.0
        added = float("nan") if not direct_p50 else added  # paired scenarios have no direct
        print(f"  {t:<11} {med(list(rps.values())):>10.0f} {med(list(p50.values())):>9.1f} "
              f"{med(list(p99.values())):>9.1f} {added:>15.1f} {med(list(cpu.values())):>11.2f} {errs:>7d}")
    rounds = sorted(by(scen, "direct" if "direct" in targets else targets[0], "rps"))
    pairs = [("levee", "haproxy"), ("levee", "nginx"), ("levee", "direct")] if "levee" in targets \
        else [("haproxy", "direct"), ("nginx", "direct")]
    pairs = [(a, b) for a, b in pairs if a in targets and b in targets]
    for a, b in pairs:
        ra, rb = by(scen, a, "rps"), by(scen, b, "rps")
        per = [ra[k] / rb[k] for k in rounds if k in ra and k in rb and rb[k] > 0]
        print(f"  req/s {a}/{b}: " + " ".join(f"r{k}={x:.3f}" for k, x in zip(rounds, per))
              + f"  median={med(per):.3f}")
    if scen.startswith("c1"):
        for t in targets:
            if t == "direct":
                continue
            p = by(scen, t, "p50_us")
            per = [p[k] - direct_p50[k] for k in rounds if k in p and k in direct_p50]
            print(f"  added p50 latency {t}: " + " ".join(f"r{k}={x:+.1f}us" for k, x in zip(rounds, per))
                  + f"  median={med(per):+.1f}us")
    if "levee" not in targets:
        print("  (levee skipped)")
        continue
    for name, budget, _, flag in variants:
        if name not in targets:
            print(f"  ({name} skipped: {flag})")
            continue
        # overhead = 1 - median of the per-round req/s ratios; negative = the variant was faster.
        ra, rb = by(scen, name, "rps"), by(scen, "levee", "rps")
        per = [ra[k] / rb[k] for k in rounds if k in ra and k in rb and rb[k] > 0]
        print(f"  req/s {name}/levee: " + " ".join(f"r{k}={x:.3f}" for k, x in zip(rounds, per))
              + f"  median={med(per):.3f}")
        if scen.startswith("paired-") and len(per) >= 6:
            # Distribution-free 95% interval of the median: order statistics of the sorted ratios.
            xs, n = sorted(per), len(per)
            k = max(0, int((n - 1.96 * n ** 0.5) / 2))
            print(f"  req/s {name}/levee over {n} paired rounds: median {med(xs):.3f}, 95% interval of the "
                  f"median {xs[k]:.3f}..{xs[n - 1 - k]:.3f}, quartiles {xs[n // 4]:.3f}..{xs[(3 * n) // 4]:.3f}")
        ca, cb = by(scen, name, "cpu_us_per_req"), by(scen, "levee", "cpu_us_per_req")
        cper = [ca[k] / cb[k] for k in rounds if k in ca and k in cb and cb[k] > 0]
        print(f"  cpu us/req {name}/levee: " + " ".join(f"r{k}={x:.3f}" for k, x in zip(rounds, cper))
              + f"  median={med(cper):.3f}")
        if scen.startswith("c1"):
            pa, pb = by(scen, name, "p50_us"), by(scen, "levee", "p50_us")
            pd = [pa[k] - pb[k] for k in rounds if k in pa and k in pb]
            print(f"  p50 {name} - levee: " + " ".join(f"r{k}={x:+.1f}us" for k, x in zip(rounds, pd))
                  + f"  median={med(pd):+.1f}us")
        overhead = 1 - med(per)
        ok = overhead <= budget
        verdicts[name].append((scen, overhead, med(cper), ok))
        print(f"  {name} overhead (1 - median req/s {name}/levee): {overhead * 100:+.1f}% -> "
              f"{'within' if ok else 'NOT within'} {budget * 100:.0f}%")

for name, budget, what, _ in variants:
    if not verdicts[name]:
        continue
    print(f"\n{name} overhead ({name} = levee + {what}; budget {budget * 100:.0f}% of levee's req/s, same run)")
    for scen, overhead, cpu_ratio, ok in verdicts[name]:
        print(f"  {scen:<9} {overhead * 100:+5.1f}%  {'within' if ok else 'NOT within'} {budget * 100:.0f}%"
              f"   (cpu us/req ratio {cpu_ratio:.3f})")
    # The verdict: the paired scenarios when there are any (adjacent windows; see the header).
    basis = [v for v in verdicts[name] if v[0].startswith("paired-")] or verdicts[name]
    n_ok = sum(v[3] for v in basis)
    kind = "paired scenarios" if basis[0][0].startswith("paired-") else "scenarios"
    print(f"  VERDICT: median overhead within {budget * 100:.0f}% in {n_ok}/{len(basis)} {kind}"
          + (f" (medians of {len(rounds)} round(s); noisy below 3 rounds)" if len(rounds) < 3 else ""))
if any(verdicts.values()):
    if not res_valid:
        print("  NOT A VALID MEASUREMENT: a feature check failed (see below)")
    if res_check:
        print("  feature checks:")
        for line in res_check.splitlines():
            print("  " + line)

if mem:
    print(f"\nmemory ({mem[0]['conns_alive']} idle keep-alive connections; RSS summed over the process and its children)")
    print(f"  {'target':<11} {'idle RSS MiB':>12} {'loaded RSS MiB':>15} {'bytes/conn':>11}")
    for m in mem:
        print(f"  {m['target']:<11} {int(m['idle_rss_kb'])/1024:>12.1f} {int(m['loaded_rss_kb'])/1024:>15.1f} "
              f"{int(m['bytes_per_conn']):>11d}")
PY
cat "$flood" | tee -a "$work/summary.txt"
if awk -F'\t' 'NR > 1 && $9 > 0 {found = 1} END {exit !found}' "$results"; then
  echo "bench: some measurements had errors (non-2xx responses or socket errors); see above" >&2
  exit 1
fi
if ((!res_ok)); then
  echo "bench: levee-res or levee-route did not have its features active; see the feature checks above" >&2
  exit 1
fi
