"""charts/levee: the Grafana dashboard and the Prometheus rules.

- levee-rules.yaml passes `promtool check rules`, and its unit tests (levee-rules.test.yaml,
  `promtool test rules`) show the burn-rate, breaker, reload, degradation and backup alerts fire
  when they should and stay quiet when they should.
- levee.json is a Grafana dashboard whose every query is valid PromQL (checked by promtool as
  recording rules, with the dashboard variables substituted), covering the panels operators need.
- Every levee metric the dashboard or the rules reference is exported by a running levee (with a
  policy that turns on breakers, retries, rate limits and SLOs) or listed in DESIGN section 9
  (features of later issues: degradation, faults, fallback, companion).
- With helm installed (`scripts/install-deps.sh --helm`; skipped otherwise): the chart lints, and
  its rendered policy passes `levee validate`, its dashboard ConfigMap holds levee.json and its
  PrometheusRule the rules file, unchanged.
"""

import json
import os
import re
import shutil
import subprocess
import textwrap
import unittest

import harness as h

ROOT = os.path.normpath(os.path.join(h.HERE, "..", ".."))
CHART = os.path.join(ROOT, "charts", "levee")
DASHBOARD = os.path.join(CHART, "dashboards", "levee.json")
RULES = os.path.join(CHART, "rules", "levee-rules.yaml")
RULES_TEST = os.path.join(CHART, "rules", "levee-rules.test.yaml")
DESIGN = os.path.normpath(os.path.join(ROOT, "..", "shared", "docs", "DESIGN.md"))

# DESIGN section 9's metric list (a copy, so the test runs without shared/; when DESIGN.md is
# reachable, test_design_list_is_current checks the copy against it).
DESIGN_METRICS = {
    "levee_http_requests_total", "levee_http_request_duration_seconds",
    "levee_upstream_rq_retries_total", "levee_retry_budget_exhausted_total",
    "levee_circuit_breaker_state", "levee_circuit_breaker_transitions_total",
    "levee_rate_limited_total", "levee_fallback_responses_total", "levee_degradation_level",
    "levee_local_replies_total", "levee_upstream_endpoints", "levee_outlier_ejections_total",
    "levee_faults_injected_total", "levee_downstream_connections", "levee_upstream_connections",
    "levee_config_reloads_total", "levee_config_hash", "levee_build_info",
    "levee_sla_availability_ratio", "levee_backup_last_success_timestamp_seconds",
    "levee_failover_total", "levee_db_replication_lag_seconds",
}

# The companion's metrics (backup, WAL archive, failover) need PostgreSQL and friends to show up
# in /metrics, so a chart may also reference one that its README documents and the code
# registers. DESIGN section 9 lists the core's; shared/ is not part of this repository.
COMPANION_DOCS = [os.path.join(ROOT, "companion", "README.md"),
                  os.path.join(ROOT, "companion", "wal", "README.md")]
SOURCE_DIRS = [os.path.join(ROOT, d) for d in ("proxy", "filters", "config", "companion")]


def registered_metrics():
    """Metric names the code registers: string literals in the non-test sources."""
    registered = set()
    for top in SOURCE_DIRS:
        for base, _, files in os.walk(top):
            for name in files:
                if name.endswith(".cc") and not name.endswith("_test.cc"):
                    with open(os.path.join(base, name)) as f:
                        registered |= set(re.findall(r'"(levee_[a-z0-9_]+)"', f.read()))
    return registered


def companion_documented():
    """Metric names documented (in backquotes) in the companion READMEs."""
    documented = set()
    for path in COMPANION_DOCS:
        with open(path) as f:
            documented |= set(re.findall(r"`(levee_[a-z0-9_]+)", f.read()))
    return documented

METRIC_RE = re.compile(r"\b(levee_[a-zA-Z0-9_]+)")
RECORDING_RE = re.compile(r"\b(levee:[a-zA-Z0-9_:]+)")


