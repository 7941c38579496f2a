"""Upstream resilience: circuit breaker, outlier detection, active health checks, priority
failover, and breaker state across a reload (DESIGN.md sections 5, 7, 9; docs/policy.md).

The test upstreams are switched into failing mode at run time with POST /control/fail?status=N
(every later request, /healthz included, answers N) and back with POST /control/ok
(tests/test_common/test_upstream.py). Which endpoint answered is read from X-Upstream-Name.
"""

import collections
import json
import signal
import threading
import time
import unittest

import harness as h


def ctl(up, action, status=None):
    """POST /control/<action> on a test upstream (bypasses levee)."""
    path = "/control/%s" % action
    if status is not None:
        path += "?status=%s" % status
    r = h.http_request(up.port, "POST", path)
    assert r.status == 200, r
    return r.json()


class ResilienceBase(h.LeveeTestCase):
    """Helpers shared by the resilience and load-balancing tests."""

    def policy(self, upstreams, routes=None, ready_requires=None, ports=None):
        """A policy with one http listener. `upstreams` is the YAML text of the upstreams
        mapping (entries indented by 2 spaces). Returns (yaml, ports); pass `ports` to reuse
        the addresses of a running levee."""
        if ports is None:
            ports = {"listener": h.free_port(), "probes": h.free_port(),
                     "admin": h.free_port()}
        tf, tok = self.token_file()
        ports["token"] = tok
        if routes is None:
            routes = "      - { name: all, match: { prefix: / }, upstream: app }\n"
        probes = "probes: { address: 127.0.0.1:%d }" % ports["probes"]
        if ready_requires:
            probes = "probes: { address: 127.0.0.1:%d, ready_requires: [%s] }" % (
                ports["probes"], ", ".join(ready_requires))
        yaml = (
            "version: 1\n"
            "service: itest\n"
            "admin: { address: 127.0.0.1:%d, token_file: %s }\n"
            "%s\n"
            "listeners:\n"
            "  - name: inbound\n"
            "    address: 127.0.0.1:%d\n"
            "    protocol: http\n"
            "    routes:\n"
            "%s"
            "upstreams:\n"
            "%s"
            "access_log: { path: off, format: json }\n"
            "drain: { delay: 0s, grace: 2s }\n"
        ) % (ports["admin"], tf, probes, ports["listener"], routes, upstreams)
        return yaml, ports

    def launch(self, upstreams, routes=None, ready_requires=None, concurrency=1):
        yaml, ports = self.policy(upstreams, routes, ready_requires)
        self.ports = ports
        self.lv = self.start_levee(yaml, ports["probes"], ports["admin"],
                                   concurrency=concurrency)
        return self.lv

    # -- traffic ---------------------------------------------------------------------------------
    def get(self, path="/", headers=None, timeout=15.0):
        return h.http_request(self.ports["listener"], "GET", path, headers=headers,
                              timeout=timeout)

    def who(self, path="/whoami", headers=None):
        """Name of the endpoint that served a 200, or the local-reply reason / status."""
        r = self.get(path, headers)
        if r.status == 200:
            return r.headers.get("x-upstream-name")
        return r.headers.get("x-levee-reason") or "status-%d" % r.status

    def spread(self, n, path="/whoami", headers=None):
        return collections.Counter(self.who(path, headers) for _ in range(n))

    def fire_concurrently(self, n, path):
        """n requests on n connections, released together. Returns the list of Resp."""
        barrier = threading.Barrier(n)
        out = [None] * n

        def one(i):
            try:
                barrier.wait(timeout=h.deadline(10))
                out[i] = self.get(path, timeout=30)
            except Exception as e:  # noqa: BLE001 - reported by the assertions below
                out[i] = e
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        return threads, out

    # -- admin / metrics -------------------------------------------------------------------------
    def breakers(self):
        r = self.lv.admin("GET", "/admin/circuit-breakers")
        self.assertEqual(r.status, 200, r)
        return {b["upstream"]: b for b in r.json()["circuit_breakers"]}

    def breaker(self, upstream="app"):
        return self.breakers()[upstream]

    def cb_action(self, upstream, action, token=True):
        tok = self.ports["token"] if token else None
        return self.lv.admin("POST", "/admin/circuit-breakers/%s/%s" % (upstream, action),
                             token=tok)

    def resolved(self, upstream="app"):
        """{address: {"address","health","ejected","state"}} of an upstream's endpoints."""
        r = self.lv.admin("GET", "/admin/clusters")
        self.assertEqual(r.status, 200, r)
        for up in r.json()["upstreams"]:
            if up["name"] == upstream:
                out = {}
                for ep in up["endpoints"]:
                    for res in ep["resolved"]:
                        out[res["address"]] = res
                return out
        self.fail("upstream %s not in /admin/clusters" % upstream)

    def metric(self, name, **labels):
        return h.metric_sum(self.lv.metrics_parsed(), name, **labels)

    def wait_health(self, up, health, upstream="app", timeout=15):
        h.poll(lambda: self.resolved(upstream)[up.address]["health"] == health, timeout,
               what="%s health == %s" % (up.name, health))

    def assertBreakerOpenReply(self, r):
        self.assertLocalReply(r, 503, "breaker_open")
        self.assertNotIn("x-upstream-name", r.headers, r)
        ra = r.headers.get("retry-after")
        self.assertIsNotNone(ra, r)
        self.assertTrue(ra.isdigit(), r)
        self.assertGreaterEqual(int(ra), 1, r)
        return int(ra)

    def assertUpstream503(self, r, name="app"):
        """A 503 that came from the upstream itself (not a local reply)."""
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.headers.get("x-upstream-name"), name, r)
        self.assertNotIn("x-levee-reason", r.headers, r)


