#!/usr/bin/env python3
"""A small HTTP/1.1 origin server for levee's integration tests and the quickstart demo.

Raw sockets and one thread per connection; the HTTP framing is written by hand so that tests
control it exactly (no http.server). Python 3 standard library only.

    python3 test_upstream.py --port N [--host 127.0.0.1] [--name NAME] [--ready-file PATH]

--port 0 picks a free port; the bound port is written to --ready-file (atomically) once the
socket listens. Keep-alive by default (HTTP/1.1), pipelining works. Behaviour by path
(method-agnostic unless noted; the query string is ignored for dispatch):

  /, /api/...        200 friendly JSON {"upstream","method","path","hint"} (any unknown path too)
  /echo              200 JSON: name, method, path, query, headers (as received, in order),
                     body_len, body_sha256, conn_id (per accepted TCP connection, from 1)
  /size/N            N-byte body with Content-Length
  /chunked/N         N bytes in chunked encoding (several chunks)
  /download/N        N bytes with Content-Length, streamed in 64 KiB writes (no buffering)
  /upload            streams the request body, answers {"body_len","body_sha256"}
  /slow/MS           waits MS milliseconds, then 200 JSON
  /status/N          status N, small JSON body (none for 1xx/204/304; HEAD never has a body);
                     ?retry_after=V adds "Retry-After: V" (V URL-decoded: seconds or an HTTP date)
  /flaky/KEY?fail=N&status=S[&retry_after=V]
                     the first N requests for KEY (default 1) answer status S (default 503, with
                     "Retry-After: V" when given), later ones 200; the request body is read first.
                     JSON {"upstream","key","attempt","status","method","body_len","body_sha256"}
                     (attempt counts from 1 per KEY)
  /flaky/KEY/hits    {"key","hits"}: requests seen for KEY (not counted in /hits, never delayed
                     or failed)
  /reset             closes with SO_LINGER 0 (RST) without answering
  /reset-mid         headers with Content-Length 100000, 1000 body bytes, then (200 ms
                     after the bytes were acknowledged) RST
  /continue          with "Expect: 100-continue": "100 Continue" before reading the body;
                     then 200 {"body_len","body_sha256","expect_seen"}
  /ws                Upgrade: websocket -> 101 with Sec-WebSocket-Accept (RFC 6455), then echoes
                     raw bytes until EOF
  /hop               200 with hop-by-hop response headers (Connection: X-Hop-Secret, Keep-Alive,
                     Proxy-Connection, Trailer, X-Hop-Secret) and an end-to-end X-Kept: yes
  /hits              {"hits":N,"connections":C}: requests seen (excluding /hits*), TCP connections
  /hits/reset        zeroes both counters
  /close             answers with "Connection: close", then closes
  /healthz           200 {"upstream","status":"ok"} (a health-check target; not counted in /hits,
                     counted in /control/stats "healthz")
  /whoami            200 {"upstream": NAME}
  /control/fail?status=N   from now on every request except /hits* and /control/* (so /healthz
                     too) answers status N (default 503); status=reset closes with an RST instead
  /control/ok        ends /control/fail
  /control/stats     {"hits","connections","healthz","failing"} (failing: the status, "reset" or
                     null)

Every response carries "X-Upstream-Name: NAME" and "X-Conn-Id: <conn_id>".
--delay MS delays every request by MS milliseconds (a slow endpoint for load-balancer tests).
--mode tcp turns the server into a raw TCP echo server for the TCP listener tests: it echoes
bytes until the client shuts down its write side, then sends "BYE <bytes received>\n" and
closes (so half-close can be checked).
Body bytes of /size, /chunked and /download are the same deterministic stream: byte i is
PATTERN[i % 65536] (see pattern_block()), so clients can check content without a copy.
"""

import argparse
import base64
import urllib.parse
import hashlib
import json
import os
import socket
import struct
import sys
import termios
import threading
import time
import fcntl

BLOCK = 64 * 1024
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B85"
MAX_HEAD = 1024 * 1024

