"""Route retries (proxy/router/README.md "Retries", docs/policy.md `retry`).

The origin is tests/test_common/test_upstream.py: /flaky/KEY?fail=N&status=S answers S to the
first N requests for KEY and 200 afterwards (per-KEY hits at /flaky/KEY/hits), /status/N always
answers N (?retry_after=V adds a Retry-After header), /slow/MS answers after MS ms. Each test
gets its own upstream, so /hits counts only its own requests.

Routes are picked by an `x-policy` request header (match.headers), so one levee serves several
retry policies.
"""

import threading
import time
import unittest

import harness as h


def retry_yaml(name, retry, match_extra="", timeout=None, upstream="app"):
    """One route (block style) with a `retry` flow mapping. match_extra: extra match keys."""
    match = "{ prefix: /%s }" % match_extra
    out = ("      - name: %s\n"
           "        match: %s\n"
           "        upstream: %s\n" % (name, match, upstream))
    if timeout:
        out += "        timeout: %s\n" % timeout
    out += "        retry: %s\n" % retry
    return out


class RetryBase(h.LeveeTestCase):

    def policy(self, routes, upstreams, limits=None):
        ports = {"listener": h.free_port(), "probes": h.free_port(), "admin": h.free_port()}
        lim = ""
        if limits:
            lim = "    limits: %s\n" % limits
        yaml = (
            "version: 1\n"
            "service: itest\n"
            "admin: { address: 127.0.0.1:%d }\n"
            "probes: { address: 127.0.0.1:%d }\n"
            "listeners:\n"
            "  - name: inbound\n"
            "    address: 127.0.0.1:%d\n"
            "    protocol: http\n"
            "%s"
            "    routes:\n"
            "%s"
            "upstreams:\n"
            "%s"
            "access_log: { path: stdout, format: json }\n"
            "drain: { delay: 0s, grace: 2s }\n"
        ) % (ports["admin"], ports["probes"], ports["listener"], lim, routes, upstreams)
        return yaml, ports

    def launch(self, routes, upstreams=None, limits=None, concurrency=1):
        if upstreams is None:
            self.up = self.start_upstream("app")
            upstreams = ("  app: { endpoints: [ { address: %s } ], connect_timeout: 1s }\n"
                         % self.up.address)
        yaml, self.ports = self.policy(routes, upstreams, limits)
        self.lv = self.start_levee(yaml, self.ports["probes"], self.ports["admin"],
                                   concurrency=concurrency)
        return self.lv

    # -- traffic ---------------------------------------------------------------------------------
    def req(self, method, path, headers=None, body=None, timeout=20.0):
        return h.http_request(self.ports["listener"], method, path, headers=headers, body=body,
                              timeout=timeout)

    def timed(self, method, path, headers=None, body=None, timeout=20.0):
        t0 = time.monotonic()
        r = self.req(method, path, headers, body, timeout)
        return r, time.monotonic() - t0

    def flaky_hits(self, key):
        return self.up.get("/flaky/%s/hits" % key).json()["hits"]

    # -- metrics ---------------------------------------------------------------------------------
    def metric(self, name, **labels):
        return h.metric_sum(self.lv.metrics_parsed(), name, **labels)

    def retries(self, result, **labels):
        return self.metric("levee_upstream_rq_retries_total", result=result, **labels)

    def log_entry(self, request_id):
        def find():
            for e in self.lv.access_log():
                if e.get("request_id") == request_id:
                    return e
            return None
        return h.poll(find, 10, interval=0.05, what="access log line of %s" % request_id)

    def assertFromUpstream(self, r, status):
        """A response the upstream produced (not a levee local reply)."""
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.headers.get("x-upstream-name"), "app", r)
        self.assertNotIn("x-levee-reason", r.headers, r)


RETRY_503 = ("{ max_retries: 2, on: [retriable-status], statuses: [503], "
             "backoff: { base: 10ms, max: 50ms } }")


