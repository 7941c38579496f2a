"""Lifecycle of a sidecar (issue 5, DESIGN section 10): drain phases, Connection: close on the
next keep-alive response, outbound listeners served during the drain, POST /admin/drain and
/admin/quit, /health/startup, and `levee await`."""

import signal
import socket
import subprocess
import time

import harness as h
from test_lifecycle import Call


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


class DrainLifecycleTest(h.LeveeTestCase):

    def launch(self, delay="0s", grace="10s", outbound=False):
        self.up = self.start_upstream()
        yaml, ports = self.simple_policy(self.up.address)
        if outbound:
            ports["outbound"] = h.free_port()
            yaml = yaml.replace("upstreams:\n", (
                "  - name: egress\n    address: 127.0.0.1:%d\n    direction: outbound\n"
                "    routes:\n      - { name: out, match: { prefix: / }, upstream: app }\n"
                "upstreams:\n") % ports["outbound"], 1)
        yaml = yaml.replace("drain: { delay: 0s, grace: 5s }",
                            "drain: { delay: %s, grace: %s }" % (delay, grace))
        self.ports = ports
        self.lv = self.start_levee(yaml, ports["probes"], ports["admin"])
        return self.lv

    def wait_not_ready(self):
        return h.poll(lambda: self.lv.probe("/health/ready", timeout=2).status == 503, 5,
                      interval=0.02, what="/health/ready 503")

    def test_startup_probe(self):
        self.launch()
        r = self.lv.probe("/health/startup")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["status"], "started")
        ready = self.lv.probe("/health/ready").json()
        self.assertEqual(ready["components"]["listeners"], "healthy")
        self.assertEqual(ready["components"]["config"], "healthy")

    def test_keep_alive_gets_connection_close_on_its_next_response(self):
        self.launch(delay="3s", grace="10s")
        with h.RawConn(self.ports["listener"]) as c:
            c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertNotEqual(r.headers.get("connection"), "close", r)
            self.lv.signal(signal.SIGTERM)
            self.wait_not_ready()
            # Still within drain.delay: the connection is served, and told to go away.
            c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers.get("connection"), "close", r)
            self.assertTrue(c.wait_closed(5), "levee kept the connection after Connection: close")
        # New connections are still accepted during the delay (endpoints are updating).
        self.assertEqual(h.http_request(self.ports["listener"], "GET", "/echo").status, 200)
        h.poll(lambda: refused(self.ports["listener"]), 10, interval=0.05,
               what="inbound listener closed after drain.delay")
        self.assertEqual(self.lv.wait_exit(30), 0)

    def test_outbound_listener_keeps_serving_during_the_drain(self):
        self.launch(delay="0s", grace="8s", outbound=True)
        self.up.reset_hits()
        slow = Call(self.ports["listener"], "/slow/2500")
        slow.start()
        h.poll(lambda: self.up.hits() >= 1, 10, what="slow inbound request at the upstream")
        out = h.RawConn(self.ports["outbound"])
        self.addCleanup(out.close)
        out.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(out.read_response().status, 200)
        self.lv.signal(signal.SIGTERM)
        self.wait_not_ready()
        h.poll(lambda: refused(self.ports["listener"]), 10, interval=0.05,
               what="inbound listener closed")
        # Outbound: new connections accepted, keep-alive kept (no Connection: close).
        r = h.send_raw_resp(self.ports["outbound"], b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
                            wait_close=0.5)
        self.assertEqual(r.status, 200, r)
        self.assertNotEqual(r.headers.get("connection"), "close", r)
        out.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        r = out.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertNotEqual(r.headers.get("connection"), "close", r)
        resp = slow.result(self)
        self.assertEqual(resp.status, 200, resp)
        self.assertTrue(self.lv.alive(), "exited while the outbound connection was open")
        out.close()  # the app is gone: nothing left, levee exits before the grace
        t0 = time.monotonic()
        self.assertEqual(self.lv.wait_exit(30), 0)
        self.assertLess(time.monotonic() - t0, h.deadline(6))

    def test_admin_quit_drains_then_exits_zero(self):
        self.launch(delay="2s", grace="20s")
        self.up.reset_hits()
        slow = Call(self.ports["listener"], "/slow/1500")
        slow.start()
        h.poll(lambda: self.up.hits() >= 1, 10, what="slow request at the upstream")
        r = self.lv.admin("POST", "/admin/quit", body={"delay": "0s"}, token=self.ports["token"])
        self.assertEqual(r.status, 202, r)
        j = r.json()
        self.assertEqual((j["before"], j["after"], j["exit"]), ("running", "draining_to_exit", True))
        self.wait_not_ready()
        resp = slow.result(self)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["slept_ms"], 1500)
        self.assertEqual(self.lv.wait_exit(30), 0, h.tail(self.lv.stderr_path))
        self.assertIn("path=/admin/quit status=202 outcome=ok", self.lv.stderr_text())

    def test_admin_drain_drains_without_exiting_then_sigterm_exits(self):
        self.launch(delay="0s", grace="1s")
        r = self.lv.admin("POST", "/admin/drain", token=self.ports["token"])
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json()["after"], "draining")
        self.wait_not_ready()
        h.poll(lambda: refused(self.ports["listener"]), 10, interval=0.05,
               what="inbound listener closed")
        # Idle and past drain.grace: a drain without exit keeps the process up.
        t_end = time.monotonic() + 1.5

        def alive_past_grace():
            if not self.lv.alive():
                raise h.GiveUp("levee exited after POST /admin/drain (no exit was asked for)")
            return time.monotonic() > t_end
        h.poll(alive_past_grace, 10, what="still alive after the grace")
        self.assertEqual(self.lv.probe("/health/live").status, 200)
        r = self.lv.admin("POST", "/admin/drain", token=self.ports["token"])
        self.assertEqual(r.json()["before"], "draining")
        self.lv.signal(signal.SIGTERM)
        self.assertEqual(self.lv.wait_exit(20), 0)


