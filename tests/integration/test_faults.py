"""Fault injection for drills (filters/fault/README.md, docs/policy.md `fault` and `faults`).

A route's policy `fault` block and run-time experiments (POST/GET/DELETE /admin/faults) delay
requests, answer them with a `fault_abort` local reply, or close the connection without a
response. Experiments have an id and a TTL, expire by themselves, are capped by
faults.max_active, need the admin token, and are counted in levee_faults_injected_total.
"""

import os
import subprocess
import time
import unittest

import harness as h

ROUTES = (
    "      - name: faulty\n"
    "        match: { prefix: /faulty }\n"
    "        upstream: app\n"
    "%s"
    "      - { name: all, match: { prefix: / }, upstream: app }\n"
)


class FaultBase(h.LeveeTestCase):

    def launch(self, route_fault="", extra="", token=True, concurrency=1):
        self.up = self.start_upstream("app")
        yaml, self.ports = self.simple_policy(self.up.address, routes=ROUTES % route_fault,
                                              extra=extra, token=token)
        self.lv = self.start_levee(yaml, self.ports["probes"], self.ports["admin"],
                                   concurrency=concurrency)
        return self.lv

    def get(self, path="/", headers=None, method="GET", body=None):
        return h.http_request(self.ports["listener"], method, path, headers=headers, body=body)

    def injected(self, kind, route="faulty"):
        return h.metric_sum(self.lv.metrics_parsed(), "levee_faults_injected_total",
                            route=route, kind=kind)

    def post_fault(self, body, token=True):
        return self.lv.admin("POST", "/admin/faults", body=body,
                             token=self.ports["token"] if token else None)

    def delete(self, path, token=True):
        return self.lv.admin("DELETE", path, token=self.ports["token"] if token else None)

    def active(self):
        r = self.lv.admin("GET", "/admin/faults")
        self.assertEqual(r.status, 200, r)
        return r.json()["faults"]


