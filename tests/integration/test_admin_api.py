"""Admin API hardening (issue 5, DESIGN section 7): 401/403/404/405/400/413 and the audit log."""

import re
import socket

import harness as h


def audit_lines(lv):
    return [l for l in lv.stderr_text().splitlines() if "audit: " in l]


class AdminApiTest(h.LeveeTestCase):

    def setUp(self):
        super().setUp()
        self.lv, self.up, self.ports = self.levee_with_upstream()
        self.token = self.ports["token"]

    def wait_audit(self, pattern):
        rx = re.compile(pattern)
        return h.poll(lambda: [l for l in audit_lines(self.lv) if rx.search(l)], 10,
                      what="audit line matching %r" % pattern)

    def test_401_without_and_with_wrong_token_for_every_mutation(self):
        for path in ("/admin/reload", "/admin/drain", "/admin/quit",
                     "/admin/circuit-breakers/app/open"):
            for token in (None, "wrong", ""):
                r = self.lv.admin("POST", path, token=token)
                self.assertEqual(r.status, 401, (path, token, r))
                self.assertEqual(r.headers.get("www-authenticate"), "Bearer", r)
                self.assertEqual(r.json()["status"], 401)
        # Nothing happened: still ready, still serving.
        self.assertEqual(self.lv.probe("/health/ready").status, 200)
        self.assertEqual(h.http_request(self.ports["listener"], "GET", "/echo").status, 200)
        lines = self.wait_audit(r"path=/admin/quit status=401 outcome=denied")
        self.assertIn("peer=127.0.0.1", lines[0])

    def test_404_and_405_with_allow(self):
        r = self.lv.admin("GET", "/admin/nope")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.json()["error"], "not found")
        r = self.lv.admin("DELETE", "/admin/config", token=self.token)
        self.assertEqual((r.status, r.headers.get("allow")), (405, "GET, HEAD"), r)
        for path in ("/admin/reload", "/admin/drain", "/admin/quit"):
            r = self.lv.admin("GET", path, token=self.token)
            self.assertEqual((r.status, r.headers.get("allow")), (405, "POST"), (path, r))

    def test_400_for_bad_bodies_with_a_message(self):
        cases = [
            ("/admin/drain", "delay=1s", "invalid JSON at byte 0"),
            ("/admin/drain", '{"delay": 5}', "delay: expected a duration string"),
            ("/admin/quit", '{"dealy": "1s"}', 'unknown key "dealy"'),
            ("/admin/quit", '{"delay": "10s", "grace": "1s"}', "delay must not exceed grace"),
            ("/admin/reload", '{"force": true}', "takes no parameters"),
        ]
        for path, body, message in cases:
            r = self.lv.admin("POST", path, body=body, token=self.token)
            self.assertEqual(r.status, 400, (path, body, r))
            self.assertIn(message, r.json()["error"], (path, body, r))
        # None of them started a drain or an exit.
        self.assertEqual(self.lv.probe("/health/ready").status, 200)
        self.assertTrue(self.lv.alive())
        self.wait_audit(r"path=/admin/quit status=400 outcome=refused")

    def test_413_for_an_oversized_body(self):
        # Declared length above 64 KiB: answered at once, without reading the body, and closed.
        with h.RawConn(self.ports["admin"]) as c:
            c.send(b"POST /admin/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   b"Content-Length: 70000\r\n\r\n" % self.token.encode())
            r = c.read_response()
            self.assertEqual(r.status, 413, r)
            self.assertIn("larger than 65536 bytes", r.json()["error"])
            self.assertTrue(c.wait_closed(5))
        # A chunked body that grows past the limit.
        with h.RawConn(self.ports["admin"]) as c:
            chunk = b"x" * 40000
            c.send(b"POST /admin/drain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n" % self.token.encode())
            try:
                for _ in range(2):
                    c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                pass
            r = c.read_response()
            self.assertEqual(r.status, 413, r)
        # Exactly at the limit is fine (a valid JSON object padded with spaces).
        body = "{}" + " " * (65536 - 2)
        r = self.lv.admin("POST", "/admin/reload", body=body, token=self.token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.lv.probe("/health/ready").status, 200)  # the drain did not start
        self.wait_audit(r"path=/admin/reload status=413")

    def test_audit_lines_carry_who_what_before_after_and_outcome(self):
        r = self.lv.admin("POST", "/admin/circuit-breakers/app/open", token=self.token)
        # No breaker configured on this upstream: refused, and still audited.
        self.assertEqual(r.status, 404, r)
        with open(self.lv.config_path, "a") as f:
            f.write("# changed\n")
        r = self.lv.admin("POST", "/admin/reload", token=self.token)
        self.assertEqual(r.status, 200, r)
        j = r.json()
        self.assertNotEqual(j["before"]["hash"], j["after"]["hash"], j)
        line = self.wait_audit(r"method=POST path=/admin/reload status=200 outcome=ok")[-1]
        self.assertIn("peer=127.0.0.1", line)
        self.assertIn('"before":{"hash":"%s"}' % j["before"]["hash"], line)
        self.assertIn('"after":{"hash":"%s"' % j["after"]["hash"], line)
        self.wait_audit(r"path=/admin/circuit-breakers/app/open status=404 outcome=refused")
        # Reads are not audited.
        self.lv.admin("GET", "/admin/config")
        # The log is asynchronous and in order: once a later audited call shows, the read would have.
        self.lv.admin("POST", "/admin/drain", token="wrong")
        self.wait_audit(r"path=/admin/drain status=401")
        self.assertFalse([l for l in audit_lines(self.lv) if "path=/admin/config" in l])

    def test_breaker_action_audits_before_and_after(self):
        lv, up, ports = self.levee_with_upstream(
            upstream_extra=", circuit_breaker: { consecutive_failures: 5, open_for: 30s }")
        r = lv.admin("POST", "/admin/circuit-breakers/app/open", token=ports["token"])
        self.assertEqual(r.status, 200, r)
        line = h.poll(lambda: [l for l in audit_lines(lv)
                               if "path=/admin/circuit-breakers/app/open status=200" in l], 10,
                      what="breaker audit line")[0]
        self.assertIn('"before":"closed"', line)
        self.assertIn('"after":"forced_open"', line)


class AdminNoTokenFileTest(h.LeveeTestCase):

    def test_403_when_no_token_file_is_configured(self):
        lv, up, ports = self.levee_with_upstream(token=False)
        for path in ("/admin/reload", "/admin/drain", "/admin/quit"):
            for token in (None, "anything"):
                r = lv.admin("POST", path, token=token)
                self.assertEqual(r.status, 403, (path, token, r))
                self.assertIn("no admin.token_file configured", r.json()["error"])
        self.assertEqual(lv.admin("GET", "/admin/config").status, 200)
        self.assertEqual(lv.probe("/health/ready").status, 200)


if __name__ == "__main__":
    import unittest
    unittest.main()
