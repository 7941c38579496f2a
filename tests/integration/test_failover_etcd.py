"""PostgreSQL failover with the etcd leader lease (companion.failover.postgres.lease.backend etcd)
against a real etcd 3.4 (Debian etcd-server, v3 JSON gateway) and a real PostgreSQL 15 primary
plus streaming replica on 127.0.0.1: two levee instances share one lease key, exactly one holds
it, a killed primary is promoted exactly once across both, a stopped leader hands the lease over,
a levee cut off from etcd stops believing it leads before etcd's TTL and does not promote, and the
companion operation lock keeps a failover and a restore from overlapping.

The PostgreSQL helpers (PgCluster, PgConn) come from test_failover.py."""

import os
import signal
import ssl
import subprocess
import time
import unittest
import urllib.request

import harness as h
import test_failover as fo

ETCD_BIN = "/usr/bin/etcd"
# Short, so that the test is quick (renewed every 1.33 s, believed for 3 s); LEVEE_ETCD_TEST_TTL=10
# measures the default.
TTL_S = int(os.environ.get("LEVEE_ETCD_TEST_TTL", "4"))


def etcd_available():
    return os.access(ETCD_BIN, os.X_OK)


class Etcd:
    """One etcd member on free loopback ports (client and peer), data under `base`, stopped by
    PID. pause()/resume() freeze it (SIGSTOP/SIGCONT): a partition, requests hang."""

    def __init__(self, base, tls=None):
        self.base = base
        self.tls = tls  # {"ca", "cert", "key"}: https with client certificates required
        self.client_port = h.free_port()
        self.peer_port = h.free_port()
        self.data = os.path.join(base, "etcd-data")
        self.log_path = os.path.join(base, "etcd.log")
        self.proc = None
        self.paused = False

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.client_port)

    def start(self):
        client = self.url
        peer = "http://127.0.0.1:%d" % self.peer_port
        self._log = open(self.log_path, "ab")
        tls_args = []
        if self.tls:
            tls_args = ["--cert-file", self.tls["server_cert"], "--key-file", self.tls["server_key"],
                        "--trusted-ca-file", self.tls["ca"], "--client-cert-auth"]
        self.proc = subprocess.Popen(
            [ETCD_BIN, "--name", "t", "--data-dir", self.data, "--listen-client-urls", client,
             "--advertise-client-urls", client, "--listen-peer-urls", peer,
             "--initial-advertise-peer-urls", peer, "--initial-cluster", "t=" + peer,
             "--listen-metrics-urls", "http://127.0.0.1:%d" % h.free_port()] + tls_args,
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def ready():
            if self.proc.poll() is not None:
                raise h.GiveUp("etcd exited with %s:\n%s" % (self.proc.returncode,
                                                             h.tail(self.log_path)))
            if self.tls:
                ctx = ssl.create_default_context(cafile=self.tls["ca"])
                ctx.load_cert_chain(self.tls["cert"], self.tls["key"])
                with urllib.request.urlopen(self.url + "/health", timeout=2, context=ctx) as r:
                    return r.status == 200 and b'"true"' in r.read()
            r = h.http_request(self.client_port, "GET", "/health", timeout=2)
            return r.status == 200 and b'"true"' in r.body
        h.poll(ready, 30, interval=0.1, what="etcd /health")
        return self

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self):
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        h.stop_process(self.proc)
        self._log.close()
        self.proc = None


def postmaster_pid(pg, i):
    with open(os.path.join(pg.dirs[i], "postmaster.pid")) as f:
        return int(f.readline().strip())


@unittest.skipUnless(fo.pg_available() and etcd_available(),
                     "PostgreSQL 15 server binaries or etcd-server not installed")
