"""Route fallback chains (docs/policy.md `fallback`, proxy/router/README.md "Fallback").

When the upstream path fails for a reason in `fallback.on`, the chain answers in order: `stale`
(the last good GET response for the same key, with Age), `static`, or another `upstream`. Every
fallback response carries x-levee-fallback: <kind> and is counted in
levee_fallback_responses_total{route,reason,kind}.
"""

import os
import subprocess
import unittest

import harness as h

STATIC = ("static: { status: 200, headers: { content-type: application/json }, "
          "body: '{\"items\":[],\"isFallback\":true}' }")


class FallbackBase(h.LeveeTestCase):

    def launch(self, fallback, route_extra="", upstream_extra="", extra_upstreams="",
               concurrency=1, timeout="5s"):
        self.up = self.start_upstream("app")
        self.ports = {"listener": h.free_port(), "probes": h.free_port(),
                      "admin": h.free_port()}
        tf, self.token = self.token_file()
        yaml = (
            "version: 1\n"
            "service: itest\n"
            "admin: { address: 127.0.0.1:%(admin)d, token_file: %(tf)s }\n"
            "probes: { address: 127.0.0.1:%(probes)d }\n"
            "listeners:\n"
            "  - name: inbound\n"
            "    address: 127.0.0.1:%(listener)d\n"
            "    protocol: http\n"
            "    routes:\n"
            "      - name: shop\n"
            "        match: { prefix: / }\n"
            "        upstream: app\n"
            "        timeout: %(timeout)s\n"
            "%(route_extra)s"
            "        fallback: %(fallback)s\n"
            "upstreams:\n"
            "  app: { endpoints: [ { address: %(up)s } ], connect_timeout: 1s%(upx)s }\n"
            "%(more)s"
            "access_log: { path: stdout, format: json }\n"
            "drain: { delay: 0s, grace: 2s }\n"
        ) % dict(self.ports, tf=tf, fallback=fallback, route_extra=route_extra,
                 up=self.up.address, upx=upstream_extra, more=extra_upstreams,
                 timeout=timeout)
        self.lv = self.start_levee(yaml, self.ports["probes"], self.ports["admin"],
                                   concurrency=concurrency)
        return self.lv

    def request(self, path, method="GET", headers=None, body=None):
        return h.http_request(self.ports["listener"], method, path, headers=headers, body=body)

    def served(self, reason, kind):
        return h.metric_sum(self.lv.metrics_parsed(), "levee_fallback_responses_total",
                            route="shop", reason=reason, kind=kind)


