"""The TCP (L4) listener: bytes both ways, half-close, connect failure, idle timeout, counters."""

import os
import socket
import time
import unittest

import harness as h


class TcpProxyTest(h.LeveeTestCase):

    def start(self, echo_address=None, idle="5s"):
        http_up = self.start_upstream("app")
        if echo_address is None:
            self.echo = self.start_upstream("tcpecho", mode="tcp")
            echo_address = self.echo.address
        yaml, ports = self.simple_policy(http_up.address,
                                         tcp={"address": echo_address, "idle_timeout": idle})
        lv = self.start_levee(yaml, ports["probes"], ports["admin"])
        return lv, ports

    def connect(self, port):
        s = socket.create_connection(("127.0.0.1", port), timeout=h.deadline(10))
        return s

    @staticmethod
    def read_until_eof(s, limit=64 * 1024 * 1024):
        out = bytearray()
        while len(out) < limit:
            try:
                data = s.recv(256 * 1024)
            except ConnectionResetError:
                break
            if not data:
                break
            out += data
        return bytes(out)

    def test_bytes_both_ways(self):
        lv, ports = self.start()
        s = self.connect(ports["tcp"])
        try:
            payload = os.urandom(2 * 1024 * 1024)
            got = bytearray()
            sent = 0
            # interleave writes and reads so neither side's buffers fill up
            while sent < len(payload):
                s.sendall(payload[sent:sent + 65536])
                sent += 65536
                while len(got) < sent - 4 * 65536:
                    got += s.recv(256 * 1024)
            s.shutdown(socket.SHUT_WR)
            got += self.read_until_eof(s)
        finally:
            s.close()
        self.assertEqual(bytes(got[:len(payload)]), payload)
        self.assertEqual(bytes(got[len(payload):]), b"BYE %d\n" % len(payload))

    def test_half_close_passed_through(self):
        lv, ports = self.start()
        s = self.connect(ports["tcp"])
        try:
            s.sendall(b"hello")
            s.shutdown(socket.SHUT_WR)  # client done writing; must still get the reply
            got = self.read_until_eof(s)
        finally:
            s.close()
        self.assertEqual(got, b"helloBYE 5\n")

    def test_connect_failure_closes_client(self):
        dead = "127.0.0.1:%d" % h.free_port()
        lv, ports = self.start(echo_address=dead)
        s = self.connect(ports["tcp"])
        try:
            s.settimeout(h.deadline(10))
            t0 = time.monotonic()
            try:
                s.sendall(b"ping")
                data = s.recv(1024)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            self.assertEqual(data, b"", "expected the client connection to be closed")
            self.assertLess(time.monotonic() - t0, h.deadline(5))
        finally:
            s.close()

    def test_idle_timeout_closes(self):
        lv, ports = self.start(idle="1s")
        s = self.connect(ports["tcp"])
        try:
            s.sendall(b"abc")
            got = b""
            while len(got) < 3:
                got += s.recv(10)
            self.assertEqual(got, b"abc")
            t0 = time.monotonic()
            s.settimeout(h.deadline(15))
            try:
                data = s.recv(10)
            except ConnectionResetError:
                data = b""
            self.assertEqual(data, b"", "idle TCP connection not closed")
            self.assertGreaterEqual(time.monotonic() - t0, 0.5)
        finally:
            s.close()

    def test_byte_counters(self):
        lv, ports = self.start()
        payload = os.urandom(100000)
        s = self.connect(ports["tcp"])
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            got = self.read_until_eof(s)
        finally:
            s.close()
        self.assertEqual(len(got), len(payload) + len(b"BYE 100000\n"))

        def counted():
            m = lv.metrics_parsed()
            rx = h.metric_sum(m, "levee_tcp_bytes_total", listener="db", direction="rx")
            tx = h.metric_sum(m, "levee_tcp_bytes_total", listener="db", direction="tx")
            return (rx, tx) if rx >= len(payload) and tx >= len(payload) else None
        rx, tx = h.poll(counted, 10, interval=0.1, what="levee_tcp_bytes_total rx/tx >= 100000")
        self.assertLess(rx, len(payload) * 2)
        self.assertLess(tx, len(payload) * 2)

    def test_http_listener_unaffected(self):
        lv, ports = self.start()
        r = h.http_request(ports["listener"], "GET", "/echo")
        self.assertEqual(r.status, 200)


if __name__ == "__main__":
    unittest.main()
