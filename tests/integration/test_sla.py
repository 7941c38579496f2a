"""The SLA report: GET /admin/sla and the levee_sla_* gauges against a known traffic mix.

Mix on route "all" (README "SLA report"): 90 fast 200s, 10 upstream 503s, 10 slow 200s
(/slow/300). With metrics.slo { availability: 95, latency: { threshold: 200ms, percent: 90 } }:
  availability 100/110, error rate 10/110, 10 slow requests,
  availability budget: allowed 0.05, burn (10/110)/0.05 = 1.82, remaining -0.82 (overspent),
  latency budget: allowed 0.10, burn (10/110)/0.10 = 0.91, remaining 0.09,
  p50 in the fast range, p95 and p99 in the bucket of the 300 ms requests (0.256-0.304 s, or
  up to the bucket of the slowest request as the client timed it on a busy machine).
Route "limited" answers 429s, which are the client's share and never errors.
"""

import os
import subprocess
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import harness as h

SLO = "metrics:\n  slo: { availability: 95, latency: { threshold: 200ms, percent: 90 } }\n"
ROUTES = ("      - { name: limited, match: { prefix: /limited }, upstream: app,\n"
          "          rate_limit: { rate: 1/m, burst: 1, key: route } }\n"
          "      - { name: all, match: { prefix: / }, upstream: app }\n")


def bucket_upper_bound(seconds):
    """Upper bound of the SLA latency bucket holding `seconds` (1 ms * 2^(i/4))."""
    i = 0
    while 0.001 * 2 ** (i / 4) < seconds:
        i += 1
    return 0.001 * 2 ** (i / 4) * (1 + 1e-9)


def route_row(report, route):
    for r in report["routes"]:
        if r["route"] == route:
            return r
    raise AssertionError("route %s not in /admin/sla: %r" % (route, report))