class StaleTest(FallbackBase):

    def test_stale_answer_after_the_upstream_dies_static_when_nothing_cached(self):
        self.launch("{ chain: [ { stale: { max_stale: 10m } }, { %s } ] }" % STATIC)
        fresh = self.request("/api/items?page=2")
        self.assertEqual(fresh.status, 200, fresh)
        self.assertNotIn("x-levee-fallback", fresh.headers)
        self.assertEqual(fresh.json()["path"], "/api/items", fresh)
        self.up.stop()

        stale = self.request("/api/items?page=2")
        self.assertEqual(stale.status, 200, stale)
        self.assertEqual(stale.headers.get("x-levee-fallback"), "stale", stale)
        self.assertEqual(stale.headers.get("x-levee-reason"), "connect_failure", stale)
        self.assertTrue(stale.headers.get("age", "").isdigit(), stale)
        self.assertEqual(stale.body, fresh.body)
        self.assertEqual(stale.headers.get("content-type"), fresh.headers.get("content-type"))
        self.assertNotEqual(stale.headers.get("x-request-id"), fresh.headers.get("x-request-id"))

        # Another query string is another key: nothing stored, so the static entry answers.
        other = self.request("/api/items?page=3")
        self.assertEqual(other.status, 200, other)
        self.assertEqual(other.headers.get("x-levee-fallback"), "static", other)
        self.assertEqual(other.json(), {"items": [], "isFallback": True})
        # HEAD reads the GET entry, without a body.
        head = self.request("/api/items?page=2", method="HEAD")
        self.assertEqual(head.status, 200, head)
        self.assertEqual(head.headers.get("x-levee-fallback"), "stale", head)
        self.assertEqual(head.body, b"")
        self.assertEqual(head.headers.get("content-length"), str(len(fresh.body)))

        self.assertEqual(self.served("connect_failure", "stale"), 2)
        self.assertEqual(self.served("connect_failure", "static"), 1)
        m = self.lv.metrics_parsed()
        self.assertEqual(h.metric_sum(m, "levee_fallback_stale_entries", route="shop"), 1)
        self.assertGreater(h.metric_sum(m, "levee_fallback_stale_bytes", route="shop"),
                           len(fresh.body))
        if os.access(h.PROMTOOL_BIN, os.X_OK):
            p = subprocess.run([h.PROMTOOL_BIN, "check", "metrics"],
                               input=self.lv.metrics_text().encode(), capture_output=True,
                               timeout=h.deadline(30))
            self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        log = h.poll(lambda: (lambda l: len(l) >= 4 and l)(
            [e for e in self.lv.access_log() if e.get("path", "").startswith("/api/items")]),
            10, what="the four access log lines of /api/items")
        self.assertEqual([e.get("fallback") for e in log], [None, "stale", "static", "stale"], log)

    def test_requests_with_authorization_are_not_stored(self):
        self.launch("{ chain: [ { stale: {} }, { %s } ] }" % STATIC)
        auth = {"Authorization": "Bearer user-1"}
        self.assertEqual(self.request("/me", headers=auth).status, 200)
        self.up.stop()
        r = self.request("/me", headers=auth)
        self.assertEqual(r.headers.get("x-levee-fallback"), "static", r)

    def test_store_is_shared_by_workers(self):
        self.launch("{ chain: [ { stale: {} } ] }", concurrency=2)
        first = self.request("/catalog")
        self.assertEqual(first.status, 200)
        self.up.stop()
        # Fresh connections land on either worker (SO_REUSEPORT); every one is served stale.
        for _ in range(12):
            r = self.request("/catalog")
            self.assertEqual(r.headers.get("x-levee-fallback"), "stale", r)
            self.assertEqual(r.body, first.body)

    def test_5xx_passes_through_when_the_chain_has_nothing(self):
        self.launch("{ on: [upstream_5xx], chain: [ { stale: {} } ] }")
        self.assertEqual(self.request("/ok").status, 200)
        self.up.get("/control/fail?status=503")
        # Stored key: the stale copy replaces the 503.
        r = self.request("/ok")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-levee-fallback"), "stale", r)
        self.assertEqual(r.headers.get("x-levee-reason"), "upstream_5xx", r)
        # Nothing stored: the upstream's own 503 is forwarded untouched.
        r = self.request("/never-seen")
        self.assertEqual(r.status, 503, r)
        self.assertNotIn("x-levee-fallback", r.headers)
        self.assertTrue(r.json().get("failing"), r)
        self.assertEqual(self.served("upstream_5xx", "stale"), 1)

    def test_route_timeout_answers_from_the_chain(self):
        self.launch("{ on: [timeout], chain: [ { %s } ] }" % STATIC, timeout="300ms")
        r = self.request("/slow/3000")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-levee-fallback"), "static", r)
        self.assertEqual(r.headers.get("x-levee-reason"), "timeout", r)
        self.assertEqual(self.served("timeout", "static"), 1)

    def test_reason_not_in_on_is_not_a_fallback(self):
        # Only breaker_open: a connect failure is the ordinary 503 local reply.
        self.launch("{ on: [breaker_open], chain: [ { %s } ] }" % STATIC)
        self.up.stop()
        r = self.request("/x")
        self.assertLocalReply(r, 503, "upstream_connect_failure")
        self.assertNotIn("x-levee-fallback", r.headers)


