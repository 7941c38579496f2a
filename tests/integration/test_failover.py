"""PostgreSQL failover (companion.failover.postgres) against a real PostgreSQL 15 primary and a
streaming replica (pg_basebackup -R) on 127.0.0.1: the L4 route follows the primary, a killed
primary is replaced by the promoted replica, no acknowledged row is lost with a synchronous
standby, manual promote through the admin API fences the old primary and closes its sessions.

The client speaks the PostgreSQL wire protocol itself (simple query, trust auth), so the test
needs only the Python standard library and the Debian postgresql-15 binaries."""

import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import unittest

import harness as h

PG_BIN = "/usr/lib/postgresql/15/bin"


def pg_available():
    return all(os.access(os.path.join(PG_BIN, b), os.X_OK)
               for b in ("initdb", "pg_ctl", "pg_basebackup", "postgres"))


class PgError(Exception):
    pass


class PgConn:
    """A minimal PostgreSQL protocol 3 client: trust auth, simple queries, text results."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=h.deadline(timeout))
        try:
            params = b"user\0postgres\0database\0postgres\0\0"
            self.sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
            self._until_ready()
        except BaseException:
            self.sock.close()
            raise

    def _exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise PgError("connection closed")
            out += chunk
        return out

    def _message(self):
        head = self._exact(5)
        kind, length = head[:1], struct.unpack("!i", head[1:])[0]
        return kind, self._exact(length - 4)

    def _until_ready(self):
        rows, error = [], None
        while True:
            kind, body = self._message()
            if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                raise PgError("unsupported authentication request")
            if kind == b"E":
                fields = dict((f[:1], f[1:].decode("utf-8", "replace"))
                              for f in body.split(b"\0") if f)
                error = fields.get(b"M", "error")
            elif kind == b"D":
                n = struct.unpack("!h", body[:2])[0]
                i, row = 2, []
                for _ in range(n):
                    ln = struct.unpack("!i", body[i:i + 4])[0]
                    i += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(body[i:i + ln].decode())
                        i += ln
                rows.append(row)
            elif kind == b"Z":
                if error:
                    raise PgError(error)
                return rows

    def query(self, sql):
        data = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!i", 4 + len(data)) + data)
        return self._until_ready()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def pg_query(port, sql):
    c = PgConn(port)
    try:
        return c.query(sql)
    finally:
        c.close()


class PgCluster:
    """A primary and a streaming replica, each a postgres process run as user postgres (when the
    test runs as root), data and sockets under `base`, stopped with pg_ctl (then by PID)."""

    def __init__(self, base):
        self.base = base
        self.ports = [h.free_port(), h.free_port()]
        self.dirs = [os.path.join(base, "pg0"), os.path.join(base, "pg1")]
        self.sock = os.path.join(base, "sock")
        self.started = []

    def _run(self, args, timeout=60):
        if os.geteuid() == 0:
            args = ["runuser", "-u", "postgres", "--"] + args
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=h.deadline(timeout), stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s" % (" ".join(args), r.returncode,
                                                          r.stdout.decode("utf-8", "replace")))
        return r.stdout.decode("utf-8", "replace")

    def _conf(self, i, extra=""):
        with open(os.path.join(self.dirs[i], "postgresql.conf"), "a") as f:
            f.write("\nlisten_addresses = '127.0.0.1'\nport = %d\n"
                    "unix_socket_directories = '%s'\nwal_level = replica\nmax_wal_senders = 5\n"
                    "hot_standby = on\nfsync = off\nwal_sender_timeout = 5s\n"
                    "wal_receiver_status_interval = 1s\n%s" % (self.ports[i], self.sock, extra))

    def pg_ctl(self, i, *args, timeout=60):
        return self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.dirs[i]] + list(args),
                         timeout=timeout)

    def start_member(self, i):
        self.pg_ctl(i, "-l", os.path.join(self.base, "pg%d.log" % i), "-w", "-t", "60", "start")
        if i not in self.started:
            self.started.append(i)

    def setup(self):
        os.makedirs(self.sock)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        self._run([os.path.join(PG_BIN, "initdb"), "-D", self.dirs[0], "-U", "postgres",
                   "--auth=trust", "-N"])
        self._conf(0)
        self.start_member(0)
        self._run([os.path.join(PG_BIN, "pg_basebackup"), "-h", "127.0.0.1", "-p",
                   str(self.ports[0]), "-U", "postgres", "-D", self.dirs[1], "-R", "-X", "stream",
                   "--checkpoint=fast"])
        self._conf(1)
        self.start_member(1)
        h.poll(lambda: pg_query(self.ports[0], "SELECT count(*) FROM pg_stat_replication "
                                               "WHERE state = 'streaming'")[0][0] == "1",
               30, what="the replica streaming from the primary")

    def make_sync(self):
        """synchronous_standby_names on the primary only (the replica's copy stays async, so
        that after its promotion it accepts writes without a standby)."""
        pg_query(self.ports[0], "ALTER SYSTEM SET synchronous_standby_names = '*'")
        pg_query(self.ports[0], "SELECT pg_reload_conf()")
        h.poll(lambda: pg_query(self.ports[0], "SELECT count(*) FROM pg_stat_replication "
                                               "WHERE sync_state = 'sync'")[0][0] == "1",
               30, what="the replica to be a synchronous standby")

    def kill(self, i):
        self.pg_ctl(i, "-m", "immediate", "stop")

    def stop(self):
        for i in reversed(self.started):
            pid_file = os.path.join(self.dirs[i], "postmaster.pid")
            if not os.path.exists(pid_file):
                continue
            try:
                self.pg_ctl(i, "-m", "immediate", "-w", "-t", "30", "stop", timeout=40)
            except Exception:  # noqa: BLE001 - fall back to the PID
                try:
                    with open(pid_file) as f:
                        os.kill(int(f.readline().strip()), 9)
                except (OSError, ValueError):
                    pass


def start_cluster(test):
    """A PgCluster under the test's temp dir, stopped by the test's cleanup."""
    os.chmod(test.tmp, 0o755)  # the postgres user must reach its data directories
    base = os.path.join(test.tmp, "pg")
    os.makedirs(base)
    pg = PgCluster(base)
    test.addCleanup(pg.stop)
    pg.setup()
    return pg


def policy_yaml(ports, token_file, pg_ports, lease="{ backend: none }", extra="", service="fo"):
    """A levee policy with admin and probes, a pg-rw (role primary) and a pg-ro (role replica)
    TCP listener, and companion.failover.postgres over the two members on `pg_ports`. `extra`
    continues the companion section (its first line is indented by the template's 8 spaces)."""
    return """
        version: 1
        service: %(service)s
        admin: { address: 127.0.0.1:%(admin)d, token_file: %(tf)s }
        probes: { address: 127.0.0.1:%(probes)d }
        listeners:
          - { name: pg-rw, address: 127.0.0.1:%(rw)d, protocol: tcp, upstream: pg-primary }
          - { name: pg-ro, address: 127.0.0.1:%(ro)d, protocol: tcp, upstream: pg-replica }
        upstreams:
          pg-primary: { protocol: tcp, endpoints_from: { failover: postgres, role: primary } }
          pg-replica: { protocol: tcp, endpoints_from: { failover: postgres, role: replica } }
        companion:
          failover:
            postgres:
              members:
                - { name: pg-0, dsn: "host=127.0.0.1 port=%(p0)d user=postgres dbname=postgres" }
                - { name: pg-1, dsn: "host=127.0.0.1 port=%(p1)d user=postgres dbname=postgres" }
              lease: %(lease)s
        %(extra)s
        """ % dict(ports, tf=token_file, p0=pg_ports[0], p1=pg_ports[1], lease=lease,
                   extra=extra, service=service)


@unittest.skipUnless(pg_available(), "PostgreSQL 15 server binaries not installed")
class FailoverTest(h.LeveeTestCase):

    def setUp(self):
        super().setUp()
        self.pg = start_cluster(self)

    def start_levee_for(self, extra=""):
        ports = {"probes": h.free_port(), "admin": h.free_port(), "rw": h.free_port(),
                 "ro": h.free_port()}
        tf, tok = self.token_file()
        ports["token"] = tok
        yaml = policy_yaml(ports, tf, self.pg.ports, extra=extra)
        lv = self.start_levee(yaml, ports["probes"], ports["admin"])
        return lv, ports

    def status(self, lv):
        r = lv.admin("GET", "/api/v1/failover/status")
        self.assertEqual(r.status, 200, r)
        return r.json()

    def wait_routed(self, lv, primary, replicas=None):
        def ok():
            s = self.status(lv)
            routed = sorted(m["name"] for m in s["members"] if m["routed"] == "replica")
            return s["primary"] == primary and (replicas is None or routed == replicas) and s
        return h.poll(ok, 30, interval=0.1, what="primary %s, replicas %s" % (primary, replicas))

    def server_port(self, levee_port):
        return pg_query(levee_port, "SELECT inet_server_port(), pg_is_in_recovery()")[0]

    def test_kill_primary_promotes_replica_without_losing_acknowledged_rows(self):
        self.pg.make_sync()
        pg_query(self.pg.ports[0], "CREATE TABLE t (id int PRIMARY KEY)")
        lv, ports = self.start_levee_for()
        self.wait_routed(lv, "pg-0", ["pg-1"])
        self.assertEqual(self.server_port(ports["rw"]), [str(self.pg.ports[0]), "f"])
        self.assertEqual(self.server_port(ports["ro"]), [str(self.pg.ports[1]), "t"])
        self.assertEqual(lv.probe("/primary").status, 200)
        self.assertEqual(lv.probe("/replica?lag=1MB").status, 200)

        acked, errors = [], []
        state = {"stop": False, "killed_at": None, "first_ack_after_kill": None}

        def writer():
            conn, next_id = None, 1
            end = time.monotonic() + h.deadline(60)
            while not state["stop"] and time.monotonic() < end:
                try:
                    if conn is None:
                        conn = PgConn(ports["rw"], timeout=2)
                    conn.query("INSERT INTO t VALUES (%d)" % next_id)
                    acked.append(next_id)
                    if state["killed_at"] is not None and state["first_ack_after_kill"] is None:
                        state["first_ack_after_kill"] = time.monotonic()
                    next_id += 1
                except (OSError, PgError) as e:
                    errors.append(repr(e))
                    if conn is not None:
                        conn.close()
                    conn = None
                    next_id += 1  # the outcome of that insert is unknown: never reuse its id
                    time.sleep(0.05)  # reconnect pacing, not synchronisation
            if conn is not None:
                conn.close()

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        try:
            h.poll(lambda: len(acked) >= 50, 20, what="50 acknowledged inserts before the kill")
            self.pg.kill(0)
            state["killed_at"] = time.monotonic()
            h.poll(lambda: state["first_ack_after_kill"] is not None, 30, interval=0.05,
                   what="an acknowledged insert through levee after the primary was killed")
            acked_at_failover = len(acked)
            h.poll(lambda: len(acked) >= acked_at_failover + 20, 20,
                   what="more inserts on the new primary")
        finally:
            state["stop"] = True
            t.join(h.deadline(30))
        writable_after = state["first_ack_after_kill"] - state["killed_at"]

        s = self.wait_routed(lv, "pg-1", [])
        self.assertEqual(s["last_failover"]["result"], "success", s)
        self.assertEqual(s["last_failover"]["from"], "pg-0", s)
        self.assertEqual(s["last_failover"]["target"], "pg-1", s)
        self.assertFalse(s["last_failover"]["manual"])
        members = {m["name"]: m for m in s["members"]}
        self.assertTrue(members["pg-0"]["fenced"])
        self.assertFalse(members["pg-0"]["reachable"])
        self.assertEqual(members["pg-1"]["role"], "primary")
        # Every acknowledged row is on the promoted replica (synchronous standby).
        rows = pg_query(self.pg.ports[1], "SELECT id FROM t")
        present = {int(r[0]) for r in rows}
        missing = [i for i in acked if i not in present]
        self.assertEqual(missing, [], "acknowledged rows lost: %r" % missing[:20])
        self.assertEqual(self.server_port(ports["rw"]), [str(self.pg.ports[1]), "f"])
        self.assertEqual(lv.probe("/primary").json()["member"], "pg-1")
        self.assertEqual(lv.probe("/replica").status, 503)  # no replica left
        m = lv.metrics_parsed()
        self.assertEqual(h.metric_sum(m, "levee_failover_total", result="success"), 1)
        self.assertEqual(h.metric_sum(m, "levee_failover_total", result="failed"), 0)
        self.assertEqual(h.metric_sum(m, "levee_db_member_up", member="pg-0"), 0)
        self.assertEqual(h.metric_sum(m, "levee_db_member_role", member="pg-1", role="primary"), 1)
        self.assertEqual(h.metric_sum(m, "levee_db_member_fenced", member="pg-0"), 1)
        lv.wait_log("fenced", "promoting pg-1", "left recovery")
        sys_msg = ("failover timing: kill -> first acknowledged write through levee %.2f s; "
                   "levee detection -> writable %d ms; first failed check -> writable %d ms; "
                   "%d rows acknowledged, %d client errors\n"
                   % (writable_after, s["last_failover"]["detection_to_writable_ms"],
                      s["last_failover"]["first_failure_to_writable_ms"], len(acked), len(errors)))
        print(sys_msg, flush=True)
        self.assertLess(writable_after, h.deadline(10), sys_msg)

    def test_manual_promote_fences_old_primary_and_closes_its_sessions(self):
        lv, ports = self.start_levee_for()
        s = self.wait_routed(lv, "pg-0", ["pg-1"])
        members = {m["name"]: m for m in s["members"]}
        self.assertEqual(members["pg-0"]["role"], "primary")
        self.assertEqual(members["pg-1"]["role"], "replica")
        self.assertIsNotNone(members["pg-1"]["replay_lag_bytes"])
        self.assertIsNone(s["last_failover"])
        m = lv.metrics_parsed()
        self.assertIn(("levee_db_replication_lag_bytes", frozenset({("member", "pg-1")})), m)
        # The seconds lag of a replica that has replayed everything is 0 (no clock lag on an
        # idle primary), and the primary has none.
        def lag_seconds():
            return h.metric_series(lv.metrics_parsed(), "levee_db_replication_lag_seconds")
        h.poll(lambda: lag_seconds().get(frozenset({("member", "pg-1")})) == 0, 20, what="pg-1 lag 0 s")
        self.assertEqual(list(lag_seconds()), [frozenset({("member", "pg-1")})])
        if os.access(h.PROMTOOL_BIN, os.X_OK):
            p = subprocess.run([h.PROMTOOL_BIN, "check", "metrics"],
                               input=lv.metrics_text().encode(), capture_output=True,
                               timeout=h.deadline(30))
            self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        cfg = lv.admin("GET", "/admin/config").json()["policy"]
        self.assertEqual(cfg["upstreams"]["pg-primary"]["endpoints_from"]["role"], "primary")
        pg_cfg = cfg["companion"]["failover"]["postgres"]
        self.assertEqual([x["dsn"] for x in pg_cfg["members"]], ["<redacted>", "<redacted>"])

        # Mutations need the token; a healthy primary needs force.
        r = lv.admin("POST", "/api/v1/failover/promote", body=b"{}")
        self.assertEqual(r.status, 401, r)
        tok = ports["token"]
        r = lv.admin("POST", "/api/v1/failover/promote", body=b'{"member":"pg-1"}', token=tok)
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.json()["error"], "primary_healthy")
        r = lv.admin("POST", "/api/v1/failover/promote", body=b'{"member":"pg-9"}', token=tok)
        self.assertEqual(r.status, 404, r)
        r = lv.admin("POST", "/api/v1/failover/promote", body=b'{"member":', token=tok)
        self.assertEqual(r.status, 400, r)
        r = lv.admin("GET", "/api/v1/failover/promote")
        self.assertEqual(r.status, 405, r)

        old = PgConn(ports["rw"])
        self.assertEqual(old.query("SELECT inet_server_port()"), [[str(self.pg.ports[0])]])
        r = lv.admin("POST", "/api/v1/failover/promote", body=b'{"member":"pg-1","force":true}',
                     token=tok)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json(), {"result": "promoting", "target": "pg-1", "fenced": "pg-0"})
        s = self.wait_routed(lv, "pg-1")
        self.assertEqual(s["last_failover"]["result"], "success", s)
        self.assertTrue(s["last_failover"]["manual"])
        # The established session to the fenced primary was closed by levee.
        def closed():
            try:
                old.query("SELECT 1")
            except (OSError, PgError):
                return True
            return False
        h.poll(closed, 10, what="the session to the fenced primary to be closed")
        old.close()
        self.assertEqual(self.server_port(ports["rw"]), [str(self.pg.ports[1]), "f"])
        # pg-0 still runs as a primary: levee says so loudly and keeps routing to pg-1 only.
        s = h.poll(lambda: (lambda st: st["split_brain"] and st)(self.status(lv)), 10,
                   what="split brain reported")
        self.assertEqual(s["primary"], "pg-1")
        m = lv.metrics_parsed()
        self.assertEqual(h.metric_sum(m, "levee_db_split_brain"), 1)
        self.assertEqual(h.metric_sum(m, "levee_db_member_routed_primary", member="pg-1"), 1)
        self.assertEqual(h.metric_sum(m, "levee_failover_total", result="success"), 1)
        lv.wait_log("SPLIT BRAIN")
        for _ in range(3):
            self.assertEqual(self.server_port(ports["rw"]), [str(self.pg.ports[1]), "f"])
        # A second promote has no replica left to promote.
        r = lv.admin("POST", "/api/v1/failover/promote", body=b"", token=tok)
        self.assertEqual(r.status, 409, r)


if __name__ == "__main__":
    unittest.main()