def family(name):
    """levee_x_bucket / _sum / _count -> levee_x (the histogram family)."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def dashboard_exprs(dash):
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append((p["title"], t["expr"]))
            walk(p.get("panels", []))
    walk(dash["panels"])
    return out


def rule_exprs(text):
    """(name, expr) of every rule, from the YAML text (the standard library has no YAML
    parser; the rules file keeps one `expr:` per rule, inline or as a `|` block)."""
    out = []
    lines = text.splitlines()
    name = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*- (record|alert): (\S+)", line)
        if m:
            name = m.group(2)
        m = re.match(r"(\s*)expr: ?(.*)$", line)
        if m:
            indent, rest = len(m.group(1)), m.group(2)
            if rest.strip() == "|":
                body = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or
                                          len(lines[i]) - len(lines[i].lstrip()) > indent):
                    body.append(lines[i].strip())
                    i += 1
                out.append((name, " ".join(body)))
                continue
            out.append((name, rest))
        i += 1
    return out


def promtool():
    if not os.access(h.PROMTOOL_BIN, os.X_OK):
        raise unittest.SkipTest("promtool not installed")
    return h.PROMTOOL_BIN


class RulesTest(unittest.TestCase):

    def test_promtool_check_rules(self):
        p = subprocess.run([promtool(), "check", "rules", RULES], capture_output=True,
                           timeout=h.deadline(60))
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        self.assertIn("SUCCESS", p.stdout.decode())

    def test_promtool_unit_tests(self):
        p = subprocess.run([promtool(), "test", "rules", os.path.basename(RULES_TEST)],
                           capture_output=True, timeout=h.deadline(120),
                           cwd=os.path.dirname(RULES_TEST))
        out = p.stdout.decode() + p.stderr.decode()
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("SUCCESS", out)

    def test_expected_alerts_are_defined(self):
        with open(RULES) as f:
            text = f.read()
        alerts = set(re.findall(r"- alert: (\S+)", text))
        for a in ("LeveeErrorBudgetFastBurn", "LeveeErrorBudgetSlowBurn",
                  "LeveeLatencyBudgetFastBurn", "LeveeCircuitBreakerOpen",
                  "LeveeConfigReloadFailed", "LeveeBackupStale"):
            self.assertIn(a, alerts)
        # Every alert has a severity, a summary and a description, and a unit test.
        with open(RULES_TEST) as f:
            tested = set(re.findall(r"alertname: (\S+)", f.read()))
        for block in text.split("- alert: ")[1:]:
            name = block.split()[0]
            with self.subTest(alert=name):
                self.assertRegex(block, r"severity: (page|ticket|critical|warning)")
                self.assertIn("summary:", block)
                self.assertIn("description:", block)
        self.assertLessEqual({"LeveeErrorBudgetFastBurn", "LeveeErrorBudgetSlowBurn",
                              "LeveeLatencyBudgetFastBurn", "LeveeCircuitBreakerOpen",
                              "LeveeNoHealthyEndpoints", "LeveeConfigReloadFailed",
                              "LeveeDegraded", "LeveeBackupStale"}, tested)

    def test_recording_rules_used_are_defined(self):
        with open(RULES) as f:
            text = f.read()
        defined = set(re.findall(r"- record: (\S+)", text))
        for name, expr in rule_exprs(text):
            for used in RECORDING_RE.findall(expr):
                self.assertIn(used, defined, "%s uses %s" % (name, used))


class DashboardTest(unittest.TestCase):

    def setUp(self):
        with open(DASHBOARD) as f:
            self.dash = json.load(f)

    def test_structure(self):
        d = self.dash
        self.assertEqual(d["title"], "levee")
        self.assertTrue(d["uid"])
        variables = {v["name"]: v for v in d["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        self.assertEqual(variables["sla_window"]["query"], "1m,5m,1h")
        ids = []
        for p in d["panels"]:
            ids.append(p["id"])
            for k in ("x", "y", "w", "h"):
                self.assertIsInstance(p["gridPos"][k], int, p["title"])
            self.assertLessEqual(p["gridPos"]["x"] + p["gridPos"]["w"], 24, p["title"])
            if p["type"] != "row":
                self.assertTrue(p["targets"], p["title"])
                self.assertEqual(p["datasource"]["uid"], "${datasource}", p["title"])
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")

    def test_covers_what_operators_need(self):
        used = {family(n) for _, e in dashboard_exprs(self.dash) for n in METRIC_RE.findall(e)}
        for metric in ("levee_http_requests_total", "levee_http_request_duration_seconds",
                       "levee_circuit_breaker_state", "levee_upstream_rq_retries_total",
                       "levee_rate_limited_total", "levee_fallback_responses_total",
                       "levee_degradation_level", "levee_sla_availability_ratio",
                       "levee_sla_error_budget_remaining_ratio"):
            self.assertIn(metric, used)
        exprs = " ".join(e for _, e in dashboard_exprs(self.dash))
        for q in ("0.5", "0.95", "0.99"):
            self.assertIn("histogram_quantile(%s, sum by (le" % q, exprs)

    def test_every_query_is_valid_promql(self):
        # promtool parses each query as a recording rule, variables substituted.
        subst = {"$__rate_interval": "5m", "$job": ".*", "$route": ".*", "$sla_window": "5m"}
        lines = ["groups:", "  - name: dashboard", "    rules:"]
        for i, (title, expr) in enumerate(dashboard_exprs(self.dash)):
            for k, v in subst.items():
                expr = expr.replace(k, v)
            self.assertNotIn("$", expr, title)
            lines.append("      - record: dashboard_query_%d" % i)
            lines.append("        expr: %s" % json.dumps(expr))
        tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), "levee-dashboard-%d.yaml" % os.getpid())
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        try:
            p = subprocess.run([promtool(), "check", "rules", tmp], capture_output=True,
                               timeout=h.deadline(60))
        finally:
            os.unlink(tmp)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())


class MetricsExistTest(h.LeveeTestCase):
    """Every metric the charts reference: in a running levee's /metrics, or documented (DESIGN 9,
    the companion READMEs) and registered in the code."""

    def exported(self):
        up = self.start_upstream("app")
        routes = ("      - name: all\n"
                  "        match: { prefix: / }\n"
                  "        upstream: app\n"
                  "        retry: { max_retries: 1, on: [5xx], budget: { percent: 20, min_concurrency: 3 } }\n"
                  "        rate_limit: { rate: 1000/s, burst: 1000 }\n")
        yaml, ports = self.simple_policy(
            up.address, routes=routes,
            upstream_extra=(", circuit_breaker: { consecutive_failures: 5 }, "
                            "outlier_detection: { consecutive_failures: 5 }"),
            extra="metrics:\n  slo: { availability: 99.9, latency: { threshold: 500ms, percent: 99 } }\n")
        lv = self.start_levee(yaml, ports["probes"], ports["admin"])
        for path in ("/", "/status/503", "/nope"):
            h.http_request(ports["listener"], "GET", path)
        names = set()
        for line in lv.metrics_text().splitlines():
            if line.startswith("# TYPE "):
                names.add(line.split()[2])
        return names

    def test_referenced_metrics_exist(self):
        names = self.exported()
        self.assertIn("levee_sla_availability_ratio", names)
        # Not in this levee's /metrics: documented (DESIGN 9 or the companion) and registered,
        # so a panel or an alert never waits for a metric nothing exports.
        unexported = (DESIGN_METRICS | companion_documented()) & registered_metrics()
        self.assertIn("levee_wal_archive_rpo_seconds", unexported)
        self.assertIn("levee_db_replication_lag_seconds", unexported)
        known = names | unexported
        with open(DASHBOARD) as f:
            dash = json.load(f)
        with open(RULES) as f:
            rules_text = f.read()
        refs = [("dashboard: " + t, e) for t, e in dashboard_exprs(dash)]
        refs += [("rule " + n, e) for n, e in rule_exprs(rules_text)]
        self.assertGreater(len(refs), 30)
        missing = []
        for where, expr in refs:
            for n in METRIC_RE.findall(expr):
                if family(n) not in known and n not in known:
                    missing.append("%s: %s" % (where, n))
        self.assertEqual(missing, [], "not exported by this levee, and not both documented (DESIGN "
                         "section 9, companion READMEs) and registered in the code")

    def test_design_list_is_current(self):
        if not os.path.exists(DESIGN):
            self.skipTest("DESIGN.md not found at %s" % DESIGN)
        with open(DESIGN) as f:
            text = f.read()
        start = text.index("## 9. Metrics")
        section = text[start:text.index("## 10.", start)]
        self.assertEqual(set(METRIC_RE.findall(section)), DESIGN_METRICS)


def block_after(text, marker, indent):
    """The literal block that follows the line `marker` in rendered YAML, dedented."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.rstrip() == marker) + 1
    body = []
    for line in lines[start:]:
        if line.strip() and not line.startswith(" " * indent):
            break
        body.append(line)
    while body and not body[-1].strip():
        body.pop()
    return textwrap.dedent("\n".join(body)) + "\n"