REASONS = {
    100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 202: "Accepted",
    204: "No Content", 301: "Moved Permanently", 302: "Found", 304: "Not Modified",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 413: "Payload Too Large",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


def pattern_block():
    """The 64 KiB block that body streams repeat."""
    return bytes((i * 7 + (i >> 8)) & 0xFF for i in range(BLOCK))


PATTERN = pattern_block()


def pattern_bytes(offset, n):
    """n bytes of the body stream starting at offset."""
    out = bytearray()
    while n > 0:
        start = offset % BLOCK
        take = min(n, BLOCK - start)
        out += PATTERN[start:start + take]
        offset += take
        n -= take
    return bytes(out)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.hits = 0
        self.connections = 0
        self.next_conn_id = 0
        self.healthz = 0

    def new_conn(self):
        with self.lock:
            self.next_conn_id += 1
            self.connections += 1
            return self.next_conn_id

    def hit(self):
        with self.lock:
            self.hits += 1

    def healthz_hit(self):
        with self.lock:
            self.healthz += 1

    def snapshot(self):
        with self.lock:
            return {"hits": self.hits, "connections": self.connections}

    def reset(self):
        with self.lock:
            self.hits = 0
            self.connections = 0


class ClientGone(Exception):
    pass


class BadRequest(Exception):
    pass


class Reader:
    """Buffered reads from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self):
        try:
            data = self.sock.recv(256 * 1024)
        except (ConnectionResetError, BrokenPipeError, OSError):
            data = b""
        if not data:
            raise ClientGone()
        self.buf += data

    def read_line(self, limit=MAX_HEAD):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise BadRequest("line too long")
            self._fill()

    def read_some(self, n):
        if not self.buf:
            self._fill()
        take = min(n, len(self.buf))
        out = bytes(self.buf[:take])
        del self.buf[:take]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_any(self):
        """Whatever is buffered, or one recv; b"" at EOF."""
        if self.buf:
            out = bytes(self.buf)
            self.buf.clear()
            return out
        try:
            return self.sock.recv(256 * 1024)
        except OSError:
            return b""


class Request:
    def __init__(self, method, target, version, headers):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # list of (name, value) as received
        path, _, query = target.partition("?")
        self.path = path
        self.query = query
        self.body_consumed = False

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_tokens(self, name):
        out = []
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def wants_close(self):
        tokens = self.header_tokens("connection")
        if self.version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens


def read_request_head(reader):
    line = reader.read_line()
    while line in (b"\r\n", b"\n"):  # tolerate stray blank lines between requests
        line = reader.read_line()
    parts = line.decode("latin-1").strip().split(" ")
    if len(parts) != 3:
        raise BadRequest("bad request line")
    method, target, version = parts
    headers = []
    size = len(line)
    while True:
        line = reader.read_line()
        size += len(line)
        if size > MAX_HEAD:
            raise BadRequest("head too large")
        if line in (b"\r\n", b"\n"):
            break
        text = line.decode("latin-1").rstrip("\r\n")
        name, sep, value = text.partition(":")
        if not sep:
            raise BadRequest("bad header line")
        headers.append((name, value.strip(" \t")))
    return Request(method, target, version, headers)


def iter_body(reader, req):
    """Yields the request body in pieces, whatever its framing."""
    req.body_consumed = True
    te = req.header_tokens("transfer-encoding")
    if te and te[-1] == "chunked":
        while True:
            line = reader.read_line().decode("latin-1").strip()
            size = int(line.split(";")[0], 16)
            if size == 0:
                while reader.read_line() not in (b"\r\n", b"\n"):  # trailers
                    pass
                return
            left = size
            while left:
                piece = reader.read_some(left)
                left -= len(piece)
                yield piece
            reader.read_line()  # CRLF after the chunk
    cl = req.header("content-length")
    if cl is None:
        return
    left = int(cl)
    while left > 0:
        piece = reader.read_some(min(left, 256 * 1024))
        left -= len(piece)
        yield piece


def digest_body(reader, req):
    h = hashlib.sha256()
    n = 0
    for piece in iter_body(reader, req):
        h.update(piece)
        n += len(piece)
    return n, h.hexdigest()


class Connection:
    def __init__(self, sock, addr, server):
        self.sock = sock
        self.addr = addr
        self.server = server
        self.reader = Reader(sock)
        self.conn_id = server.stats.new_conn()

    # -- output -------------------------------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def head_bytes(self, status, headers, reason=None):
        reason = reason or REASONS.get(status, "Status")
        lines = ["HTTP/1.1 %d %s" % (status, reason)]
        for k, v in headers:
            lines.append("%s: %s" % (k, v))
        lines.append("X-Upstream-Name: %s" % self.server.name)
        lines.append("X-Conn-Id: %d" % self.conn_id)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def respond(self, req, status, body=b"", ctype="application/json", extra=(), close=False):
        headers = list(extra)
        no_body = status in (204, 304) or 100 <= status < 200
        if ctype and not no_body:
            headers.append(("Content-Type", ctype))
        if not no_body:
            headers.append(("Content-Length", str(len(body))))
        if close:
            headers.append(("Connection", "close"))
        data = self.head_bytes(status, headers)
        if not no_body and req.method != "HEAD":
            data += body
        self.send(data)

    def respond_json(self, req, status, obj, **kw):
        self.respond(req, status, (json.dumps(obj) + "\n").encode(), **kw)

    def rst(self):
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()

    def wait_flushed(self, deadline_s=5.0):
        """Waits (bounded) until the kernel send queue is empty, so an RST does not discard it."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                queued = struct.unpack("i", fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ,
                                                        b"\0\0\0\0"))[0]
            except OSError:
                return
            if queued == 0:
                return
            time.sleep(0.005)

    # -- loop ---------------------------------------------------------------------------------
    def run(self):
        try:
            while True:
                try:
                    req = read_request_head(self.reader)
                except BadRequest:
                    self.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                              b"Connection: close\r\n\r\n")
                    return
                keep = self.handle(req)
                if not keep:
                    return
        except (ClientGone, ConnectionResetError, BrokenPipeError, OSError, ValueError):
            return
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def handle(self, req):
        """Serves one request; returns False when the connection must end."""
        path = req.path
        control = path.startswith("/control/")
        flaky_read = path.startswith("/flaky/") and path.endswith("/hits")
        if path == "/healthz":
            self.server.stats.healthz_hit()
        elif not path.startswith("/hits") and not control and not flaky_read:
            self.server.stats.hit()
        if control:
            return self._control(req)
        if flaky_read:
            return self._flaky_hits(req)
        failing = self.server.fail_status
        if failing is not None and not path.startswith("/hits"):
            self._drain(req)
            if failing == "reset":
                self.rst()
                return False
            self.respond_json(req, failing, {"upstream": self.server.name, "status": failing,
                                             "failing": True}, close=req.wants_close())
            return not req.wants_close()
        if self.server.verbose:
            sys.stderr.write("%s %s %s conn=%d\n" % (self.server.name, req.method, req.target,
                                                     self.conn_id))
        close = req.wants_close()
        if self.server.delay_ms and not path.startswith("/hits"):
            time.sleep(self.server.delay_ms / 1000.0)
        seg = path.strip("/").split("/")
        head = seg[0] if seg else ""
        arg = seg[1] if len(seg) > 1 else ""

        if path == "/echo":
            n, sha = digest_body(self.reader, req)
            self.respond_json(req, 200, {
                "name": self.server.name, "method": req.method, "path": req.path,
                "query": req.query, "headers": [[k, v] for k, v in req.headers],
                "body_len": n, "body_sha256": sha, "conn_id": self.conn_id,
                "client": "%s:%d" % self.addr[:2],
            }, close=close)
            return not close
        if head == "size" and arg.isdigit():
            self._drain(req)
            n = int(arg)
            self.respond(req, 200, pattern_bytes(0, n), ctype="application/octet-stream",
                         close=close)
            return not close
        if head == "chunked" and arg.isdigit():
            self._drain(req)
            return self._chunked(req, int(arg), close)
        if head == "download" and arg.isdigit():
            self._drain(req)
            return self._download(req, int(arg), close)
        if path == "/upload":
            n, sha = digest_body(self.reader, req)
            self.respond_json(req, 200, {"body_len": n, "body_sha256": sha}, close=close)
            return not close
        if head == "slow" and arg.isdigit():
            self._drain(req)
            time.sleep(int(arg) / 1000.0)
            self.respond_json(req, 200, {"upstream": self.server.name, "slept_ms": int(arg)},
                              close=close)
            return not close
        if head == "status" and arg.isdigit():
            self._drain(req)
            code = int(arg)
            extra = []
            retry_after = self._params(req).get("retry_after")
            if retry_after:
                extra.append(("Retry-After", urllib.parse.unquote_plus(retry_after)))
            self.respond_json(req, code, {"upstream": self.server.name, "status": code},
                              extra=extra, close=close)
            return not close
        if head == "flaky" and arg:
            return self._flaky(req, arg, close)
        if path == "/reset":
            self.rst()
            return False
        if path == "/reset-mid":
            self._drain(req)
            self.send(self.head_bytes(200, [("Content-Type", "application/octet-stream"),
                                            ("Content-Length", "100000")]))
            self.send(pattern_bytes(0, 1000))
            self.wait_flushed()
            # Give the proxy time to read what was sent: an RST that arrives first may purge
            # unread data from its receive queue (seen with gVisor's netstack).
            time.sleep(0.2)
            self.rst()
            return False
        if path == "/continue":
            expect = (req.header("expect") or "").lower() == "100-continue"
            if expect:
                self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            n, sha = digest_body(self.reader, req)
            self.respond_json(req, 200, {"body_len": n, "body_sha256": sha,
                                         "expect_seen": expect}, close=close)
            return not close
        if path == "/ws":
            return self._websocket(req)
        if path == "/hop":
            self._drain(req)
            self.respond_json(req, 200, {"upstream": self.server.name}, extra=[
                ("Connection", "keep-alive, X-Hop-Secret"), ("Keep-Alive", "timeout=30"),
                ("Proxy-Connection", "keep-alive"), ("X-Hop-Secret", "1"),
                ("X-Kept", "yes")], close=close)
            return not close
        if path == "/hits":
            self._drain(req)
            self.respond_json(req, 200, self.server.stats.snapshot(), close=close)
            return not close
        if path == "/hits/reset":
            self._drain(req)
            self.server.stats.reset()
            self.respond_json(req, 200, {"hits": 0, "connections": 0}, close=close)
            return not close
        if path == "/healthz":
            self._drain(req)
            self.respond_json(req, 200, {"upstream": self.server.name, "status": "ok"},
                              close=close)
            return not close
        if path == "/whoami":
            self._drain(req)
            self.respond_json(req, 200, {"upstream": self.server.name}, close=close)
            return not close
        if path == "/close":
            self._drain(req)
            self.respond_json(req, 200, {"upstream": self.server.name, "closing": True},
                              close=True)
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return False
        # "/", "/api/..." and anything else: a friendly pointer.
        self._drain(req)
        self.respond_json(req, 200, {
            "upstream": self.server.name, "method": req.method, "path": req.path,
            "hint": "try /echo /size/100 /slow/500 /status/503"}, close=close)
        return not close

    def _control(self, req):
        """/control/fail?status=N|reset, /control/ok, /control/stats (never delayed, never
        failed, not counted as hits)."""
        self._drain(req)
        close = req.wants_close()
        params = dict(kv.partition("=")[::2] for kv in req.query.split("&") if kv)
        if req.path == "/control/fail":
            status = params.get("status", "503")
            if status == "reset":
                self.server.fail_status = "reset"
            elif status.isdigit() and 200 <= int(status) <= 599:
                self.server.fail_status = int(status)
            else:
                self.respond_json(req, 400, {"error": "status must be 200..599 or reset"},
                                  close=close)
                return not close
        elif req.path == "/control/ok":
            self.server.fail_status = None
        elif req.path != "/control/stats":
            self.respond_json(req, 404, {"error": "unknown control path"}, close=close)
            return not close
        snap = self.server.stats.snapshot()
        with self.server.stats.lock:
            snap["healthz"] = self.server.stats.healthz
        snap["failing"] = self.server.fail_status
        self.respond_json(req, 200, snap, close=close)
        return not close

    @staticmethod
    def _params(req):
        return dict(kv.partition("=")[::2] for kv in req.query.split("&") if kv)

    def _flaky(self, req, key, close):
        """/flaky/KEY?fail=N&status=S&retry_after=V: the first N requests for KEY fail."""
        n, sha = digest_body(self.reader, req)
        params = self._params(req)
        fail = int(params.get("fail", "1") or 0)
        status = int(params.get("status", "503") or 503)
        with self.server.flaky_lock:
            attempt = self.server.flaky_hits.get(key, 0) + 1
            self.server.flaky_hits[key] = attempt
        code = status if attempt <= fail else 200
        extra = []
        if code != 200 and params.get("retry_after"):
            extra.append(("Retry-After", urllib.parse.unquote_plus(params["retry_after"])))
        self.respond_json(req, code, {"upstream": self.server.name, "key": key,
                                      "attempt": attempt, "status": code, "method": req.method,
                                      "body_len": n, "body_sha256": sha},
                          extra=extra, close=close)
        return not close

    def _flaky_hits(self, req):
        self._drain(req)
        close = req.wants_close()
        key = req.path[len("/flaky/"):-len("/hits")].strip("/")
        with self.server.flaky_lock:
            hits = self.server.flaky_hits.get(key, 0)
        self.respond_json(req, 200, {"key": key, "hits": hits}, close=close)
        return not close

    def _drain(self, req):
        if not req.body_consumed:
            for _ in iter_body(self.reader, req):
                pass

    def _chunked(self, req, n, close):
        headers = [("Content-Type", "application/octet-stream"),
                   ("Transfer-Encoding", "chunked")]
        if close:
            headers.append(("Connection", "close"))
        self.send(self.head_bytes(200, headers))
        if req.method == "HEAD":
            return not close
        # Several chunks of uneven sizes: 1, then quarters, then the rest.
        sizes = []
        left = n
        if left > 0:
            sizes.append(1)
            left -= 1
        step = max(1, n // 4)
        while left > 0:
            take = min(step, left, BLOCK)
            sizes.append(take)
            left -= take
        off = 0
        for s in sizes:
            self.send(b"%x\r\n" % s + pattern_bytes(off, s) + b"\r\n")
            off += s
        self.send(b"0\r\n\r\n")
        return not close

    def _download(self, req, n, close):
        headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))]
        if close:
            headers.append(("Connection", "close"))
        self.send(self.head_bytes(200, headers))
        if req.method == "HEAD":
            return not close
        left = n
        view = memoryview(PATTERN)
        while left > 0:
            take = min(BLOCK, left)
            self.sock.sendall(view[:take])
            left -= take
        return not close

    def _websocket(self, req):
        upgrade = "websocket" in req.header_tokens("upgrade")
        key = req.header("sec-websocket-key")
        if not upgrade or not key:
            self._drain(req)
            self.respond_json(req, 400, {"error": "expected a websocket upgrade"})
            return not req.wants_close()
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept.encode() +
                  ("\r\nX-Upstream-Name: %s\r\n\r\n" % self.server.name).encode())
        while True:
            data = self.reader.read_any()
            if not data:
                break
            self.send(data)
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return False


