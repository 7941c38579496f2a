"""Continuous WAL archiving into an S3-compatible store (issue 6): a real PostgreSQL 15 and s3rver
on loopback. Complete segments go to <prefix>wal/ in the bucket (verified, then removed from the
local archive), the .partial as a snapshot; a base backup is verified only once the bucket holds
its WAL; WAL retention prunes the bucket; the bucket's lag and RPO are measured under a write load;
and after the local archive is lost, a point-in-time restore built from the bucket alone brings
back exactly the rows up to T."""

import os
import shutil
import subprocess
import unittest

import harness as h
import test_backup as tb  # the throw-away PostgreSQL cluster (additive reuse, no copy)
import test_backup_s3 as ts3  # s3rver
import test_wal_archive as twa  # the restored PostgreSQL

SLOT = "levee_wal_s3_it"
SEGMENT = 16 * 1024 * 1024
WAL_PREFIX = ts3.PREFIX + "wal/"


class WalArchiveS3Test(tb.BackupTestBase):

    @classmethod
    def setUpClass(cls):
        if not tb.have_postgres() or not os.access(os.path.join(tb.PG_BIN, "pg_receivewal"), os.X_OK):
            raise unittest.SkipTest("PostgreSQL 15 (postgresql-15) not installed")
        if not ts3.have_s3rver():
            raise unittest.SkipTest("s3rver not installed at %s (scripts/install-deps.sh)" % ts3.S3RVER)
        super().setUpClass()

    def setUp(self):
        super().setUp()
        self.s3 = ts3.S3rver(self.tmp).start()
        self.addCleanup(self.s3.stop)
        self.key_id = os.path.join(self.tmp, "s3-key-id")
        self.secret = os.path.join(self.tmp, "s3-secret")
        for path in (self.key_id, self.secret):
            with open(path, "w") as f:
                f.write("S3RVER\n")

    def s3_block(self, wal=True):
        lines = ["s3:",
                 "  endpoint: %s" % self.s3.endpoint,
                 "  bucket: %s" % ts3.BUCKET,
                 "  prefix: %s" % ts3.PREFIX.rstrip("/"),
                 "  access_key_id_file: %s" % self.key_id,
                 "  secret_access_key_file: %s" % self.secret,
                 "  connect_timeout: 1s"]
        if wal:
            lines.append("wal_archive: { slot: %s, restart_backoff: 200ms, max_restart_backoff: 2s, "
                         "status_interval: 200ms, partial_upload_interval: 1s }" % SLOT)
        return "\n".join(lines)

    def metric(self, name, **labels):
        return h.metric_sum(self.lv.metrics_parsed(), name, **labels)

    def wal_objects(self):
        return {k[len(WAL_PREFIX):]: size for k, size in self.s3.objects(WAL_PREFIX).items()}

    def test_archive_to_the_bucket_and_restore_from_it(self):
        twa.create_events_db(self.pg, 100)
        targets = ['postgres: { dsn: "%s", databases: [app] }' % self.pg.dsn]
        self.levee(targets, extra=self.s3_block())
        h.poll(lambda: self.metric("levee_wal_archive_up") == 1, 60, interval=0.1, what="levee_wal_archive_up 1")
        wal_dir = os.path.join(self.store, "wal")

        # A complete segment goes to the bucket, whole and verified, and leaves the local archive.
        old_segment = self.pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        self.pg.sql("SELECT pg_switch_wal()")
        h.poll(lambda: self.wal_objects().get(old_segment) == SEGMENT, 30, interval=0.1,
               what="%s in the bucket" % old_segment)
        body = self.s3.get(WAL_PREFIX + old_segment)
        self.assertEqual(body[:2], b"\x10\xd1")  # XLOG_PAGE_MAGIC of PostgreSQL 15 (0xD110, little-endian)
        h.poll(lambda: not os.path.exists(os.path.join(wal_dir, old_segment)), 30,
               what="%s removed from the local archive once uploaded" % old_segment)
        self.assertGreaterEqual(self.metric("levee_wal_archive_uploads_total", result="ok"), 1)
        self.assertEqual(self.metric("levee_wal_archive_uploads_total", result="failed"), 0)
        self.assertGreaterEqual(self.metric("levee_wal_archive_uploaded_bytes_total"), SEGMENT)
        status = self.api("GET", "/api/v1/backup/wal").json()
        self.assertEqual(status["bucket"]["location"], "s3://%s/%s" % (ts3.BUCKET, WAL_PREFIX), status)

        # A base backup: listed only once the bucket holds its WAL (start to end).
        job = self.wait_job(self.create("base"), timeout=180)
        self.assertEqual(job["state"], "verified", job)
        entry = job["backup"]
        base = entry["base_backup"]
        self.assertEqual(base["wal_bucket"], "s3://%s/%s" % (ts3.BUCKET, WAL_PREFIX))
        objects = self.s3.objects()
        self.assertIn(ts3.PREFIX + "sets/%s/base.tar.gz" % entry["id"], objects)
        self.assertIn(ts3.PREFIX + "catalog/%s.json" % entry["id"], objects)
        wal = self.wal_objects()
        self.assertTrue(base["start_segment"] in wal or base["start_segment"] + ".partial" in wal, wal)
        self.assertFalse(os.path.exists(os.path.join(self.store, "sets", entry["id"])))  # keep_local: false
        # WAL retention: the bucket's segments before the oldest base backup go.
        self.assertLess(old_segment, base["start_segment"])
        h.poll(lambda: old_segment not in self.wal_objects(), 30, what="WAL retention pruned %s" % old_segment)

        # The bucket's RPO under a steady write load (about 100 transactions a second).
        self.pg.sql("CREATE TABLE w (id serial PRIMARY KEY, payload text)", db="app")
        samples = twa.sample_under_load(self.pg, "app", 400, 30, 3, self.lv,
                                        ["levee_wal_archive_bucket_rpo_seconds", "levee_wal_archive_rpo_seconds"])
        rpo, local_rpo = samples["levee_wal_archive_bucket_rpo_seconds"], samples["levee_wal_archive_rpo_seconds"]
        print("\nMEASURED wal archive to s3 under load (partial_upload_interval 1s): %d samples, bucket "
              "rpo_seconds max %.3f mean %.3f; local archive rpo_seconds max %.3f" %
              (len(rpo), max(rpo), sum(rpo) / len(rpo), max(local_rpo)))
        self.assertGreater(len(rpo), 10)
        self.assertLess(max(rpo), 10.0)  # bounded by partial_upload_interval plus an upload

        # Rows before T, T (the server's clock), rows after T; then the bucket catches up.
        target, _ = twa.rows_around_target(self.pg)
        h.poll(lambda: self.metric("levee_wal_archive_bucket_lag_bytes") == 0 and
               self.metric("levee_wal_archive_lag_bytes") == 0, 60, interval=0.1, what="bucket lag 0")
        self.assertEqual(self.metric("levee_wal_archive_bucket_rpo_seconds"), 0)
        self.assertEqual(self.metric("levee_wal_archive_upload_pending"), 0)
        if os.access(h.PROMTOOL_BIN, os.X_OK):
            p = subprocess.run([h.PROMTOOL_BIN, "check", "metrics"], input=self.lv.metrics_text().encode(),
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

        # The local archive is lost (the pod's volume): a levee without wal_archive restores from
        # the bucket alone.
        self.lv.stop()
        shutil.rmtree(wal_dir)
        self.levee(targets, extra=self.s3_block(wal=False), store=self.store)
        self.assertEqual(self.listed_ids(), [entry["id"]])
        new_dir = os.path.join(self.tmp, "restored_data")
        os.makedirs(new_dir + ".wal")
        with open(os.path.join(new_dir + ".wal", "leftover"), "w") as f:
            f.write("x")
        r = self.api("POST", "/api/v1/backup/restore/" + entry["id"],
                     {"confirm": True, "data_dir": new_dir, "target_time": target})
        self.assertEqual(r.status, 202, r)
        rj = self.wait_job(r.json()["id"], timeout=120)
        self.assertEqual(rj["state"], "failed", rj)  # <data_dir>.wal must be new too
        self.assertIn(new_dir + ".wal exists and is not empty", rj["error"])
        shutil.rmtree(new_dir + ".wal")
        r = self.api("POST", "/api/v1/backup/restore/" + entry["id"],
                     {"confirm": True, "data_dir": new_dir + "/", "target_time": target})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json()["wal_dir"], new_dir + ".wal")
        rj = self.wait_job(r.json()["id"], timeout=180)
        self.assertEqual(rj["state"], "succeeded", rj)
        notes = " ".join(rj["notes"])
        self.assertIn("downloaded from s3://%s/%s" % (ts3.BUCKET, WAL_PREFIX), notes)
        self.assertIn("; 0 from the local archive", notes)
        self.assertIn("base.tar.gz: downloaded from", notes)
        with open(os.path.join(new_dir, "postgresql.auto.conf")) as f:
            self.assertIn(new_dir + ".wal/%f", f.read())
        self.assertTrue(any(n.endswith(".partial") for n in os.listdir(new_dir + ".wal")))

        restored = twa.RestoredPostgres(self.tmp, new_dir)
        # The load's rows (before T too) are back as well.
        twa.check_restored(self, restored, target, ["before=20", "seed=100"],
                           also=lambda: self.assertEqual(restored.sql("SELECT count(*) FROM w", db="app"), "400"))
        self.assertEqual(self.pg.sql("SELECT count(*) FROM events WHERE phase = 'after'", db="app"), "15")
        # The slot stays (the primary keeps the WAL the archive has not confirmed); drop it.
        self.pg.sql("SELECT pg_drop_replication_slot('%s')" % SLOT)


if __name__ == "__main__":
    unittest.main()
