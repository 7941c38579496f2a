"""The CLI: version, validate (ok / every error as FILE:LINE:COL: path: message), run."""

import os
import re
import subprocess
import unittest

import harness as h

ERR_RE = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<rest>.+)$")


def run(*args, timeout=30):
    if not os.access(h.LEVEE_BIN, os.X_OK):
        raise unittest.SkipTest("levee binary not found at %s" % h.LEVEE_BIN)
    return subprocess.run([h.LEVEE_BIN] + list(args), capture_output=True,
                          timeout=h.deadline(timeout), stdin=subprocess.DEVNULL)


GOOD = """\
version: 1
service: itest
admin: { address: 127.0.0.1:%(admin)d }
probes: { address: 127.0.0.1:%(probes)d }
listeners:
  - name: inbound
    address: 127.0.0.1:%(listener)d
    protocol: http
    limits: { max_header_bytes: 60KiB, max_headers: 100, header_timeout: 10s, max_body_bytes: 0, idle_timeout: 300s }
    routes:
      - { name: slow, match: { prefix: /slow }, upstream: app, timeout: 300ms }
      - { name: api, match: { prefix: /, methods: [GET, POST, HEAD, PUT, DELETE], headers: {x-canary: "1"}, host: a.example }, upstream: app }
      - { name: rx, match: { regex: "^/items/[0-9]+$" }, upstream: app }
      - { name: exact, match: { path: /exact }, upstream: app }
  - { name: db, address: 127.0.0.1:%(tcp)d, protocol: tcp, upstream: tcpapp }
upstreams:
  app: { endpoints: [ { address: 127.0.0.1:%(up)d }, { address: localhost:%(up)d } ], load_balancer: round_robin, connect_timeout: 1s, limits: { max_connections: 100, max_pending: 100, max_requests: 100 } }
  tcpapp: { protocol: tcp, endpoints: [ { address: 127.0.0.1:%(tcpup)d } ], connect_timeout: 1s, idle_timeout: 5s }
access_log: { path: stdout, format: json }
drain: { delay: 0s, grace: 5s }
"""

# Three independent errors on known lines (1-based): line 4 unknown key, line 8 bad duration,
# line 9 dangling upstream.
BAD = """\
version: 1
service: itest
probes: { address: 127.0.0.1:%(probes)d }
bogus_key: 1
listeners:
  - name: inbound
    address: 127.0.0.1:%(listener)d
    limits: { header_timeout: tenseconds }
    routes: [ { name: r, match: { prefix: / }, upstream: nowhere } ]
upstreams:
  app: { endpoints: [ { address: 127.0.0.1:%(up)d } ] }
"""


def ports():
    return {k: h.free_port() for k in ("admin", "probes", "listener", "tcp", "up", "tcpup")}


class CliTest(h.LeveeTestCase):

    def test_version(self):
        p = run("version")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode() + p.stderr.decode()
        self.assertRegex(out, r"\d+\.\d+\.\d+")

    def test_validate_ok(self):
        path = h.write_config(self.tmp, GOOD % ports())
        p = run("validate", path)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertTrue(p.stdout.decode().startswith("ok"), p.stdout)

    def test_validate_reports_every_error_with_position(self):
        path = h.write_config(self.tmp, BAD % ports(), name="bad.yaml")
        p = run("validate", path)
        self.assertEqual(p.returncode, 1, p.stdout)
        lines = [l for l in p.stderr.decode().splitlines() if l.strip()]
        errs = [ERR_RE.match(l) for l in lines]
        errs = [m for m in errs if m]
        self.assertTrue(errs, "no FILE:LINE:COL errors in stderr: %r" % lines)
        for m in errs:
            self.assertTrue(m.group("file").endswith("bad.yaml"), m.group(0))
            self.assertRegex(m.group("rest"), r"^\S+: .+", "expected 'path: message': %s"
                             % m.group(0))
        reported = {int(m.group("line")) for m in errs}
        for line, what in ((4, "unknown key"), (8, "bad duration"), (9, "dangling upstream")):
            self.assertIn(line, reported, "%s on line %d not reported: %r" % (what, line, lines))

    def test_validate_syntax_error(self):
        path = h.write_config(self.tmp, "version: 1\nlisteners: [ {\n", name="broken.yaml")
        p = run("validate", path)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(any(ERR_RE.match(l) for l in p.stderr.decode().splitlines()),
                        p.stderr.decode())

    def test_validate_missing_file(self):
        p = run("validate", os.path.join(self.tmp, "does-not-exist.yaml"))
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.strip())

    def test_run_with_invalid_config_fails_fast(self):
        path = h.write_config(self.tmp, BAD % ports(), name="bad.yaml")
        p = run("run", "--config", path, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("bad.yaml", p.stderr.decode() + p.stdout.decode())

    def test_run_example_policy_serves(self):
        up = self.start_upstream()
        tcp = self.start_upstream("tcpecho", mode="tcp")
        pr = ports()
        pr["up"], pr["tcpup"] = up.port, tcp.port
        lv = self.start_levee(GOOD % pr, pr["probes"], pr["admin"], concurrency=2)
        r = h.http_request(pr["listener"], "GET", "/exact")
        self.assertEqual(r.status, 200, r)
        r = h.http_request(pr["listener"], "GET", "/slow/10")
        self.assertEqual(r.status, 200, r)
        r = h.http_request(pr["listener"], "GET", "/other", headers={"Host": "a.example"})
        self.assertEqual(r.status, 404)  # api route needs x-canary: 1


if __name__ == "__main__":
    unittest.main()
