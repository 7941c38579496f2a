"""Continuous WAL archiving and point-in-time restore (issue 6): a real PostgreSQL 15 on loopback,
levee supervising pg_receivewal into its store, a verified base backup, a restore to a time T into
a new data directory that a second PostgreSQL starts on (exactly the rows up to T), the archive's
lag and achieved RPO under a steady write load, and a killed pg_receivewal that levee restarts."""

import os
import signal
import subprocess
import threading
import time
import unittest

import harness as h
import test_backup as tb  # the throw-away PostgreSQL cluster (additive reuse, no copy)

SLOT = "levee_wal_it"


def pid_alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def sample_under_load(pg, db, rows, started, seconds, lv, metrics):
    """Inserts `rows` rows into `db`.w (id serial, payload text) from one psql session, about 100
    single-row transactions a second; once `started` rows are in, samples `metrics` (sums) every
    0.1 s for `seconds`; returns {metric: [samples]} after the load finished."""
    script = "".join("INSERT INTO w (payload) VALUES (repeat('x', 200)); SELECT pg_sleep(0.01);\n"
                     for _ in range(rows))
    load = subprocess.Popen(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U",
                             "postgres", "-d", db, "-o", "/dev/null"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    feeder = threading.Thread(target=lambda: (load.stdin.write(script.encode()), load.stdin.close()))
    feeder.start()
    out = {name: [] for name in metrics}
    try:
        h.poll(lambda: int(pg.sql("SELECT count(*) FROM w", db=db)) > started, 30, what="load running")
        end = time.monotonic() + seconds
        while time.monotonic() < end:  # sampling the metrics, not synchronising
            m = lv.metrics_parsed()
            for name in metrics:
                out[name].append(h.metric_sum(m, name))
            time.sleep(0.1)
    finally:
        feeder.join(timeout=h.deadline(60))
        load.wait(timeout=h.deadline(120))
    return out


def create_events_db(pg, seeds):
    """Database app with table events (id, phase, at) holding `seeds` rows of phase 'seed'."""
    pg.sql("DROP DATABASE IF EXISTS app")
    pg.sql("CREATE DATABASE app")
    pg.sql("CREATE TABLE events (id serial PRIMARY KEY, phase text NOT NULL, "
           "at timestamptz NOT NULL DEFAULT clock_timestamp())", db="app")
    pg.sql("INSERT INTO events (phase) SELECT 'seed' FROM generate_series(1, %d)" % seeds, db="app")


def rows_around_target(pg, before=20, after=15):
    """Inserts `before` rows of phase 'before', takes T from the server's clock, waits until the
    clock is past T, inserts `after` rows of phase 'after'. Returns (T as RFC 3339 UTC, the WAL
    segment the first 'before' row went to)."""
    for i in range(before):
        pg.sql("INSERT INTO events (phase) VALUES ('before')", db="app")
        if i == 0:  # (pg_walfile_name of a position on a segment boundary names the previous one)
            segment = pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    target = pg.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    h.poll(lambda: pg.sql("SELECT clock_timestamp() > '%s'::timestamptz" % target) == "t", 10,
           what="the server clock past T")
    for _ in range(after):
        pg.sql("INSERT INTO events (phase) VALUES ('after')", db="app")
    return target, segment


def check_restored(test, restored, target, counts, also=None):
    """Starts `restored` (a RestoredPostgres), waits until it promoted, checks app.events holds
    exactly `counts` (["before=20", "seed=100"]) and nothing after `target`, runs `also()`;
    stops it."""
    try:
        restored.start()
        h.poll(lambda: restored.sql("SELECT pg_is_in_recovery()") == "f", 60, what="promoted")
        got = restored.sql("SELECT phase || '=' || count(*) FROM events GROUP BY phase ORDER BY phase",
                           db="app").split("\n")
        test.assertEqual(got, counts, h.tail(restored.log))
        test.assertEqual(restored.sql("SELECT max(at) <= '%s'::timestamptz FROM events" % target, db="app"), "t")
        if also:
            also()
    finally:
        restored.stop()


class RestoredPostgres(tb.Postgres):
    """A PostgreSQL started on a data directory levee prepared (no initdb)."""

    def __init__(self, workdir, data_dir):
        super().__init__(workdir)
        self.dir = os.path.join(workdir, "pg-restored")
        self.data = data_dir
        self.log = os.path.join(self.dir, "server.log")

    def start(self):
        os.makedirs(self.dir)
        if os.getuid() == 0:
            import pwd
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        opts = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off" % (self.port, self.dir)
        # -w: pg_ctl returns once the server accepts connections, i.e. after recovery promoted it.
        r = subprocess.run(self._as_owner([os.path.join(tb.PG_BIN, "pg_ctl"), "-D", self.data, "-o", opts,
                                           "-l", self.log, "-w", "-t", str(int(h.deadline(120))), "start"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=h.deadline(150))
        self.started = True  # stop() by pg_ctl, then by PID
        if r.returncode != 0:
            raise AssertionError("restored postgres did not start: %s\n%s" % (r.stderr, h.tail(self.log)))
        return self


class WalArchiveTest(tb.BackupTestBase):

    @classmethod
    def setUpClass(cls):
        if not tb.have_postgres() or not os.access(os.path.join(tb.PG_BIN, "pg_receivewal"), os.X_OK):
            raise unittest.SkipTest("PostgreSQL 15 (postgresql-15) not installed")
        super().setUpClass()

    def start_wal_levee(self):
        self.levee(['postgres: { dsn: "%s", databases: [app] }' % self.pg.dsn],
                   extra="wal_archive: { slot: %s, restart_backoff: 200ms, max_restart_backoff: 2s, "
                         "status_interval: 200ms }" % SLOT)
        h.poll(lambda: h.metric_sum(self.lv.metrics_parsed(), "levee_wal_archive_up") == 1, 60,
               interval=0.1, what="levee_wal_archive_up 1")
        return os.path.join(self.store, "wal")

    def metric(self, name):
        return h.metric_sum(self.lv.metrics_parsed(), name)

    def wait_caught_up(self, timeout=60):
        h.poll(lambda: self.metric("levee_wal_archive_lag_bytes") == 0 and
               self.api("GET", "/api/v1/backup/wal").json()["archived_lsn"] != "0/0", timeout,
               interval=0.1, what="WAL archive lag 0")

    def test_base_backup_and_point_in_time_restore(self):
        create_events_db(self.pg, 99)
        wal_dir = self.start_wal_levee()
        # The slot exists and is streamed from; segments land in the store.
        self.assertEqual(self.pg.sql("SELECT active FROM pg_replication_slots WHERE slot_name = '%s'" % SLOT), "t")
        status = self.api("GET", "/api/v1/backup/wal").json()
        self.assertTrue(status["running"], status)
        self.assertGreater(status["pid"], 0)
        self.assertTrue(status["synchronous"])
        self.assertEqual(self.api("POST", "/api/v1/backup/wal").status, 405)
        # A complete segment from before the base backup: WAL retention removes it once the base
        # backup is cataloged.
        self.pg.sql("INSERT INTO events (phase) VALUES ('seed')", db="app")
        old_segment = self.pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        self.pg.sql("SELECT pg_switch_wal()")
        h.poll(lambda: os.path.exists(os.path.join(wal_dir, old_segment)), 30, what="a complete segment")

        # A physical base backup, verified before it is listed.
        job = self.wait_job(self.create("base"), timeout=180)
        self.assertEqual(job["state"], "verified", job)
        entry = job["backup"]
        self.assertEqual(entry["type"], "base")
        arts = {a["kind"]: a for a in entry["artifacts"]}
        self.assertEqual(set(arts), {"postgres-base", "postgres-base-manifest"})
        self.assertIn("pg_verifybackup", arts["postgres-base"]["verified"])
        base = entry["base_backup"]
        self.assertEqual(base["archive_dir"], wal_dir)
        self.assertEqual(base["timeline"], "1")
        self.assertRegex(base["start_lsn"], r"^[0-9A-F]+/[0-9A-F]+$")
        self.assertTrue(os.path.exists(os.path.join(wal_dir, base["start_segment"])) or
                        os.path.exists(os.path.join(wal_dir, base["start_segment"] + ".partial")))
        import hashlib
        with open(os.path.join(self.store, "sets", entry["id"], "base.tar.gz"), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), arts["postgres-base"]["sha256"])
        self.assertIn(entry["id"], self.listed_ids())
        self.assertLess(old_segment, base["start_segment"])
        h.poll(lambda: not os.path.exists(os.path.join(wal_dir, old_segment)), 30,
               what="WAL retention removed %s" % old_segment)
        self.assertGreater(h.metric_sum(self.lv.metrics_parsed(), "levee_backup_last_success_timestamp_seconds",
                                        type="base"), 0)

        # Rows before T, T (the server's clock), rows after T.
        target, segment = rows_around_target(self.pg)
        self.wait_caught_up()
        # All of it is in the segment pg_receivewal still writes: the restore must read the .partial.
        self.assertEqual(self.pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())"), segment)
        self.assertTrue(os.path.exists(os.path.join(wal_dir, segment + ".partial")))
        self.assertFalse(os.path.exists(os.path.join(wal_dir, segment)))

        # Refusals.
        path = "/api/v1/backup/restore/" + entry["id"]
        new_dir = os.path.join(self.tmp, "restored_data")
        self.assertEqual(self.api("POST", path, {"confirm": True, "target_time": target}).status, 400)  # no data_dir
        self.assertEqual(self.api("POST", path, {"confirm": True, "data_dir": "rel/x"}).status, 400)
        self.assertEqual(self.api("POST", path, {"confirm": True, "data_dir": new_dir,
                                                 "target_time": "yesterday"}).status, 400)
        self.assertEqual(self.api("POST", path, {"confirm": True, "data_dir": new_dir,
                                                 "target_time": "2000-01-01T00:00:00Z"}).status, 400)
        self.assertEqual(self.api("POST", path, {"data_dir": new_dir, "target_time": target}).status, 400)
        self.assertEqual(self.api("POST", path, {"confirm": True, "data_dir": new_dir}, token=None).status, 401)

        r = self.api("POST", path, {"confirm": True, "data_dir": new_dir, "target_time": target})
        self.assertEqual(r.status, 202, r)
        # One lock: a second restore is refused while this one runs (or succeeds later).
        second = self.api("POST", path, {"confirm": True, "data_dir": new_dir + "2", "target_time": target})
        self.assertIn(second.status, (202, 409), second)
        rj = self.wait_job(r.json()["id"], timeout=120)
        self.assertEqual(rj["state"], "succeeded", rj)
        self.assertIn("is ready", " ".join(rj["notes"]))
        if second.status == 202:
            self.wait_job(second.json()["id"], timeout=120)
        self.assertTrue(os.path.exists(os.path.join(new_dir, "recovery.signal")))
        with open(os.path.join(new_dir, "postgresql.auto.conf")) as f:
            conf = f.read()
        self.assertIn("recovery_target_time = '%s" % target.replace("T", " ").rstrip("Z"), conf)
        self.assertIn("restore_command", conf)
        # The operator's part: the restoring server's OS user reads the archive.
        for d in (self.store, wal_dir):
            os.chmod(d, 0o755)
        for name in os.listdir(wal_dir):
            os.chmod(os.path.join(wal_dir, name), 0o644)

        check_restored(self, RestoredPostgres(self.tmp, new_dir), target, ["before=20", "seed=100"])
        self.assertEqual(self.pg.sql("SELECT count(*) FROM events WHERE phase = 'after'", db="app"), "15")

    def test_rpo_under_load_and_restart(self):
        self.pg.sql("DROP DATABASE IF EXISTS load")
        self.pg.sql("CREATE DATABASE load")
        self.pg.sql("CREATE TABLE w (id serial PRIMARY KEY, payload text)", db="load")
        self.start_wal_levee()
        self.wait_caught_up()

        samples = sample_under_load(self.pg, "load", 700, 50, 5, self.lv,
                                    ["levee_wal_archive_rpo_seconds", "levee_wal_archive_lag_bytes"])
        rpo, lag = samples["levee_wal_archive_rpo_seconds"], samples["levee_wal_archive_lag_bytes"]
        rows = int(self.pg.sql("SELECT count(*) FROM w", db="load"))
        print("\nMEASURED wal archive under load: %d rows in the run, %d samples, rpo_seconds max %.3f mean %.3f, "
              "lag_bytes max %d mean %d" % (rows, len(rpo), max(rpo), sum(rpo) / len(rpo), max(lag),
                                            sum(lag) / len(lag)))
        self.assertGreater(len(rpo), 10)
        self.assertLess(max(rpo), 5.0)  # the seeds' target is 5 minutes; synchronous streaming is far below
        self.wait_caught_up()
        self.assertEqual(self.metric("levee_wal_archive_rpo_seconds"), 0)
        self.assertGreater(self.metric("levee_wal_archive_caught_up_timestamp_seconds"), time.time() - 60)

        # Kill pg_receivewal: levee logs it, restarts it (counted), and the archive catches up again.
        old = self.api("GET", "/api/v1/backup/wal").json()
        self.assertEqual(self.metric("levee_wal_archive_restarts_total"), 0)
        os.kill(old["pid"], signal.SIGKILL)
        h.poll(lambda: self.metric("levee_wal_archive_restarts_total") == 1, 30, interval=0.1,
               what="restart counted")
        h.poll(lambda: self.api("GET", "/api/v1/backup/wal").json()["up"], 30, interval=0.1, what="up again")
        new = self.api("GET", "/api/v1/backup/wal").json()
        self.assertNotEqual(new["pid"], old["pid"])
        self.assertIn("killed by signal 9", new["last_exit"])
        self.assertFalse(pid_alive(old["pid"]))  # reaped, no zombie
        self.pg.sql("INSERT INTO w (payload) VALUES ('after restart')", db="load")
        self.wait_caught_up()
        if os.access(h.PROMTOOL_BIN, os.X_OK):
            p = subprocess.run([h.PROMTOOL_BIN, "check", "metrics"], input=self.lv.metrics_text().encode(),
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

        # A reload that changes the block: the old pg_receivewal is stopped and reaped by the loop
        # (no zombie), a new one streams from the same slot.
        with open(self.lv.config_path) as f:
            yaml = f.read()
        with open(self.lv.config_path, "w") as f:
            f.write(yaml.replace("status_interval: 200ms", "status_interval: 300ms"))
        r = self.api("POST", "/admin/reload")
        self.assertEqual(r.status, 200, r)
        h.poll(lambda: not pid_alive(new["pid"]), 20, what="old pg_receivewal reaped after the reload")
        h.poll(lambda: self.api("GET", "/api/v1/backup/wal").json()["up"], 60, interval=0.1,
               what="up after the reload")
        new = self.api("GET", "/api/v1/backup/wal").json()
        self.assertNotEqual(new["pid"], old["pid"])
        self.pg.sql("INSERT INTO w (payload) VALUES ('after reload')", db="load")
        self.wait_caught_up()

        # levee's shutdown stops pg_receivewal and reaps it.
        self.lv.stop()
        self.assertFalse(pid_alive(new["pid"]))
        self.assertIn("pg_receivewal (pid %d) stopped" % new["pid"], self.lv.stdout_text() + self.lv.stderr_text())
        self.assertEqual(self.pg.sql("SELECT active FROM pg_replication_slots WHERE slot_name = '%s'" % SLOT), "f")

        # Without wal_archive there is no base backup and no archive status.
        self.levee(['postgres: { dsn: "%s", databases: [load] }' % self.pg.dsn], store=os.path.join(self.tmp, "s2"))
        self.assertEqual(self.api("POST", "/api/v1/backup/create", {"type": "base"}).status, 400)
        self.assertEqual(self.api("GET", "/api/v1/backup/wal").status, 404)
        self.assertEqual(h.metric_series(self.lv.metrics_parsed(), "levee_wal_archive_up"), {})


if __name__ == "__main__":
    unittest.main()