class PolicyFaultTest(FaultBase):

    def test_abort_100_percent_answers_locally(self):
        self.launch("        fault: { abort: { percent: 100, status: 503 } }\n")
        for i in range(5):
            r = self.get("/faulty/%d" % i)
            self.assertLocalReply(r, 503, "fault_abort")
            self.assertEqual(r.headers.get("retry-after"), "1", r)
            self.assertNotIn("x-upstream-name", r.headers, r)
        self.assertEqual(self.up.hits(), 0)
        # Other routes are untouched.
        r = self.get("/other")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.up.hits(), 1)
        m = self.lv.metrics_parsed()
        self.assertEqual(h.metric_sum(m, "levee_faults_injected_total", route="faulty",
                                      kind="abort"), 5)
        self.assertEqual(h.metric_sum(m, "levee_local_replies_total", reason="fault_abort"), 5)
        self.assertEqual(h.metric_sum(m, "levee_faults_injected_total", route="all"), 0)
        # The access log carries the reason.
        log = h.poll(lambda: [e for e in self.lv.access_log() if e.get("route") == "faulty"],
                     5, what="access log lines of route faulty")
        self.assertEqual(log[0].get("reason"), "fault_abort", log[0])
        self.assertEqual(log[0].get("status"), 503, log[0])

    def test_delay_is_measured_and_bounded(self):
        delay = 0.4
        self.launch("        fault: { delay: { percent: 100, duration: 400ms } }\n")
        r = self.get("/other")  # warm up (connection to the upstream)
        self.assertEqual(r.status, 200, r)
        t0 = time.monotonic()
        r = self.get("/faulty/x")
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-upstream-name"), "app", r)
        self.assertGreaterEqual(elapsed, delay, "elapsed %.3fs" % elapsed)
        self.assertLess(elapsed, delay + h.deadline(2.0), "elapsed %.3fs" % elapsed)
        # Without the fault the same request is fast.
        t0 = time.monotonic()
        self.assertEqual(self.get("/other").status, 200)
        self.assertLess(time.monotonic() - t0, delay)
        self.assertEqual(self.injected("delay"), 1)
        # A request body sent during a delay (here an experiment's) reaches the upstream intact.
        r = self.lv.admin("POST", "/admin/faults", token=self.ports["token"],
                          body={"header": {"x-drill": "1"},
                                "delay": {"percent": 100, "duration": "400ms"}})
        self.assertEqual(r.status, 201, r)
        body = h.pattern_bytes(0, 300000)
        t0 = time.monotonic()
        r = self.get("/upload", method="POST", body=body, headers={"x-drill": "1"})
        self.assertGreaterEqual(time.monotonic() - t0, delay)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body_len"], len(body), r)
        self.assertEqual(r.json()["body_sha256"], h.body_sha256(len(body)), r)
        self.assertEqual(self.injected("delay", route="all"), 1)

    def test_reset_closes_without_response(self):
        self.launch("        fault: { reset: { percent: 100 } }\n")
        status, _, body, closed = h.send_raw(self.ports["listener"],
                                             b"GET /faulty HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIsNone(status)
        self.assertEqual(body, b"")
        self.assertTrue(closed)
        self.assertEqual(self.up.hits(), 0)
        self.assertEqual(self.injected("reset"), 1)
        self.assertEqual(self.get("/other").status, 200)


class AdminFaultTest(FaultBase):

    def test_header_target_only_hits_marked_requests(self):
        self.launch()
        r = self.post_fault({"header": {"x-drill": "1"},
                             "abort": {"percent": 100, "status": 502}, "ttl": "1m"})
        self.assertEqual(r.status, 201, r)
        fid = r.json()["id"]
        self.assertTrue(fid, r)
        listed = self.active()
        self.assertEqual([f["id"] for f in listed], [fid])
        self.assertEqual(listed[0]["header"], {"x-drill": "1"})
        self.assertEqual(listed[0]["abort"]["status"], 502)
        self.assertGreater(listed[0]["ttl_remaining_ms"], 0)
        for path in ("/faulty", "/other"):
            self.assertEqual(self.get(path).status, 200)
            self.assertEqual(self.get(path, headers={"x-drill": "2"}).status, 200)
            self.assertLocalReply(self.get(path, headers={"X-Drill": "1"}), 502, "fault_abort")
        self.assertEqual(self.injected("abort", route="faulty"), 1)
        self.assertEqual(self.injected("abort", route="all"), 1)
        self.assertEqual(self.up.hits(), 4)

    def test_route_and_upstream_targets_and_delay(self):
        self.launch()
        r = self.post_fault({"route": "faulty", "upstream": "app",
                             "delay": {"percent": 100, "duration": "300ms"}})
        self.assertEqual(r.status, 201, r)
        t0 = time.monotonic()
        self.assertEqual(self.get("/faulty").status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        t0 = time.monotonic()
        self.assertEqual(self.get("/other").status, 200)
        self.assertLess(time.monotonic() - t0, 0.3)
        # No ttl in the body: faults.default_ttl (5m).
        self.assertGreater(self.active()[0]["ttl_remaining_ms"], 290000)

    def test_ttl_expiry_reverts_by_itself(self):
        self.launch()
        t0 = time.monotonic()
        r = self.post_fault({"route": "faulty", "abort": {"percent": 100, "status": 503},
                             "ttl": "1s"})
        self.assertEqual(r.status, 201, r)
        self.assertLocalReply(self.get("/faulty"), 503, "fault_abort")

        def reverted():
            return self.get("/faulty").status == 200
        h.poll(reverted, 10, interval=0.05, what="the experiment to expire")
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)
        self.assertEqual(self.active(), [])
        self.lv.wait_log("fault experiment %s expired" % r.json()["id"], timeout=5)

    def test_delete_one_and_kill_switch(self):
        self.launch()
        a = self.post_fault({"route": "faulty", "abort": {"percent": 100, "status": 503}})
        b = self.post_fault({"route": "all", "abort": {"percent": 100, "status": 500}})
        self.assertEqual((a.status, b.status), (201, 201))
        self.assertEqual(self.get("/faulty").status, 503)
        self.assertEqual(self.get("/other").status, 500)
        r = self.delete("/admin/faults/%s" % a.json()["id"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.get("/faulty").status, 200)
        self.assertEqual(self.get("/other").status, 500)
        self.assertEqual(self.delete("/admin/faults/%s" % a.json()["id"]).status, 404)
        self.post_fault({"route": "faulty", "reset": {"percent": 100}})
        r = self.delete("/admin/faults")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["deleted"], 2)
        self.assertEqual(self.active(), [])
        self.assertEqual(self.get("/faulty").status, 200)
        self.assertEqual(self.get("/other").status, 200)
        self.lv.wait_log("fault kill switch: 2 experiment(s) removed", "audit: peer=")

    def test_max_active_refuses(self):
        self.launch(extra="faults: { max_active: 2 }\n")
        body = {"header": {"x-never": "1"}, "abort": {"percent": 1, "status": 503}}
        self.assertEqual(self.post_fault(body).status, 201)
        self.assertEqual(self.post_fault(body).status, 201)
        r = self.post_fault(body)
        self.assertEqual(r.status, 409, r)
        self.assertIn("max_active", r.json()["error"])
        self.assertEqual(len(self.active()), 2)
        self.delete("/admin/faults/%s" % self.active()[0]["id"])
        self.assertEqual(self.post_fault(body).status, 201)

    def test_bad_bodies_get_400_with_a_message(self):
        self.launch()
        cases = [
            ({"abort": {"percent": 150, "status": 503}}, "abort.percent"),
            ({"abort": {"percent": 5, "status": 200}}, "abort.status"),
            ({"route": "nope", "abort": {"percent": 5, "status": 503}}, "unknown route"),
            ({"delay": {"percent": 5, "duration": "forever"}}, "delay.duration"),
            ({"abort": {"percent": 5, "status": 503}, "ttl": "2h"}, "max_ttl"),
            ({}, "no fault given"),
            ("not json", "expected a JSON object"),
            ('{"abort": ', "body:1:"),
        ]
        for body, needle in cases:
            r = self.post_fault(body)
            self.assertEqual(r.status, 400, (body, r))
            self.assertIn(needle, r.json()["error"], (body, r))
        self.assertEqual(self.active(), [])

    def test_auth(self):
        self.launch()
        body = {"abort": {"percent": 100, "status": 503}}
        self.assertEqual(self.post_fault(body, token=False).status, 401)
        r = self.lv.admin("POST", "/admin/faults", body=body, token="wrong")
        self.assertEqual(r.status, 401, r)
        self.assertEqual(self.delete("/admin/faults", token=False).status, 401)
        self.assertEqual(self.delete("/admin/faults/f-1", token=False).status, 401)
        self.assertEqual(self.active(), [])  # reads need no token
        self.assertEqual(self.get("/faulty").status, 200)
        self.assertEqual(self.lv.admin("PUT", "/admin/faults").status, 405)
        self.assertEqual(self.lv.admin("GET", "/admin/faults/f-1").status, 405)
        self.assertEqual(self.lv.admin("GET", "/admin/faults/a/b").status, 404)

    def test_no_token_file_refuses_mutations(self):
        self.launch(token=False)
        r = self.lv.admin("POST", "/admin/faults", body={"abort": {"percent": 100, "status": 503}})
        self.assertEqual(r.status, 403, r)

    def test_every_worker_applies_and_metrics_pass_promtool(self):
        self.launch(concurrency=3)
        r = self.post_fault({"route": "faulty", "abort": {"percent": 100, "status": 503}})
        self.assertEqual(r.status, 201, r)
        # Fresh connections spread over the workers; every one applies the experiment at once.
        for i in range(30):
            self.assertEqual(self.get("/faulty/%d" % i).status, 503)
        self.assertEqual(self.injected("abort"), 30)
        self.assertEqual(self.up.hits(), 0)
        if os.access(h.PROMTOOL_BIN, os.X_OK):
            p = subprocess.run([h.PROMTOOL_BIN, "check", "metrics"],
                               input=self.lv.metrics_text().encode(), capture_output=True,
                               timeout=h.deadline(30))
            self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
