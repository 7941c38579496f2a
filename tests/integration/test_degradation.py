"""Degradation levels 0-4 (DESIGN section 6, docs/policy.md `degradation`, admin
/admin/degradation): 1 sheds noncore routes, 2 read-only, 3 answers from the fallback chain
without the upstream, 4 the maintenance page for every request while probes stay ready.
"""

import json
import os
import unittest

import harness as h

STATIC = ("static: { status: 200, headers: { content-type: application/json }, "
          "body: '{\"cached\":false,\"isFallback\":true}' }")


class DegradationBase(h.LeveeTestCase):

    def launch(self, degradation="", upstream_extra="", wait=True):
        if not hasattr(self, "up"):
            self.up = self.start_upstream("app")
            self.ports = {"listener": h.free_port(), "probes": h.free_port(),
                          "admin": h.free_port()}
            self.tf, self.token = self.token_file()
            with open(os.path.join(self.tmp, "maintenance.html"), "w") as f:
                f.write("<h1>Back soon</h1>\n")
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
            "      - name: api\n"
            "        match: { prefix: /api }\n"
            "        upstream: app\n"
            "        fallback: { on: [degraded], chain: [ { %(static)s } ] }\n"
            "      - name: extras\n"
            "        match: { prefix: /extras }\n"
            "        upstream: app\n"
            "        tier: noncore\n"
            "      - name: plain\n"
            "        match: { prefix: /plain }\n"
            "        upstream: app\n"
            "upstreams:\n"
            "  app: { endpoints: [ { address: %(up)s } ]%(upx)s }\n"
            "access_log: { path: stdout, format: json }\n"
            "drain: { delay: 0s, grace: 2s }\n"
            "degradation:\n"
            "  retry_after: 20s\n"
            "  maintenance: { status: 503, retry_after: 300s, body_file: maintenance.html }\n"
            "%(deg)s"
        ) % dict(self.ports, tf=self.tf, up=self.up.address, static=STATIC, upx=upstream_extra,
                 deg=degradation)
        self.lv = self.start_levee(yaml, self.ports["probes"], self.ports["admin"], wait=wait)
        return self.lv

    def request(self, path, method="GET", body=None):
        return h.http_request(self.ports["listener"], method, path, body=body)

    def set_level(self, level, **extra):
        body = dict(level=level, **extra)
        r = self.lv.admin("PUT", "/admin/degradation", body=body, token=self.token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["level"], level, r)
        return r.json()

    def state(self):
        r = self.lv.admin("GET", "/admin/degradation")
        self.assertEqual(r.status, 200, r)
        return r.json()

    def assertDegraded(self, r):
        self.assertLocalReply(r, 503, "degraded")
        self.assertEqual(r.headers.get("retry-after"), "20", r)

    def shed(self, route, level):
        return h.metric_sum(self.lv.metrics_parsed(), "levee_degradation_shed_total",
                            route=route, level=str(level))


