"""Probes, /metrics (names, promtool, a real Prometheus scrape), admin API, access log."""

import json
import os
import subprocess
import tempfile
import unittest
import urllib.parse

import harness as h


class ProbesTest(h.LeveeTestCase):

    def setUp(self):
        super().setUp()
        self.lv, self.up, self.ports = self.levee_with_upstream()

    def test_live(self):
        r = self.lv.probe("/health/live")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json().get("status"), "live")

    def test_ready(self):
        r = self.lv.probe("/health/ready")
        self.assertEqual(r.status, 200)
        j = r.json()
        self.assertEqual(j.get("status"), "ready")
        self.assertIsInstance(j.get("components"), dict)

    def test_startup(self):
        self.assertEqual(self.lv.probe("/health/startup").status, 200)

    def test_live_when_upstream_down(self):
        self.up.stop()
        self.assertEqual(self.lv.probe("/health/live").status, 200)


class MetricsTest(h.LeveeTestCase):

    def setUp(self):
        super().setUp()
        self.lv, self.up, self.ports = self.levee_with_upstream(
            routes='      - { name: all, match: { regex: "^/(echo|status/[0-9]+)$" }, upstream: app }\n')

    def traffic(self):
        port = self.ports["listener"]
        for _ in range(3):
            self.assertEqual(h.http_request(port, "GET", "/echo").status, 200)
        self.assertEqual(h.http_request(port, "POST", "/echo", body=b"x").status, 200)
        self.assertEqual(h.http_request(port, "GET", "/status/503").status, 503)
        self.assertEqual(h.http_request(port, "GET", "/nope").status, 404)

    def test_metric_names_and_labels(self):
        self.traffic()

        def collected():
            m = self.lv.metrics_parsed()
            ok = h.metric_sum(m, "levee_http_requests_total", listener="inbound", route="all",
                              upstream="app", method="GET", code="200") >= 3
            return m if ok else None
        m = h.poll(collected, 10, interval=0.1, what="levee_http_requests_total counted")
        self.assertGreaterEqual(h.metric_sum(m, "levee_http_requests_total", route="all",
                                             method="POST", code="200"), 1)
        self.assertGreaterEqual(h.metric_sum(m, "levee_http_requests_total", route="all",
                                             method="GET", code="503"), 1)
        self.assertGreaterEqual(h.metric_sum(m, "levee_http_request_duration_seconds_count",
                                             listener="inbound", route="all", upstream="app"), 5)
        self.assertIn(True, [n == "levee_http_request_duration_seconds_bucket" and
                             dict(ls).get("le") == "+Inf" for (n, ls) in m],
                      "histogram has no +Inf bucket")
        self.assertIn(True, [n == "levee_http_request_duration_seconds_sum" for (n, _) in m])
        self.assertGreaterEqual(h.metric_sum(m, "levee_local_replies_total", reason="no_route"),
                                1)
        for name, label in (("levee_downstream_connections", "listener"),
                            ("levee_upstream_connections", "upstream"),
                            ("levee_build_info", "version")):
            series = h.metric_series(m, name)
            self.assertTrue(series, "%s missing" % name)
            self.assertTrue(all(label in dict(ls) for ls in series), "%s lacks %s" % (name, label))
        self.assertIn("inbound", [dict(ls).get("listener") for ls in
                                  h.metric_series(m, "levee_downstream_connections")])
        self.assertIn("app", [dict(ls).get("upstream") for ls in
                              h.metric_series(m, "levee_upstream_connections")])
        # levee_config_reloads_total: test_lifecycle; levee_upstream_overflow_total:
        # test_limits_timeouts; levee_tcp_bytes_total: test_tcp_proxy.

    def test_promtool_accepts_metrics(self):
        if not os.access(h.PROMTOOL_BIN, os.X_OK):
            self.skipTest("promtool not installed")
        self.traffic()
        text = self.lv.metrics_text()
        p = subprocess.run([h.PROMTOOL_BIN, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=h.deadline(30))
        self.assertEqual(p.returncode, 0, "promtool check metrics:\n%s%s" % (
            p.stdout.decode(), p.stderr.decode()))

    def test_prometheus_scrapes_levee(self):
        if not os.access(h.PROMETHEUS_BIN, os.X_OK):
            self.skipTest("prometheus not installed")
        port = h.free_port()
        d = tempfile.mkdtemp(prefix="prom-", dir=self.tmp)
        cfg = os.path.join(d, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global: { scrape_interval: 1s, evaluation_interval: 1s }\n"
                    "scrape_configs:\n"
                    "  - job_name: levee\n"
                    "    metrics_path: /metrics\n"
                    "    static_configs: [ { targets: ['127.0.0.1:%d'] } ]\n"
                    % self.ports["probes"])
        log = open(os.path.join(d, "prometheus.log"), "wb")
        proc = subprocess.Popen(
            [h.PROMETHEUS_BIN, "--config.file=" + cfg, "--storage.tsdb.path=" + d + "/tsdb",
             "--web.listen-address=127.0.0.1:%d" % port],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=d)
        try:
            q = "/api/v1/query?query=" + urllib.parse.quote("levee_build_info")

            def result():
                if proc.poll() is not None:
                    raise AssertionError("prometheus exited: " +
                                         h.tail(os.path.join(d, "prometheus.log")))
                r = h.http_request(port, "GET", q, timeout=5)
                j = r.json()
                return j["data"]["result"] if j.get("status") == "success" else None
            res = h.poll(result, 60, interval=0.5, what="levee_build_info in Prometheus")
            self.assertEqual(res[0]["metric"]["__name__"], "levee_build_info")
            self.assertIn("version", res[0]["metric"])
            up = h.http_request(port, "GET", "/api/v1/query?query=up", timeout=5).json()
            self.assertEqual(up["data"]["result"][0]["value"][1], "1")
        finally:
            h.stop_process(proc, 10)
            log.close()


class AdminTest(h.LeveeTestCase):

    def setUp(self):
        super().setUp()
        self.lv, self.up, self.ports = self.levee_with_upstream()
        self.token = self.ports["token"]

    def test_config(self):
        r = self.lv.admin("GET", "/admin/config")
        self.assertEqual(r.status, 200, r)
        j = r.json()
        for key in ("hash", "source", "policy"):
            self.assertIn(key, j)
        self.assertEqual(os.path.realpath(j["source"]), os.path.realpath(self.lv.config_path))

    def test_clusters(self):
        r = self.lv.admin("GET", "/admin/clusters")
        self.assertEqual(r.status, 200, r)
        ups = {u["name"]: u for u in r.json()["upstreams"]}
        self.assertIn("app", ups)
        self.assertIn(self.up.address, [e["address"] for e in ups["app"]["endpoints"]])

    def test_reload_needs_token(self):
        r = self.lv.admin("POST", "/admin/reload")
        self.assertEqual(r.status, 401, r)
        r = self.lv.admin("POST", "/admin/reload", token="wrong")
        self.assertEqual(r.status, 401, r)
        r = self.lv.admin("POST", "/admin/reload", token=self.token)  # file has spaces + \n
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("result"), "success")

    def test_reload_invalid_file_400(self):
        with open(self.lv.config_path) as f:
            good = f.read()
        with open(self.lv.config_path, "w") as f:
            f.write(good.replace("upstream: app }", "upstream: missing }"))
        r = self.lv.admin("POST", "/admin/reload", token=self.token)
        self.assertEqual(r.status, 400, r)
        j = r.json()
        self.assertEqual(j.get("result"), "failure")
        self.assertIsInstance(j.get("errors"), list)
        self.assertTrue(j["errors"])
        self.assertEqual(h.http_request(self.ports["listener"], "GET", "/echo").status, 200)

    def test_reload_changes_config_hash(self):
        h1 = self.lv.admin("GET", "/admin/config").json()["hash"]
        with open(self.lv.config_path, "a") as f:
            f.write("# a comment changes the bytes\n")
        self.assertEqual(self.lv.admin("POST", "/admin/reload", token=self.token).status, 200)
        h2 = self.lv.admin("GET", "/admin/config").json()["hash"]
        self.assertNotEqual(h1, h2)

    def test_unknown_path_404_wrong_method_405(self):
        self.assertEqual(self.lv.admin("GET", "/admin/nope").status, 404)
        self.assertEqual(self.lv.admin("GET", "/nope").status, 404)
        self.assertEqual(self.lv.admin("DELETE", "/admin/config", token=self.token).status, 405)
        self.assertEqual(self.lv.admin("GET", "/admin/reload", token=self.token).status, 405)


