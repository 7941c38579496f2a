"""HTTP/1.1 proxying: keep-alive, pipelining, framing, HEAD/204/304, 100-continue, WebSocket,
hop-by-hop headers, X-Forwarded-*, X-Request-Id, upstream connection reuse."""

import base64
import hashlib
import os
import threading
import unittest

import harness as h


def req(method, path, headers=(), body=b"", host="app.local"):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host]
    lines += ["%s: %s" % kv for kv in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def echo_headers(resp):
    """{lower-name: [values]} of the headers test_upstream's /echo received."""
    out = {}
    for k, v in resp.json()["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


class Http1ProxyTest(h.LeveeTestCase):

    def test_get_forwarded_to_upstream(self):
        lv, up, ports = self.levee_with_upstream()
        r = h.http_request(ports["listener"], "GET", "/echo?x=1&y=2")
        self.assertEqual(r.status, 200, r)
        j = r.json()
        self.assertEqual(j["name"], "app")
        self.assertEqual(j["method"], "GET")
        self.assertEqual(j["path"], "/echo")
        self.assertEqual(j["query"], "x=1&y=2")
        self.assertEqual(r.headers.get("x-upstream-name"), "app")
        self.assertEqual(up.hits(), 1)

    def test_keepalive_both_sides_with_two_workers(self):
        lv, up, ports = self.levee_with_upstream(concurrency=2)
        up.reset_hits()
        conn_ids = set()
        with h.RawConn(ports["listener"]) as c:
            for i in range(50):
                c.send(req("GET", "/echo?i=%d" % i))
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["query"], "i=%d" % i)
                conn_ids.add(r.json()["conn_id"])
            self.assertFalse(c.wait_closed(0.3), "levee closed a keep-alive client connection")
        self.assertLessEqual(len(conn_ids), 3,
                             "upstream connections not reused: %d distinct" % len(conn_ids))
        self.assertLessEqual(up.stats()["connections"], 4)  # + the /hits connections
        m = lv.metrics_parsed()
        self.assertTrue(h.metric_series(m, "levee_upstream_connections"),
                        "levee_upstream_connections missing")

    def test_pipelined_requests_answered_in_order(self):
        lv, up, ports = self.levee_with_upstream()
        with h.RawConn(ports["listener"]) as c:
            c.send(req("GET", "/slow/300") + req("GET", "/echo?n=1") +
                   req("POST", "/echo?n=2", [("Content-Length", "3")], b"abc") +
                   req("GET", "/size/10") + req("GET", "/echo?n=4"))
            r = c.read_response()
            self.assertEqual((r.status, r.json()["slept_ms"]), (200, 300))
            r = c.read_response()
            self.assertEqual(r.json()["query"], "n=1")
            r = c.read_response()
            self.assertEqual((r.json()["query"], r.json()["body_len"]), ("n=2", 3))
            r = c.read_response()
            self.assertEqual(r.body, h.pattern_bytes(0, 10))
            r = c.read_response()
            self.assertEqual(r.json()["query"], "n=4")

    def test_content_length_request_body(self):
        lv, up, ports = self.levee_with_upstream()
        body = os.urandom(300 * 1024)
        r = h.http_request(ports["listener"], "POST", "/echo", body=body,
                           headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body_len"], len(body))
        self.assertEqual(r.json()["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_chunked_request_body(self):
        lv, up, ports = self.levee_with_upstream()
        parts = [os.urandom(n) for n in (1, 1000, 70000, 5, 200000)]
        chunked = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
        with h.RawConn(ports["listener"]) as c:
            c.send(req("POST", "/echo", [("Transfer-Encoding", "chunked")], chunked))
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["body_len"], sum(map(len, parts)))
            self.assertEqual(r.json()["body_sha256"], hashlib.sha256(b"".join(parts)).hexdigest())
            # the connection stays usable after a chunked body
            c.send(req("GET", "/echo?after=1"))
            self.assertEqual(c.read_response().json()["query"], "after=1")

    def test_content_length_and_chunked_responses(self):
        lv, up, ports = self.levee_with_upstream()
        with h.RawConn(ports["listener"]) as c:
            for path, n in (("/size/0", 0), ("/size/123457", 123457), ("/chunked/1", 1),
                            ("/chunked/300001", 300001), ("/download/1000000", 1000000)):
                c.send(req("GET", path))
                r = c.read_response()
                self.assertEqual(r.status, 200, path)
                self.assertTrue(r.complete, path)
                self.assertEqual(len(r.body), n, path)
                self.assertEqual(r.body, h.pattern_bytes(0, n), path)

    def test_head_204_304_carry_no_body(self):
        lv, up, ports = self.levee_with_upstream()
        with h.RawConn(ports["listener"]) as c:
            c.send(req("HEAD", "/size/5000"))
            r = c.read_response(head_request=True)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"")
            c.send(req("HEAD", "/chunked/5000"))
            r = c.read_response(head_request=True)
            self.assertEqual(r.status, 200)
            c.send(req("GET", "/status/204"))
            r = c.read_response()
            self.assertEqual((r.status, r.body), (204, b""))
            self.assertNotIn("transfer-encoding", r.headers)
            c.send(req("GET", "/status/304"))
            r = c.read_response()
            self.assertEqual((r.status, r.body), (304, b""))
            self.assertNotIn("transfer-encoding", r.headers)
            # If any body bytes had leaked after HEAD/204/304 this response would be garbled.
            c.send(req("GET", "/echo?after=1"))
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json()["query"], "after=1")
            self.assertFalse(c.wait_closed(0.2))

    def test_expect_100_continue(self):
        lv, up, ports = self.levee_with_upstream()
        body = os.urandom(10000)
        with h.RawConn(ports["listener"]) as c:
            c.send(req("POST", "/continue", [("Expect", "100-continue"),
                                             ("Content-Length", str(len(body)))]))
            interim = c.read_response(skip_interim=False)
            self.assertEqual(interim.status, 100, "expected 100 Continue before the body")
            c.send(body)
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["body_len"], len(body))
            self.assertEqual(r.json()["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_websocket_upgrade_tunnelled(self):
        lv, up, ports = self.levee_with_upstream()
        key = base64.b64encode(os.urandom(16)).decode()
        expected = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC11B85").encode()).digest()).decode()
        with h.RawConn(ports["listener"]) as c:
            c.send(req("GET", "/ws", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                      ("Sec-WebSocket-Key", key),
                                      ("Sec-WebSocket-Version", "13")]))
            r = c.read_response()
            self.assertEqual(r.status, 101, r)
            self.assertEqual(r.headers.get("upgrade", "").lower(), "websocket")
            self.assertIn("upgrade", r.headers.get("connection", "").lower())
            self.assertEqual(r.headers.get("sec-websocket-accept"), expected)
            for msg in (b"\x81\x05hello", os.urandom(100000), b"\x88\x00"):
                c.send(msg)
                got = b""
                while len(got) < len(msg):
                    data = c.recv_some(timeout=10)
                    self.assertTrue(data, "tunnel closed early")
                    got += data
                self.assertEqual(got, msg)
            c.shutdown_write()  # upstream echoes until EOF, then closes its side
            self.assertTrue(c.wait_closed(10), "tunnel not closed after both sides finished")

    def test_hop_by_hop_request_headers_not_forwarded(self):
        lv, up, ports = self.levee_with_upstream()
        body = b"hello world"
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        with h.RawConn(ports["listener"]) as c:
            c.send(req("POST", "/echo", [
                ("Connection", "keep-alive, X-Secret-Hop"), ("X-Secret-Hop", "1"),
                ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"),
                ("TE", "trailers"), ("Trailer", "X-Foo"), ("Upgrade", "foo/1"),
                ("X-End-To-End", "kept"), ("Transfer-Encoding", "chunked")], chunked))
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        seen = echo_headers(r)
        for name in ("x-secret-hop", "keep-alive", "proxy-connection", "te", "trailer",
                     "upgrade"):
            self.assertNotIn(name, seen, "hop-by-hop header %s was forwarded" % name)
        for v in seen.get("connection", []):
            self.assertNotIn("x-secret-hop", v.lower())
        self.assertEqual(seen.get("x-end-to-end"), ["kept"])
        # Transfer-Encoding is re-framed: the body arrives intact whatever the framing.
        self.assertEqual(r.json()["body_len"], len(body))
        self.assertEqual(r.json()["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_hop_by_hop_response_headers_not_forwarded(self):
        lv, up, ports = self.levee_with_upstream()
        r = h.send_raw_resp(ports["listener"], req("GET", "/hop"), wait_close=0.2)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-kept"), "yes")
        self.assertNotIn("x-hop-secret", r.headers)
        self.assertNotIn("proxy-connection", r.headers)
        self.assertNotEqual(r.headers.get("keep-alive"), "timeout=30")
        self.assertNotIn("x-hop-secret", r.headers.get("connection", "").lower())

    def test_x_forwarded_for_and_proto(self):
        lv, up, ports = self.levee_with_upstream()
        r = h.http_request(ports["listener"], "GET", "/echo")
        seen = echo_headers(r)
        self.assertEqual(seen.get("x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(seen.get("x-forwarded-proto"), ["http"])
        r = h.http_request(ports["listener"], "GET", "/echo",
                           headers={"X-Forwarded-For": "203.0.113.7"})
        seen = echo_headers(r)
        self.assertEqual(seen.get("x-forwarded-for"), ["203.0.113.7, 127.0.0.1"])
        self.assertEqual(seen.get("x-forwarded-proto"), ["http"])

    def test_request_id_generated_or_passed_through(self):
        lv, up, ports = self.levee_with_upstream()
        r = h.http_request(ports["listener"], "GET", "/echo")
        seen = echo_headers(r)
        self.assertEqual(len(seen.get("x-request-id", [])), 1, seen)
        rid = seen["x-request-id"][0]
        self.assertGreaterEqual(len(rid), 8)
        self.assertEqual(r.headers.get("x-request-id"), rid,
                         "generated X-Request-Id not returned on the response")
        r2 = h.http_request(ports["listener"], "GET", "/echo")
        self.assertNotEqual(echo_headers(r2)["x-request-id"][0], rid, "request ids repeat")
        r = h.http_request(ports["listener"], "GET", "/echo",
                           headers={"X-Request-Id": "client-supplied-123"})
        self.assertEqual(echo_headers(r).get("x-request-id"), ["client-supplied-123"])

    def test_concurrent_clients(self):
        lv, up, ports = self.levee_with_upstream(concurrency=2)
        errors = []

        def client(k):
            try:
                with h.RawConn(ports["listener"]) as c:
                    for i in range(20):
                        c.send(req("GET", "/echo?c=%d&i=%d" % (k, i)))
                        r = c.read_response()
                        if r.status != 200 or r.json()["query"] != "c=%d&i=%d" % (k, i):
                            errors.append((k, i, r))
            except Exception as e:  # noqa: BLE001
                errors.append((k, e))
        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(h.deadline(60))
        self.assertFalse(any(t.is_alive() for t in threads), "clients hung")
        self.assertEqual(errors, [])
        self.assertEqual(up.hits(), 160)


if __name__ == "__main__":
    unittest.main()