def tcp_echo(sock):
    total = 0
    try:
        while True:
            try:
                data = sock.recv(256 * 1024)
            except OSError:
                return
            if not data:
                break
            total += len(data)
            sock.sendall(data)
        sock.sendall(b"BYE %d\n" % total)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        sock.close()


class Server:
    def __init__(self, host, port, name, verbose=False, delay_ms=0, mode="http"):
        self.name = name
        self.verbose = verbose
        self.delay_ms = delay_ms
        self.mode = mode
        self.stats = Stats()
        self.fail_status = None  # /control/fail: an int status, "reset", or None
        self.flaky_lock = threading.Lock()
        self.flaky_hits = {}  # /flaky/KEY: requests seen per KEY
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                  socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]

    def serve_forever(self):
        while True:
            try:
                conn, addr = self.sock.accept()
            except InterruptedError:
                continue
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.mode == "tcp":
                self.stats.new_conn()
                t = threading.Thread(target=tcp_echo, args=(conn,), daemon=True)
            else:
                t = threading.Thread(target=Connection(conn, addr, self).run, daemon=True)
            t.start()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--name", default="upstream")
    p.add_argument("--ready-file")
    p.add_argument("--verbose", action="store_true", help="log each request on stderr")
    p.add_argument("--delay", type=int, default=0, help="delay every request by MS ms")
    p.add_argument("--mode", choices=["http", "tcp"], default="http")
    args = p.parse_args(argv)
    server = Server(args.host, args.port, args.name, args.verbose, args.delay, args.mode)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % server.port)
        os.replace(tmp, args.ready_file)
    sys.stderr.write("test_upstream %s listening on %s:%d\n" % (args.name, args.host, server.port))
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
