"""Hot reload from a watched directory (issue 5, DESIGN section 10): the kubelet's ConfigMap
`..data` symlink swap, in-place edits, invalid files kept out (FILE:LINE:COL in /admin/config),
listeners added/removed, state that survives, and zero failed requests while the policy is
swapped 20 times under load."""

import http.client
import os
import shutil
import socket
import threading

import harness as h

ROUTE_API = "      - { name: api, match: { prefix: /api }, upstream: app }\n"


class ConfigMapDir:
    """The layout the kubelet gives a ConfigMap volume:
    dir/..<ts>/policy.yaml, dir/..data -> ..<ts>, dir/policy.yaml -> ..data/policy.yaml.
    update() writes a new timestamped dir and swaps ..data atomically (rename of a symlink),
    then removes the old dir, as the kubelet's AtomicWriter does."""

    def __init__(self, root):
        self.root = root
        os.makedirs(root)
        self.n = 0
        self.current = None

    @property
    def path(self):
        return os.path.join(self.root, "policy.yaml")

    def update(self, text):
        self.n += 1
        ts = "..2026_12_02_00_00_%02d.%d" % (self.n % 60, self.n)
        os.makedirs(os.path.join(self.root, ts))
        with open(os.path.join(self.root, ts, "policy.yaml"), "w") as f:
            f.write(text)
        tmp = os.path.join(self.root, "..data_tmp")
        os.symlink(ts, tmp)
        os.rename(tmp, os.path.join(self.root, "..data"))
        if not os.path.lexists(self.path):
            os.symlink("..data/policy.yaml", self.path)
        if self.current:
            shutil.rmtree(os.path.join(self.root, self.current))
        self.current = ts