class ChainTest(FallbackBase):

    def launch_with_backup(self, fallback, route_extra=""):
        self.backup = self.start_upstream("backup")
        return self.launch(fallback, route_extra=route_extra,
                           extra_upstreams="  backup: { endpoints: [ { address: %s } ] }\n"
                           % self.backup.address)

    def test_chain_order_upstream_then_static(self):
        self.launch_with_backup("{ chain: [ { upstream: backup }, { %s } ] }" % STATIC)
        self.up.get("/control/fail?status=503")
        r = self.request("/api/x")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-levee-fallback"), "upstream", r)
        self.assertEqual(r.json()["upstream"], "backup", r)
        self.assertEqual(self.served("upstream_5xx", "upstream"), 1)

        # A POST already reached the failing upstream: it is never sent to a second one.
        backup_hits = self.backup.hits()
        r = self.request("/api/x", method="POST", body=b"order=1")
        self.assertEqual(r.headers.get("x-levee-fallback"), "static", r)
        self.assertEqual(self.backup.hits(), backup_hits)

        # The backup fails too: the chain goes on to the static entry.
        self.backup.get("/control/fail?status=502")
        r = self.request("/api/x")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-levee-fallback"), "static", r)
        self.assertEqual(r.json(), {"items": [], "isFallback": True})
        self.assertEqual(self.served("upstream_5xx", "static"), 2)

    def test_breaker_open_goes_to_the_backup_without_touching_the_upstream(self):
        self.backup = self.start_upstream("backup")
        self.launch("{ chain: [ { upstream: backup } ] }",
                    upstream_extra=", circuit_breaker: { consecutive_failures: 5 }",
                    extra_upstreams="  backup: { endpoints: [ { address: %s } ] }\n"
                    % self.backup.address)
        forced = self.lv.admin("POST", "/admin/circuit-breakers/app/open", token=self.token)
        self.assertEqual(forced.status, 200, forced)
        app_hits = self.up.hits()
        r = self.request("/api/y", method="POST", body=b"x" * 1000)
        # Nothing reached the app, so even a POST may go to the backup, body and all.
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-levee-fallback"), "upstream", r)
        self.assertEqual(r.json()["upstream"], "backup")
        self.assertEqual(self.up.hits(), app_hits)
        self.assertEqual(self.served("breaker_open", "upstream"), 1)

    def test_rate_limited_requests_are_answered_from_the_store(self):
        self.launch("{ on: [rate_limited], chain: [ { stale: {} } ] }",
                    route_extra="        rate_limit: { rate: 1/m, burst: 1, key: route }\n")
        first = self.request("/feed")
        self.assertEqual(first.status, 200, first)
        hits = self.up.hits()
        r = self.request("/feed")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-levee-fallback"), "stale", r)
        self.assertEqual(r.headers.get("x-levee-reason"), "rate_limited", r)
        self.assertEqual(self.up.hits(), hits, "a limited request must not reach the upstream")
        # Nothing stored for this key: the 429 with its rate-limit headers.
        r = self.request("/other")
        self.assertLocalReply(r, 429, "rate_limited")
        self.assertIn("ratelimit-policy", r.headers)
        self.assertTrue(r.headers.get("retry-after", "").isdigit(), r)
        self.assertEqual(self.served("rate_limited", "stale"), 1)


class ConfigTest(h.LeveeTestCase):

    def test_a_looping_chain_is_rejected_with_its_location(self):
        up = self.start_upstream("app")
        yaml, ports = self.simple_policy(
            up.address,
            routes=("      - name: all\n"
                    "        upstream: app\n"
                    "        fallback: { chain: [ { upstream: app } ] }\n"))
        path = h.write_config(self.tmp, yaml)
        res = subprocess.run([h.LEVEE_BIN, "validate", path], capture_output=True, text=True,
                             timeout=h.deadline(30))
        self.assertEqual(res.returncode, 1, res)
        self.assertRegex(res.stdout + res.stderr,
                         r"levee\.yaml:\d+:\d+: listeners\[0\]\.routes\[0\]\.fallback\.chain\[0\]: "
                         r"fallback to the route's own upstream \"app\" would loop")


if __name__ == "__main__":
    unittest.main()
