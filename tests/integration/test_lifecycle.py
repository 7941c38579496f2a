"""Reload (SIGHUP) and graceful drain (SIGTERM/SIGINT)."""

import signal
import threading
import time
import unittest

import harness as h

ROUTES_V1 = "      - { name: api, match: { prefix: /api }, upstream: app }\n"
ROUTES_V2 = ("      - { name: api, match: { prefix: /api }, upstream: app }\n"
             "      - { name: fresh, match: { prefix: /fresh }, upstream: app }\n"
             "      - { name: slowr, match: { prefix: /slow }, upstream: app }\n")
ROUTES_V1_SLOW = ("      - { name: api, match: { prefix: /api }, upstream: app }\n"
                  "      - { name: slowr, match: { prefix: /slow }, upstream: app }\n")


class Call(threading.Thread):
    """A request in a background thread; .resp or .error afterwards."""

    def __init__(self, port, path, timeout=30):
        super().__init__(daemon=True)
        self.port, self.path, self.timeout = port, path, timeout
        self.resp = None
        self.error = None

    def run(self):
        try:
            self.resp = h.http_request(self.port, "GET", self.path, timeout=self.timeout)
        except Exception as e:  # noqa: BLE001
            self.error = e

    def result(self, test):
        self.join(h.deadline(self.timeout + 10))
        test.assertFalse(self.is_alive(), "request %s hung" % self.path)
        test.assertIsNone(self.error, "request %s failed: %r" % (self.path, self.error))
        return self.resp


class ReloadTest(h.LeveeTestCase):

    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()

    def start_v1(self, routes=ROUTES_V1):
        yaml, ports = self.simple_policy(self.up.address, routes=routes)
        self.ports = ports
        self.lv = self.start_levee(yaml, ports["probes"], ports["admin"])
        self.yaml = yaml
        return self.lv

    def status(self, path):
        return h.http_request(self.ports["listener"], "GET", path).status

    def reloads(self, result):
        return h.metric_sum(self.lv.metrics_parsed(), "levee_config_reloads_total",
                            result=result)

    def rewrite(self, text):
        h.write_config(self.tmp, text)  # same path: levee.yaml in self.tmp

    def test_sighup_adds_route(self):
        lv = self.start_v1()
        self.assertEqual(self.status("/fresh/x"), 404)
        before = self.reloads("success")
        self.rewrite(self.yaml.replace(ROUTES_V1, ROUTES_V2))
        lv.signal(signal.SIGHUP)
        h.poll(lambda: self.status("/fresh/x") == 200, 15, interval=0.1,
               what="new route served after SIGHUP")
        self.assertEqual(self.status("/api/x"), 200)
        h.poll(lambda: self.reloads("success") >= before + 1, 10,
               what="levee_config_reloads_total{result=success} incremented")
        self.assertTrue(lv.alive())

    def test_request_in_flight_during_reload_completes(self):
        lv = self.start_v1(ROUTES_V1_SLOW)
        self.up.reset_hits()
        call = Call(self.ports["listener"], "/slow/1000")
        call.start()
        h.poll(lambda: self.up.hits() >= 1, 10, what="slow request at the upstream")
        self.rewrite(self.yaml.replace(ROUTES_V1_SLOW, ROUTES_V2))
        lv.signal(signal.SIGHUP)
        h.poll(lambda: self.status("/fresh/x") == 200, 15, interval=0.1,
               what="new route served after SIGHUP")
        r = call.result(self)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["slept_ms"], 1000)

    def test_invalid_file_keeps_old_config(self):
        lv = self.start_v1()
        before = self.reloads("failure")
        self.rewrite("version: 1\nlisteners: [ this is: not valid\n")
        lv.signal(signal.SIGHUP)
        h.poll(lambda: self.reloads("failure") >= before + 1, 15, interval=0.1,
               what="levee_config_reloads_total{result=failure} incremented")
        self.assertTrue(lv.alive())
        self.assertEqual(self.status("/api/x"), 200)
        self.assertEqual(self.status("/fresh/x"), 404)
        # a semantically invalid file (dangling upstream) is rejected too
        self.rewrite(self.yaml.replace("upstream: app }", "upstream: nowhere }"))
        lv.signal(signal.SIGHUP)
        h.poll(lambda: self.reloads("failure") >= before + 2, 15, interval=0.1,
               what="second reload failure counted")
        self.assertEqual(self.status("/api/x"), 200)
        self.assertEqual(lv.probe("/health/ready").status, 200)


class DrainTest(h.LeveeTestCase):

    def test_sigterm_drains_in_flight_request(self):
        up = self.start_upstream()
        yaml, ports = self.simple_policy(up.address)
        lv = self.start_levee(yaml, ports["probes"], ports["admin"])
        up.reset_hits()
        call = Call(ports["listener"], "/slow/1500")
        call.start()
        h.poll(lambda: up.hits() >= 1, 10, what="slow request at the upstream")
        t0 = time.monotonic()
        lv.signal(signal.SIGTERM)
        r = h.poll(lambda: (lambda r: r if r.status == 503 else None)(
            lv.probe("/health/ready", timeout=2)), 3, interval=0.02,
            what="/health/ready 503 right after SIGTERM")
        self.assertLess(time.monotonic() - t0, h.deadline(1.5))
        self.assertEqual(r.json().get("status"), "not_ready")
        self.assertEqual(lv.probe("/health/live").status, 200)
        resp = call.result(self)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["slept_ms"], 1500)
        self.assertEqual(lv.wait_exit(30), 0, h.tail(lv.stderr_path))

    def test_sigterm_idle_exits_zero(self):
        up = self.start_upstream()
        yaml, ports = self.simple_policy(up.address)
        lv = self.start_levee(yaml, ports["probes"], ports["admin"])
        self.assertEqual(h.http_request(ports["listener"], "GET", "/echo").status, 200)
        t0 = time.monotonic()
        lv.signal(signal.SIGTERM)
        self.assertEqual(lv.wait_exit(20), 0)
        # idle: no need to wait for drain.grace (5s)
        self.assertLess(time.monotonic() - t0, h.deadline(4.5))

    def test_sigint_exits_zero(self):
        up = self.start_upstream()
        yaml, ports = self.simple_policy(up.address)
        lv = self.start_levee(yaml, ports["probes"], ports["admin"])
        lv.signal(signal.SIGINT)
        self.assertEqual(lv.wait_exit(20), 0)

    def test_drain_grace_bounds_exit(self):
        up = self.start_upstream()
        yaml, ports = self.simple_policy(up.address)
        yaml = yaml.replace("grace: 5s", "grace: 1s")
        lv = self.start_levee(yaml, ports["probes"], ports["admin"])
        up.reset_hits()
        call = Call(ports["listener"], "/slow/20000", timeout=40)
        call.start()
        h.poll(lambda: up.hits() >= 1, 10, what="slow request at the upstream")
        t0 = time.monotonic()
        lv.signal(signal.SIGTERM)
        self.assertEqual(lv.wait_exit(30), 0)
        self.assertLess(time.monotonic() - t0, h.deadline(10),
                        "levee did not exit by drain.grace with a request in flight")
        call.join(h.deadline(30))
        self.assertFalse(call.is_alive())


if __name__ == "__main__":
    unittest.main()
