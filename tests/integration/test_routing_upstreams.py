"""Routing (first match wins; path/prefix/regex/methods/headers/host), load balancing,
DNS-named endpoints, and nginx as a real upstream."""

import hashlib
import os
import threading
import unittest

import harness as h


def get(path, method="GET", headers=(), host="svc.local"):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host]
    lines += ["%s: %s" % kv for kv in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RoutingTest(h.LeveeTestCase):
    """Each route points at its own upstream, so the responder's name tells which route won."""

    def setUp(self):
        super().setUp()
        ups = {n: self.start_upstream(n) for n in ("exact", "rx", "canary", "main", "slowup")}
        self.ups = ups
        ports = {"listener": h.free_port(), "probes": h.free_port(), "admin": h.free_port()}
        self.ports = ports
        yaml = """
        version: 1
        service: itest
        admin: { address: 127.0.0.1:%(admin)d }
        probes: { address: 127.0.0.1:%(probes)d }
        listeners:
          - name: inbound
            address: 127.0.0.1:%(listener)d
            protocol: http
            routes:
              - { name: slow, match: { prefix: /slow }, upstream: slowup, timeout: 300ms }
              - { name: exact, match: { path: /exact }, upstream: exact }
              - { name: rx, match: { regex: "^/items/[0-9]+$" }, upstream: rx }
              - { name: first, match: { prefix: /first }, upstream: exact }
              - { name: shadowed, match: { prefix: /first/inner }, upstream: rx }
              - name: canary
                match: { prefix: /api, methods: [GET, HEAD], headers: { x-canary: "1" }, host: a.example }
                upstream: canary
              - { name: api, match: { prefix: /api, methods: [GET, POST, HEAD, PUT, DELETE] }, upstream: main }
        upstreams:
          exact: { endpoints: [ { address: %(exact)s } ] }
          rx: { endpoints: [ { address: %(rx)s } ] }
          canary: { endpoints: [ { address: %(canary)s } ] }
          main: { endpoints: [ { address: %(main)s } ] }
          slowup: { endpoints: [ { address: %(slowup)s } ] }
        access_log: { path: stdout, format: json }
        drain: { delay: 0s, grace: 5s }
        """ % dict(ports, **{n: u.address for n, u in ups.items()})
        self.lv = self.start_levee(yaml, ports["probes"], ports["admin"], concurrency=2)

    def who(self, path, method="GET", headers=(), host="svc.local"):
        r = h.send_raw_resp(self.ports["listener"], get(path, method, headers, host),
                            wait_close=0, timeout=10)
        if r.status == 404 and r.headers.get("x-levee-reason") == "no_route":
            return "no_route"
        self.assertEqual(r.status, 200, (path, r))
        return r.headers.get("x-upstream-name")

    def test_exact_path(self):
        self.assertEqual(self.who("/exact"), "exact")
        self.assertEqual(self.who("/exact?q=1"), "exact")
        self.assertEqual(self.who("/exact/more"), "no_route")
        self.assertEqual(self.who("/exactly"), "no_route")

    def test_regex_whole_path(self):
        self.assertEqual(self.who("/items/42"), "rx")
        self.assertEqual(self.who("/items/42x"), "no_route")
        self.assertEqual(self.who("/items/42/sub"), "no_route")
        self.assertEqual(self.who("/x/items/42"), "no_route")

    def test_prefix_first_match_wins(self):
        self.assertEqual(self.who("/first"), "exact")
        self.assertEqual(self.who("/first/inner/x"), "exact")

    def test_methods_headers_host(self):
        canary = [("x-canary", "1")]
        self.assertEqual(self.who("/api/v1", "GET", canary, "a.example"), "canary")
        self.assertEqual(self.who("/api/v1", "GET", canary, "a.example:8080"), "canary",
                         "host match must ignore the port")
        self.assertEqual(self.who("/api/v1", "GET", [("X-Canary", "1")], "A.Example"), "canary")
        self.assertEqual(self.who("/api/v1", "POST", canary, "a.example"), "main")
        self.assertEqual(self.who("/api/v1", "GET", [("x-canary", "2")], "a.example"), "main")
        self.assertEqual(self.who("/api/v1", "GET", [], "a.example"), "main")
        self.assertEqual(self.who("/api/v1", "GET", canary, "b.example"), "main")
        self.assertEqual(self.who("/api/v1", "PATCH"), "no_route")

    def test_no_route_local_reply(self):
        r = h.send_raw_resp(self.ports["listener"], get("/unknown"), wait_close=0)
        self.assertLocalReply(r, 404, "no_route")
        for u in self.ups.values():
            self.assertEqual(u.hits(), 0)

    def test_route_timeout(self):
        r = h.send_raw_resp(self.ports["listener"], get("/slow/2000"), wait_close=0)
        self.assertLocalReply(r, 504, "upstream_timeout")


class LoadBalancingTest(h.LeveeTestCase):

    def _two(self, lb, delay_b=0):
        a = self.start_upstream("a")
        b = self.start_upstream("b", delay_ms=delay_b)
        ports = {"listener": h.free_port(), "probes": h.free_port(), "admin": h.free_port()}
        yaml = """
        version: 1
        service: itest
        admin: { address: 127.0.0.1:%d }
        probes: { address: 127.0.0.1:%d }
        listeners:
          - { name: inbound, address: 127.0.0.1:%d, protocol: http,
              routes: [ { name: all, match: { prefix: / }, upstream: app } ] }
        upstreams:
          app:
            endpoints: [ { address: %s }, { address: %s } ]
            load_balancer: %s
            connect_timeout: 1s
        access_log: { path: "off" }
        """ % (ports["admin"], ports["probes"], ports["listener"], a.address, b.address, lb)
        self.start_levee(yaml, ports["probes"], ports["admin"], concurrency=1)
        a.reset_hits()
        b.reset_hits()
        return a, b, ports

    def test_round_robin_splits_evenly(self):
        a, b, ports = self._two("round_robin")
        names = []
        with h.RawConn(ports["listener"]) as c:
            for i in range(100):
                c.send(get("/echo"))
                r = c.read_response()
                self.assertEqual(r.status, 200)
                names.append(r.headers["x-upstream-name"])
        self.assertEqual(a.hits() + b.hits(), 100)
        self.assertTrue(40 <= names.count("a") <= 60, "round robin split %d/%d"
                        % (names.count("a"), names.count("b")))

    def test_least_request_avoids_slow_endpoint(self):
        a, b, ports = self._two("least_request", delay_b=300)
        errors = []

        def client():
            try:
                with h.RawConn(ports["listener"], timeout=30) as c:
                    for _ in range(15):
                        c.send(get("/echo"))
                        if c.read_response().status != 200:
                            errors.append("status")
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(h.deadline(120))
        self.assertEqual(errors, [])
        ha, hb = a.hits(), b.hits()
        self.assertEqual(ha + hb, 90)
        self.assertLess(hb, ha / 2, "least_request sent %d to the slow endpoint, %d to the fast"
                        % (hb, ha))


class UpstreamKindsTest(h.LeveeTestCase):

    def test_dns_named_endpoint(self):
        up = self.start_upstream()
        yaml, ports = self.simple_policy("localhost:%d" % up.port)
        self.start_levee(yaml, ports["probes"], ports["admin"])
        r = h.poll(lambda: (lambda r: r if r.status == 200 else None)(
            h.http_request(ports["listener"], "GET", "/echo")), 15, interval=0.1,
            what="200 through a DNS-named endpoint")
        self.assertEqual(r.json()["name"], "app")

    def test_nginx_static_file_byte_for_byte(self):
        ng = self.start_nginx()
        big = os.urandom(5 * 1024 * 1024 + 17)
        ng.add_file("big.bin", big)
        ng.add_file("index.html", b"<h1>hello from nginx</h1>\n")
        ng.start()
        yaml, ports = self.simple_policy(ng.address)
        self.start_levee(yaml, ports["probes"], ports["admin"])
        with h.RawConn(ports["listener"]) as c:
            c.send(get("/big.bin"))
            r = c.read_response()
            self.assertEqual(r.status, 200, r.headers)
            self.assertEqual(len(r.body), len(big))
            self.assertEqual(hashlib.sha256(r.body).hexdigest(), hashlib.sha256(big).hexdigest())
            c.send(get("/index.html"))
            r = c.read_response()
            self.assertEqual(r.body, b"<h1>hello from nginx</h1>\n")
            c.send(get("/missing"))
            self.assertEqual(c.read_response().status, 404)


if __name__ == "__main__":
    unittest.main()
