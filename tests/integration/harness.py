"""Helpers for levee's integration tests (Python 3 standard library only).

Everything a test starts binds 127.0.0.1 on a free port, is stopped by PID (SIGTERM, then SIGKILL
after a bound), and every wait has a deadline. Deadlines are generous so that the suite also
passes against an ASan build of levee.

Environment:
  LEVEE_BIN          the levee binary (default /work/main/build/levee)
  LEVEE_TEST_SLOW    multiplier for every deadline (default 1; use 3+ for slow sanitizer builds)
  LEVEE_TEST_KEEP    keep temp dirs (logs) of finished tests when set
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_UPSTREAM = os.path.normpath(os.path.join(HERE, "..", "test_common", "test_upstream.py"))
LEVEE_BIN = os.environ.get("LEVEE_BIN", "/work/main/build/levee")
SLOW = float(os.environ.get("LEVEE_TEST_SLOW", "1"))
NGINX_BIN = "/usr/sbin/nginx"
PROMTOOL_BIN = "/usr/bin/promtool"
PROMETHEUS_BIN = "/usr/bin/prometheus"

sys.path.insert(0, os.path.dirname(TEST_UPSTREAM))
from test_upstream import pattern_bytes, PATTERN, BLOCK  # noqa: E402


def deadline(seconds):
    """Seconds scaled by LEVEE_TEST_SLOW."""
    return seconds * SLOW


_issued_ports = set()


def free_port():
    """A port that was free on 127.0.0.1 a moment ago (bind :0, read, close). Never returns the
    same port twice in one test process: the kernel happily hands out a just-closed port again,
    which would give e.g. the listener and the probes the same address."""
    for _ in range(1000):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _issued_ports:
            _issued_ports.add(port)
            return port
    raise RuntimeError("no unused free port found")


def write_config(tmpdir, yaml_text, name="levee.yaml"):
    path = os.path.join(tmpdir, name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(yaml_text).lstrip("\n"))
    return path


class GiveUp(Exception):
    """Raised by a poll() condition that can never become true (e.g. the process died)."""


def poll(fn, timeout, interval=0.05, what="condition"):
    """Calls fn() until it returns a truthy value or timeout (scaled) passes; returns the value.
    Raises AssertionError on timeout. Exceptions from fn count as "not yet", except GiveUp,
    which ends the wait at once."""
    end = time.monotonic() + deadline(timeout)
    last_exc = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except GiveUp as e:
            raise AssertionError(str(e)) from None
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last_exc = e
        if time.monotonic() >= end:
            raise AssertionError("timed out after %.1fs waiting for %s (last error: %r)"
                                 % (deadline(timeout), what, last_exc))
        time.sleep(interval)


def stop_process(proc, term_timeout=10.0):
    """SIGTERM, wait (bounded), then SIGKILL. Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=deadline(term_timeout))
        except subprocess.TimeoutExpired:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
    return proc.returncode


def tail(path, n=4000):
    try:
        with open(path, "rb") as f:
            data = f.read()
        return data[-n:].decode("utf-8", "replace")
    except OSError:
        return "<no %s>" % path


# -------------------------------------------------------------------------------------------------
# Simple HTTP client (http.client) and a raw-socket client with exact framing.
# -------------------------------------------------------------------------------------------------

class Resp:
    def __init__(self, status, headers, body, closed=None, complete=True, reason=""):
        self.status = status
        self.header_list = headers           # [(name, value)] as received
        self.headers = {}                     # lower-case name -> last value
        for k, v in headers:
            self.headers[k.lower()] = v
        self.body = body
        self.closed = closed
        self.complete = complete
        self.reason = reason

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def header_values(self, name):
        return [v for k, v in self.header_list if k.lower() == name.lower()]

    def __repr__(self):
        return "Resp(%s, %r, %r%s)" % (self.status, self.headers, self.body[:300],
                                        "" if self.complete else ", incomplete")


