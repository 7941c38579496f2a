"""Malformed requests: 400 bad_request, connection closed, never forwarded to the upstream."""

import unittest

import harness as h

CASES = {
    "content_length_with_transfer_encoding":
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "two_different_content_lengths":
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
        b"hello!",
    "two_content_length_values_in_one_header":
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!",
    "invalid_chunk_size":
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nhello\r\n0\r\n\r\n",
    "obs_fold_space":
        b"GET /echo HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n",
    "obs_fold_tab":
        b"GET /echo HTTP/1.1\r\nHost: a\r\nX-A: one\r\n\ttwo\r\n\r\n",
    "bare_lf_line_endings":
        b"GET /echo HTTP/1.1\nHost: a\nX-A: 1\n\n",
    "header_name_with_space":
        b"GET /echo HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
    "header_name_with_paren":
        b"GET /echo HTTP/1.1\r\nHost: a\r\nX(: x\r\n\r\n",
    "header_value_control_char":
        b"GET /echo HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n",
}


class BadInputTest(h.LeveeTestCase):

    def setUp(self):
        super().setUp()
        self.lv, self.up, self.ports = self.levee_with_upstream()
        self.up.reset_hits()

    def check_rejected(self, name, data):
        resp = h.send_raw_resp(self.ports["listener"], data, wait_close=5.0)
        self.assertEqual(resp.status, 400, "%s: %r" % (name, resp))
        self.assertLocalReply(resp, 400, "bad_request")
        self.assertTrue(resp.closed, "%s: connection not closed after 400" % name)
        self.assertEqual(self.up.hits(), 0, "%s: malformed request reached the upstream" % name)


def _make(name, data):
    def test(self):
        self.check_rejected(name, data)
    test.__name__ = "test_" + name
    return test


for _name, _data in CASES.items():
    setattr(BadInputTest, "test_" + _name, _make(_name, _data))


class GoodInputStillWorks(h.LeveeTestCase):
    """Controls: close relatives of the bad inputs are accepted (so 400s above are not blanket)."""

    def test_valid_variants_are_forwarded(self):
        lv, up, ports = self.levee_with_upstream()
        up.reset_hits()
        ok = [
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n",
            b"GET /echo HTTP/1.1\r\nHost: a\r\nX-A: one two\t three\r\n\r\n",
        ]
        for data in ok:
            status, headers, body, closed = h.send_raw(ports["listener"], data, wait_close=0.2)
            self.assertEqual(status, 200, data)
            self.assertFalse(closed, data)
        self.assertEqual(up.hits(), len(ok))


if __name__ == "__main__":
    unittest.main()
