"""Restores of every target of a backup set (issue 6): PostgreSQL, Redis (through a temporary
redis-server the live one replicates) and files (staged beside the live directory, swapped with
renames); a failure before the swap leaves live data untouched; the restore journal repairs a
restore cut by a crash at the next start; no backup/restore child outlives levee; Redis AUTH
(an ACL user, the password from a file) for backup and restore."""

import hashlib
import json
import os
import signal
import subprocess
import unittest

import harness as h
from test_backup import BackupTestBase, Redis, TOKEN  # noqa: F401 (TOKEN used through BackupTestBase)


def tree_digest(root):
    """Names, types, modes and contents of everything under root (symlink targets, not followed)."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            p = os.path.join(d, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if os.path.islink(p):
                out.append((rel, "l", os.readlink(p)))
            elif os.path.isdir(p):
                out.append((rel, "d", oct(st.st_mode & 0o777)))
            else:
                with open(p, "rb") as f:
                    out.append((rel, "f", oct(st.st_mode & 0o777), hashlib.sha256(f.read()).hexdigest()))
    return out


def proc_state(pid):
    """'R', 'S', 'Z', ... or None when the process is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def children_of(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return out


class RestoreTargetsTest(BackupTestBase):

    def seed_all(self):
        self.pg.sql("DROP DATABASE IF EXISTS app")
        self.pg.sql("CREATE DATABASE app")
        self.pg.sql("CREATE TABLE orders (id serial PRIMARY KEY, note text);"
                    "INSERT INTO orders (note) SELECT 'order ' || g FROM generate_series(1, 500) g;", db="app")
        self.redis.cli("FLUSHALL")
        self.redis.cli("SET", "greeting", "hello")
        self.redis.cli("RPUSH", "queue", "a", "b", "c")
        self.redis.cli("SET", "session", "s1", "EX", "3600")
        self.redis.cli("-n", "3", "HSET", "user:1", "name", "ada")
        self.files = os.path.join(self.tmp, "uploads")
        os.makedirs(os.path.join(self.files, "sub", "deep"))
        for name, data in (("a.txt", b"alpha"), ("sub/b.bin", os.urandom(70000)),
                           ("sub/deep/c.txt", b"gamma" * 100)):
            with open(os.path.join(self.files, name), "wb") as f:
                f.write(data)
        os.chmod(os.path.join(self.files, "a.txt"), 0o640)
        os.symlink("a.txt", os.path.join(self.files, "link"))
        return {"pg": self.pg.sql("SELECT count(*), md5(string_agg(note, ',' ORDER BY id)) FROM orders", db="app"),
                "redis": self.redis_state(), "files": tree_digest(self.files)}

    def redis_state(self):
        return (self.redis.cli("GET", "greeting"), self.redis.cli("LRANGE", "queue", "0", "-1"),
                self.redis.cli("EXISTS", "session"), self.redis.cli("-n", "3", "HGET", "user:1", "name"),
                self.redis.cli("EXISTS", "later"), self.redis.cli("DBSIZE"),
                self.redis.cli("-n", "3", "DBSIZE"))

    def change_all(self):
        self.pg.sql("DELETE FROM orders WHERE id > 100; UPDATE orders SET note = 'changed'", db="app")
        self.redis.cli("SET", "greeting", "changed")
        self.redis.cli("DEL", "queue")
        self.redis.cli("SET", "later", "x")
        self.redis.cli("-n", "3", "FLUSHDB")
        with open(os.path.join(self.files, "a.txt"), "wb") as f:
            f.write(b"changed")
        os.remove(os.path.join(self.files, "sub", "b.bin"))
        with open(os.path.join(self.files, "new.txt"), "wb") as f:
            f.write(b"new")
        return {"pg": self.pg.sql("SELECT count(*), md5(string_agg(note, ',' ORDER BY id)) FROM orders", db="app"),
                "redis": self.redis_state(), "files": tree_digest(self.files)}

    def current(self):
        return {"pg": self.pg.sql("SELECT count(*), md5(string_agg(note, ',' ORDER BY id)) FROM orders", db="app"),
                "redis": self.redis_state(), "files": tree_digest(self.files)}

    def start_all(self, env=None):
        return self.levee(['postgres: { dsn: "%s", databases: [app] }' % self.pg.dsn,
                           "redis: { address: 127.0.0.1:%d }" % self.redis.port,
                           "files: { paths: [%s] }" % self.files], env=env)

    def restore(self, backup_id):
        r = self.api("POST", "/api/v1/backup/restore/" + backup_id, {"confirm": True})
        self.assertEqual(r.status, 202, r)
        return self.wait_job(r.json()["id"], timeout=180)

    def assert_no_leftovers(self):
        self.assertEqual(self.pg.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'app_rst_%'"), "0")
        self.assertEqual(self.pg.sql("SELECT count(*) FROM pg_database WHERE NOT datallowconn "
                                     "AND datname <> 'template0'"), "0")
        parent = os.path.dirname(self.files)
        self.assertEqual([n for n in os.listdir(parent) if ".levee-rst-" in n], [])
        self.assertFalse(os.path.exists(os.path.join(self.store, "restore-journal.json")))
        tmp = os.path.join(self.store, "restore-tmp")
        self.assertEqual(os.listdir(tmp) if os.path.isdir(tmp) else [], [])
        self.assertEqual(self.redis.cli("ROLE").splitlines()[0], "master")
        # The temporary redis-server was stopped and reaped.
        h.poll(lambda: all(proc_state(p) is None for p in children_of(self.lv.proc.pid)), 10,
               what="no child process of levee left")

    def test_full_restore_brings_all_three_back(self):
        before = self.seed_all()
        self.start_all()
        job = self.wait_job(self.create("full"))
        self.assertEqual(job["state"], "verified", job)
        arts = {a["target"]: a for a in job["backup"]["artifacts"]}
        self.assertEqual(arts["redis"]["counts"]["keys"], 4)
        self.assertEqual(arts["redis"]["counts"]["expires"], 1)
        self.assertEqual(arts["files"]["counts"], {"entries:" + self.files: 7, "bytes:" + self.files: 70505})

        changed = self.change_all()
        for k in ("pg", "redis", "files"):
            self.assertNotEqual(changed[k], before[k], k)

        done = self.restore(job["id"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual({t["target"]: t["state"] for t in done["targets"]},
                         {"postgres:app": "swapped", "redis": "swapped", "files:" + self.files: "swapped"})
        after = self.current()
        self.assertEqual(after["pg"], before["pg"])
        self.assertEqual(after["redis"], before["redis"])
        self.assertEqual(after["files"], before["files"])
        # The previous states are kept for a manual swap back.
        kept = [n for n in os.listdir(self.tmp) if n.startswith("uploads.levee-pre-")]
        self.assertEqual(len(kept), 1, os.listdir(self.tmp))
        self.assertEqual(tree_digest(os.path.join(self.tmp, kept[0])), changed["files"])
        self.assertEqual(self.pg.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'app_pre_%'"), "1")
        self.assert_no_leftovers()
        self.assertEqual(h.metric_sum(self.lv.metrics_parsed(), "levee_restore_total", result="success"), 1)

    def test_failure_before_the_swap_leaves_live_data_untouched(self):
        self.seed_all()
        fake = os.path.join(self.tmp, "fakebin")
        os.makedirs(fake)
        with open(os.path.join(fake, "tar"), "w") as f:  # extraction fails, everything else is GNU tar
            f.write("#!/bin/sh\ncase \"$1\" in -x*) echo 'tar: simulated extraction failure' >&2; exit 2;; esac\n"
                    "exec /usr/bin/tar \"$@\"\n")
        os.chmod(os.path.join(fake, "tar"), 0o755)
        self.start_all(env={"PATH": fake + ":" + os.environ.get("PATH", "/usr/bin:/bin")})
        job = self.wait_job(self.create("full"))
        self.assertEqual(job["state"], "verified", job)
        changed = self.change_all()

        done = self.restore(job["id"])
        self.assertEqual(done["state"], "failed", done)
        self.assertIn("simulated extraction failure", done["error"])
        states = {t["target"]: t["state"] for t in done["targets"]}
        self.assertEqual(states, {"postgres:app": "failed", "redis": "failed", "files:" + self.files: "failed"})
        # PostgreSQL and Redis were prepared (temp database, temp server) before the files failed;
        # the cleanup (it holds the lock until done) dropped the temporary database.
        h.poll(lambda: any("dropped the temporary database" in n for n in
                           self.api("GET", "/api/v1/backup/" + done["id"]).json().get("notes", [])), 20,
               what="the cleanup notes")
        self.assertEqual(self.current(), changed)
        self.assertEqual([n for n in os.listdir(self.tmp) if ".levee-" in n], [])
        self.assert_no_leftovers()
        # The lock was released.
        r = self.api("POST", "/api/v1/backup/restore/" + job["id"], {"confirm": True})
        self.assertEqual(r.status, 202, r)
        self.wait_job(r.json()["id"], timeout=180)
        self.assertEqual(h.metric_sum(self.lv.metrics_parsed(), "levee_restore_total", result="failure"), 2)

    def craft_crash(self, phase, suffix):
        """The state levee leaves when it dies inside a restore: the journal plus what the
        restore had done by then. Returns the journal."""
        staging = self.files + ".levee-rst-" + suffix
        staged = staging + self.files
        os.makedirs(staged)
        with open(os.path.join(staged, "restored.txt"), "w") as f:
            f.write("from the backup")
        temp_db = "app_rst_" + suffix
        self.pg.sql("DROP DATABASE IF EXISTS %s" % temp_db)
        self.pg.sql("CREATE DATABASE %s TEMPLATE app" % temp_db)
        self.pg.sql("DELETE FROM orders WHERE id > 7", db=temp_db)
        dead_port = h.free_port()
        self.redis.cli("REPLICAOF", "127.0.0.1", str(dead_port))
        self.pg.sql("ALTER DATABASE app ALLOW_CONNECTIONS false")
        if phase == "swap":  # cut between the renames: the live ones moved aside, the new ones not in
            self.pg.sql("ALTER DATABASE app RENAME TO app_pre_" + suffix)
            os.rename(self.files, self.files + ".levee-pre-" + suffix)
        journal = {"restore": "r-20261202T040000Z-" + suffix, "backup": "b-20261202T035900Z-000100",
                   "phase": phase,
                   "postgres": [{"db": "app", "temp_db": temp_db, "old_db": "app_pre_" + suffix}],
                   "files": [{"path": self.files, "staging": staging, "staged": staged,
                              "pre": self.files + ".levee-pre-" + suffix}],
                   "redis": {"host": "127.0.0.1", "port": self.redis.port, "temp_host": "127.0.0.1",
                             "temp_port": dead_port, "dir": os.path.join(self.store, "restore-tmp", "x")}}
        os.makedirs(os.path.join(self.store, "restore-tmp", "x"))
        with open(os.path.join(self.store, "restore-journal.json"), "w") as f:
            json.dump(journal, f)
        return journal

    def test_journal_rolls_forward_a_swap_cut_by_a_crash(self):
        self.seed_all()
        self.store = os.path.join(self.tmp, "store")
        self.craft_crash("swap", "00aa01")
        self.assertEqual(self.pg.sql("SELECT count(*) FROM pg_database WHERE datname = 'app'"), "0")
        self.start_all()
        self.lv.wait_log("was interrupted (levee stopped in its swap phase)", "swap completed", timeout=20)
        self.assertEqual(self.pg.sql("SELECT count(*) FROM orders", db="app"), "7")  # the verified temp db
        self.assertEqual(self.pg.sql("SELECT count(*) FROM orders", db="app_pre_00aa01"), "500")
        self.assertEqual(os.listdir(self.files), ["restored.txt"])
        self.assertIn("a.txt", os.listdir(self.files + ".levee-pre-00aa01"))
        self.assert_no_leftovers()

    def test_journal_rolls_back_a_restore_cut_before_the_swap(self):
        before = self.seed_all()
        self.store = os.path.join(self.tmp, "store")
        self.craft_crash("prepare", "00bb02")
        self.start_all()
        self.lv.wait_log("was interrupted (levee stopped in its prepare phase)",
                         "dropped the temporary database app_rst_00bb02", "connections allowed again",
                         "detached from the temporary server", timeout=20)
        after = self.current()
        self.assertEqual(after["pg"], before["pg"])
        self.assertEqual(after["files"], before["files"])
        self.assert_no_leftovers()


class NoOrphanChildTest(BackupTestBase):
    """A backup child must not outlive levee: SIGTERM kills its process group and reaps it;
    SIGKILL of levee reaches the child through PR_SET_PDEATHSIG."""

    def fake_pg_dump(self, body):
        fake = os.path.join(self.tmp, "fakebin")
        os.makedirs(fake, exist_ok=True)
        with open(os.path.join(fake, "pg_dump"), "w") as f:
            f.write("#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 15.9'; exit 0; fi\n" + body)
        os.chmod(os.path.join(fake, "pg_dump"), 0o755)
        return {"PATH": fake + ":" + os.environ.get("PATH", "/usr/bin:/bin")}

    def start_long_backup(self, body):
        pids = os.path.join(self.tmp, "pids")
        env = self.fake_pg_dump(body.replace("PIDS", pids))
        self.levee(['postgres: { dsn: "%s", databases: [postgres] }' % self.pg.dsn], env=env)
        job = self.create("database")

        def started():
            if not os.path.exists(pids):
                return None
            with open(pids) as f:
                words = f.read().split()
            return [int(p) for p in words[:-1]] if words and words[-1] == "ready" else None
        got = h.poll(started, 30, what="the fake pg_dump running")
        self.assertEqual(self.api("GET", "/api/v1/backup/" + job).json()["state"], "running")
        return got

    def test_sigterm_kills_and_reaps_the_child_and_its_children(self):
        pids = self.start_long_backup("sleep 1000 &\necho $$ $! ready > PIDS\nwait\n")
        levee_pid = self.lv.proc.pid
        self.assertIn(pids[0], children_of(levee_pid))
        self.lv.signal(signal.SIGTERM)
        self.assertEqual(self.lv.wait_exit(30), 0)
        # The direct child was reaped by levee itself (no zombie left behind); the grandchild
        # got the group's SIGKILL (a zombie only until init reaps it).
        h.poll(lambda: proc_state(pids[0]) is None, 10, what="the tool reaped")
        h.poll(lambda: proc_state(pids[1]) in (None, "Z"), 10, what="the tool's child killed")

    def test_sigkill_of_levee_kills_the_child(self):
        if not os.access("/usr/bin/setpriv", os.X_OK):
            raise unittest.SkipTest("util-linux setpriv missing")
        pids = self.start_long_backup("echo $$ ready > PIDS\nexec sleep 1000\n")
        self.lv.signal(signal.SIGKILL)
        self.lv.wait_exit(30)
        h.poll(lambda: proc_state(pids[0]) in (None, "Z"), 10, what="the tool killed with levee")


class AuthRedis(Redis):
    """A Redis whose default user needs a password, with an ACL user `levee`."""
    DEFAULT_PW = "default-pw-7f3a"
    USER_PW = "levee-pw-91c2"

    def start(self):
        os.makedirs(self.dir)
        self.log = open(os.path.join(self.dir, "redis.log"), "wb")
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--dir", self.dir, "--save", "", "--appendonly", "no",
                                      "--requirepass", self.DEFAULT_PW],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        h.poll(lambda: self.cli("PING") == "PONG", 20, what="redis PING")
        self.cli("ACL", "SETUSER", "levee", "on", ">" + self.USER_PW, "~*", "&*", "+@all")
        return self

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)] + list(args),
                           capture_output=True, text=True, timeout=h.deadline(20),
                           env=dict(os.environ, REDISCLI_AUTH=self.DEFAULT_PW))
        return r.stdout.strip()


class RedisAuthTest(BackupTestBase):
    """targets.redis with username + password_file: redis-cli --rdb and levee's own connections
    (the restore's checks, REPLICAOF) authenticate; a wrong password fails loudly and the
    password is never shown."""

    def setUp(self):
        super().setUp()
        self.auth_redis = AuthRedis(self.tmp).start()
        self.addCleanup(self.auth_redis.stop)

    def password_file(self, password):
        path = os.path.join(self.tmp, "redis-password")
        with open(path, "w") as f:
            f.write(password + "\n")  # a trailing newline, as a mounted Secret often has
        return path

    def start_with(self, password):
        return self.levee(["redis: { address: 127.0.0.1:%d, username: levee, password_file: %s }"
                           % (self.auth_redis.port, self.password_file(password))])

    def test_backup_and_restore_authenticate(self):
        r = self.auth_redis
        r.cli("SET", "greeting", "hello")
        r.cli("RPUSH", "queue", "a", "b")
        # Without AUTH the default user is refused: what levee does below needs the password.
        plain = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(r.port), "DBSIZE"],
                               capture_output=True, text=True, timeout=h.deadline(20))
        self.assertIn("NOAUTH", plain.stdout + plain.stderr)
        self.start_with(AuthRedis.USER_PW)
        job = self.wait_job(self.create("database"))
        self.assertEqual(job["state"], "verified", job)
        arts = {a["target"]: a for a in job["backup"]["artifacts"]}
        self.assertEqual(arts["redis"]["counts"]["keys"], 2)

        r.cli("SET", "greeting", "changed")
        r.cli("DEL", "queue")
        r.cli("SET", "later", "x")
        res = self.api("POST", "/api/v1/backup/restore/" + job["id"], {"confirm": True})
        self.assertEqual(res.status, 202, res)
        done = self.wait_job(res.json()["id"], timeout=180)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(r.cli("GET", "greeting"), "hello")
        self.assertEqual(r.cli("LRANGE", "queue", "0", "-1"), "a\nb")
        self.assertEqual(r.cli("EXISTS", "later"), "0")
        self.assertEqual(r.cli("ROLE").splitlines()[0], "master")
        self.assertEqual(self.lv.stop(), 0)  # the asynchronous log is complete once levee exits
        self.assertNotIn(AuthRedis.USER_PW, self.lv.log_text())

    def test_wrong_password_fails_loudly_without_showing_it(self):
        self.start_with("not-the-password")
        job = self.wait_job(self.create("database"))
        self.assertEqual(job["state"], "failed", job)
        self.assertIn("redis-cli --rdb", job["error"])
        self.assertRegex(job["error"], "WRONGPASS|invalid username-password")
        self.assertEqual(self.listed_ids(), [])
        self.assertNotIn("not-the-password", json.dumps(job))
        self.assertEqual(h.metric_sum(self.lv.metrics_parsed(), "levee_backup_failures_total", type="database"), 1)
        self.assertEqual(self.lv.stop(), 0)  # the asynchronous log is complete once levee exits
        self.assertIn("FAILED", self.lv.log_text())
        self.assertNotIn("not-the-password", self.lv.log_text())


if __name__ == "__main__":
    unittest.main()