def http_request(port, method="GET", path="/", headers=None, body=None, timeout=10.0,
                 host="127.0.0.1"):
    """One request on a fresh connection with http.client. Returns Resp."""
    conn = http.client.HTTPConnection(host, port, timeout=deadline(timeout))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Resp(r.status, r.getheaders(), data, reason=r.reason)
    finally:
        conn.close()


class IncompleteRead(Exception):
    pass


class RawConn:
    """A raw TCP client that sends bytes and reads HTTP/1.1 responses with correct framing."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=deadline(timeout))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.timeout = deadline(timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def _fill(self):
        if self.eof:
            raise IncompleteRead("connection closed")
        try:
            data = self.sock.recv(256 * 1024)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise IncompleteRead("connection closed")
        self.buf += data

    def _line(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            self._fill()

    def _exact(self, n, sink=None):
        """Reads n bytes; returns them (or feeds them to sink and returns b"")."""
        out = bytearray()
        while n > 0:
            if not self.buf:
                self._fill()
            take = min(n, len(self.buf))
            if sink is not None:
                sink(bytes(self.buf[:take]))
            else:
                out += self.buf[:take]
            del self.buf[:take]
            n -= take
        return bytes(out)

    def recv_some(self, timeout=None):
        """Raw bytes: whatever is buffered or one recv (b"" on EOF)."""
        if self.buf:
            out = bytes(self.buf)
            self.buf.clear()
            return out
        self.sock.settimeout(deadline(timeout) if timeout else self.timeout)
        try:
            data = self.sock.recv(256 * 1024)
        except ConnectionResetError:
            data = b""
        finally:
            self.sock.settimeout(self.timeout)
        if not data:
            self.eof = True
        return data

    def read_head(self):
        line = self._line()
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        while True:
            line = self._line()
            if line in (b"\r\n", b"\n"):
                break
            k, _, v = line.decode("latin-1").rstrip("\r\n").partition(":")
            headers.append((k, v.strip()))
        return status, reason, headers

    def read_response(self, head_request=False, skip_interim=True, sink=None):
        """Reads one response. Incomplete bodies (EOF/RST before the framing ends) are returned
        with complete=False instead of raising. With sink, body bytes go to sink(bytes)."""
        while True:
            status, reason, headers = self.read_head()
            if skip_interim and 100 <= status < 200 and status != 101:
                continue
            break
        hdr = {k.lower(): v for k, v in headers}
        body = bytearray()
        feed = sink if sink is not None else body.extend
        complete = True
        try:
            if head_request or status in (204, 304, 101) or 100 <= status < 200:
                pass
            elif "chunked" in hdr.get("transfer-encoding", "").lower():
                while True:
                    size = int(self._line().decode("latin-1").strip().split(";")[0], 16)
                    if size == 0:
                        while self._line() not in (b"\r\n", b"\n"):
                            pass
                        break
                    self._exact(size, feed)
                    self._line()
            elif "content-length" in hdr:
                self._exact(int(hdr["content-length"]), feed)
            else:
                while True:  # until close
                    try:
                        self._fill()
                    except IncompleteRead:
                        break
                    feed(bytes(self.buf))
                    self.buf.clear()
        except IncompleteRead:
            complete = False
            if self.buf:
                feed(bytes(self.buf))
                self.buf.clear()
        return Resp(status, headers, bytes(body), complete=complete, reason=reason)

    def wait_closed(self, timeout=3.0):
        """True when the peer closes (EOF or RST) within timeout; False if it stays open.
        Bytes that arrive meanwhile are kept in the buffer."""
        if self.eof:
            return True
        end = time.monotonic() + deadline(timeout)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                self.eof = True
                return True
            finally:
                self.sock.settimeout(self.timeout)
            if not data:
                self.eof = True
                return True
            self.buf += data


def send_raw(port, data, wait_close=3.0, timeout=10.0):
    """Sends raw bytes on a new connection and reads one response with correct framing.
    Returns (status, headers, body, closed); headers is a dict with lower-case names, closed is
    whether the server closed the connection within wait_close seconds after the response.
    status is None when the server closed without answering."""
    with RawConn(port, timeout=timeout) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            r = c.read_response(head_request=data.startswith(b"HEAD "))
        except (IncompleteRead, socket.timeout, ConnectionResetError):
            return None, {}, b"", True
        closed = c.wait_closed(wait_close)
        return r.status, r.headers, r.body, closed


def send_raw_resp(port, data, wait_close=3.0, timeout=10.0):
    """Like send_raw, returning a Resp with .closed set (None status -> Resp(None, ...))."""
    with RawConn(port, timeout=timeout) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            r = c.read_response(head_request=data.startswith(b"HEAD "))
        except (IncompleteRead, socket.timeout, ConnectionResetError):
            return Resp(None, [], b"", closed=True, complete=False)
        r.closed = c.wait_closed(wait_close)
        return r


# -------------------------------------------------------------------------------------------------
# Metrics
# -------------------------------------------------------------------------------------------------

_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$')
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _unescape(v):
    return v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset({(label, value), ...})): float}."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise ValueError("unparsable metrics line: %r" % line)
        name, _, labels_text, value = m.group(1), m.group(2), m.group(3), m.group(4)
        labels = {}
        if labels_text:
            pos = 0
            while pos < len(labels_text):
                lm = _LABEL_RE.match(labels_text, pos)
                if not lm:
                    raise ValueError("bad labels in %r" % line)
                labels[lm.group(1)] = _unescape(lm.group(2))
                pos = lm.end()
        out[(name, frozenset(labels.items()))] = float(value)
    return out


def metric_sum(metrics, name, **labels):
    """Sum of every series of name whose labels include the given ones (0.0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in metrics.items() if n == name and want <= ls)