# =================================================================================================
# Circuit breaker
# =================================================================================================

class CircuitBreakerTest(ResilienceBase):

    def start(self, cb, concurrency=2, extra_upstreams="", routes=None):
        self.up = self.start_upstream("app")
        return self.launch(
            "  app:\n"
            "    endpoints: [ { address: %s } ]\n"
            "    circuit_breaker: %s\n%s" % (self.up.address, cb, extra_upstreams),
            routes=routes, concurrency=concurrency)

    def trip(self, n):
        """n requests that each reach the failing upstream and get its 503."""
        for i in range(n):
            self.assertUpstream503(self.get("/fail-%d" % i))

    def test_opens_after_consecutive_failures_and_stops_traffic(self):
        self.start("{ consecutive_failures: 3, open_for: 20s, max_open_for: 1m }")
        self.assertEqual(self.metric("levee_circuit_breaker_state", upstream="app"), 0)
        b = self.breaker()
        for key in ("upstream", "state", "forced", "mode", "consecutive_failures",
                    "failure_rate_percent", "probes_in_flight", "time_until_half_open_ms",
                    "rejected_total"):
            self.assertIn(key, b)
        self.assertEqual((b["state"], b["forced"], b["mode"]), ("closed", False, "enforce"))
        # A success in between resets the consecutive count.
        ctl(self.up, "fail", 503)
        self.trip(2)
        self.assertEqual(self.breaker()["consecutive_failures"], 2)
        ctl(self.up, "ok")
        self.assertEqual(self.get("/").status, 200)
        self.assertEqual(self.breaker()["state"], "closed")
        self.assertEqual(self.breaker()["consecutive_failures"], 0)
        # 4xx are not failures by default.
        for _ in range(4):
            self.assertEqual(self.get("/status/404").status, 404)
        self.assertEqual(self.breaker()["state"], "closed")

        ctl(self.up, "fail", 503)
        self.trip(3)
        hits = self.up.hits()
        for _ in range(6):
            ra = self.assertBreakerOpenReply(self.get("/after-trip"))
            self.assertLessEqual(ra, 23)  # 20 s + 10 % jitter, rounded up
        self.assertEqual(self.up.hits(), hits, "requests reached the upstream while open")

        b = self.breaker()
        self.assertEqual(b["state"], "open", b)
        self.assertFalse(b["forced"], b)
        self.assertGreater(b["time_until_half_open_ms"], 10000, b)
        self.assertLessEqual(b["time_until_half_open_ms"], 22000, b)
        self.assertGreaterEqual(b["rejected_total"], 6, b)
        m = self.lv.metrics_parsed()
        self.assertEqual(h.metric_sum(m, "levee_circuit_breaker_state", upstream="app"), 2)
        self.assertEqual(h.metric_sum(m, "levee_circuit_breaker_transitions_total",
                                      upstream="app", to="open"), 1)
        self.assertGreaterEqual(h.metric_sum(m, "levee_circuit_breaker_rejected_total",
                                             upstream="app", mode="enforce"), 6)
        self.assertEqual(h.metric_sum(m, "levee_circuit_breaker_rejected_total",
                                      upstream="app", mode="shadow"), 0)
        self.assertEqual(h.metric_sum(m, "levee_local_replies_total", reason="breaker_open"), 6)

    def test_connect_failures_trip_the_breaker(self):
        dead = h.free_port()  # nothing listens here
        self.launch("  app:\n"
                    "    endpoints: [ { address: 127.0.0.1:%d } ]\n"
                    "    connect_timeout: 500ms\n"
                    "    circuit_breaker: { consecutive_failures: 3, open_for: 20s }\n" % dead)
        for _ in range(3):
            r = self.get("/")
            self.assertIn(r.status, (502, 503), r)
            self.assertNotEqual(r.headers.get("x-levee-reason"), "breaker_open", r)
        self.assertBreakerOpenReply(self.get("/"))
        self.assertEqual(self.breaker()["state"], "open")

    def test_failure_rate_trigger_needs_minimum_requests(self):
        self.start("{ failure_rate: { threshold_percent: 50, minimum_requests: 10, window: 10s },"
                   " open_for: 20s }")
        for _ in range(9):
            self.assertEqual(self.get("/status/500").status, 500)
        b = self.breaker()
        self.assertEqual(b["state"], "closed", "opened below minimum_requests: %r" % b)
        self.assertEqual(b["failure_rate_percent"], 100, b)
        self.assertEqual(self.metric("levee_circuit_breaker_failure_rate_percent",
                                     upstream="app"), 100)
        self.assertEqual(self.get("/").status, 200)  # 10th request: 9/10 = 90 % >= 50 %
        b = self.breaker()
        self.assertEqual(b["state"], "open", b)
        self.assertBreakerOpenReply(self.get("/"))

    def wait_half_open_due(self):
        h.poll(lambda: self.breaker()["time_until_half_open_ms"] == 0, 10,
               what="open_for to elapse")

    def test_half_open_admits_exactly_permitted_probes_then_closes(self):
        self.start("{ consecutive_failures: 2, open_for: 1s, max_open_for: 10s,"
                   " half_open: { permitted: 2, successes_to_close: 2, max_wait: 10s } }")
        ctl(self.up, "fail", 503)
        self.trip(2)
        self.assertBreakerOpenReply(self.get("/"))
        ctl(self.up, "ok")
        self.wait_half_open_due()
        hits = self.up.hits()

        threads, out = self.fire_concurrently(6, "/slow/800")
        # While the probes are in flight the breaker is half-open.
        h.poll(lambda: self.up.hits() >= hits + 2, 10, what="2 probes at the upstream")
        b = self.breaker()
        self.assertEqual(b["state"], "half_open", b)
        self.assertEqual(b["probes_in_flight"], 2, b)
        self.assertEqual(self.metric("levee_circuit_breaker_state", upstream="app"), 1)
        for t in threads:
            t.join(h.deadline(30))
        for r in out:
            self.assertIsInstance(r, h.Resp, r)
        ok = [r for r in out if r.status == 200]
        rejected = [r for r in out if r.headers.get("x-levee-reason") == "breaker_open"]
        self.assertEqual(len(ok), 2, out)
        self.assertEqual(len(rejected), 4, out)
        for r in rejected:
            self.assertBreakerOpenReply(r)
        self.assertEqual(self.up.hits(), hits + 2, "more than `permitted` probes were sent")

        h.poll(lambda: self.breaker()["state"] == "closed", 10, what="breaker closed")
        self.assertEqual(self.metric("levee_circuit_breaker_state", upstream="app"), 0)
        m = self.lv.metrics_parsed()
        for to, n in (("open", 1), ("half_open", 1), ("closed", 1)):
            self.assertEqual(h.metric_sum(m, "levee_circuit_breaker_transitions_total",
                                          upstream="app", to=to), n, to)
        for _ in range(5):
            self.assertEqual(self.get("/").status, 200)

    def test_failed_probe_reopens_with_doubled_open_for(self):
        self.start("{ consecutive_failures: 2, open_for: 500ms, max_open_for: 1s,"
                   " half_open: { permitted: 1, successes_to_close: 1 } }")
        ctl(self.up, "fail", 503)
        self.trip(2)
        b = self.breaker()
        self.assertEqual((b["state"], b["open_for_ms"]), ("open", 500), b)

        for expected_open_for in (1000, 1000):  # doubled, then capped by max_open_for
            self.wait_half_open_due()
            hits = self.up.hits()
            self.assertUpstream503(self.get("/probe"))  # the probe reaches the upstream, fails
            self.assertEqual(self.up.hits(), hits + 1)
            b = self.breaker()
            self.assertEqual(b["state"], "open", b)
            self.assertEqual(b["open_for_ms"], expected_open_for, b)
            self.assertGreater(b["time_until_half_open_ms"], 600, b)  # >= 1 s - 10 % - slack
            self.assertLessEqual(b["time_until_half_open_ms"], 1100, b)
            self.assertBreakerOpenReply(self.get("/"))
            self.assertEqual(self.up.hits(), hits + 1)
        self.assertEqual(self.metric("levee_circuit_breaker_transitions_total", upstream="app",
                                     to="open"), 3)
        self.assertEqual(self.metric("levee_circuit_breaker_transitions_total", upstream="app",
                                     to="half_open"), 2)

    def test_shadow_mode_never_blocks(self):
        self.start("{ consecutive_failures: 2, open_for: 20s, mode: shadow }")
        self.assertEqual(self.breaker()["mode"], "shadow")
        ctl(self.up, "fail", 503)
        hits = self.up.hits()
        for i in range(10):
            self.assertUpstream503(self.get("/shadow-%d" % i))
        self.assertEqual(self.up.hits(), hits + 10)
        ctl(self.up, "ok")
        for _ in range(3):
            self.assertEqual(self.get("/").status, 200)
        self.assertEqual(self.up.hits(), hits + 13)
        m = self.lv.metrics_parsed()
        # Requests 3..13 arrived while the (shadow) breaker was open.
        self.assertEqual(h.metric_sum(m, "levee_circuit_breaker_rejected_total",
                                      upstream="app", mode="shadow"), 11)
        self.assertEqual(h.metric_sum(m, "levee_circuit_breaker_rejected_total",
                                      upstream="app", mode="enforce"), 0)
        self.assertEqual(h.metric_sum(m, "levee_local_replies_total", reason="breaker_open"), 0)
        b = self.breaker()
        self.assertEqual(b["rejected_total"], 0, b)

    def test_admin_force_open_close_reset(self):
        plain = self.start_upstream("plain")
        self.start("{ consecutive_failures: 3, open_for: 20s }",
                   extra_upstreams="  plain: { endpoints: [ { address: %s } ] }\n"
                   % plain.address,
                   routes="      - { name: plain, match: { prefix: /plain }, upstream: plain }\n"
                          "      - { name: all, match: { prefix: / }, upstream: app }\n")
        # Mutations need the token.
        r = self.cb_action("app", "open", token=False)
        self.assertEqual(r.status, 401, r)
        r = self.lv.admin("POST", "/admin/circuit-breakers/app/open", token="wrong")
        self.assertEqual(r.status, 401, r)
        self.assertEqual(self.breaker()["state"], "closed")
        self.assertNotIn("plain", self.breakers())
        self.assertEqual(self.cb_action("plain", "open").status, 404)
        self.assertEqual(self.cb_action("nosuch", "open").status, 404)

        # Force open.
        r = self.cb_action("app", "open")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"upstream": "app", "action": "open", "before": "closed",
                                    "after": "forced_open"})
        b = self.breaker()
        self.assertEqual((b["state"], b["forced"]), ("forced_open", True), b)
        hits = self.up.hits()
        self.assertBreakerOpenReply(self.get("/"))
        self.assertEqual(self.up.hits(), hits)
        self.assertEqual(self.metric("levee_circuit_breaker_state", upstream="app"), 2)

        # Force closed: failures never trip it.
        r = self.cb_action("app", "close")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"upstream": "app", "action": "close",
                                    "before": "forced_open", "after": "forced_closed"})
        ctl(self.up, "fail", 503)
        self.trip(6)
        b = self.breaker()
        self.assertEqual((b["state"], b["forced"]), ("forced_closed", True), b)
        self.assertEqual(self.metric("levee_circuit_breaker_state", upstream="app"), 0)

        # Reset: back to normal operation, failures trip it again.
        r = self.cb_action("app", "reset")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"upstream": "app", "action": "reset",
                                    "before": "forced_closed", "after": "closed"})
        b = self.breaker()
        self.assertEqual((b["state"], b["forced"], b["consecutive_failures"]),
                         ("closed", False, 0), b)
        self.trip(3)
        self.assertBreakerOpenReply(self.get("/"))
        self.assertEqual(self.breaker()["state"], "open")
        m = self.lv.metrics_parsed()
        for to in ("forced_open", "forced_closed", "closed", "open"):
            self.assertEqual(h.metric_sum(m, "levee_circuit_breaker_transitions_total",
                                          upstream="app", to=to), 1, to)
        # The breaker of one upstream does not affect another.
        r = self.get("/plain/x")
        self.assertEqual((r.status, r.headers.get("x-upstream-name")), (200, "plain"), r)

    def test_reload_keeps_breaker_state_of_unchanged_upstream(self):
        other = self.start_upstream("other")
        self.start("{ consecutive_failures: 3, open_for: 30s }")
        r = self.cb_action("app", "open")
        self.assertEqual(r.status, 200, r)
        self.assertBreakerOpenReply(self.get("/"))
        gen = json.loads(self.lv.admin("GET", "/admin/config").body)["generation"]

        # Same upstream, one route and one upstream more.
        yaml, _ = self.policy(
            "  app:\n"
            "    endpoints: [ { address: %s } ]\n"
            "    circuit_breaker: { consecutive_failures: 3, open_for: 30s }\n"
            "  other: { endpoints: [ { address: %s } ] }\n" % (self.up.address, other.address),
            routes="      - { name: other, match: { prefix: /other }, upstream: other }\n"
                   "      - { name: all, match: { prefix: / }, upstream: app }\n",
            ports=self.ports)
        with open(self.lv.config_path, "w") as f:
            f.write(yaml)
        self.lv.signal(signal.SIGHUP)
        h.poll(lambda: json.loads(self.lv.admin("GET", "/admin/config").body)["generation"]
               != gen, 15, what="reload applied")
        r = self.get("/other/x")
        self.assertEqual((r.status, r.headers.get("x-upstream-name")), (200, "other"), r)
        b = self.breaker()
        self.assertEqual((b["state"], b["forced"]), ("forced_open", True), b)
        self.assertBreakerOpenReply(self.get("/"))
        self.assertEqual(self.metric("levee_circuit_breaker_state", upstream="app"), 2)