class EtcdFailoverTest(h.LeveeTestCase):

    def setUp(self):
        super().setUp()
        self.pg = fo.start_cluster(self)
        self.etcd = Etcd(self.tmp)
        self.addCleanup(self.etcd.stop)
        self.etcd.start()
        self.key = "/levee/test/%s/leader" % self._testMethodName

    # -- levee ------------------------------------------------------------------------------------
    def start_levee_for(self, name, lease=None, extra="", env=None):
        ports = {"probes": h.free_port(), "admin": h.free_port(), "rw": h.free_port(),
                 "ro": h.free_port()}
        tf, tok = self.token_file()
        ports["token"] = tok
        if lease is None:
            lease = "{ backend: etcd, endpoints: [%s], key: %s, ttl: %ds }" % (
                self.etcd.url, self.key, TTL_S)
        yaml = fo.policy_yaml(ports, tf, self.pg.ports, lease=lease, extra=extra,
                              service="fo-" + name)
        lv = self.start_levee(yaml, ports["probes"], ports["admin"], name="%s.yaml" % name,
                              env=env)
        lv.ports = ports
        lv.name = name
        return lv

    def status(self, lv):
        r = lv.admin("GET", "/api/v1/failover/status")
        self.assertEqual(r.status, 200, r)
        return r.json()

    def wait_held(self, lv, held=True, timeout=30):
        return h.poll(lambda: (lambda s: s["lease"]["held"] == held and s)(self.status(lv)),
                      timeout, interval=0.05,
                      what="%s: lease held == %s" % (lv.name, held))

    def wait_primary(self, lv, primary, timeout=30):
        return h.poll(lambda: (lambda s: s["primary"] == primary and s)(self.status(lv)), timeout,
                      interval=0.1, what="%s routing writes to %s" % (lv.name, primary))

    def server_port(self, lv):
        return fo.pg_query(lv.ports["rw"], "SELECT inet_server_port(), pg_is_in_recovery()")[0]

    def start_pair(self):
        a = self.start_levee_for("a")
        sa = self.wait_held(a)
        b = self.start_levee_for("b")
        # b sees the key taken by a (its first round's acquire txn fails and ranges the key).
        sb = h.poll(lambda: (lambda s: s["lease"]["rounds"] >= 2 and s)(self.status(b)), 30,
                    what="two lease rounds on b")
        self.assertFalse(sb["lease"]["held"], sb)
        self.assertEqual(sb["lease"]["holder"], sa["lease"]["id"], sb)
        self.assertNotEqual(sa["lease"]["id"], sb["lease"]["id"])
        return a, b

    # -- tests --------------------------------------------------------------------------------------
    def test_two_levees_one_lease_one_promotion(self):
        a, b = self.start_pair()
        for lv in (a, b):
            self.wait_primary(lv, "pg-0")
            self.assertEqual(self.server_port(lv), [str(self.pg.ports[0]), "f"])
        sa, sb = self.status(a), self.status(b)
        self.assertTrue(sa["lease"]["held"])
        self.assertEqual(sa["lease"]["holder"], sa["lease"]["id"])
        self.assertEqual(sa["lease"]["backend"], "etcd")
        self.assertEqual(sa["lease"]["key"], self.key)
        self.assertEqual(sa["lease"]["ttl_ms"], TTL_S * 1000)
        self.assertLess(sa["lease"]["last_renewal_ms_ago"], TTL_S * 1000)
        self.assertEqual(sa["lease"]["errors"], 0)
        self.assertFalse(sb["lease"]["held"])
        self.assertIsNone(sb["lease"]["last_renewal_ms_ago"])
        self.assertEqual(h.metric_sum(a.metrics_parsed(), "levee_failover_lease_held", backend="etcd"), 1)
        self.assertEqual(h.metric_sum(b.metrics_parsed(), "levee_failover_lease_held", backend="etcd"), 0)
        # b may not promote through the API either.
        r = b.admin("POST", "/api/v1/failover/promote", body=b'{"member":"pg-1","force":true}',
                    token=b.ports["token"])
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.json()["error"], "no_lease")

        self.pg.kill(0)
        killed = time.monotonic()
        for lv in (a, b):
            self.wait_primary(lv, "pg-1")
        routed_after = time.monotonic() - killed
        for lv in (a, b):
            self.assertEqual(self.server_port(lv), [str(self.pg.ports[1]), "f"])
        sa = self.status(a)
        self.assertEqual(sa["last_failover"]["result"], "success", sa)
        ma, mb = a.metrics_parsed(), b.metrics_parsed()
        promotions = (h.metric_sum(ma, "levee_failover_total", result="success") +
                      h.metric_sum(mb, "levee_failover_total", result="success"))
        self.assertEqual(promotions, 1)
        self.assertEqual(h.metric_sum(ma, "levee_failover_total", result="success"), 1)
        self.assertEqual(h.metric_sum(mb, "levee_failover_total", result="failed"), 0)
        self.assertGreaterEqual(h.metric_sum(mb, "levee_failover_total", result="no_lease"), 1)
        log_a = a.wait_log("promoting pg-1", "lease etcd confirmed")
        log_b = b.wait_log("no_lease")
        self.assertEqual(log_a.count("promoting pg-1"), 1, log_a)
        self.assertNotIn("promoting pg-1", log_b)
        self.assertNotIn("LOST", log_a)  # the keep txn held the lease through every round
        print("etcd failover: kill -> both levees route to pg-1 in %.2f s (a: detection -> "
              "writable %d ms)" % (routed_after, sa["last_failover"]["detection_to_writable_ms"]),
              flush=True)

    def test_stopped_leader_hands_the_lease_over(self):
        a, b = self.start_pair()
        # Clean stop: a revokes its lease, b acquires at its next round.
        t0 = time.monotonic()
        self.assertEqual(a.stop(), 0)
        self.wait_held(b, timeout=TTL_S)
        clean = time.monotonic() - t0
        self.assertIn("revoking etcd lease", a.log_text())
        self.assertLess(clean, TTL_S)
        # A crash (SIGKILL, no revoke): etcd expires b's lease after the TTL, then c acquires.
        c = self.start_levee_for("c")
        sc = h.poll(lambda: (lambda s: s["lease"]["rounds"] >= 2 and s)(self.status(c)), 30,
                    what="two lease rounds on c")
        self.assertFalse(sc["lease"]["held"], sc)
        t0 = time.monotonic()
        b.signal(signal.SIGKILL)
        b.wait_exit()
        self.wait_held(c, timeout=TTL_S * 2)
        crash = time.monotonic() - t0
        self.assertLess(crash, h.deadline(TTL_S + TTL_S / 3 + 2.5))
        self.assertGreater(crash, TTL_S * 0.5)  # the key stayed b's until etcd expired it
        print("etcd lease handover (ttl %d s): clean stop (revoke) %.2f s, SIGKILL (expiry) %.2f s"
              % (TTL_S, clean, crash), flush=True)

    def test_unreachable_etcd_drops_the_lease_and_blocks_promotion(self):
        a = self.start_levee_for("a")
        self.wait_held(a)
        self.wait_primary(a, "pg-0")
        self.etcd.pause()
        t0 = time.monotonic()
        s = self.wait_held(a, held=False, timeout=TTL_S)
        dropped = time.monotonic() - t0
        self.assertLess(dropped, TTL_S)  # before etcd could have expired it
        self.assertGreater(s["lease"]["errors"], 0, s)
        self.assertNotEqual(s["lease"]["last_error"], "")
        self.pg.kill(0)
        s = h.poll(lambda: (lambda st: st["last_failover"] and
                            st["last_failover"]["result"] == "no_lease" and st)(self.status(a)),
                   30, interval=0.1, what="failover refused for lack of the lease")
        self.assertIsNone(s["primary"])  # fenced, nothing promoted
        self.assertEqual(h.metric_sum(a.metrics_parsed(), "levee_failover_total", result="success"), 0)
        self.assertGreaterEqual(h.metric_sum(a.metrics_parsed(), "levee_failover_total", result="no_lease"), 1)
        self.assertEqual(fo.pg_query(self.pg.ports[1], "SELECT pg_is_in_recovery()"), [["t"]])
        self.assertNotIn("promoting pg-1", a.log_text())
        # etcd back: the lease returns and the failure episode, still open, is resolved.
        self.etcd.resume()
        self.wait_held(a, timeout=TTL_S * 3)
        self.wait_primary(a, "pg-1")
        self.assertEqual(h.metric_sum(a.metrics_parsed(), "levee_failover_total", result="success"), 1)
        print("etcd unreachable: held() false after %.2f s (ttl %d s)" % (dropped, TTL_S), flush=True)

    def levee_with_backup(self, restore_delay_s):
        """levee "a" with companion.backup of database app on pg-0 and one verified backup; its
        pg_restore waits `restore_delay_s` first (the --list that verifies backups does not).
        Returns (levee, backup id)."""
        fo.pg_query(self.pg.ports[0], "CREATE DATABASE app")
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                        str(self.pg.ports[0]), "-U", "postgres", "-d", "app", "-c",
                        "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)"],
                       check=True, capture_output=True, timeout=h.deadline(60))
        fake = os.path.join(self.tmp, "fakebin")
        os.makedirs(fake)
        with open(os.path.join(fake, "pg_restore"), "w") as f:
            f.write('#!/bin/sh\nif [ "$1" != "--list" ]; then sleep %d; fi\n'
                    'exec %s/pg_restore "$@"\n' % (restore_delay_s, fo.PG_BIN))
        os.chmod(os.path.join(fake, "pg_restore"), 0o755)
        store = os.path.join(self.tmp, "store")
        # The first line lands after the 8 spaces of the template's %(extra)s line.
        extra = ("  backup:\n"
                 "            dir: %s\n"
                 "            targets:\n"
                 "              postgres: { dsn: \"host=127.0.0.1 port=%d user=postgres\", "
                 "databases: [app] }\n" % (store, self.pg.ports[0]))
        a = self.start_levee_for("a", extra=extra,
                                 env={"PATH": fake + ":" + os.environ.get("PATH", "/usr/bin:/bin")})
        self.wait_held(a)
        self.wait_primary(a, "pg-0")
        r = a.admin("POST", "/api/v1/backup/create", body={"type": "database"}, token=a.ports["token"])
        self.assertEqual(r.status, 202, r)
        backup_id = r.json()["id"]
        job = h.poll(lambda: (lambda j: j["state"] in ("verified", "failed") and j)(
            a.admin("GET", "/api/v1/backup/" + backup_id).json()), 120, interval=0.2,
            what="backup verified")
        self.assertEqual(job["state"], "verified", job)
        return a, backup_id

    def job(self, lv, job_id):
        return lv.admin("GET", "/api/v1/backup/" + job_id).json()

    def start_restore(self, lv, backup_id):
        r = lv.admin("POST", "/api/v1/backup/restore/" + backup_id, body={"confirm": True},
                     token=lv.ports["token"])
        self.assertEqual(r.status, 202, r)
        return r.json()["id"]

    def test_operation_lock_keeps_failover_and_restore_apart(self):
        a, backup_id = self.levee_with_backup(4)
        tok = a.ports["token"]

        # A restore runs: a promotion is refused with 409 "locked" naming it.
        restore_id = self.start_restore(a, backup_id)
        r = a.admin("POST", "/api/v1/failover/promote", body=b'{"member":"pg-1","force":true}',
                    token=tok)
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.json()["error"], "locked", r)
        self.assertIn("restore of backup " + backup_id, r.json()["detail"])
        self.assertIn("restore of backup", self.status(a)["operation_lock"])
        self.assertEqual(self.status(a)["primary"], "pg-0")  # nothing fenced
        job = h.poll(lambda: (lambda j: j["state"] in ("succeeded", "failed") and j)(
            a.admin("GET", "/api/v1/backup/" + restore_id).json()), 120, interval=0.2,
            what="restore finished")
        self.assertEqual(job["state"], "succeeded", job)
        self.assertIsNone(self.status(a)["operation_lock"])

        # A promotion runs (pg-1 frozen: pg_promote waits for its connect timeout): a restore
        # is refused with 409 naming the failover.
        pid = postmaster_pid(self.pg, 1)
        os.kill(pid, signal.SIGSTOP)
        try:
            r = a.admin("POST", "/api/v1/failover/promote", body=b'{"member":"pg-1","force":true}',
                        token=tok)
            self.assertEqual(r.status, 202, r)
            holder = h.poll(lambda: self.status(a)["operation_lock"], 5, interval=0.02,
                            what="the failover holding the operation lock")
            self.assertEqual(holder, "failover promote pg-1")
            r = a.admin("POST", "/api/v1/backup/restore/" + backup_id, body={"confirm": True},
                        token=tok)
            self.assertEqual(r.status, 409, r)
            self.assertIn("failover promote pg-1", r.json()["error"])
        finally:
            os.kill(pid, signal.SIGCONT)
        h.poll(lambda: self.status(a)["operation_lock"] is None, 30, interval=0.1,
               what="the failover releasing the operation lock")


    def test_restore_defers_automatic_failover(self):
        a, backup_id = self.levee_with_backup(8)
        restore_id = self.start_restore(a, backup_id)
        h.poll(lambda: self.job(a, restore_id)["progress"]["step"].startswith("pg_restore"), 30,
               interval=0.05, what="the restore in its pg_restore step")
        self.pg.kill(0)  # the primary dies while the restore holds the lock
        s = h.poll(lambda: (lambda st: st["last_failover"] and
                            st["last_failover"]["result"] == "locked" and st)(self.status(a)),
                   30, interval=0.05, what="the failover deferred by the restore")
        self.assertIn("restore of backup " + backup_id, s["last_failover"]["reason"])
        self.assertIsNone(s["primary"])  # fenced meanwhile
        self.assertEqual(s["promoting"], None)
        self.assertEqual(fo.pg_query(self.pg.ports[1], "SELECT pg_is_in_recovery()"), [["t"]])
        m = a.metrics_parsed()
        self.assertEqual(h.metric_sum(m, "levee_failover_total", result="locked"), 1)
        self.assertEqual(h.metric_sum(m, "levee_failover_total", result="success"), 0)
        a.wait_log("deferred")
        # The restore fails (its server is gone) and releases the lock: the promotion follows.
        job = h.poll(lambda: (lambda j: j["state"] in ("succeeded", "failed") and j)(
            self.job(a, restore_id)), 60, interval=0.2, what="restore finished")
        self.assertEqual(job["state"], "failed", job)
        s = self.wait_primary(a, "pg-1")
        self.assertEqual(s["last_failover"]["result"], "success", s)
        self.assertEqual(h.metric_sum(a.metrics_parsed(), "levee_failover_total", result="locked"), 1)