def metric_series(metrics, name):
    return {ls: v for (n, ls), v in metrics.items() if n == name}


# -------------------------------------------------------------------------------------------------
# Processes
# -------------------------------------------------------------------------------------------------

class Levee:
    """The levee binary under test."""

    def __init__(self, config_path, probes_port, admin_port=None, concurrency=1,
                 log_level="info", workdir=None, extra_args=(), env=None):
        self.extra_env = dict(env or {})
        self.config_path = config_path
        self.probes_port = probes_port
        self.admin_port = admin_port
        self.concurrency = concurrency
        self.workdir = workdir or tempfile.mkdtemp(prefix="levee-it-")
        self.stdout_path = os.path.join(self.workdir, "levee.stdout")
        self.stderr_path = os.path.join(self.workdir, "levee.stderr")
        self.args = [LEVEE_BIN, "run", "--config", config_path, "--concurrency",
                     str(concurrency), "--log-level", log_level] + list(extra_args)
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        if not os.access(LEVEE_BIN, os.X_OK):
            raise unittest.SkipTest("levee binary not found at %s (set LEVEE_BIN)" % LEVEE_BIN)
        env = dict(os.environ)  # ASAN_OPTIONS etc. pass through unchanged
        env.update(self.extra_env)
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, env=env, cwd=self.workdir)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def probe(self, path, timeout=5.0):
        return http_request(self.probes_port, "GET", path, timeout=timeout)

    def wait_ready(self, timeout=30.0):
        def ready():
            if not self.alive():
                raise GiveUp("levee exited early with %s\nstderr:\n%s\nstdout:\n%s" % (
                    self.proc.returncode, tail(self.stderr_path), tail(self.stdout_path)))
            return self.probe("/health/ready", timeout=2.0).status == 200
        try:
            poll(ready, timeout, interval=0.05, what="levee /health/ready == 200")
        except AssertionError as e:
            if not self.alive():
                raise AssertionError("levee exited early with %s\nstderr:\n%s" % (
                    self.proc.returncode, tail(self.stderr_path)))
            raise AssertionError("%s\nstderr:\n%s" % (e, tail(self.stderr_path)))
        return self

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=30.0):
        return self.proc.wait(timeout=deadline(timeout))

    def stop(self, timeout=15.0):
        rc = stop_process(self.proc, timeout)
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f:
                f.close()
        return rc

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def metrics_text(self):
        r = self.probe("/metrics", timeout=10.0)
        if r.status != 200:
            raise AssertionError("/metrics returned %s" % r.status)
        return r.body.decode("utf-8")

    def metrics(self):
        """The /metrics text (see parse_metrics / metrics_parsed)."""
        return self.metrics_text()

    def metrics_parsed(self):
        return parse_metrics(self.metrics_text())

    def admin(self, method, path, body=None, token=None, timeout=10.0):
        headers = {}
        if token is not None:
            headers["Authorization"] = "Bearer %s" % token
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        return http_request(self.admin_port, method, path, headers=headers, body=body,
                            timeout=timeout)

    def stdout_text(self):
        try:
            self._out.flush()
        except (AttributeError, ValueError):
            pass
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_text(self):
        return self.stderr_text() + self.stdout_text()

    def wait_log(self, *needles, timeout=10.0):
        """The log (stderr + stdout) once it holds every needle. levee's logger is asynchronous:
        a line for an action that has already answered can reach the file a little later."""
        missing = list(needles)

        def found():
            text = self.log_text()
            missing[:] = [n for n in needles if n not in text]
            return text if not missing else None
        try:
            return poll(found, timeout, what="log lines")
        except AssertionError as e:
            raise AssertionError("not in levee's log after %.0f s: %r" % (timeout, missing)) from e

    def access_log(self):
        """Parsed JSON lines of stdout (non-JSON lines are skipped)."""
        out = []
        for line in self.stdout_text().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out