class AdminNoTokenTest(h.LeveeTestCase):

    def test_mutations_refused_without_token_file(self):
        lv, up, ports = self.levee_with_upstream(token=False)
        r = lv.admin("POST", "/admin/reload")
        self.assertIn(r.status, (401, 403), r)
        r = lv.admin("POST", "/admin/reload", token="anything")
        self.assertIn(r.status, (401, 403), r)
        r = lv.admin("POST", "/admin/reload", token="")
        self.assertIn(r.status, (401, 403), r)
        self.assertEqual(lv.admin("GET", "/admin/config").status, 200)


class AccessLogTest(h.LeveeTestCase):

    def test_json_line_per_request(self):
        lv, up, ports = self.levee_with_upstream()
        r = h.http_request(ports["listener"], "POST", "/echo?q=1", body=b"abc",
                           headers={"X-Request-Id": "log-me-1"})
        self.assertEqual(r.status, 200)
        r = h.http_request(ports["listener"], "GET", "/status/418",
                           headers={"X-Request-Id": "log-me-2"})
        self.assertEqual(r.status, 418)

        def lines():
            got = {e.get("request_id"): e for e in lv.access_log()}
            return got if "log-me-1" in got and "log-me-2" in got else None
        got = h.poll(lines, 10, interval=0.1, what="access log lines on stdout")
        e = got["log-me-1"]
        for key in ("request_id", "method", "path", "status", "route", "upstream",
                    "duration_ms"):
            self.assertIn(key, e, e)
        self.assertEqual(e["method"], "POST")
        self.assertTrue(e["path"].startswith("/echo"), e)
        self.assertEqual(int(e["status"]), 200)
        self.assertEqual(e["route"], "all")
        self.assertEqual(e["upstream"], "app")
        self.assertGreaterEqual(float(e["duration_ms"]), 0)
        self.assertEqual(int(got["log-me-2"]["status"]), 418)
        self.assertEqual(len([x for x in lv.access_log() if x.get("request_id") == "log-me-1"]),
                         1)


if __name__ == "__main__":
    unittest.main()