class LevelsTest(DegradationBase):

    def test_every_level_in_turn(self):
        self.launch()
        self.assertEqual(self.state()["level"], 0)
        self.assertEqual(self.request("/extras/a").status, 200)

        self.set_level(1, reason="shed extras")
        self.assertDegraded(self.request("/extras/a"))
        self.assertEqual(self.request("/plain/a", method="POST", body=b"x").status, 200)

        self.set_level(2, reason="db read-only")
        self.assertDegraded(self.request("/plain/a", method="POST", body=b"x"))
        self.assertDegraded(self.request("/api/a", method="DELETE"))
        self.assertEqual(self.request("/plain/a").status, 200)
        self.assertEqual(self.request("/api/a", method="HEAD").status, 200)

        self.set_level(3, reason="serve cached")
        hits = self.up.hits()
        r = self.request("/api/items")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-levee-fallback"), "static", r)
        self.assertEqual(r.headers.get("x-levee-reason"), "degraded", r)
        self.assertDegraded(self.request("/plain/a"))  # no fallback chain there
        self.assertEqual(self.up.hits(), hits, "level 3 never touches the upstream")

        self.set_level(4, reason="maintenance window")
        for path in ("/api/items", "/plain/x", "/nowhere"):
            r = self.request(path)
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.body, b"<h1>Back soon</h1>\n")
            self.assertEqual(r.headers.get("retry-after"), "300", r)
            self.assertEqual(r.headers.get("x-levee-reason"), "degraded", r)
            self.assertIn("text/html", r.headers.get("content-type", ""))
        self.assertEqual(self.lv.probe("/health/ready").status, 200, "probes stay ready")
        self.assertEqual(self.up.hits(), hits)

        m = self.lv.metrics_parsed()
        self.assertEqual(h.metric_sum(m, "levee_degradation_level"), 4)
        self.assertEqual(self.shed("extras", 1), 1)
        self.assertEqual(self.shed("plain", 2), 1)
        self.assertEqual(self.shed("api", 2), 1)
        self.assertEqual(self.shed("api", 3), 1)
        self.assertEqual(self.shed("api", 4), 1)
        self.assertEqual(h.metric_sum(m, "levee_fallback_responses_total", route="api",
                                      reason="degraded", kind="static"), 1)

        r = self.lv.admin("DELETE", "/admin/degradation", token=self.token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["level"], 0)
        self.assertEqual(self.request("/api/items").status, 200)
        self.assertNotIn("x-levee-fallback", self.request("/api/items").headers)

    def test_ttl_returns_to_the_previous_level(self):
        self.launch()
        self.set_level(1, reason="base")
        st = self.set_level(3, reason="drill", ttl="2s")
        self.assertEqual(st["previous_level"], 1, st)
        self.assertIsNotNone(st["operator"]["expires_at_ms"], st)
        h.poll(lambda: self.state()["level"] == 1, h.deadline(15), what="level back to 1")
        self.assertEqual(self.state()["operator"]["reason"], "base")

    def test_policy_level_applies_and_admin_calls_are_checked(self):
        self.launch(degradation="  level: 1\n")
        self.assertEqual(self.state()["source"], "policy")
        self.assertDegraded(self.request("/extras/a"))
        r = self.lv.admin("PUT", "/admin/degradation", body={"level": 2})
        self.assertEqual(r.status, 401, r)
        r = self.lv.admin("PUT", "/admin/degradation", body={"level": 9}, token=self.token)
        self.assertEqual(r.status, 400, r)
        self.assertIn("0..4", r.json()["error"])
        r = self.lv.admin("PUT", "/admin/degradation", body=b"{not json", token=self.token)
        self.assertEqual(r.status, 400, r)
        self.assertIn("invalid JSON", r.json()["error"])
        r = self.lv.admin("POST", "/admin/degradation", body={"level": 2}, token=self.token)
        self.assertEqual(r.status, 405, r)
        self.assertEqual(self.state()["level"], 1, "refused calls change nothing")
        self.lv.wait_log("audit")


class PersistenceTest(DegradationBase):

    def test_level_survives_a_restart(self):
        state_file = os.path.join(self.tmp, "state.json")
        deg = "  state_file: %s\n" % state_file
        self.launch(degradation=deg)
        self.set_level(3, reason="db incident")

        def written():
            try:
                with open(state_file) as f:
                    return json.load(f)["operator"]["level"] == 3
            except (OSError, ValueError, KeyError, TypeError):
                return False
        h.poll(written, h.deadline(10), what="state file written")
        self.assertFalse(os.path.exists(state_file + ".tmp"))
        self.lv.stop()
        self.launch(degradation=deg)
        st = self.state()
        self.assertEqual(st["level"], 3, st)
        self.assertEqual(st["source"], "operator", st)
        self.assertEqual(st["operator"]["reason"], "db incident", st)
        self.assertEqual(self.request("/api/x").headers.get("x-levee-fallback"), "static")

    def test_a_corrupt_state_file_is_reported_and_ignored(self):
        state_file = os.path.join(self.tmp, "state.json")
        with open(state_file, "w") as f:
            f.write("{garbage")
        self.launch(degradation="  state_file: %s\n" % state_file)
        self.assertEqual(self.state()["level"], 0)
        self.lv.wait_log("state file", timeout=h.deadline(5))


class AutoTest(DegradationBase):

    def test_open_breakers_raise_the_level_and_the_operator_wins(self):
        self.launch(degradation="  auto: { max_level: 1, breaker_open_percent: 100, cooldown: 1s }\n",
                    upstream_extra=", circuit_breaker: { consecutive_failures: 5 }")
        self.assertEqual(self.state()["level"], 0)
        r = self.lv.admin("POST", "/admin/circuit-breakers/app/open", token=self.token)
        self.assertEqual(r.status, 200, r)
        h.poll(lambda: self.state()["level"] == 1, h.deadline(10), what="automatic level 1")
        self.assertEqual(self.state()["source"], "auto")
        self.assertEqual(h.metric_sum(self.lv.metrics_parsed(), "levee_degradation_auto_level"), 1)
        self.set_level(0, reason="operator override")
        self.assertEqual(self.request("/extras/a").status, 503)  # breaker still forced open
        self.assertNotEqual(self.request("/extras/a").headers.get("x-levee-reason"), "degraded")
        r = self.lv.admin("POST", "/admin/circuit-breakers/app/reset", token=self.token)
        self.assertEqual(r.status, 200, r)
        h.poll(lambda: self.state()["auto"]["level"] == 0, h.deadline(10), what="auto level 0")


if __name__ == "__main__":
    unittest.main()