class TestUpstream:
    """tests/test_common/test_upstream.py as a child process."""

    def __init__(self, name="app", port=0, workdir=None, delay_ms=0, mode="http"):
        self.name = name
        self.delay_ms = delay_ms
        self.mode = mode
        self.workdir = workdir or tempfile.mkdtemp(prefix="levee-up-")
        self.ready_file = os.path.join(self.workdir, "upstream-%s-%d.port" % (name, id(self)))
        self.log_path = os.path.join(self.workdir, "upstream-%s.log" % name)
        self.requested_port = port
        self.port = None
        self.proc = None

    def start(self, timeout=15.0):
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, TEST_UPSTREAM, "--port", str(self.requested_port), "--host",
             "127.0.0.1", "--name", self.name, "--ready-file", self.ready_file,
             "--delay", str(self.delay_ms), "--mode", self.mode],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("test_upstream exited: %s" % tail(self.log_path))
            with open(self.ready_file) as f:
                return int(f.read().strip() or 0)
        self.port = poll(ready, timeout, what="test_upstream ready file")
        return self

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def get(self, path, **kw):
        return http_request(self.port, "GET", path, **kw)

    def hits(self):
        return self.get("/hits").json()["hits"]

    def stats(self):
        return self.get("/hits").json()

    def reset_hits(self):
        self.get("/hits/reset")

    def stop(self):
        rc = stop_process(self.proc, 5.0)
        if getattr(self, "_log", None):
            self._log.close()
        return rc