class ReloadWatchTest(h.LeveeTestCase):

    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()

    def launch(self, routes=ROUTE_API, concurrency=1, configmap=True, **kw):
        yaml, ports = self.simple_policy(self.up.address, routes=routes, **kw)
        self.ports, self.yaml = ports, yaml
        if configmap:
            self.cm = ConfigMapDir(os.path.join(self.tmp, "cm"))
            self.cm.update(yaml)
            path = self.cm.path
        else:
            path = h.write_config(os.path.join(self.tmp), yaml, "policy.yaml")
        lv = h.Levee(path, ports["probes"], ports["admin"], concurrency=concurrency,
                     workdir=os.path.join(self.tmp, "run"))
        os.makedirs(lv.workdir, exist_ok=True)
        self._procs.append(lv)
        self._levees.append(lv)
        lv.start()
        lv.wait_ready()
        self.lv = lv
        return lv

    def status(self, path, port=None):
        return h.http_request(port or self.ports["listener"], "GET", path).status

    def reloads(self, result):
        return h.metric_sum(self.lv.metrics_parsed(), "levee_config_reloads_total", result=result)

    def config(self):
        return self.lv.admin("GET", "/admin/config").json()

    def test_configmap_symlink_swap_reloads_without_sighup(self):
        self.launch()
        self.assertEqual(self.status("/fresh/x"), 404)
        hash1 = self.config()["hash"]
        self.cm.update(self.yaml.replace(ROUTE_API, ROUTE_API + ROUTE_API.replace("api", "fresh")))
        h.poll(lambda: self.status("/fresh/x") == 200, 15, interval=0.1,
               what="route of the swapped ConfigMap served")
        c = self.config()
        self.assertNotEqual(c["hash"], hash1)
        self.assertEqual(c["last_reload"]["result"], "success")
        self.assertEqual(c["last_reload"]["trigger"], "watch")
        self.assertTrue(c["watching"])
        self.assertEqual(self.reloads("success"), 1)
        self.assertEqual(self.status("/api/x"), 200)

    def test_in_place_edit_reloads(self):
        self.launch(configmap=False)
        with open(self.lv.config_path, "w") as f:  # truncate + write, same inode
            f.write(self.yaml.replace(ROUTE_API, ROUTE_API + ROUTE_API.replace("api", "fresh")))
        h.poll(lambda: self.status("/fresh/x") == 200, 15, interval=0.1,
               what="route of the edited file served")
        # An editor's save: write a temp file, rename it over the policy.
        tmp = self.lv.config_path + ".swp"
        with open(tmp, "w") as f:
            f.write(self.yaml)
        os.rename(tmp, self.lv.config_path)
        h.poll(lambda: self.status("/fresh/x") == 404, 15, interval=0.1,
               what="route removed by the renamed file")

    def test_invalid_file_is_kept_out_with_its_location(self):
        self.launch()
        good_hash = self.config()["hash"]
        # Line 6 of the policy is "  - name: inbound", line 7 its address: misspelt.
        bad = self.yaml.replace("    address: ", "    adress: ", 1)
        self.cm.update(bad)
        c = h.poll(lambda: (lambda c: c if c["last_reload"]["result"] == "failure" else None)(
            self.config()), 15, interval=0.1, what="failed reload in /admin/config")
        self.assertEqual(c["hash"], good_hash)  # the running policy is unchanged
        errs = c["last_reload"]["errors"]
        self.assertTrue(errs, c)
        # The file name is the one levee was given (the ..data symlink path), with LINE:COL.
        where = self.cm.path.replace(".", r"\.")
        self.assertEqual(len(errs), 2, errs)
        self.assertRegex(errs[0], r"^%s:6:5: listeners\[0\]\.address: missing required key" % where)
        self.assertRegex(errs[1], r'^%s:7:5: listeners\[0\]\.adress: unknown key "adress"' % where)
        self.assertEqual(c["last_reload"]["error"], errs[0])
        self.assertEqual(self.reloads("failure"), 1)
        self.lv.wait_log(errs[0])
        self.assertEqual(self.status("/api/x"), 200)
        self.assertEqual(self.lv.probe("/health/ready").status, 200)
        # POST /admin/reload answers with the same errors.
        r = self.lv.admin("POST", "/admin/reload", token=self.ports["token"])
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()["errors"], errs)
        # Fixed: the next swap goes in.
        self.cm.update(self.yaml + "# fixed\n")
        h.poll(lambda: self.config()["last_reload"]["result"] == "success", 15, interval=0.1,
               what="successful reload after the fix")
        self.assertEqual(self.config()["last_reload"]["errors"], [])

    def test_listener_added_and_removed_by_reload(self):
        self.launch(concurrency=2)
        extra = h.free_port()
        listener = ("  - name: extra\n    address: 127.0.0.1:%d\n    protocol: http\n"
                    "    routes:\n      - { name: e, match: { prefix: / }, upstream: app }\n" % extra)
        with_extra = self.yaml.replace("upstreams:\n", listener + "upstreams:\n", 1)
        # A keep-alive connection on the unchanged listener lives through both reloads.
        keep = h.RawConn(self.ports["listener"])
        self.addCleanup(keep.close)

        def keep_alive_request():
            keep.send(b"GET /api/ka HTTP/1.1\r\nHost: x\r\n\r\n")
            r = keep.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertNotEqual(r.headers.get("connection"), "close", r)

        keep_alive_request()
        self.cm.update(with_extra)
        h.poll(lambda: self.status("/x", port=extra) == 200, 15, interval=0.1,
               what="added listener serving")
        keep_alive_request()
        self.cm.update(self.yaml + "# without extra\n")

        h.poll(lambda: self._refused(extra), 15, interval=0.1, what="removed listener closed")
        keep_alive_request()
        # Moving a listener to another address opens the new socket and closes the old one.
        moved = h.free_port()
        self.cm.update(self.yaml.replace("127.0.0.1:%d" % self.ports["listener"],
                                         "127.0.0.1:%d" % moved))
        h.poll(lambda: self.status("/api/x", port=moved) == 200, 15, interval=0.1,
               what="listener at its new address")
        old = self.ports["listener"]
        h.poll(lambda: self._refused(old), 15, interval=0.1, what="old address closed")

    def test_changed_latency_buckets_with_a_moved_listener_keep_the_running_buckets(self):
        # Once crashed: a moved listener asked the metrics store for its route's histogram
        # again, with the new buckets. Buckets are read at start; the rest of the reload applies.
        self.launch()
        self.assertEqual(self.status("/api/x"), 200)
        before = self.reloads("success")
        moved = h.free_port()
        text = self.yaml.replace("127.0.0.1:%d" % self.ports["listener"], "127.0.0.1:%d" % moved)
        self.cm.update(text + "metrics: { latency_buckets: [0.1, 1] }\n")
        h.poll(lambda: self.status("/api/x", port=moved) == 200, 15, interval=0.1,
               what="listener at its new address")
        self.assertEqual(self.reloads("success"), before + 1)
        self.assertTrue(self.lv.alive(), "levee exited on the reload")
        text_metrics = self.lv.metrics()
        les = {line.split('le="')[1].split('"')[0] for line in text_metrics.splitlines()
               if line.startswith("levee_http_request_duration_seconds_bucket{")}
        # The default layout (0.005 ... 10), not [0.1, 1], on every series, the moved one too.
        self.assertTrue({"0.005", "0.025", "10", "+Inf"} <= les, les)
        self.lv.wait_log("latency_buckets changed")

    def _refused(self, port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True

    def test_breaker_and_rate_limit_state_survive_a_reload(self):
        routes = ("      - name: api\n        match: { prefix: /api }\n        upstream: app\n"
                  "        rate_limit: { rate: 1/h, burst: 2, key: route }\n"
                  "      - { name: other, match: { prefix: /other }, upstream: app }\n")
        self.launch(routes=routes,
                    upstream_extra=", circuit_breaker: { consecutive_failures: 5, open_for: 30s }")
        self.assertEqual(self.status("/api/1"), 200)
        self.assertEqual(self.status("/api/2"), 200)
        self.assertEqual(self.status("/api/3"), 429)  # bucket empty (refills 1 per hour)
        r = self.lv.admin("POST", "/admin/circuit-breakers/app/open", token=self.ports["token"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.status("/other/x"), 503)
        # Reload with a new route; the api route and the app upstream are unchanged.
        self.cm.update(self.yaml + "")  # same bytes: a watch event without change is skipped
        self.cm.update(self.yaml.replace(
            "      - { name: other,", "      - { name: fresh, match: { prefix: /fresh }, upstream: app }\n"
            "      - { name: other,"))
        h.poll(lambda: self.status("/fresh/x") != 404, 15, interval=0.1, what="reloaded")
        self.assertEqual(self.reloads("success"), 1)
        cbs = {c["upstream"]: c for c in
               self.lv.admin("GET", "/admin/circuit-breakers").json()["circuit_breakers"]}
        self.assertEqual(cbs["app"]["state"], "forced_open")
        self.assertEqual(self.status("/other/x"), 503)
        self.lv.admin("POST", "/admin/circuit-breakers/app/close", token=self.ports["token"])
        self.assertEqual(self.status("/other/x"), 200)
        self.assertEqual(self.status("/api/4"), 429)  # the same bucket, still empty

    def test_zero_failed_requests_while_the_policy_is_swapped_20_times(self):
        self.launch(concurrency=2)
        stop = threading.Event()
        lock = threading.Lock()
        counts = {"ok": 0, "failed": 0}
        failures = []

        def client():
            conn = None
            while not stop.is_set():
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", self.ports["listener"],
                                                          timeout=h.deadline(10))
                    conn.request("GET", "/api/load")
                    r = conn.getresponse()
                    r.read()
                    ok = r.status == 200
                    if r.getheader("connection", "").lower() == "close":
                        conn.close()
                        conn = None
                    with lock:
                        counts["ok" if ok else "failed"] += 1
                        if not ok:
                            failures.append("status %d" % r.status)
                except Exception as e:  # noqa: BLE001 - every error is a failure
                    with lock:
                        counts["failed"] += 1
                        failures.append(repr(e))
                    if conn is not None:
                        conn.close()
                    conn = None
            if conn is not None:
                conn.close()

        threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            h.poll(lambda: counts["ok"] > 50, 15, what="load running")
            for i in range(20):
                marker = "      - { name: gen%d, match: { prefix: /gen%d }, upstream: app }\n" % (i, i)
                self.cm.update(self.yaml.replace(ROUTE_API, ROUTE_API + marker))
                h.poll(lambda: self.status("/gen%d/x" % i) == 200, 15, interval=0.05,
                       what="swap %d applied" % i)
        finally:
            stop.set()
            for t in threads:
                t.join(h.deadline(20))
        self.assertFalse(any(t.is_alive() for t in threads), "client thread hung")
        self.assertEqual(counts["failed"], 0, failures[:10])
        self.assertGreater(counts["ok"], 200)
        self.assertEqual(self.reloads("success"), 20)
        self.assertEqual(self.reloads("failure"), 0)
        print("swap-under-load: %d requests, 0 failed, 20 swaps" % counts["ok"])


if __name__ == "__main__":
    import unittest
    unittest.main()