class RetryConditionsTest(RetryBase):

    def test_flaky_upstream_retried_to_success(self):
        self.launch(retry_yaml("all", RETRY_503))
        r = self.req("GET", "/flaky/f1?fail=2&status=503", headers={"X-Request-Id": "flaky-1"})
        self.assertFromUpstream(r, 200)
        self.assertEqual(r.json()["attempt"], 3, r)
        self.assertEqual(self.flaky_hits("f1"), 3)
        self.assertEqual(self.up.hits(), 3)
        self.assertEqual(self.retries("attempted", upstream="app", route="all"), 2)
        self.assertEqual(self.retries("succeeded", upstream="app", route="all"), 1)
        self.assertEqual(self.retries("failed", upstream="app", route="all"), 0)
        e = self.log_entry("flaky-1")
        self.assertEqual(e.get("attempts"), 3, e)
        self.assertEqual(int(e.get("status")), 200, e)

        # A request that succeeds at once is one attempt and no retry.
        r = self.req("GET", "/flaky/f2?fail=0", headers={"X-Request-Id": "flaky-2"})
        self.assertFromUpstream(r, 200)
        self.assertEqual(self.log_entry("flaky-2").get("attempts"), 1)
        self.assertEqual(self.retries("attempted", upstream="app", route="all"), 2)

        # Exhausted retries: the last upstream 503 is passed through, counted as failed.
        r = self.req("GET", "/flaky/f3?fail=5&status=503", headers={"X-Request-Id": "flaky-3"})
        self.assertFromUpstream(r, 503)
        self.assertEqual(self.flaky_hits("f3"), 3)
        self.assertEqual(self.log_entry("flaky-3").get("attempts"), 3)
        self.assertEqual(self.retries("attempted", upstream="app", route="all"), 4)
        self.assertEqual(self.retries("failed", upstream="app", route="all"), 1)
        self.assertEqual(self.retries("succeeded", upstream="app", route="all"), 1)

    def test_post_needs_idempotency_key_or_methods(self):
        routes = (retry_yaml("post-ok", "{ max_retries: 2, on: [retriable-status], "
                             "statuses: [503], backoff: { base: 10ms, max: 50ms }, "
                             "methods: [POST] }", match_extra=", headers: { x-policy: post }")
                  + retry_yaml("all", RETRY_503))
        self.launch(routes)
        # POST is not idempotent: not retried, the upstream's 503 comes back.
        r = self.req("POST", "/flaky/p1?fail=1&status=503", body=b"order=1")
        self.assertFromUpstream(r, 503)
        self.assertEqual(self.flaky_hits("p1"), 1)
        self.assertEqual(self.retries("attempted", route="all"), 0)
        # ...unless it carries an Idempotency-Key (the body is sent again in full)...
        r = self.req("POST", "/flaky/p2?fail=1&status=503", body=b"order=2",
                     headers={"Idempotency-Key": "x"})
        self.assertFromUpstream(r, 200)
        self.assertEqual(r.json()["body_len"], 7, r)
        self.assertEqual(self.flaky_hits("p2"), 2)
        # ...or the route lists POST in `methods`.
        r = self.req("POST", "/flaky/p3?fail=1&status=503", body=b"order=3",
                     headers={"x-policy": "post"})
        self.assertFromUpstream(r, 200)
        self.assertEqual(r.json()["body_len"], 7, r)
        self.assertEqual(self.flaky_hits("p3"), 2)
        # PUT and DELETE are idempotent: retried without a key.
        r = self.req("PUT", "/flaky/p4?fail=1&status=503", body=b"v=4")
        self.assertFromUpstream(r, 200)
        self.assertEqual(self.flaky_hits("p4"), 2)
        r = self.req("DELETE", "/flaky/p5?fail=1&status=503")
        self.assertFromUpstream(r, 200)
        self.assertEqual(self.flaky_hits("p5"), 2)
        self.assertEqual(self.retries("attempted", route="all"), 3)
        self.assertEqual(self.retries("attempted", route="post-ok"), 1)

    def test_gateway_error_5xx_and_unlisted_status(self):
        def route(name, on, extra=""):
            return retry_yaml(name, "{ max_retries: 1, on: [%s], backoff: { base: 10ms, "
                              "max: 20ms }%s }" % (on, extra),
                              match_extra=", headers: { x-policy: %s }" % name)
        routes = (route("gw", "gateway-error") + route("any5xx", "5xx")
                  + route("only503", "retriable-status", ", statuses: [503]"))
        self.launch(routes)

        cases = [
            # (route, status, retried?)
            ("gw", 502, True), ("gw", 503, True), ("gw", 504, True),
            ("gw", 500, False), ("gw", 429, False),
            ("any5xx", 500, True), ("any5xx", 501, True), ("any5xx", 503, True),
            ("any5xx", 429, False), ("any5xx", 404, False),
            ("only503", 503, True), ("only503", 502, False), ("only503", 500, False),
        ]
        for i, (name, status, retried) in enumerate(cases):
            with self.subTest(route=name, status=status):
                key = "g%d" % i
                r = self.req("GET", "/flaky/%s?fail=1&status=%d" % (key, status),
                             headers={"x-policy": name})
                if retried:
                    self.assertFromUpstream(r, 200)
                    self.assertEqual(self.flaky_hits(key), 2)
                else:
                    self.assertFromUpstream(r, status)
                    self.assertEqual(self.flaky_hits(key), 1)
        self.assertEqual(self.retries("attempted", route="gw"), 3)
        self.assertEqual(self.retries("attempted", route="any5xx"), 3)
        self.assertEqual(self.retries("attempted", route="only503"), 1)

    def test_connect_failure_retried_on_another_endpoint(self):
        self.up = self.start_upstream("app")
        dead = "127.0.0.1:%d" % h.free_port()  # nothing listens there
        upstreams = ("  app:\n"
                     "    endpoints: [ { address: %s }, { address: %s } ]\n"
                     "    load_balancer: round_robin\n"
                     "    connect_timeout: 1s\n" % (dead, self.up.address))
        self.launch(retry_yaml("all", "{ max_retries: 1, on: [connect-failure], "
                               "backoff: { base: 10ms, max: 20ms } }"), upstreams=upstreams)
        n = 8
        for i in range(n):
            # POST without Idempotency-Key: a connect failure sent nothing, so it is safe.
            r = self.req("POST", "/echo", body=b"payload-%d" % i,
                         headers={"X-Request-Id": "cf-%d" % i})
            self.assertFromUpstream(r, 200)
            self.assertEqual(r.json()["body_len"], len(b"payload-%d" % i), r)
        self.assertEqual(self.up.hits(), n)
        attempted = self.retries("attempted", upstream="app", route="all")
        # Round robin sends about half of the first attempts to the dead endpoint.
        self.assertGreaterEqual(attempted, 1)
        self.assertLessEqual(attempted, n)
        self.assertEqual(self.retries("succeeded", upstream="app", route="all"), attempted)
        attempts = [self.log_entry("cf-%d" % i).get("attempts") for i in range(n)]
        self.assertTrue(all(a in (1, 2) for a in attempts), attempts)
        self.assertEqual(sum(a - 1 for a in attempts), attempted, attempts)