# =================================================================================================
# Outlier detection
# =================================================================================================

class OutlierDetectionTest(ResilienceBase):

    def start(self, od, bad_address=None):
        self.a = self.start_upstream("a")
        self.b = self.start_upstream("b")
        self.c = None if bad_address else self.start_upstream("c")
        c_addr = bad_address or self.c.address
        self.c_addr = c_addr
        return self.launch(
            "  app:\n"
            "    endpoints: [ { address: %s }, { address: %s }, { address: %s } ]\n"
            "    connect_timeout: 500ms\n"
            "    outlier_detection: %s\n" % (self.a.address, self.b.address, c_addr, od))

    def test_failing_endpoint_is_ejected(self):
        self.start("{ consecutive_failures: 3, base_ejection: 30s, max_ejection_percent: 50 }")
        ctl(self.c, "fail", 503)
        self.assertEqual(self.resolved()[self.c_addr]["ejected"], False)
        seen = collections.Counter()
        for _ in range(30):
            seen[self.who()] += 1
            if self.resolved()[self.c_addr]["ejected"]:
                break
        self.assertEqual(seen["status-503"], 3, seen)
        c = self.resolved()[self.c_addr]
        self.assertEqual((c["ejected"], c["state"], c["health"]), (True, "ejected", "healthy"), c)
        for ep in (self.a, self.b):
            self.assertEqual(self.resolved()[ep.address]["ejected"], False)
        c_hits = self.c.hits()
        spread = self.spread(30)
        self.assertEqual(set(spread), {"a", "b"}, spread)
        self.assertEqual(self.c.hits(), c_hits, "an ejected endpoint got traffic")
        self.assertEqual(self.metric("levee_outlier_ejections_total", upstream="app"), 1)

    def test_max_ejection_percent_zero_never_ejects(self):
        self.start("{ consecutive_failures: 2, base_ejection: 30s, max_ejection_percent: 0 }")
        ctl(self.c, "fail", 503)
        spread = self.spread(30)
        self.assertEqual(spread, {"a": 10, "b": 10, "status-503": 10}, spread)
        self.assertEqual(self.resolved()[self.c_addr]["ejected"], False)
        self.assertEqual(self.metric("levee_outlier_ejections_total", upstream="app"), 0)

    def test_max_ejection_percent_caps_ejections(self):
        # 34 % of 3 endpoints: at most one ejected, even when two keep failing.
        self.start("{ consecutive_failures: 2, base_ejection: 30s, max_ejection_percent: 34 }")
        ctl(self.b, "fail", 503)
        ctl(self.c, "fail", 503)
        self.spread(30)
        ejected = [a for a, r in self.resolved().items() if r["ejected"]]
        self.assertEqual(len(ejected), 1, self.resolved())
        self.assertEqual(self.metric("levee_outlier_ejections_total", upstream="app"), 1)

    def test_local_failures_eject(self):
        dead = "127.0.0.1:%d" % h.free_port()  # connect failures
        self.start("{ consecutive_failures: 50, consecutive_local_failures: 2,"
                   " base_ejection: 30s }", bad_address=dead)
        for _ in range(30):
            self.get("/")
            if self.resolved()[dead]["ejected"]:
                break
        self.assertTrue(self.resolved()[dead]["ejected"], self.resolved())
        spread = self.spread(20)
        self.assertEqual(set(spread), {"a", "b"}, spread)

    def test_ejection_time_grows_with_ejection_count(self):
        self.start("{ consecutive_failures: 2, base_ejection: 500ms, max_ejection: 5s,"
                   " max_ejection_percent: 50 }")
        ctl(self.c, "fail", 503)
        durations = []
        for _ in range(2):
            for _ in range(30):
                self.who()
                if self.resolved()[self.c_addr]["ejected"]:
                    break
            t0 = time.monotonic()
            self.assertTrue(self.resolved()[self.c_addr]["ejected"])
            h.poll(lambda: not self.resolved()[self.c_addr]["ejected"], 10,
                   what="ejection to end")
            durations.append(time.monotonic() - t0)
        self.assertGreaterEqual(durations[0], 0.4, durations)
        self.assertGreaterEqual(durations[1], 0.9, durations)  # 2 x base_ejection
        self.assertEqual(self.metric("levee_outlier_ejections_total", upstream="app"), 2)


