"""Load balancers random and hash (hash_on: header:NAME, path, cookie:NAME), with consistent
hashing checked against an endpoint made unhealthy by active health checks
(docs/policy.md "upstreams", "hash_on"). Round robin and least_request are covered by
test_routing_upstreams.py."""

import collections
import unittest

import harness as h
from test_upstream_resilience import HC, ResilienceBase, ctl


class LoadBalancerTest(ResilienceBase):

    def start(self, lb, n=3, health_check=False):
        self.ups = [self.start_upstream("e%d" % i) for i in range(n)]
        self.launch("  app:\n"
                    "    endpoints: [ %s ]\n"
                    "    %s\n"
                    "%s" % (", ".join("{ address: %s }" % u.address for u in self.ups), lb,
                            "    health_check: %s\n" % HC if health_check else ""),
                    concurrency=2)
        if health_check:
            for u in self.ups:
                self.wait_health(u, "healthy")

    def mapping(self, keys, request):
        """{key: endpoint name}, each key asked twice (both answers must agree)."""
        out = {}
        for k in keys:
            first = request(k)
            second = request(k)
            self.assertEqual(first, second, "key %r moved between two requests" % k)
            out[k] = first
        return out

    def assertSpread(self, mapping, n_keys):
        per_endpoint = collections.Counter(mapping.values())
        self.assertEqual(set(per_endpoint), {u.name for u in self.ups}, per_endpoint)
        self.assertEqual(sum(per_endpoint.values()), n_keys)

    def test_random_spreads_across_endpoints(self):
        self.start("load_balancer: random")
        spread = self.spread(150)
        self.assertEqual(sum(spread[u.name] for u in self.ups), 150, spread)
        for u in self.ups:
            self.assertGreaterEqual(spread[u.name], 20, spread)  # expected 50 each
        self.assertEqual(sum(u.hits() for u in self.ups), 150)

    def test_hash_header_is_consistent_and_minimal_on_endpoint_loss(self):
        self.start("load_balancer: hash\n    hash_on: header:x-user-id", health_check=True)
        keys = ["user-%d" % i for i in range(50)]

        def by_header(k):
            return self.who("/whoami", {"X-User-Id": k})
        before = self.mapping(keys, by_header)
        self.assertSpread(before, 50)

        # Take the endpoint with the most keys out by health checks.
        counts = collections.Counter(before.values())
        victim = [u for u in self.ups if u.name == counts.most_common(1)[0][0]][0]
        ctl(victim, "fail", 503)
        self.wait_health(victim, "unhealthy")
        during = self.mapping(keys, by_header)
        moved_wrongly = {k: (before[k], during[k]) for k in keys
                         if before[k] != victim.name and during[k] != before[k]}
        self.assertEqual(moved_wrongly, {}, "keys of healthy endpoints moved")
        self.assertNotIn(victim.name, during.values(), during)
        moved = [k for k in keys if before[k] == victim.name]
        self.assertTrue(moved)
        for k in moved:
            self.assertIn(during[k], {u.name for u in self.ups} - {victim.name}, during)

        # Back: every key returns to its original endpoint.
        ctl(victim, "ok")
        self.wait_health(victim, "healthy")
        after = self.mapping(keys, by_header)
        self.assertEqual(after, before)

    def test_hash_on_path(self):
        self.start("load_balancer: hash\n    hash_on: path")
        keys = ["/item/%d" % i for i in range(40)]
        m = self.mapping(keys, lambda k: self.who(k))
        self.assertSpread(m, 40)
        # The query is not part of the path.
        for k in keys[:10]:
            self.assertEqual(self.who(k + "?v=%s" % k[-1]), m[k], k)

    def test_hash_on_cookie(self):
        self.start("load_balancer: hash\n    hash_on: cookie:session")
        keys = ["s%03d" % i for i in range(40)]

        def by_cookie(k, other="x=1"):
            return self.who("/whoami", {"Cookie": "%s; session=%s; theme=dark" % (other, k)})
        m = self.mapping(keys, by_cookie)
        self.assertSpread(m, 40)
        # Only the named cookie counts.
        for i, k in enumerate(keys[:10]):
            self.assertEqual(by_cookie(k, other="x=%d; y=%d" % (i + 100, i)), m[k], k)
        # Without the cookie the request is still served.
        r = self.get("/whoami")
        self.assertEqual(r.status, 200, r)


if __name__ == "__main__":
    unittest.main()