class RetryTimingTest(RetryBase):

    def test_per_try_timeout_within_route_timeout(self):
        self.launch(retry_yaml("all", "{ max_retries: 2, on: [timeout], per_try_timeout: 100ms, "
                               "backoff: { base: 10ms, max: 20ms } }", timeout="1s"))
        r, elapsed = self.timed("GET", "/slow/400", headers={"X-Request-Id": "ptt-1"})
        self.assertLocalReply(r, 504, "upstream_timeout")
        # Three tries of 100 ms each, plus small backoffs: well before the 1 s route timeout.
        self.assertGreaterEqual(elapsed, 0.29, r)
        self.assertLess(elapsed, h.deadline(0.8), r)
        h.poll(lambda: self.up.hits() == 3, 5, what="3 upstream hits")
        self.assertEqual(self.log_entry("ptt-1").get("attempts"), 3)
        self.assertEqual(self.retries("attempted", route="all"), 2)
        self.assertEqual(self.retries("failed", route="all"), 1)

    def test_route_timeout_bounds_all_tries(self):
        # Six tries of 100 ms would take 600 ms; the 250 ms route timeout ends them early.
        self.launch(retry_yaml("all", "{ max_retries: 5, on: [timeout], per_try_timeout: 100ms, "
                               "backoff: { base: 10ms, max: 20ms } }", timeout="250ms"))
        r, elapsed = self.timed("GET", "/slow/400", headers={"X-Request-Id": "rt-1"})
        self.assertLocalReply(r, 504, "upstream_timeout")
        self.assertGreaterEqual(elapsed, 0.24, r)
        self.assertLess(elapsed, 0.25 + h.deadline(0.2), r)
        attempts = self.log_entry("rt-1").get("attempts")
        # 0-100 ms, ~110-210 ms, and maybe a third try cut short at 250 ms; never six.
        self.assertIn(attempts, (2, 3))
        h.poll(lambda: self.up.hits() == attempts, 5,
               what="upstream hits == attempts (%s)" % attempts)

    def test_honor_retry_after(self):
        routes = (retry_yaml("tight", "{ max_retries: 1, on: [retriable-status], "
                             "statuses: [503], backoff: { base: 10ms, max: 20ms } }",
                             match_extra=", headers: { x-policy: tight }", timeout="500ms")
                  + retry_yaml("ignore", "{ max_retries: 1, on: [retriable-status], "
                               "statuses: [503], backoff: { base: 10ms, max: 20ms }, "
                               "honor_retry_after: false }",
                               match_extra=", headers: { x-policy: ignore }")
                  + retry_yaml("all", "{ max_retries: 1, on: [retriable-status], "
                               "statuses: [503], backoff: { base: 10ms, max: 20ms } }"))
        self.launch(routes)
        # Retry-After: 1 replaces the 10..20 ms backoff.
        r, elapsed = self.timed("GET", "/flaky/ra1?fail=1&status=503&retry_after=1")
        self.assertFromUpstream(r, 200)
        self.assertEqual(self.flaky_hits("ra1"), 2)
        self.assertGreaterEqual(elapsed, 0.9, r)
        self.assertLess(elapsed, 1.0 + h.deadline(1.0), r)
        # With honor_retry_after: false the backoff is used.
        r, elapsed = self.timed("GET", "/flaky/ra2?fail=1&status=503&retry_after=1",
                                headers={"x-policy": "ignore"})
        self.assertFromUpstream(r, 200)
        self.assertEqual(self.flaky_hits("ra2"), 2)
        self.assertLess(elapsed, h.deadline(0.5), r)
        # A Retry-After past the 500 ms route timeout: no retry, the 503 comes back at once.
        r, elapsed = self.timed("GET", "/flaky/ra3?fail=1&status=503&retry_after=1",
                                headers={"x-policy": "tight"})
        self.assertFromUpstream(r, 503)
        self.assertEqual(r.headers.get("retry-after"), "1", r)
        self.assertEqual(self.flaky_hits("ra3"), 1)
        self.assertLess(elapsed, h.deadline(0.4), r)
        self.assertEqual(self.retries("attempted", route="tight"), 0)

    def test_body_over_max_body_bytes_not_retried(self):
        self.launch(retry_yaml("all", "{ max_retries: 2, on: [retriable-status], "
                               "statuses: [503], backoff: { base: 10ms, max: 20ms }, "
                               "max_body_bytes: 1KiB }"))
        big = h.pattern_bytes(0, 4096)
        r = self.req("PUT", "/flaky/big?fail=5&status=503", body=big)
        self.assertFromUpstream(r, 503)
        self.assertEqual(r.json()["body_len"], 4096, r)
        self.assertEqual(self.flaky_hits("big"), 1)
        self.assertEqual(self.retries("attempted", route="all"), 0)
        # Within the limit the same request is retried, and the retry carries the whole body.
        small = h.pattern_bytes(0, 512)
        r = self.req("PUT", "/flaky/small?fail=2&status=503", body=small)
        self.assertFromUpstream(r, 200)
        self.assertEqual(r.json()["body_len"], 512, r)
        self.assertEqual(r.json()["body_sha256"], h.body_sha256(512), r)
        self.assertEqual(self.flaky_hits("small"), 3)
        self.assertEqual(self.retries("attempted", route="all"), 2)


