"""1 GiB upload and download through levee with bounded memory (streaming with backpressure).

Heavy: registered with RUN_SERIAL. LEVEE_TEST_TRANSFER_BYTES overrides the size (default 1 GiB).
"""

import hashlib
import os
import threading
import time
import unittest

import harness as h

SIZE = int(os.environ.get("LEVEE_TEST_TRANSFER_BYTES", str(1024 * 1024 * 1024)))
MAX_RSS_GROWTH_KB = 64 * 1024


class RssSampler(threading.Thread):
    def __init__(self, lv):
        super().__init__(daemon=True)
        self.lv = lv
        self.base = lv.rss_kb()
        self.peak = self.base
        self.samples = 0
        self.stop_evt = threading.Event()

    def run(self):
        while not self.stop_evt.is_set():
            try:
                self.peak = max(self.peak, self.lv.rss_kb())
                self.samples += 1
            except (OSError, ValueError):
                return
            self.stop_evt.wait(0.05)

    def finish(self):
        self.stop_evt.set()
        self.join(10)
        return self.peak - self.base


class LargeTransferTest(h.LeveeTestCase):

    def setUp(self):
        super().setUp()
        # Under ASan, freed memory sits in a 256 MiB quarantine and shows up as RSS growth that
        # is not levee's; shrink it (ignored by non-ASan builds; appended, so it wins).
        asan = os.environ.get("ASAN_OPTIONS", "")
        asan = ((asan + ":") if asan else "") + \
            "quarantine_size_mb=8:thread_local_quarantine_size_kb=64"
        self.lv, self.up, self.ports = self.levee_with_upstream(env={"ASAN_OPTIONS": asan})
        # warm up: first connections, pools and buffers exist before the baseline
        for _ in range(3):
            self.assertEqual(h.http_request(self.ports["listener"], "GET", "/size/100000").status,
                             200)

    def test_download_1gib_bounded_rss(self):
        sampler = RssSampler(self.lv)
        sampler.start()
        got = [0]
        sha = hashlib.sha256()

        def sink(b):
            sha.update(b)
            got[0] += len(b)
        t0 = time.monotonic()
        with h.RawConn(self.ports["listener"], timeout=60) as c:
            c.send(b"GET /download/%d HTTP/1.1\r\nHost: a\r\n\r\n" % SIZE)
            r = c.read_response(sink=sink)
        growth = sampler.finish()
        self.assertEqual(r.status, 200)
        self.assertTrue(r.complete)
        self.assertEqual(got[0], SIZE)
        self.assertEqual(sha.hexdigest(), h.body_sha256(SIZE))
        self.assertGreater(sampler.samples, 3)
        self.assertLess(growth, MAX_RSS_GROWTH_KB,
                        "levee RSS grew by %d KiB during a %d-byte download" % (growth, SIZE))
        print("download %d bytes in %.1fs, RSS growth %d KiB" % (SIZE, time.monotonic() - t0,
                                                                  growth))

    def test_upload_1gib_bounded_rss(self):
        sampler = RssSampler(self.lv)
        sampler.start()
        t0 = time.monotonic()
        with h.RawConn(self.ports["listener"], timeout=120) as c:
            c.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream"
                   b"\r\nContent-Length: %d\r\n\r\n" % SIZE)
            view = memoryview(h.PATTERN)
            left = SIZE
            while left > 0:
                take = min(left, h.BLOCK)
                c.send(view[:take])
                left -= take
            r = c.read_response()
        growth = sampler.finish()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body_len"], SIZE)
        self.assertEqual(r.json()["body_sha256"], h.body_sha256(SIZE))
        self.assertLess(growth, MAX_RSS_GROWTH_KB,
                        "levee RSS grew by %d KiB during a %d-byte upload" % (growth, SIZE))
        print("upload %d bytes in %.1fs, RSS growth %d KiB" % (SIZE, time.monotonic() - t0,
                                                                growth))

    def test_chunked_upload_streams(self):
        n = 64 * 1024 * 1024
        with h.RawConn(self.ports["listener"], timeout=60) as c:
            c.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            left = n
            while left > 0:
                take = min(left, h.BLOCK)
                c.send(b"%x\r\n" % take + h.PATTERN[:take] + b"\r\n")
                left -= take
            c.send(b"0\r\n\r\n")
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body_len"], n)
        self.assertEqual(r.json()["body_sha256"], h.body_sha256(n))


if __name__ == "__main__":
    unittest.main()
