"""A local reply sent while the request head is being parsed (404 no_route, 429, 503) must
leave the keep-alive connection usable: the next request on it, sequential or pipelined,
is answered. Regression test for a stall found under wrk."""

import socket
import unittest

from harness import LeveeTestCase, deadline


def read_responses(sock, count):
    """Reads `count` complete responses (Content-Length framed); returns their status codes."""
    sock.settimeout(deadline(5.0))
    buf = b""
    statuses = []
    while len(statuses) < count:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return statuses
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        statuses.append(int(lines[0].split()[1]))
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return statuses
            rest += chunk
        buf = rest[length:]
    return statuses


class KeepAliveAfterLocalReplyTest(LeveeTestCase):
    def setUp(self):
        super().setUp()
        up = self.start_upstream("app")
        routes = (
            "      - { name: ok, match: { path: /ok }, upstream: app }\n"
            "      - name: limited\n"
            "        match: { path: /limited }\n"
            "        upstream: app\n"
            "        rate_limit: { rate: 1/h, burst: 1, key: route }\n"
        )
        yaml, self.ports = self.simple_policy(up.address, routes=routes)
        self.lv = self.start_levee(yaml, self.ports["probes"], self.ports["admin"])

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.ports["listener"]))
        self.addCleanup(s.close)
        return s

    def test_sequential_after_no_route(self):
        s = self.connect()
        for path, want in [("/missing", 404), ("/ok", 200), ("/missing", 404), ("/ok", 200)]:
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
            self.assertEqual(read_responses(s, 1), [want], path)

    def test_pipelined_after_no_route(self):
        s = self.connect()
        s.sendall(b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(read_responses(s, 4), [404, 200, 404, 200])

    def test_sequential_after_rate_limited(self):
        s = self.connect()
        statuses = []
        for path in ["/limited", "/limited", "/ok", "/limited", "/ok"]:
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
            statuses += read_responses(s, 1)
        self.assertEqual(statuses, [200, 429, 200, 429, 200])


if __name__ == "__main__":
    unittest.main()