class AwaitTest(h.LeveeTestCase):

    def run_await(self, *args, timeout=60):
        return subprocess.run([h.LEVEE_BIN, "await"] + list(args), capture_output=True,
                              text=True, timeout=h.deadline(timeout))

    def test_await_returns_zero_once_ready(self):
        up = self.start_upstream()
        yaml, ports = self.simple_policy(up.address)
        # Start levee and `levee await` together; await must block until ready.
        lv = self.start_levee(yaml, ports["probes"], ports["admin"], wait=False)
        p = self.run_await("--address", "127.0.0.1:%d" % ports["probes"], "--timeout",
                           "%ds" % int(h.deadline(30)))
        self.assertEqual(p.returncode, 0, p)
        self.assertIn("ready", p.stdout)
        self.assertEqual(lv.probe("/health/ready").status, 200)

    def test_await_returns_one_on_timeout_against_a_closed_port(self):
        port = h.free_port()  # nothing listens there
        t0 = time.monotonic()
        p = self.run_await("--address", "127.0.0.1:%d" % port, "--timeout", "700ms")
        elapsed = time.monotonic() - t0
        self.assertEqual(p.returncode, 1, p)
        self.assertIn("timed out after 700 ms", p.stderr)
        self.assertIn("connect: Connection refused", p.stderr)
        self.assertGreaterEqual(elapsed, 0.6)
        self.assertLess(elapsed, h.deadline(10))

    def test_await_fails_while_draining(self):
        up = self.start_upstream()
        yaml, ports = self.simple_policy(up.address)
        yaml = yaml.replace("drain: { delay: 0s, grace: 5s }", "drain: { delay: 10s, grace: 20s }")
        lv = self.start_levee(yaml, ports["probes"], ports["admin"])
        lv.signal(signal.SIGTERM)
        h.poll(lambda: lv.probe("/health/ready", timeout=2).status == 503, 5, interval=0.02,
               what="not ready")
        p = self.run_await("--address", "127.0.0.1:%d" % ports["probes"], "--timeout", "500ms")
        self.assertEqual(p.returncode, 1, p)
        self.assertIn("HTTP 503", p.stderr)

    def test_bad_usage_is_exit_2(self):
        p = self.run_await("--timeout", "5")
        self.assertEqual(p.returncode, 2, p)
        self.assertIn("--timeout", p.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
