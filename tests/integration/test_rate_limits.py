"""Route rate limits (filters/rate_limit/README.md, docs/policy.md `rate_limit`).

A token bucket per key, shared by all workers: `burst` requests pass at once, then one per
1/rate seconds. Over the limit: 429 local reply (x-levee-reason: rate_limited) with Retry-After
and the RateLimit-Policy / RateLimit headers; shadow mode admits everything and only counts.
Limited requests never reach the upstream, so its /hits counts the admitted ones.
"""

import re
import time
import unittest

import harness as h


class RateLimitBase(h.LeveeTestCase):

    def launch(self, rate_limit, route="rl", concurrency=1):
        self.up = self.start_upstream("app")
        self.route = route
        self.ports = {"listener": h.free_port(), "probes": h.free_port(),
                      "admin": h.free_port()}
        yaml = (
            "version: 1\n"
            "service: itest\n"
            "admin: { address: 127.0.0.1:%(admin)d }\n"
            "probes: { address: 127.0.0.1:%(probes)d }\n"
            "listeners:\n"
            "  - name: inbound\n"
            "    address: 127.0.0.1:%(listener)d\n"
            "    protocol: http\n"
            "    routes:\n"
            "      - name: %(route)s\n"
            "        match: { prefix: / }\n"
            "        upstream: app\n"
            "        rate_limit: %(rl)s\n"
            "upstreams:\n"
            "  app: { endpoints: [ { address: %(up)s } ] }\n"
            "access_log: { path: off, format: json }\n"
            "drain: { delay: 0s, grace: 2s }\n"
        ) % dict(self.ports, route=route, rl=rate_limit, up=self.up.address)
        self.lv = self.start_levee(yaml, self.ports["probes"], self.ports["admin"],
                                   concurrency=concurrency)
        return self.lv

    def get(self, path="/", headers=None):
        return h.http_request(self.ports["listener"], "GET", path, headers=headers)

    def metric(self, name, **labels):
        return h.metric_sum(self.lv.metrics_parsed(), name, **labels)

    def limited(self, mode):
        return self.metric("levee_rate_limited_total", route=self.route, mode=mode)

    def assertRateLimited(self, r, burst):
        """A 429 rate_limited local reply with Retry-After and the IETF headers."""
        self.assertLocalReply(r, 429, "rate_limited")
        self.assertNotIn("x-upstream-name", r.headers, r)
        ra = r.headers.get("retry-after", "")
        self.assertTrue(ra.isdigit(), r)
        self.assertGreaterEqual(int(ra), 1, r)
        policy = r.headers.get("ratelimit-policy", "")
        self.assertTrue(policy.startswith('"%s";' % self.route), r)
        self.assertIn(";q=%d" % burst, policy, r)
        self.assertRegex(policy, r";w=[1-9][0-9]*(;|$)", r)
        state = r.headers.get("ratelimit", "")
        self.assertTrue(state.startswith('"%s";' % self.route), r)
        self.assertIn(";r=0", state, r)
        m = re.search(r";t=([0-9]+)", state)
        self.assertIsNotNone(m, r)
        self.assertGreaterEqual(int(m.group(1)), 1, r)
        return int(ra)


class Client:
    """Requests on fresh connections (so they spread over levee's workers). burst() opens every
    connection up front, so that connecting is not part of the timed burst.

    Each request has its own connection, rather than keep-alive, because levee does not serve a
    second request on a connection after a local reply (see test_keep_alive_after_429)."""

    def __init__(self, port):
        self.port = port
        self.sent = 0

    @staticmethod
    def _request(c, path, headers):
        extra = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        c.send(("GET %s HTTP/1.1\r\nHost: itest\r\n%s\r\n" % (path, extra)).encode())
        return c.read_response()

    def get(self, path, headers=None):
        self.sent += 1
        with h.RawConn(self.port) as c:
            return self._request(c, path, headers)

    def burst(self, paths, headers=None):
        """Returns (responses, seconds from the first send to the last response)."""
        conns = [h.RawConn(self.port) for _ in paths]
        try:
            t0 = time.monotonic()
            out = [self._request(c, p, headers) for c, p in zip(conns, paths)]
            self.sent += len(paths)
            return out, time.monotonic() - t0, t0
        finally:
            for c in conns:
                c.close()