class RetryBudgetTest(RetryBase):

    N = 200
    CONCURRENCY = 20

    def storm(self):
        """N GETs of an always-503 path from CONCURRENCY threads. Returns the statuses."""
        statuses = []
        lock = threading.Lock()
        it = iter(range(self.N))
        errors = []

        def worker():
            while True:
                with lock:
                    i = next(it, None)
                if i is None:
                    return
                try:
                    r = self.req("GET", "/status/503", timeout=30)
                    with lock:
                        statuses.append(r.status)
                except Exception as e:  # noqa: BLE001 - reported below
                    with lock:
                        errors.append(repr(e))
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(self.CONCURRENCY)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(h.deadline(60))
        self.assertFalse(any(t.is_alive() for t in threads), "storm threads still running")
        self.assertEqual(errors, [])
        self.assertEqual(len(statuses), self.N)
        self.assertEqual(set(statuses), {503})
        return statuses

    def check_storm(self, budget, max_factor):
        self.launch(retry_yaml("all", "{ max_retries: 3, on: [retriable-status], "
                               "statuses: [503], backoff: { base: 10ms, max: 50ms }, "
                               "budget: %s }" % budget), concurrency=2)
        self.storm()
        hits = self.up.hits()
        attempted = self.retries("attempted", upstream="app", route="all")
        exhausted = self.metric("levee_retry_budget_exhausted_total", upstream="app")
        msg = "hits=%d attempted=%d exhausted=%d" % (hits, attempted, exhausted)
        # Without a budget every request would be tried 4 times (800 hits).
        self.assertGreaterEqual(hits, self.N, msg)
        self.assertLessEqual(hits, max_factor * self.N, msg)
        self.assertEqual(attempted, hits - self.N, msg)
        self.assertGreater(exhausted, 0, msg)
        # Every retried request still ended in a 503: none succeeded.
        self.assertEqual(self.retries("succeeded", route="all"), 0, msg)
        self.assertLessEqual(self.retries("failed", route="all"), attempted, msg)
        return hits

    def test_concurrency_budget_bounds_a_retry_storm(self):
        self.check_storm("{ percent: 20, min_concurrency: 1 }", 1.5)

    def test_token_budget_bounds_a_retry_storm(self):
        self.check_storm("{ ratio: 0.1, min_per_second: 1, ttl: 10s }", 1.4)


if __name__ == "__main__":
    unittest.main()