class HelmChartTest(h.LeveeTestCase):

    def setUp(self):
        super().setUp()
        self.helm = os.environ.get("LEVEE_HELM") or shutil.which("helm")
        if not self.helm:
            self.skipTest("helm not installed (scripts/install-deps.sh --helm)")

    def run_helm(self, *args):
        p = subprocess.run([self.helm] + list(args), capture_output=True, timeout=h.deadline(60),
                           stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        return p.stdout.decode()

    def render(self, template, *sets):
        args = ["template", "levee", CHART, "--show-only", "templates/" + template]
        for s in sets:
            args += ["--set", s]
        return self.run_helm(*args)

    def test_lint(self):
        self.assertIn("1 chart(s) linted, 0 chart(s) failed", self.run_helm("lint", "--strict", CHART))

    def test_rendered_policy_validates(self):
        out = self.render("configmap.yaml")
        policy = block_after(out, "  policy.yaml: |", 4)
        self.assertIn("slo:", policy)
        path = os.path.join(self.tmp, "policy.yaml")
        with open(path, "w") as f:
            f.write(policy)
        if not os.access(h.LEVEE_BIN, os.X_OK):
            self.skipTest("levee binary not found at %s" % h.LEVEE_BIN)
        p = subprocess.run([h.LEVEE_BIN, "validate", path], capture_output=True,
                           timeout=h.deadline(30), stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode() + policy)

    def test_deployment_runs_levee_with_probes(self):
        out = self.render("deployment.yaml", "app.image=demo:1")
        self.assertIn("kind: Deployment", out)
        self.assertIn("- name: app\n          image: demo:1", out)
        self.assertIn('args: ["run", "--config", "/etc/levee/policy.yaml"]', out)
        for probe in ("/health/startup", "/health/ready", "/health/live"):
            self.assertIn("path: %s, port: probes" % probe, out)
        self.assertIn("checksum/policy:", out)
        self.assertNotIn("checksum/policy:", self.render("deployment.yaml",
                                                         "rollOnPolicyChange=false"))

    def test_dashboard_and_rules_are_shipped_unchanged(self):
        dash = block_after(self.render("dashboard-configmap.yaml"), "  levee.json: |-", 4)
        with open(DASHBOARD) as f:
            self.assertEqual(json.loads(dash), json.load(f))
        out = self.render("prometheusrule.yaml", "prometheusRule.enabled=true")
        self.assertIn("kind: PrometheusRule", out)
        with open(RULES) as f:
            self.assertEqual(block_after(out, "spec:", 2).strip(), f.read().strip())


if __name__ == "__main__":
    unittest.main()