class Nginx:
    """Debian's nginx, foreground, single process, serving a temp docroot on 127.0.0.1:port."""

    def __init__(self, port=None, workdir=None):
        self.port = port or free_port()
        self.prefix = tempfile.mkdtemp(prefix="levee-nginx-", dir=workdir)
        self.docroot = os.path.join(self.prefix, "html")
        os.makedirs(self.docroot)
        for d in ("logs", "tmp"):
            os.makedirs(os.path.join(self.prefix, d))
        self.conf = os.path.join(self.prefix, "nginx.conf")
        self.proc = None

    def add_file(self, name, data):
        path = os.path.join(self.docroot, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def start(self, timeout=15.0):
        if not os.access(NGINX_BIN, os.X_OK):
            raise unittest.SkipTest("nginx not installed at %s" % NGINX_BIN)
        p = self.prefix
        with open(self.conf, "w") as f:
            f.write(textwrap.dedent("""\
                pid %(p)s/nginx.pid;
                error_log %(p)s/logs/error.log warn;
                events { worker_connections 256; }
                http {
                    access_log off;
                    client_body_temp_path %(p)s/tmp/body;
                    proxy_temp_path %(p)s/tmp/proxy;
                    fastcgi_temp_path %(p)s/tmp/fastcgi;
                    uwsgi_temp_path %(p)s/tmp/uwsgi;
                    scgi_temp_path %(p)s/tmp/scgi;
                    default_type application/octet-stream;
                    server {
                        listen 127.0.0.1:%(port)d;
                        root %(p)s/html;
                    }
                }
                """) % {"p": p, "port": self.port})
        self._log = open(os.path.join(p, "logs", "stderr.log"), "wb")
        self.proc = subprocess.Popen(
            [NGINX_BIN, "-p", p, "-c", self.conf, "-e", os.path.join(p, "logs", "error.log"),
             "-g", "daemon off; master_process off;"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("nginx exited: %s" % tail(os.path.join(p, "logs",
                                                                            "error.log")))
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        poll(ready, timeout, what="nginx listening")
        return self

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        rc = stop_process(self.proc, 5.0)
        if getattr(self, "_log", None):
            self._log.close()
        return rc


# -------------------------------------------------------------------------------------------------
# Base test case
# -------------------------------------------------------------------------------------------------

def body_sha256(n):
    """sha256 hex of the first n bytes of test_upstream's body stream."""
    h = hashlib.sha256()
    full, rest = divmod(n, BLOCK)
    for _ in range(full):
        h.update(PATTERN)
    h.update(PATTERN[:rest])
    return h.hexdigest()


class LeveeTestCase(unittest.TestCase):
    """Owns a temp dir and every process a test starts; tearDown stops them by PID."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="levee-it-%s-" % self._testMethodName[:40])
        self._procs = []
        self._levees = []
        # A cleanup, not tearDown: it also runs when setUp fails half-way (e.g. SkipTest after
        # an upstream was started).
        self.addCleanup(self._stop_all)

    def _stop_all(self):
        for p in reversed(self._procs):
            try:
                p.stop()
            except Exception as e:  # noqa: BLE001
                sys.stderr.write("stopping %r failed: %r\n" % (p, e))
        self._procs = []
        sanitizer_reports = []
        for lv in self._levees:
            try:
                err = lv.stderr_text()
            except OSError:
                continue
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                           "runtime error:", "WARNING: ThreadSanitizer"):
                if marker in err:
                    i = err.index(marker)
                    sanitizer_reports.append(err[max(0, i - 200):i + 3000])
        failed = self._outcome_failed()
        if failed:
            for lv in self._levees:
                sys.stderr.write("\n--- levee stderr (%s) ---\n%s\n" % (
                    self.id(), tail(lv.stderr_path, 3000)))
            sys.stderr.write("kept test dir: %s\n" % self.tmp)
        elif not os.environ.get("LEVEE_TEST_KEEP") and not sanitizer_reports:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if sanitizer_reports:
            raise AssertionError("sanitizer report in levee stderr (dir %s):\n%s"
                                 % (self.tmp, sanitizer_reports[0]))

    def _outcome_failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        result = getattr(outcome, "result", None)
        if result is None:
            return False
        for lst in (getattr(result, "failures", []), getattr(result, "errors", [])):
            for test, _ in lst:
                if test is self:
                    return True
        return False

    # -- starting things -----------------------------------------------------------------------
    def start_upstream(self, name="app", delay_ms=0, mode="http"):
        u = TestUpstream(name, workdir=self.tmp, delay_ms=delay_ms, mode=mode)
        self._procs.append(u)
        return u.start()

    def start_nginx(self):
        n = Nginx(workdir=self.tmp)
        self._procs.append(n)
        return n

    def start_levee(self, yaml_text, probes_port, admin_port=None, concurrency=1,
                    wait=True, name="levee.yaml", env=None):
        cfg = write_config(self.tmp, yaml_text, name)
        lv = Levee(cfg, probes_port, admin_port, concurrency=concurrency,
                   workdir=tempfile.mkdtemp(prefix="levee-", dir=self.tmp), env=env)
        self._procs.append(lv)
        self._levees.append(lv)
        lv.start()
        if wait:
            lv.wait_ready()
        return lv

    def token_file(self, token="s3cret-token"):
        path = os.path.join(self.tmp, "token")
        with open(path, "w") as f:
            f.write("  %s\n" % token)
        return path, token

    def simple_policy(self, upstream_addr, routes=None, listener_extra="", limits=None,
                      upstream_extra="", extra="", token=True, tcp=None):
        """A policy with one http listener 'inbound' -> upstream 'app'. Returns (yaml, ports)
        where ports has 'listener', 'probes', 'admin' (and 'tcp')."""
        ports = {"listener": free_port(), "probes": free_port(), "admin": free_port()}
        if token:
            tf, tok = self.token_file()
            ports["token"] = tok
            admin = "admin: { address: 127.0.0.1:%d, token_file: %s }" % (ports["admin"], tf)
        else:
            admin = "admin: { address: 127.0.0.1:%d }" % ports["admin"]
        if routes is None:
            routes = "      - { name: all, match: { prefix: / }, upstream: app }\n"
        lim = limits or ("{ max_header_bytes: 60KiB, max_headers: 100, header_timeout: 10s, "
                         "max_body_bytes: 0, idle_timeout: 300s }")
        tcp_listener = ""
        tcp_upstream = ""
        if tcp:
            ports["tcp"] = free_port()
            tcp_listener = ("  - { name: db, address: 127.0.0.1:%d, protocol: tcp, "
                            "upstream: tcpapp }\n" % ports["tcp"])
            tcp_upstream = ("  tcpapp: { protocol: tcp, endpoints: [ { address: %s } ], "
                            "connect_timeout: 1s, idle_timeout: %s }\n"
                            % (tcp["address"], tcp.get("idle_timeout", "5s")))
        yaml = (
            "version: 1\n"
            "service: itest\n"
            "%s\n"
            "probes: { address: 127.0.0.1:%d }\n"
            "listeners:\n"
            "  - name: inbound\n"
            "    address: 127.0.0.1:%d\n"
            "    protocol: http\n"
            "    limits: %s\n"
            "%s"
            "    routes:\n"
            "%s"
            "%s"
            "upstreams:\n"
            "  app: { endpoints: [ { address: %s } ], load_balancer: round_robin, "
            "connect_timeout: 1s%s }\n"
            "%s"
            "access_log: { path: stdout, format: json }\n"
            "drain: { delay: 0s, grace: 5s }\n"
            "%s"
        ) % (admin, ports["probes"], ports["listener"], lim, listener_extra, routes,
             tcp_listener, upstream_addr, upstream_extra, tcp_upstream, extra)
        return yaml, ports

    def levee_with_upstream(self, concurrency=1, env=None, **kw):
        """Starts one test upstream and levee in front of it. Returns (levee, upstream, ports)."""
        up = self.start_upstream("app")
        yaml, ports = self.simple_policy(up.address, **kw)
        lv = self.start_levee(yaml, ports["probes"], ports["admin"], concurrency=concurrency,
                              env=env)
        return lv, up, ports

    # -- assertions ----------------------------------------------------------------------------
    def assertLocalReply(self, resp, status, reason):
        """A locally generated response: status, JSON body, content-type, x-levee-reason."""
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.headers.get("x-levee-reason"), reason, resp)
        self.assertIn("application/json", resp.headers.get("content-type", ""), resp)
        body = json.loads(resp.body.decode("utf-8"))
        self.assertEqual(body.get("error"), reason, body)
        self.assertEqual(body.get("status"), status, body)
        self.assertIsInstance(body.get("request_id"), str, body)
        self.assertTrue(body["request_id"], body)
        return body