def make_certs(base):
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate (ECDSA P-256,
    one day), with the openssl CLI."""
    d = os.path.join(base, "pki")
    os.makedirs(d)
    out = {k: os.path.join(d, k + ".pem") for k in ("ca", "ca_key", "server_cert", "server_key", "cert", "key")}

    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, timeout=h.deadline(30))

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", out["ca_key"], "-out", out["ca"], "-days", "1",
        "-subj", "/CN=levee-test-ca")
    for name, cert, key, ext in (("127.0.0.1", "server_cert", "server_key",
                                  # clientAuth too: etcd's JSON gateway dials etcd's gRPC
                                  # port with this certificate (--client-cert-auth).
                                  "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"),
                                 ("levee", "cert", "key", "extendedKeyUsage=clientAuth\n")):
        csr = os.path.join(d, cert + ".csr")
        extfile = os.path.join(d, cert + ".ext")
        with open(extfile, "w") as f:
            f.write(ext)
        run("req", *ec, "-keyout", out[key], "-out", csr, "-subj", "/CN=" + name)
        run("x509", "-req", "-in", csr, "-CA", out["ca"], "-CAkey", out["ca_key"], "-CAcreateserial",
            "-out", out[cert], "-days", "1", "-extfile", extfile)
    return out


@unittest.skipUnless(fo.pg_available() and etcd_available(),
                     "PostgreSQL 15 server binaries or etcd-server not installed")
class EtcdTlsLeaseTest(h.LeveeTestCase):
    """The lease over https with client certificates (etcd --client-cert-auth)."""
    start_levee_for = EtcdFailoverTest.start_levee_for
    status = EtcdFailoverTest.status
    wait_held = EtcdFailoverTest.wait_held
    wait_primary = EtcdFailoverTest.wait_primary

    def setUp(self):
        super().setUp()
        self.pg = fo.start_cluster(self)
        self.pki = make_certs(self.tmp)
        self.etcd = Etcd(self.tmp, tls=self.pki)
        self.addCleanup(self.etcd.stop)
        self.etcd.start()
        self.key = "/levee/test/%s/leader" % self._testMethodName

    def tls_lease(self, tls):
        return "{ backend: etcd, endpoints: [%s], key: %s, ttl: %ds, tls: %s }" % (
            self.etcd.url, self.key, TTL_S, tls)

    def test_lease_over_tls_with_a_client_certificate(self):
        lv = self.start_levee_for("a", lease=self.tls_lease(
            "{ ca_file: %s, cert_file: %s, key_file: %s }" % (self.pki["ca"], self.pki["cert"], self.pki["key"])))
        s = self.wait_held(lv)
        self.assertEqual(s["lease"]["endpoint"], self.etcd.url)
        self.wait_primary(lv, "pg-0")
        cfg = lv.admin("GET", "/admin/config").json()["policy"]
        self.assertEqual(cfg["companion"]["failover"]["postgres"]["lease"]["tls"]["cert_file"], self.pki["cert"])

    def test_refused_without_the_client_certificate_or_a_trusted_ca(self):
        # etcd requires a client certificate: the handshake fails, the lease is never held.
        no_cert = self.start_levee_for("a", lease=self.tls_lease("{ ca_file: %s }" % self.pki["ca"]))
        s = h.poll(lambda: (lambda s: s["lease"]["errors"] >= 2 and s)(self.status(no_cert)), 30,
                   what="two failed rounds without a client certificate")
        self.assertFalse(s["lease"]["held"], s)
        self.assertIn(self.etcd.url, s["lease"]["last_error"])
        # Without the CA the server certificate is not trusted.
        untrusted = self.start_levee_for("b", lease=self.tls_lease(
            "{ cert_file: %s, key_file: %s }" % (self.pki["cert"], self.pki["key"])))
        s = h.poll(lambda: (lambda s: s["lease"]["errors"] >= 2 and s)(self.status(untrusted)), 30,
                   what="two failed rounds with an untrusted server certificate")
        self.assertFalse(s["lease"]["held"], s)
        self.assertRegex(s["lease"]["last_error"], "(?i)certificate")


if __name__ == "__main__":
    unittest.main()