# =================================================================================================
# Active health checks and readiness
# =================================================================================================

HC = "{ path: /healthz, interval: 200ms, timeout: 100ms, unhealthy_threshold: 2, " \
     "healthy_threshold: 1 }"


class HealthCheckTest(ResilienceBase):

    def test_unhealthy_endpoint_gets_no_traffic_and_returns(self):
        a, b, c = (self.start_upstream(n) for n in "abc")
        self.launch("  app:\n"
                    "    endpoints: [ { address: %s }, { address: %s }, { address: %s } ]\n"
                    "    health_check: %s\n" % (a.address, b.address, c.address, HC))
        for u in (a, b, c):
            self.wait_health(u, "healthy")
        h.poll(lambda: ctl(b, "stats")["healthz"] >= 2, 10, what="health checks reach b")
        ctl(b, "fail", 503)
        self.wait_health(b, "unhealthy")
        r = self.resolved()[b.address]
        self.assertEqual(r["state"], "unhealthy", r)
        b_hits = b.hits()
        spread = self.spread(30)
        self.assertEqual(set(spread), {"a", "c"}, spread)
        self.assertEqual(b.hits(), b_hits, "an unhealthy endpoint got traffic")
        ctl(b, "ok")
        self.wait_health(b, "healthy")
        spread = self.spread(30)
        self.assertGreater(spread["b"], 0, spread)
        self.assertEqual(set(spread), {"a", "b", "c"}, spread)

    def test_ready_requires_upstream_with_a_healthy_endpoint(self):
        a, b = self.start_upstream("a"), self.start_upstream("b")
        other = self.start_upstream("other")
        self.launch("  app:\n"
                    "    endpoints: [ { address: %s }, { address: %s } ]\n"
                    "    health_check: %s\n"
                    "  other:\n"
                    "    endpoints: [ { address: %s } ]\n" % (a.address, b.address, HC,
                                                            other.address),
                    ready_requires=["app"])
        self.assertEqual(self.lv.probe("/health/ready").status, 200)
        ctl(a, "fail", 503)
        self.wait_health(a, "unhealthy")
        self.assertEqual(self.lv.probe("/health/ready").status, 200, "one endpoint is healthy")
        ctl(b, "fail", 500)
        h.poll(lambda: self.lv.probe("/health/ready").status == 503, 10,
               what="/health/ready 503 with no healthy endpoint")
        self.assertEqual(self.resolved()[b.address]["health"], "unhealthy")
        self.assertEqual(self.lv.probe("/health/live").status, 200)
        ctl(b, "ok")
        h.poll(lambda: self.lv.probe("/health/ready").status == 200, 10,
               what="/health/ready 200 after recovery")
        self.assertEqual(self.resolved()[b.address]["health"], "healthy")
        self.assertEqual(self.lv.probe("/health/live").status, 200)

    def test_health_check_timeout_marks_unhealthy(self):
        slow = self.start_upstream("slow", delay_ms=400)  # /healthz slower than timeout 100ms
        fast = self.start_upstream("fast")
        self.launch("  app:\n"
                    "    endpoints: [ { address: %s }, { address: %s } ]\n"
                    "    health_check: %s\n" % (slow.address, fast.address, HC))
        self.wait_health(slow, "unhealthy")
        self.assertEqual(self.resolved()[fast.address]["health"], "healthy")