class SlaReportTest(h.LeveeTestCase):

    def setUp(self):
        super().setUp()
        up = self.start_upstream("app")
        self.yaml, self.ports = self.simple_policy(up.address, routes=ROUTES, extra=SLO)
        # Two workers: the report merges both workers' rings.
        self.lv = self.start_levee(self.yaml, self.ports["probes"], self.ports["admin"],
                                   concurrency=2)
        self.port = self.ports["listener"]

    def send_mix(self):
        paths = ["/api/fast"] * 90 + ["/status/503"] * 10 + ["/slow/300"] * 10

        def timed(path):
            t0 = time.monotonic()
            status = h.http_request(self.port, "GET", path).status
            return status, time.monotonic() - t0
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(timed, paths))
        statuses = [s for s, _ in results]
        # levee measures less than the client does: the slowest client time bounds the bucket.
        self.slowest = max(d for _, d in results)
        self.assertEqual(statuses.count(200), 100, statuses)
        self.assertEqual(statuses.count(503), 10, statuses)
        limited = [h.http_request(self.port, "GET", "/limited").status for _ in range(4)]
        self.assertEqual(limited, [200, 429, 429, 429])

    def report(self, want_requests=110):
        def ready():
            r = self.lv.admin("GET", "/admin/sla")
            self.assertEqual(r.status, 200, r)
            j = r.json()
            if route_row(j, "all")["windows"]["1m"]["requests"] >= want_requests:
                return j
            return None
        return h.poll(ready, 10, what="/admin/sla to count %d requests" % want_requests)

    def check_mix(self, w, availability_allowed=0.05):
        self.assertEqual(w["requests"], 110, w)
        self.assertEqual(w["errors"], 10, w)
        self.assertAlmostEqual(w["availability"], 100 / 110, places=5)
        self.assertAlmostEqual(w["error_rate"], 10 / 110, places=5)
        lat = w["latency_seconds"]
        self.assertLess(lat["p50"], 0.1, lat)
        # The 10 slow requests are the top 9% of 110: p95 and p99 fall in their buckets, between
        # the lower bound of 300 ms's bucket (0.256 s) and the upper bound of the bucket holding
        # the slowest request as the client saw it (0.304 s when nothing else runs).
        for q in ("p95", "p99"):
            self.assertGreaterEqual(lat[q], 0.256, lat)
            self.assertLessEqual(lat[q], bucket_upper_bound(self.slowest), (lat, self.slowest))
        self.assertLessEqual(lat["p95"], lat["p99"])
        self.assertEqual(w["slow_requests"], 10, w)
        self.assertAlmostEqual(w["latency_within_threshold"], 100 / 110, places=5)
        budget = w["error_budget"]
        a = budget["availability"]
        self.assertAlmostEqual(a["allowed_ratio"], availability_allowed, places=6)
        self.assertAlmostEqual(a["burn_rate"], (10 / 110) / availability_allowed, places=4)
        self.assertAlmostEqual(a["remaining"], 1 - (10 / 110) / availability_allowed, places=4)
        lb = budget["latency"]
        self.assertAlmostEqual(lb["allowed_ratio"], 0.1, places=6)
        self.assertAlmostEqual(lb["burn_rate"], (10 / 110) / 0.1, places=4)
        self.assertAlmostEqual(lb["remaining"], 1 - (10 / 110) / 0.1, places=4)

    def test_report_matches_the_traffic_mix(self):
        self.send_mix()
        j = self.report()
        self.assertEqual(j["slo"], {"availability_percent": 95,
                                    "latency": {"threshold_seconds": 0.2, "percent": 90}})
        self.assertEqual(j["windows"], ["1m", "5m", "1h"])
        row = route_row(j, "all")
        self.assertEqual((row["listener"], row["upstream"]), ("inbound", "app"))
        for name in ("1m", "5m", "1h"):
            with self.subTest(window=name):
                self.check_mix(row["windows"][name])
        # 429s are the client's share: the limited route has no errors.
        lim = route_row(j, "limited")["windows"]["1m"]
        self.assertEqual((lim["requests"], lim["errors"], lim["availability"]), (4, 0, 1))
        self.assertEqual(lim["error_budget"]["availability"]["remaining"], 1)

    def test_gauges_in_metrics_and_promtool(self):
        self.send_mix()
        self.report()
        text = self.lv.metrics_text()
        m = h.parse_metrics(text)
        base = {"listener": "inbound", "route": "all", "upstream": "app"}
        for window in ("1m", "5m", "1h"):
            lb = dict(base, window=window)
            self.assertAlmostEqual(h.metric_sum(m, "levee_sla_availability_ratio", **lb),
                                   100 / 110, places=5)
            self.assertEqual(h.metric_sum(m, "levee_sla_requests", **lb), 110)
            p99 = h.metric_sum(m, "levee_sla_latency_seconds", percentile="99", **lb)
            self.assertGreaterEqual(p99, 0.256)
            self.assertLess(h.metric_sum(m, "levee_sla_latency_seconds", percentile="50", **lb),
                            0.1)
            self.assertAlmostEqual(
                h.metric_sum(m, "levee_sla_error_budget_remaining_ratio", slo="availability",
                             **lb), 1 - (10 / 110) / 0.05, places=4)
            self.assertAlmostEqual(
                h.metric_sum(m, "levee_sla_error_budget_burn_rate", slo="latency", **lb),
                (10 / 110) / 0.1, places=4)
            self.assertAlmostEqual(
                h.metric_sum(m, "levee_sla_latency_within_threshold_ratio", **lb),
                100 / 110, places=5)
        self.assertAlmostEqual(
            h.metric_sum(m, "levee_sla_objective_ratio", slo="availability", **base), 0.95)
        self.assertAlmostEqual(
            h.metric_sum(m, "levee_sla_objective_ratio", slo="latency", **base), 0.90)
        self.assertAlmostEqual(h.metric_sum(m, "levee_sla_latency_threshold_seconds"), 0.2)
        # Labels stay bounded by the policy: only listener, route, upstream, window, percentile, slo.
        for (name, labels), _ in m.items():
            if name.startswith("levee_sla_"):
                self.assertLessEqual({k for k, _ in labels},
                                     {"listener", "route", "upstream", "window", "percentile",
                                      "slo"}, name)
                self.assertIn(dict(labels).get("route", "all"), ("all", "limited"))
        if not os.access(h.PROMTOOL_BIN, os.X_OK):
            self.skipTest("promtool not installed")
        p = subprocess.run([h.PROMTOOL_BIN, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=h.deadline(30))
        self.assertEqual(p.returncode, 0, "promtool check metrics:\n%s%s" % (
            p.stdout.decode(), p.stderr.decode()))

    def test_windows_survive_a_reload_and_budgets_follow_the_new_objective(self):
        self.send_mix()
        self.report()
        with open(self.lv.config_path, "w") as f:
            f.write(self.yaml.replace("availability: 95", "availability: 90"))
        r = self.lv.admin("POST", "/admin/reload", token=self.ports["token"])
        self.assertEqual(r.status, 200, r)
        j = self.lv.admin("GET", "/admin/sla").json()
        self.assertEqual(j["slo"]["availability_percent"], 90)
        self.check_mix(route_row(j, "all")["windows"]["1m"], availability_allowed=0.1)

    def test_read_only_without_token(self):
        self.assertEqual(self.lv.admin("GET", "/admin/sla").status, 200)
        r = self.lv.admin("POST", "/admin/sla", token=self.ports["token"])
        self.assertEqual(r.status, 405)
        self.assertEqual(r.headers.get("allow"), "GET, HEAD")
        # Before any traffic the configured routes are listed, with nothing to compute.
        j = self.lv.admin("GET", "/admin/sla").json()
        w = route_row(j, "all")["windows"]["5m"]
        self.assertEqual((w["requests"], w["availability"], w["latency_seconds"]["p99"]),
                         (0, None, None))
        self.assertEqual(w["error_budget"]["availability"]["remaining"], 1)


class SlaWithoutObjectivesTest(h.LeveeTestCase):

    def test_report_without_metrics_slo(self):
        lv, _, ports = self.levee_with_upstream()
        for _ in range(5):
            self.assertEqual(h.http_request(ports["listener"], "GET", "/").status, 200)
        self.assertEqual(h.http_request(ports["listener"], "GET", "/status/500").status, 500)

        def ready():
            j = lv.admin("GET", "/admin/sla").json()
            return j if route_row(j, "all")["windows"]["1h"]["requests"] >= 6 else None
        j = h.poll(ready, 10, what="/admin/sla to count 6 requests")
        self.assertEqual(j["slo"], {"availability_percent": None, "latency": None})
        w = route_row(j, "all")["windows"]["1h"]
        self.assertEqual((w["requests"], w["errors"]), (6, 1))
        self.assertAlmostEqual(w["availability"], 5 / 6, places=5)
        self.assertEqual(w["error_budget"], {})
        self.assertNotIn("slow_requests", w)
        m = lv.metrics_parsed()
        self.assertAlmostEqual(h.metric_sum(m, "levee_sla_availability_ratio", route="all",
                                            window="1h"), 5 / 6, places=5)
        self.assertEqual(h.metric_series(m, "levee_sla_error_budget_remaining_ratio"), {})
        self.assertEqual(h.metric_series(m, "levee_sla_objective_ratio"), {})


class SlaConfigErrorsTest(h.LeveeTestCase):

    def test_validate_reports_slo_errors_with_position(self):
        if not os.access(h.LEVEE_BIN, os.X_OK):
            self.skipTest("levee binary not found at %s" % h.LEVEE_BIN)
        yaml, _ = self.simple_policy("127.0.0.1:1", extra=(
            "metrics:\n  slo: { availability: 100, latency: { threshold: 0s, percent: 99 } }\n"))
        path = h.write_config(self.tmp, yaml)
        p = subprocess.run([h.LEVEE_BIN, "validate", path], capture_output=True,
                           timeout=h.deadline(30), stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 1, p)
        lines = [l for l in p.stdout.decode().splitlines() + p.stderr.decode().splitlines()
                 if l.startswith(path + ":")]
        line = yaml.count("\n", 0, yaml.index("slo:")) + 1
        self.assertEqual(len(lines), 2, lines)
        self.assertRegex(lines[0], r"^%s:%d:\d+: metrics\.slo\.availability: expected a "
                         r"percentage above 0 and below 100" % (path, line))
        self.assertRegex(lines[1], r"^%s:%d:\d+: metrics\.slo\.latency\.threshold: must be "
                         r"greater than 0" % (path, line))


if __name__ == "__main__":
    unittest.main()