class RateLimitBurstTest(RateLimitBase):
    """rate: 10/s, burst: 5, keyed by client address (all requests come from 127.0.0.1)."""

    RATE = 10.0
    BURST = 5
    N = 20

    def burst_and_refill(self, concurrency):
        self.launch("{ rate: 10/s, burst: 5, key: client_ip }", concurrency=concurrency)
        client = Client(self.ports["listener"])
        resps, elapsed, t0 = client.burst(["/burst/%d" % i for i in range(self.N)])
        statuses = [r.status for r in resps]
        admitted = statuses.count(200)
        denied = statuses.count(429)
        msg = "statuses=%s elapsed=%.3fs concurrency=%d" % (statuses, elapsed, concurrency)
        self.assertEqual(admitted + denied, self.N, msg)
        # An exact bucket: the 5 tokens it starts with, plus what refilled during the burst
        # (a whole token per 100 ms; the brief allows one for a fast burst).
        self.assertGreaterEqual(admitted, self.BURST, msg)
        self.assertLessEqual(admitted, self.BURST + max(1, int(elapsed * self.RATE)), msg)
        # The first five are the bucket's own tokens.
        self.assertEqual(statuses[:self.BURST], [200] * self.BURST, msg)
        for r in resps:
            if r.status == 200:
                self.assertEqual(r.headers.get("x-upstream-name"), "app", r)
            else:
                self.assertRateLimited(r, self.BURST)

        # Refill: a request is admitted again once a token is back (denials take none).
        def admitted_again():
            r = client.get("/refill")
            if r.status == 200:
                return r, time.monotonic()
            self.assertRateLimited(r, self.BURST)
            return None
        r, t_admit = h.poll(admitted_again, 3, interval=0.02, what="a refilled token")
        # Tokens never come back faster than the rate (the bucket was created after t0).
        self.assertGreaterEqual(t_admit - t0, (admitted - self.BURST + 1) / self.RATE - 0.005,
                                msg)
        self.assertLess(t_admit - t0, elapsed + h.deadline(1.0), msg)
        total_denied = denied + client.sent - self.N - 1  # the refill polls before the 200
        h.poll(lambda: self.up.hits() == admitted + 1, 5,
               what="upstream hits == admitted (%d)" % (admitted + 1))
        self.assertEqual(self.limited("enforce"), total_denied)
        self.assertEqual(self.limited("shadow"), 0)
        self.assertEqual(self.metric("levee_local_replies_total", reason="rate_limited"),
                         total_denied)

    def test_burst_one_worker(self):
        self.burst_and_refill(1)

    def test_burst_two_workers(self):
        self.burst_and_refill(2)

    def test_burst_four_workers(self):
        self.burst_and_refill(4)


class RateLimitKeysTest(RateLimitBase):

    def test_header_key_gives_separate_buckets(self):
        # 1/m: nothing refills during the test.
        self.launch("{ rate: 1/m, burst: 3, key: header:x-user }", route="per-user")
        client = Client(self.ports["listener"])
        for user in ("alice", "bob"):
            statuses = [client.get("/u", {"x-user": user}).status for _ in range(5)]
            self.assertEqual(statuses, [200, 200, 200, 429, 429], user)
        r = client.get("/u", {"x-user": "alice"})
        ra = self.assertRateLimited(r, 3)
        self.assertGreater(ra, 1, r)  # one token per minute
        self.assertLessEqual(ra, 60, r)
        # A request without the header has its own (empty-key) bucket.
        statuses = [client.get("/u").status for _ in range(4)]
        self.assertEqual(statuses, [200, 200, 200, 429])
        # ...which is not the bucket of an exhausted user, nor of a fresh one.
        self.assertEqual(client.get("/u", {"x-user": "carol"}).status, 200)
        self.assertEqual(self.up.hits(), 10)
        self.assertEqual(self.limited("enforce"), 6)

    def test_route_key_one_bucket_for_everybody(self):
        self.launch("{ rate: 1/m, burst: 4, key: route }", route="whole")
        client = Client(self.ports["listener"])
        statuses = [client.get("/r", {"x-user": "u%d" % i}).status for i in range(6)]
        self.assertEqual(statuses, [200] * 4 + [429] * 2)
        self.assertEqual(self.limited("enforce"), 2)


class RateLimitShadowTest(RateLimitBase):

    def test_shadow_admits_everything_and_counts(self):
        self.launch("{ rate: 1/m, burst: 2, mode: shadow }", route="shadowed",
                    concurrency=2)
        client = Client(self.ports["listener"])
        resps = [client.get("/s/%d" % i) for i in range(10)]
        for r in resps:
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers.get("x-upstream-name"), "app", r)
            self.assertNotIn("x-levee-reason", r.headers, r)
            self.assertNotIn("ratelimit", r.headers, r)
        self.assertEqual(self.up.hits(), 10)
        self.assertEqual(self.limited("shadow"), 8)
        self.assertEqual(self.limited("enforce"), 0)
        self.assertEqual(self.metric("levee_local_replies_total", reason="rate_limited"), 0)


class RateLimitKeepAliveTest(RateLimitBase):

    def test_keep_alive_after_429(self):
        """A 429 without "connection: close" leaves the connection usable: the next request on
        it is answered at once (here: 429 again, the bucket is empty for a minute)."""
        self.launch("{ rate: 1/m, burst: 1 }", route="ka")
        with h.RawConn(self.ports["listener"], timeout=3.0) as c:
            req = b"GET /ka HTTP/1.1\r\nHost: itest\r\n\r\n"
            c.send(req)
            self.assertEqual(c.read_response().status, 200)
            c.send(req)
            r = c.read_response()
            self.assertRateLimited(r, 1)
            self.assertNotIn("close", r.headers.get("connection", "").lower(), r)
            c.send(req)
            t0 = time.monotonic()
            try:
                r, err = c.read_response(), None
            except (h.IncompleteRead, OSError) as e:
                r, err = None, e
            self.assertIsNone(err, "no answer to a request sent on the connection after a 429 "
                              "(keep-alive) within %.1fs" % (time.monotonic() - t0))
            self.assertRateLimited(r, 1)
        self.assertEqual(self.limited("enforce"), 2)


if __name__ == "__main__":
    unittest.main()