# =================================================================================================
# Priority failover
# =================================================================================================

class FailoverTest(ResilienceBase):

    def test_spill_to_priority_1_and_back(self):
        p0 = self.start_upstream("p0")
        b0, b1 = self.start_upstream("b0"), self.start_upstream("b1")
        self.launch("  app:\n"
                    "    endpoints:\n"
                    "      - { address: %s, priority: 0 }\n"
                    "      - { address: %s, priority: 1 }\n"
                    "      - { address: %s, priority: 1 }\n"
                    "    health_check: %s\n" % (p0.address, b0.address, b1.address, HC))
        for u in (p0, b0, b1):
            self.wait_health(u, "healthy")
        spread = self.spread(20)
        self.assertEqual(spread, {"p0": 20}, spread)
        ctl(p0, "fail", 503)
        self.wait_health(p0, "unhealthy")
        spread = self.spread(20)
        self.assertEqual(set(spread), {"b0", "b1"}, spread)
        ctl(p0, "ok")
        self.wait_health(p0, "healthy")
        spread = self.spread(20)
        self.assertEqual(spread, {"p0": 20}, spread)

    def test_partial_spill_below_min_healthy_percent(self):
        a0, a1 = self.start_upstream("a0"), self.start_upstream("a1")
        b0, b1 = self.start_upstream("b0"), self.start_upstream("b1")
        self.launch("  app:\n"
                    "    endpoints:\n"
                    "      - { address: %s, priority: 0 }\n"
                    "      - { address: %s, priority: 0 }\n"
                    "      - { address: %s, priority: 1 }\n"
                    "      - { address: %s, priority: 1 }\n"
                    "    health_check: %s\n"
                    "    failover: { min_healthy_percent: 70, panic_threshold_percent: 50 }\n"
                    % (a0.address, a1.address, b0.address, b1.address, HC))
        for u in (a0, a1, b0, b1):
            self.wait_health(u, "healthy")
        spread = self.spread(20)
        self.assertEqual(set(spread), {"a0", "a1"}, spread)
        ctl(a1, "fail", 503)
        self.wait_health(a1, "unhealthy")
        # P0 health = 50 % * 100 / 70 = 71 %: about 71 % stays on a0, 29 % spills to P1.
        spread = self.spread(200)
        self.assertEqual(spread["a1"], 0, spread)
        p1 = spread["b0"] + spread["b1"]
        self.assertEqual(spread["a0"] + p1, 200, spread)
        self.assertGreaterEqual(p1, 25, spread)
        self.assertLessEqual(p1, 100, spread)

    def panic_setup(self, panic):
        ups = [self.start_upstream("e%d" % i) for i in range(4)]
        self.launch("  app:\n"
                    "    endpoints: [ %s ]\n"
                    "    health_check: %s\n"
                    "    failover: { panic_threshold_percent: %d }\n"
                    % (", ".join("{ address: %s }" % u.address for u in ups), HC, panic))
        for u in ups:
            self.wait_health(u, "healthy")
        for u in ups[1:]:
            ctl(u, "fail", 503)
        for u in ups[1:]:
            self.wait_health(u, "unhealthy")
        return ups

    def test_panic_ignores_health_below_threshold(self):
        ups = self.panic_setup(50)  # 1 of 4 healthy = 25 % < 50 %: panic
        before = [u.hits() for u in ups]
        spread = self.spread(40)
        self.assertGreater(spread["e0"], 0, spread)
        self.assertGreater(spread["status-503"], 0, spread)
        for i, u in enumerate(ups):
            self.assertGreater(u.hits(), before[i], "panic mode must use %s too" % u.name)

    def test_no_panic_with_threshold_zero(self):
        ups = self.panic_setup(0)
        before = [u.hits() for u in ups[1:]]
        spread = self.spread(30)
        self.assertEqual(spread, {"e0": 30}, spread)
        self.assertEqual([u.hits() for u in ups[1:]], before)


if __name__ == "__main__":
    unittest.main()
