"""Request limits, timeouts and the upstream-failure local replies."""

import socket
import threading
import time
import unittest

import harness as h

SMALL_LIMITS = ("{ max_header_bytes: 4KiB, max_headers: 20, header_timeout: 1s, "
                "max_body_bytes: 1KiB, idle_timeout: 1s }")


def get(path, headers=(), host="a"):
    lines = ["GET %s HTTP/1.1" % path, "Host: %s" % host] + ["%s: %s" % kv for kv in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class LimitsTest(h.LeveeTestCase):

    def setUp(self):
        super().setUp()
        self.lv, self.up, self.ports = self.levee_with_upstream(limits=SMALL_LIMITS)
        self.up.reset_hits()
        self.port = self.ports["listener"]

    def test_head_larger_than_max_header_bytes_431(self):
        r = h.send_raw_resp(self.port, get("/echo", [("X-Big", "a" * 8000)]))
        self.assertLocalReply(r, 431, "header_too_large")
        self.assertEqual(self.up.hits(), 0)

    def test_head_just_below_limit_passes(self):
        r = h.send_raw_resp(self.port, get("/echo", [("X-Big", "a" * 3000)]), wait_close=0.1)
        self.assertEqual(r.status, 200, r)

    def test_more_than_max_headers_431(self):
        r = h.send_raw_resp(self.port, get("/echo", [("X-H%d" % i, "v") for i in range(30)]))
        self.assertLocalReply(r, 431, "header_too_large")
        self.assertEqual(self.up.hits(), 0)

    def test_partial_head_times_out_408(self):
        with h.RawConn(self.port) as c:
            t0 = time.monotonic()
            c.send(b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Partial: 1\r\n")
            try:
                r = c.read_response()  # bounded by the socket timeout (10s x LEVEE_TEST_SLOW)
            except h.IncompleteRead:
                self.fail("connection closed without a 408 response")
            elapsed = time.monotonic() - t0
            self.assertLocalReply(r, 408, "request_header_timeout")
            self.assertGreaterEqual(elapsed, 0.5, "408 came before header_timeout (1s)")
            self.assertTrue(c.wait_closed(5), "connection not closed after 408")
        self.assertEqual(self.up.hits(), 0)

    def test_body_above_max_body_bytes_413(self):
        data = (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000)
        r = h.send_raw_resp(self.port, data)
        self.assertLocalReply(r, 413, "body_too_large")
        self.assertEqual(self.up.hits(), 0)

    def test_chunked_body_above_max_body_bytes_413(self):
        chunk = b"x" * 800
        data = (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
                (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 3 + b"0\r\n\r\n")
        r = h.send_raw_resp(self.port, data)
        self.assertEqual(r.status, 413, r)
        self.assertEqual(r.headers.get("x-levee-reason"), "body_too_large")

    def test_body_within_max_body_bytes_passes(self):
        data = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000
        r = h.send_raw_resp(self.port, data, wait_close=0.1)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body_len"], 1000)

    def test_idle_keepalive_connection_closed(self):
        with h.RawConn(self.port) as c:
            c.send(get("/echo"))
            self.assertEqual(c.read_response().status, 200)
            t0 = time.monotonic()
            self.assertTrue(c.wait_closed(15), "idle connection not closed after idle_timeout")
            self.assertGreaterEqual(time.monotonic() - t0, 0.5)


class UpstreamFailureTest(h.LeveeTestCase):

    def test_route_timeout_504(self):
        up = self.start_upstream()
        routes = ("      - { name: slow, match: { prefix: /slow }, upstream: app, timeout: 300ms }\n"
                  "      - { name: all, match: { prefix: / }, upstream: app }\n")
        yaml, ports = self.simple_policy(up.address, routes=routes)
        self.start_levee(yaml, ports["probes"], ports["admin"])
        t0 = time.monotonic()
        r = h.send_raw_resp(ports["listener"], get("/slow/3000"), wait_close=0.1)
        self.assertLocalReply(r, 504, "upstream_timeout")
        self.assertLess(time.monotonic() - t0, h.deadline(2.5))
        r = h.send_raw_resp(ports["listener"], get("/slow/10"), wait_close=0.1)
        self.assertEqual(r.status, 200)

    def test_connect_refused_503(self):
        dead = h.free_port()  # nothing listens there
        yaml, ports = self.simple_policy("127.0.0.1:%d" % dead)
        lv = self.start_levee(yaml, ports["probes"], ports["admin"], wait=False)
        self._wait_listening(lv, ports["listener"])
        r = h.send_raw_resp(ports["listener"], get("/echo"), wait_close=0.1)
        self.assertLocalReply(r, 503, "upstream_connect_failure")

    def test_connect_timeout_503(self):
        # A black hole on loopback: a listener with backlog 0 whose accept queue is full drops
        # further SYNs, so levee's connect hangs until connect_timeout.
        hole = socket.socket()
        fillers = []
        try:
            hole.bind(("127.0.0.1", 0))
            hole.listen(0)
            for _ in range(3):
                f = socket.socket()
                f.setblocking(False)
                try:
                    f.connect(hole.getsockname())
                except BlockingIOError:
                    pass
                fillers.append(f)
            yaml, ports = self.simple_policy("127.0.0.1:%d" % hole.getsockname()[1])
            yaml = yaml.replace("connect_timeout: 1s", "connect_timeout: 500ms")
            lv = self.start_levee(yaml, ports["probes"], ports["admin"], wait=False)
            self._wait_listening(lv, ports["listener"])
            t0 = time.monotonic()
            r = h.send_raw_resp(ports["listener"], get("/echo"), wait_close=0.1, timeout=20)
            elapsed = time.monotonic() - t0
            self.assertLocalReply(r, 503, "upstream_connect_failure")
            self.assertGreaterEqual(elapsed, 0.4, "answered before connect_timeout elapsed")
            self.assertLess(elapsed, h.deadline(5))
        finally:
            for f in fillers:
                f.close()
            hole.close()

    def test_no_healthy_upstream_503(self):
        up = self.start_upstream()
        routes = ("      - { name: ghost, match: { prefix: /ghost }, upstream: ghost }\n"
                  "      - { name: all, match: { prefix: / }, upstream: app }\n")
        yaml, ports = self.simple_policy(
            up.address, routes=routes,
            extra="")
        yaml = yaml.replace("upstreams:\n", "upstreams:\n  ghost: { endpoints: [ { address: "
                            "no-such-host.invalid:80 } ], connect_timeout: 1s }\n")
        lv = self.start_levee(yaml, ports["probes"], ports["admin"], wait=False)
        self._wait_listening(lv, ports["listener"])
        # DNS resolution is asynchronous: poll until it has failed and been recorded.
        def answered():
            r = h.send_raw_resp(ports["listener"], get("/ghost"), wait_close=0.1)
            return r if r.headers.get("x-levee-reason") == "no_healthy_upstream" else None
        r = h.poll(answered, 20, interval=0.2, what="503 no_healthy_upstream")
        self.assertLocalReply(r, 503, "no_healthy_upstream")
        self.assertEqual(h.send_raw_resp(ports["listener"], get("/echo"),
                                         wait_close=0.1).status, 200)

    def test_upstream_reset_before_response_502(self):
        lv, up, ports = self.levee_with_upstream()
        r = h.send_raw_resp(ports["listener"], get("/reset"), wait_close=0.1)
        self.assertLocalReply(r, 502, "upstream_reset")

    def test_upstream_reset_mid_body_truncates_and_closes(self):
        lv, up, ports = self.levee_with_upstream()
        r = h.send_raw_resp(ports["listener"], get("/reset-mid"), wait_close=5)
        self.assertEqual(r.status, 200, r)
        self.assertFalse(r.complete, "client saw a complete response after an upstream reset")
        self.assertLess(len(r.body), 100000)
        self.assertTrue(r.closed, "client connection not closed after upstream reset")

    def test_upstream_closes_after_response_next_request_ok(self):
        lv, up, ports = self.levee_with_upstream()
        with h.RawConn(ports["listener"]) as c:
            c.send(get("/close"))
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertTrue(r.json()["closing"])
            c.send(get("/echo?after=close"))
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["query"], "after=close")

    def test_upstream_overflow_503(self):
        up = self.start_upstream()
        yaml, ports = self.simple_policy(
            up.address,
            upstream_extra=", limits: { max_connections: 1, max_pending: 1, max_requests: 100 }")
        lv = self.start_levee(yaml, ports["probes"], ports["admin"], concurrency=1)
        up.reset_hits()
        results = {}

        def call(key, path):
            try:
                results[key] = h.send_raw_resp(ports["listener"], get(path), wait_close=0.1,
                                               timeout=20)
            except Exception as e:  # noqa: BLE001
                results[key] = e
        first = threading.Thread(target=call, args=("first", "/slow/2000"))
        first.start()
        h.poll(lambda: up.hits() >= 1, 10, what="first request at the upstream")
        others = [threading.Thread(target=call, args=("o%d" % i, "/slow/100")) for i in range(4)]
        for t in others:
            t.start()
        for t in [first] + others:
            t.join(h.deadline(30))
        self.assertEqual(results["first"].status, 200, results["first"])
        overflow = [r for k, r in results.items() if k != "first" and
                    getattr(r, "status", None) == 503]
        self.assertTrue(overflow, "no 503 with max_connections 1 + max_pending 1: %r" % results)
        for r in overflow:
            self.assertLocalReply(r, 503, "upstream_overflow")
        m = lv.metrics_parsed()
        self.assertGreaterEqual(h.metric_sum(m, "levee_upstream_overflow_total", upstream="app"),
                                len(overflow))
        self.assertGreaterEqual(h.metric_sum(m, "levee_local_replies_total",
                                             reason="upstream_overflow"), len(overflow))

    def test_no_route_404(self):
        up = self.start_upstream()
        routes = "      - { name: api, match: { prefix: /api }, upstream: app }\n"
        yaml, ports = self.simple_policy(up.address, routes=routes)
        self.start_levee(yaml, ports["probes"], ports["admin"])
        up.reset_hits()
        r = h.send_raw_resp(ports["listener"], get("/nothing/here"), wait_close=0.1)
        self.assertLocalReply(r, 404, "no_route")
        self.assertEqual(up.hits(), 0)

    def _wait_listening(self, lv, port):
        def listening():
            if not lv.alive():
                raise AssertionError("levee exited: " + h.tail(lv.stderr_path))
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        h.poll(listening, 30, what="levee listener accepting")
        h.poll(lambda: lv.probe("/health/live").status == 200, 30, what="live")


if __name__ == "__main__":
    unittest.main()
