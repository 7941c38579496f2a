"""Companion backups (issue 6): real PostgreSQL 15 and Redis on loopback, driven through levee's
admin API: create -> verify -> list -> restore -> delete, retention, the schedule's missed run,
refusals, and failing dumps that must end loud and unlisted."""

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import unittest

import harness as h

PG_BIN = "/usr/lib/postgresql/15/bin"
TOKEN = "s3cret-token"


def have_postgres():
    return os.access(os.path.join(PG_BIN, "initdb"), os.X_OK) and shutil.which("pg_dump")


def have_redis():
    return shutil.which("redis-server") and shutil.which("redis-cli") and shutil.which("redis-check-rdb")


class Postgres:
    """A throw-away PostgreSQL cluster: data and socket in `workdir`, TCP on 127.0.0.1:port, trust
    authentication. As root the server runs as the `postgres` user (initdb refuses root)."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "pg")
        self.data = os.path.join(self.dir, "data")
        self.port = h.free_port()
        self.log = os.path.join(self.dir, "server.log")
        self.started = False

    def _as_owner(self, args):
        if os.getuid() == 0:
            return ["runuser", "-u", "postgres", "--"] + args
        return args

    def start(self):
        os.makedirs(self.dir)
        if os.getuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            d = self.dir
            while d != "/":  # the postgres user must reach its directory
                d = os.path.dirname(d)
                os.chmod(d, os.stat(d).st_mode | 0o711)
        subprocess.run(self._as_owner([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "postgres",
                                       "-A", "trust", "--no-sync", "-E", "UTF8"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=h.deadline(120))
        opts = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50" % (
            self.port, self.dir)
        subprocess.run(self._as_owner([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-o", opts,
                                       "-l", self.log, "-w", "-t", str(int(h.deadline(60))), "start"]),
                       check=True, stdout=subprocess.DEVNULL, timeout=h.deadline(90))
        self.started = True
        return self

    def stop(self):
        if not self.started:
            return
        self.started = False
        r = subprocess.run(self._as_owner([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "fast",
                                           "-w", "-t", "30", "stop"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=h.deadline(60))
        if r.returncode != 0:  # by PID, as a last resort
            try:
                with open(os.path.join(self.data, "postmaster.pid")) as f:
                    os.kill(int(f.readline()), 9)
            except (OSError, ValueError):
                pass

    @property
    def dsn(self):
        return "host=127.0.0.1 port=%d user=postgres" % self.port

    def sql(self, sql, db="postgres"):
        r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                            str(self.port), "-U", "postgres", "-d", db, "-c", sql],
                           capture_output=True, text=True, timeout=h.deadline(120))
        if r.returncode != 0:
            raise AssertionError("psql %r: %s" % (sql, r.stderr))
        return r.stdout.strip()


class Redis:
    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "redis")
        self.port = h.free_port()
        self.proc = None

    def start(self):
        os.makedirs(self.dir)
        self.log = open(os.path.join(self.dir, "redis.log"), "wb")
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--dir", self.dir, "--save", "", "--appendonly", "no"],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        h.poll(lambda: self.cli("PING") == "PONG", 20, what="redis PING")
        return self

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)] + list(args),
                           capture_output=True, text=True, timeout=h.deadline(20))
        return r.stdout.strip()

    def stop(self):
        h.stop_process(self.proc)
        self.log.close()


class BackupTestBase(h.LeveeTestCase):
    """One PostgreSQL and one Redis for the whole class (initdb is the slow part)."""

    @classmethod
    def setUpClass(cls):
        if not have_postgres():
            raise unittest.SkipTest("PostgreSQL 15 (postgresql-15) not installed")
        if not have_redis():
            raise unittest.SkipTest("redis-server/redis-tools not installed")
        cls.cls_tmp = tempfile.mkdtemp(prefix="levee-it-backup-")
        cls.pg = Postgres(cls.cls_tmp)
        cls.redis = Redis(cls.cls_tmp)
        try:
            cls.pg.start()
            cls.redis.start()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()
        if cls.redis.proc is not None:
            cls.redis.stop()
        shutil.rmtree(cls.cls_tmp, ignore_errors=True)

    def setUp(self):
        super().setUp()
        os.chmod(self.tmp, 0o755)

    def levee(self, targets, extra="", env=None, store=None, wait_catalog=True):
        self.store = store or os.path.join(self.tmp, "store")
        ports = {"probes": h.free_port(), "admin": h.free_port(), "listener": h.free_port()}
        tf, _ = self.token_file(TOKEN)
        yaml = "\n".join([
            "version: 1",
            "service: itest",
            "admin: { address: 127.0.0.1:%d, token_file: %s }" % (ports["admin"], tf),
            "probes: { address: 127.0.0.1:%d }" % ports["probes"],
            "listeners:",
            "  - { name: inbound, address: 127.0.0.1:%d, routes: [ { name: all, match: { prefix: / }, "
            "upstream: app } ] }" % ports["listener"],
            "upstreams:",
            "  app: { endpoints: [ { address: 127.0.0.1:9 } ] }",
            "companion:",
            "  backup:",
            "    dir: %s" % self.store,
            "    targets:"] + ["      " + t for t in targets] + ["    " + e for e in extra.splitlines()]) + "\n"
        self.lv = self.start_levee(yaml, ports["probes"], ports["admin"], env=env)
        if wait_catalog:
            h.poll(lambda: self.api("GET", "/api/v1/backup/list").status == 200, 20, what="catalog loaded")
        return self.lv

    def api(self, method, path, body=None, token=TOKEN):
        return self.lv.admin(method, path, body=body, token=token, timeout=30)

    def create(self, kind, expect=202):
        r = self.api("POST", "/api/v1/backup/create", {"type": kind})
        self.assertEqual(r.status, expect, r)
        return r.json().get("id")

    def wait_job(self, job_id, timeout=120):
        def done():
            j = self.api("GET", "/api/v1/backup/" + job_id).json()
            return j if j.get("state") in ("verified", "failed", "succeeded") else None
        return h.poll(done, timeout, interval=0.1, what="job %s to finish" % job_id)

    def listed_ids(self):
        return [b["id"] for b in self.api("GET", "/api/v1/backup/list").json()["backups"]]


class BackupRestoreTest(BackupTestBase):

    def seed(self, db):
        self.pg.sql("DROP DATABASE IF EXISTS %s" % db)
        self.pg.sql("CREATE DATABASE %s" % db)
        self.pg.sql("CREATE TABLE orders (id serial PRIMARY KEY, note text);"
                    "INSERT INTO orders (note) SELECT 'order ' || g FROM generate_series(1, 1000) g;"
                    "CREATE TABLE customers (id int PRIMARY KEY, name text);"
                    "INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 50) g;", db=db)

    def test_full_backup_verify_list_restore_delete(self):
        self.seed("app")
        self.redis.cli("FLUSHALL")
        self.redis.cli("SET", "greeting", "hello")
        self.redis.cli("RPUSH", "queue", "a", "b", "c")
        files = os.path.join(self.tmp, "uploads")
        os.makedirs(os.path.join(files, "sub"))
        for name, data in (("a.txt", b"alpha"), ("sub/b.bin", os.urandom(100000))):
            with open(os.path.join(files, name), "wb") as f:
                f.write(data)
        self.levee(['postgres: { dsn: "%s", databases: [app] }' % self.pg.dsn,
                    "redis: { address: 127.0.0.1:%d }" % self.redis.port,
                    "files: { paths: [%s] }" % files])

        # Refusals before anything exists.
        self.assertEqual(self.api("POST", "/api/v1/backup/create", {"type": "full"}, token=None).status, 401)
        self.assertEqual(self.api("POST", "/api/v1/backup/create", {"type": "full"}, token="wrong").status, 401)
        self.assertEqual(self.api("POST", "/api/v1/backup/create", {"type": "everything"}).status, 400)
        self.assertEqual(self.api("POST", "/api/v1/backup/create", "{not json").status, 400)
        self.assertEqual(self.api("GET", "/api/v1/backup/b-20260101T000000Z-0000").status, 404)
        self.assertEqual(self.api("DELETE", "/api/v1/backup/b-20260101T000000Z-0000").status, 404)
        self.assertEqual(self.api("PUT", "/api/v1/backup/list").status, 405)
        self.assertEqual(self.listed_ids(), [])

        job_id = self.create("full")
        job = self.wait_job(job_id)
        self.assertEqual(job["state"], "verified", job)
        entry = job["backup"]
        arts = {a["target"]: a for a in entry["artifacts"]}
        self.assertEqual(set(arts), {"postgres:app", "redis", "files"})
        self.assertIn("pg_restore --list", arts["postgres:app"]["verified"])
        self.assertEqual(arts["postgres:app"]["row_counts"], {"public.customers": 50, "public.orders": 1000})
        self.assertIn("redis-check-rdb: OK", arts["redis"]["verified"])
        self.assertIn("tar --list: ", arts["files"]["verified"])
        self.assertIn("pg_dump", entry["tool_versions"])
        self.assertEqual(sorted(entry["tags"]), ["daily", "monthly", "weekly"])
        for a in entry["artifacts"]:  # the catalog's checksums are the stored bytes'
            path = os.path.join(self.store, "sets", job_id, a["file"])
            with open(path, "rb") as f:
                data = f.read()
            self.assertEqual(hashlib.sha256(data).hexdigest(), a["sha256"], a["file"])
            self.assertEqual(len(data), a["size"])
        with open(os.path.join(self.store, "catalog", job_id + ".json")) as f:
            self.assertEqual(json.load(f)["id"], job_id)
        self.assertEqual(self.listed_ids(), [job_id])
        m = self.lv.metrics_parsed()
        self.assertGreater(h.metric_sum(m, "levee_backup_last_success_timestamp_seconds", type="full"), 0)
        self.assertEqual(h.metric_sum(m, "levee_backup_success_total", type="full"), 1)
        self.assertGreater(h.metric_sum(m, "levee_backup_last_size_bytes", type="full"), 0)
        if os.access(h.PROMTOOL_BIN, os.X_OK):
            p = subprocess.run([h.PROMTOOL_BIN, "check", "metrics"], input=self.lv.metrics_text().encode(),
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

        # Change the data after the backup.
        self.pg.sql("DELETE FROM orders WHERE id > 400; UPDATE customers SET name = 'changed';"
                    "CREATE TABLE later (x int)", db="app")
        self.assertEqual(self.pg.sql("SELECT count(*) FROM orders", db="app"), "400")

        path = "/api/v1/backup/restore/" + job_id
        self.assertEqual(self.api("POST", path, {"confirm": True}, token=None).status, 401)
        self.assertEqual(self.api("POST", path, {}).status, 400)
        self.assertEqual(self.api("POST", path, {"confirm": "yes"}).status, 400)
        self.assertEqual(self.api("POST", "/api/v1/backup/restore/b-20260101T000000Z-0000",
                                  {"confirm": True}).status, 404)
        r = self.api("POST", path, {"confirm": True})
        self.assertEqual(r.status, 202, r)
        restore_id = r.json()["id"]
        second = self.api("POST", path, {"confirm": True})  # one restore at a time
        self.assertEqual(second.status, 409, second)
        self.assertIn("in progress", second.json()["error"])
        self.assertEqual(self.api("DELETE", "/api/v1/backup/" + job_id).status, 409)
        done = self.wait_job(restore_id)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(self.pg.sql("SELECT count(*) FROM orders", db="app"), "1000")
        self.assertEqual(self.pg.sql("SELECT count(*) FROM customers WHERE name = 'changed'", db="app"), "0")
        self.assertEqual(self.pg.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'later'", db="app"), "0")
        kept = self.pg.sql("SELECT datname FROM pg_database WHERE datname LIKE 'app_pre_%'")
        self.assertTrue(kept, "the previous database is kept")
        self.assertEqual({t["state"] for t in done["targets"]}, {"swapped"}, done)  # redis and files too
        self.assertEqual(self.redis.cli("GET", "greeting"), "hello")
        self.assertEqual(h.metric_sum(self.lv.metrics_parsed(), "levee_restore_total", result="success"), 1)

        # Deleting: the newest backup of a tier is refused; an older one that no tier needs goes.
        b2 = self.wait_job(self.create("full"))["id"]
        b3 = self.wait_job(self.create("full"))["id"]
        self.assertEqual(self.listed_ids(), [b3, b2, job_id])
        self.assertEqual(self.api("DELETE", "/api/v1/backup/" + b3, token=None).status, 401)
        r = self.api("DELETE", "/api/v1/backup/" + b3)
        self.assertEqual(r.status, 409, r)
        self.assertIn("newest daily", r.json()["error"])
        self.assertEqual(self.api("DELETE", "/api/v1/backup/" + job_id).status, 409)  # newest monthly
        self.assertEqual(self.api("DELETE", "/api/v1/backup/" + b2).status, 200)
        self.assertEqual(self.listed_ids(), [b3, job_id])
        h.poll(lambda: not os.path.exists(os.path.join(self.store, "sets", b2)), 10, what="set removed")
        self.assertEqual(self.api("GET", "/api/v1/backup/" + b2).json()["state"], "verified")  # job history

    def test_failing_dumps_are_loud_and_never_listed(self):
        self.seed("app")
        fake = os.path.join(self.tmp, "fakebin")
        os.makedirs(fake)
        with open(os.path.join(fake, "pg_dump"), "w") as f:
            f.write("#!/bin/sh\n"
                    "if [ \"$1\" = --version ]; then echo \"pg_dump (PostgreSQL) ${FAKE_PG_MAJOR}.1\"; exit 0; fi\n"
                    "printf 'PGDMP partial'; echo 'pg_dump: error: simulated failure' >&2; exit 1\n")
        os.chmod(os.path.join(fake, "pg_dump"), 0o755)
        env = {"PATH": fake + ":" + os.environ.get("PATH", "/usr/bin:/bin"), "FAKE_PG_MAJOR": "15"}
        self.levee(['postgres: { dsn: "%s", databases: [app] }' % self.pg.dsn], env=env)
        job = self.wait_job(self.create("database"))
        self.assertEqual(job["state"], "failed", job)
        self.assertIn("pg_dump: exit code 1", job["error"])
        self.assertIn("simulated failure", job["error"])
        self.assertEqual(self.listed_ids(), [])
        # The partial set is removed on the thread pool once the job has failed.
        set_dir = os.path.join(self.store, "sets", job["id"])
        h.poll(lambda: not os.path.exists(set_dir) or not os.listdir(set_dir), 10, what="partial set removed")
        self.assertEqual(h.metric_sum(self.lv.metrics_parsed(), "levee_backup_failures_total", type="database"), 1)
        self.lv.wait_log("FAILED")
        self.assertEqual(h.metric_sum(self.lv.metrics_parsed(), "levee_backup_last_success_timestamp_seconds",
                                      type="database"), 0)

    def test_old_pg_dump_is_refused(self):
        fake = os.path.join(self.tmp, "fakebin")
        os.makedirs(fake)
        with open(os.path.join(fake, "pg_dump"), "w") as f:
            f.write("#!/bin/sh\necho 'pg_dump (PostgreSQL) 14.9'\n")
        os.chmod(os.path.join(fake, "pg_dump"), 0o755)
        self.levee(['postgres: { dsn: "%s", databases: [postgres] }' % self.pg.dsn],
                   env={"PATH": fake + ":" + os.environ.get("PATH", "/usr/bin:/bin")})
        job = self.wait_job(self.create("database"))
        self.assertEqual(job["state"], "failed", job)
        self.assertIn("pg_dump 14 is older than the server's major version 15", job["error"])
        self.assertEqual(self.listed_ids(), [])

    def test_missing_database_fails(self):
        self.levee(['postgres: { dsn: "%s", databases: [no_such_db] }' % self.pg.dsn])
        job = self.wait_job(self.create("database"))
        self.assertEqual(job["state"], "failed", job)
        self.assertIn("no_such_db", job["error"])
        self.assertEqual(self.listed_ids(), [])
        # Storage backups are refused when no storage target is configured.
        self.assertEqual(self.api("POST", "/api/v1/backup/create", {"type": "storage"}).status, 400)


class RetentionScheduleTest(BackupTestBase):

    def files_dir(self):
        d = os.path.join(self.tmp, "data")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "f"), "w") as f:
            f.write("x" * 1000)
        return d

    def test_retention_expires_per_tier(self):
        self.levee(["files: { paths: [%s] }" % self.files_dir()],
                   extra="retention: { daily: 1, weekly: 1, monthly: 1 }")
        a = self.wait_job(self.create("storage"))["id"]
        b = self.wait_job(self.create("storage"))["id"]
        self.assertEqual(self.listed_ids(), [b, a])  # a: newest weekly/monthly, b: newest daily
        c = self.wait_job(self.create("storage"))["id"]
        self.assertEqual(self.listed_ids(), [c, a])  # b is in no tier's budget any more
        self.assertEqual(h.metric_sum(self.lv.metrics_parsed(), "levee_backup_expired_total"), 1)
        h.poll(lambda: not os.path.exists(os.path.join(self.store, "sets", b)), 10, what="expired set removed")

    def test_missed_scheduled_run_runs_once_after_restart(self):
        store = os.path.join(self.tmp, "store")
        os.makedirs(store)
        now = int(time.time())
        with open(os.path.join(store, "schedule.json"), "w") as f:
            json.dump({"last_run": now - 7200}, f)  # levee was down for two hours
        minute = (time.gmtime(now).tm_min + 58) % 60  # due every hour, last due up to ~1h ago
        targets = ["files: { paths: [%s] }" % self.files_dir()]
        self.levee(targets, extra='schedule: "%d * * * *"' % minute, store=store)

        def scheduled():
            ids = self.listed_ids()
            return ids if ids else None
        ids = h.poll(scheduled, 60, what="the missed scheduled backup")
        self.lv.wait_log("was missed while levee was down")
        self.assertEqual(len(ids), 1)
        entry = self.api("GET", "/api/v1/backup/" + ids[0]).json()
        self.assertEqual(entry["trigger"], "schedule-missed")
        with open(os.path.join(store, "schedule.json")) as f:
            self.assertGreaterEqual(json.load(f)["last_run"], now)
        # A restart now is not a missed run: nothing is queued again.
        self.lv.stop()
        self.levee(targets, extra='schedule: "%d * * * *"' % minute, store=store)
        self.assertEqual(self.listed_ids(), ids)
        self.lv.wait_log("1 verified backup(s)")
        self.assertNotIn("was missed while levee was down", self.lv.stderr_text())


if __name__ == "__main__":
    unittest.main()
