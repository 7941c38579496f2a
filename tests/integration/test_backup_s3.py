"""Companion backups into an S3-compatible store (issue 6): s3rver (npm, installed by
scripts/install-deps.sh into /opt/levee-test) and a real PostgreSQL 15 on loopback, driven through
levee's admin API: create -> verified -> uploaded (objects and checksums checked in the bucket) ->
listed -> restore from the bucket (data back) -> delete removes the objects; an unreachable
endpoint or bad credentials -> failed, loud, never listed."""

import hashlib
import json
import os
import shutil
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import unittest
import xml.etree.ElementTree as ET

import harness as h
from test_backup import BackupTestBase

S3RVER = os.environ.get("LEVEE_S3RVER", "/opt/levee-test/node_modules/.bin/s3rver")
BUCKET = "levee-it"
PREFIX = "levee/it/"
NS = "{http://doc.s3.amazonaws.com/2006-03-01/}"  # s3rver's namespace (AWS uses s3.amazonaws.com/doc)


def have_s3rver():
    return os.access(S3RVER, os.X_OK) and shutil.which("node")


class S3rver:
    """s3rver on 127.0.0.1:<free port>, data in `workdir`, one bucket. s3rver checks the access key
    id (S3RVER) but not the SigV4 signature itself; the default credentials are S3RVER/S3RVER."""

    def __init__(self, workdir, tls=None):
        self.dir = os.path.join(workdir, "s3rver")
        self.port = h.free_port()
        self.proc = None
        self.tls = tls  # (key file, cert file): https with that certificate

    @property
    def endpoint(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.log = open(os.path.join(self.dir, "..", "s3rver-%d.log" % self.port), "ab")
        args = [S3RVER, "-d", self.dir, "-a", "127.0.0.1", "-p", str(self.port), "--configure-bucket", BUCKET]
        if self.tls:
            args += ["--key", self.tls[0], "--cert", self.tls[1]]
        self.proc = subprocess.Popen(args,
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def ready():
            if self.proc.poll() is not None:
                raise h.GiveUp("s3rver exited: %s" % h.tail(self.log.name))
            return self.request("GET", "", query={"list-type": "2"})[0] == 200
        h.poll(ready, 30, interval=0.1, what="s3rver")
        return self

    def stop(self):
        h.stop_process(self.proc)
        self.proc = None
        self.log.close()

    # Anonymous requests (s3rver allows them): an independent view of the bucket.
    def request(self, method, key, data=None, query=None):
        url = "%s/%s/%s" % (self.endpoint, BUCKET, urllib.parse.quote(key))
        if query:
            url += "?" + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, data=data, method=method)
        context = ssl.create_default_context(cafile=self.tls[1]) if self.tls else None
        try:
            with urllib.request.urlopen(req, timeout=h.deadline(10), context=context) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def objects(self, prefix=PREFIX):
        status, body, _ = self.request("GET", "", query={"list-type": "2", "prefix": prefix})
        assert status == 200, body
        out = {}
        for c in ET.fromstring(body).iter(NS + "Contents"):
            out[c.find(NS + "Key").text] = int(c.find(NS + "Size").text)
        return out

    def get(self, key):
        status, body, _ = self.request("GET", key)
        assert status == 200, (key, status, body)
        return body


class S3BackupTest(BackupTestBase):

    @classmethod
    def setUpClass(cls):
        if not have_s3rver():
            raise unittest.SkipTest("s3rver not installed at %s (scripts/install-deps.sh)" % S3RVER)
        super().setUpClass()

    def setUp(self):
        super().setUp()
        self.s3 = S3rver(self.tmp).start()
        self.addCleanup(self.s3.stop)
        self.key_id = os.path.join(self.tmp, "s3-key-id")
        self.secret = os.path.join(self.tmp, "s3-secret")
        self.write_credentials("S3RVER", "S3RVER")

    def write_credentials(self, key_id, secret):
        for path, value in ((self.key_id, key_id), (self.secret, secret)):
            with open(path, "w") as f:
                f.write(value + "\n")

    def s3_policy(self, endpoint=None, keep_local=False, tls=None, extra=()):
        return "\n".join([
            "s3:",
            "  endpoint: %s" % (endpoint or self.s3.endpoint)] + (["  tls: %s" % tls] if tls else []) + [
            "  bucket: %s" % BUCKET,
            "  prefix: %s" % PREFIX.rstrip("/"),
            "  region: us-east-1",
            "  access_key_id_file: %s" % self.key_id,
            "  secret_access_key_file: %s" % self.secret,
            "  connect_timeout: 1s",
            "  keep_local: %s" % ("true" if keep_local else "false")] + ["  " + e for e in extra])

    def seed(self, db):
        self.pg.sql("DROP DATABASE IF EXISTS %s" % db)
        self.pg.sql("CREATE DATABASE %s" % db)
        self.pg.sql("CREATE TABLE orders (id serial PRIMARY KEY, note text);"
                    "INSERT INTO orders (note) SELECT 'order ' || g FROM generate_series(1, 2000) g;", db=db)

    def files_dir(self):
        d = os.path.join(self.tmp, "uploads")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "blob.bin"), "wb") as f:
            f.write(os.urandom(300000))
        return d

    def assert_failed_loud(self, job, needle, kind="full"):
        self.assertEqual(job["state"], "failed", job)
        self.assertIn(needle, job["error"])
        self.assertNotIn(job["id"], self.listed_ids())
        self.lv.wait_log("backup %s (%s) FAILED" % (job["id"], kind))
        # Neither the staged set nor anything in the bucket stays behind.
        h.poll(lambda: not os.path.exists(os.path.join(self.store, "sets", job["id"])), 10, what="staged set removed")

    def test_create_upload_list_restore_delete(self):
        self.seed("s3app")
        targets = ['postgres: { dsn: "%s", databases: [s3app] }' % self.pg.dsn,
                   "files: { paths: [%s] }" % self.files_dir()]
        self.levee(targets, extra=self.s3_policy())
        self.assertEqual(self.listed_ids(), [])

        job = self.wait_job(self.create("full"))
        self.assertEqual(job["state"], "verified", job)
        bid = job["id"]
        self.assertTrue(any("uploaded to s3://%s/%s and verified" % (BUCKET, PREFIX) in n for n in job["notes"]),
                        job)
        self.assertEqual(self.listed_ids(), [bid])
        entry = job["backup"]

        # The bucket holds every artifact with the catalog's size and sha256, and the entry.
        objects = self.s3.objects()
        expected = {PREFIX + "sets/%s/%s" % (bid, a["file"]): a["size"] for a in entry["artifacts"]}
        catalog_key = PREFIX + "catalog/%s.json" % bid
        self.assertEqual(set(objects), set(expected) | {catalog_key}, objects)
        for key, size in expected.items():
            self.assertEqual(objects[key], size, key)
        for a in entry["artifacts"]:
            data = self.s3.get(PREFIX + "sets/%s/%s" % (bid, a["file"]))
            self.assertEqual(hashlib.sha256(data).hexdigest(), a["sha256"], a["file"])
        self.assertEqual(json.loads(self.s3.get(catalog_key))["id"], bid)
        # keep_local: false: the staged copy is gone, and the local catalog is not used.
        self.assertFalse(os.path.exists(os.path.join(self.store, "sets", bid)))
        self.assertFalse(os.path.exists(os.path.join(self.store, "catalog", bid + ".json")))
        m = self.lv.metrics_parsed()
        self.assertEqual(h.metric_sum(m, "levee_backup_success_total", type="full"), 1)
        self.assertGreater(h.metric_sum(m, "levee_backup_last_success_timestamp_seconds", type="full"), 0)

        # The bucket is the source of truth: a levee with an empty local directory lists it.
        self.lv.stop()
        self.levee(targets, extra=self.s3_policy(), store=os.path.join(self.tmp, "store2"))
        self.assertEqual(self.listed_ids(), [bid])
        self.assertEqual(self.api("GET", "/api/v1/backup/" + bid).json()["artifacts"], entry["artifacts"])

        # Restore downloads the artifacts, re-checks their sha256 and brings the data back.
        self.pg.sql("DELETE FROM orders WHERE id > 100", db="s3app")
        r = self.api("POST", "/api/v1/backup/restore/" + bid, {"confirm": True})
        self.assertEqual(r.status, 202, r)
        done = self.wait_job(r.json()["id"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(self.pg.sql("SELECT count(*) FROM orders", db="s3app"), "2000")
        self.assertTrue(any("downloaded from s3://" in n and "sha256 checked" in n for n in done["notes"]), done)
        h.poll(lambda: not os.listdir(os.path.join(self.store, "restore")) if os.path.isdir(
            os.path.join(self.store, "restore")) else True, 10, what="restore downloads removed")

        # A tampered object is refused by the restore's checksum check.
        dump = next(a for a in entry["artifacts"] if a["kind"] == "postgres")
        dump_key = PREFIX + "sets/%s/%s" % (bid, dump["file"])
        original = self.s3.get(dump_key)
        tampered = bytearray(original)
        tampered[len(tampered) // 2] ^= 0xFF
        self.assertEqual(self.s3.request("PUT", dump_key, data=bytes(tampered))[0], 200)
        r = self.api("POST", "/api/v1/backup/restore/" + bid, {"confirm": True})
        self.assertEqual(r.status, 202, r)
        bad = self.wait_job(r.json()["id"])
        self.assertEqual(bad["state"], "failed", bad)
        self.assertIn("the stored backup changed since it was verified", bad["error"])
        self.assertEqual(self.pg.sql("SELECT count(*) FROM orders", db="s3app"), "2000")
        self.assertEqual(self.s3.request("PUT", dump_key, data=original)[0], 200)

        # Delete: the newest of a tier is refused; an older one goes from the bucket too.
        b2 = self.wait_job(self.create("full"))["id"]
        b3 = self.wait_job(self.create("full"))["id"]
        self.assertEqual(self.listed_ids(), [b3, b2, bid])
        self.assertEqual(self.api("DELETE", "/api/v1/backup/" + b3).status, 409)
        self.assertEqual(self.api("DELETE", "/api/v1/backup/" + b2).status, 200)
        self.assertEqual(self.listed_ids(), [b3, bid])
        h.poll(lambda: not any("/%s/" % b2 in k or k.endswith(b2 + ".json") for k in self.s3.objects()), 20,
               what="deleted set removed from the bucket")
        keys = self.s3.objects()
        self.assertIn(PREFIX + "catalog/%s.json" % b3, keys)
        self.assertIn(PREFIX + "catalog/%s.json" % bid, keys)

    def test_keep_local_restores_from_the_kept_copy(self):
        self.seed("s3keep")
        targets = ['postgres: { dsn: "%s", databases: [s3keep] }' % self.pg.dsn]
        self.levee(targets, extra=self.s3_policy(keep_local=True))
        job = self.wait_job(self.create("database"))
        self.assertEqual(job["state"], "verified", job)
        art = job["backup"]["artifacts"][0]
        kept = os.path.join(self.store, "sets", job["id"], art["file"])
        with open(kept, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), art["sha256"])
        self.assertIn(PREFIX + "catalog/%s.json" % job["id"], self.s3.objects())
        # A restart keeps the staged copy of a cataloged set (only unverified ones are removed).
        self.lv.stop()
        self.levee(targets, extra=self.s3_policy(keep_local=True), store=self.store)
        self.assertEqual(self.listed_ids(), [job["id"]])
        self.assertTrue(os.path.exists(kept))
        # The restore uses the kept copy, whose sha256 still matches the catalog.
        self.pg.sql("TRUNCATE orders", db="s3keep")
        r = self.api("POST", "/api/v1/backup/restore/" + job["id"], {"confirm": True})
        self.assertEqual(r.status, 202, r)
        done = self.wait_job(r.json()["id"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertTrue(any("the kept local copy" in n for n in done["notes"]), done)
        self.assertEqual(self.pg.sql("SELECT count(*) FROM orders", db="s3keep"), "2000")
        # A kept copy that changed is not used: the restore downloads the verified object.
        with open(kept, "r+b") as f:
            f.seek(10)
            f.write(b"XX")
        r = self.api("POST", "/api/v1/backup/restore/" + job["id"], {"confirm": True})
        self.assertEqual(r.status, 202, r)
        done = self.wait_job(r.json()["id"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertTrue(any("downloaded from s3://" in n for n in done["notes"]), done)

    def test_large_artifact_goes_up_in_parts(self):
        d = os.path.join(self.tmp, "big")
        os.makedirs(d)
        with open(os.path.join(d, "random.bin"), "wb") as f:
            f.write(os.urandom(12 << 20))  # incompressible: the tar.gz is > 2 parts of 5 MiB
        self.levee(["files: { paths: [%s] }" % d], extra=self.s3_policy(extra=["multipart_part_size: 5MiB"]))
        job = self.wait_job(self.create("storage"), timeout=180)
        self.assertEqual(job["state"], "verified", job)
        self.assertTrue(any("multipart" in n for n in job["notes"]), job)
        art = job["backup"]["artifacts"][0]
        self.assertGreater(art["size"], 10 << 20)
        key = PREFIX + "sets/%s/%s" % (job["id"], art["file"])
        self.assertEqual(self.s3.objects()[key], art["size"])
        self.assertEqual(hashlib.sha256(self.s3.get(key)).hexdigest(), art["sha256"])
        # (s3rver answers a multipart object's ETag as a plain MD5, so the part count is not visible
        # there; the note above comes from the multipart path only.)

    def test_unreachable_endpoint_and_bad_credentials_fail_and_are_never_listed(self):
        targets = ["files: { paths: [%s] }" % self.files_dir()]
        self.levee(targets, extra=self.s3_policy())

        # Bad credentials (a rotated key file gone wrong): the upload is refused.
        self.write_credentials("NOT-A-KEY", "S3RVER")
        job = self.wait_job(self.create("storage"))
        self.assert_failed_loud(job, "InvalidAccessKeyId", kind="storage")
        self.assertIn("upload to s3://", job["error"])
        self.write_credentials("S3RVER", "S3RVER")
        self.assertEqual(self.s3.objects(), {})

        # The endpoint goes away: the upload fails, nothing is listed.
        self.s3.stop()
        job = self.wait_job(self.create("storage"))
        self.assert_failed_loud(job, "upload to s3://", kind="storage")
        self.assertEqual(self.listed_ids(), [])
        m = self.lv.metrics_parsed()
        self.assertEqual(h.metric_sum(m, "levee_backup_failures_total", type="storage"), 2)
        self.assertEqual(h.metric_sum(m, "levee_backup_success_total", type="storage"), 0)
        self.assertEqual(h.metric_sum(m, "levee_backup_last_success_timestamp_seconds", type="storage"), 0)

        # Back up: still nothing listed, nothing in the bucket; a new backup works.
        self.s3.start()
        self.assertEqual(self.listed_ids(), [])
        self.assertEqual(self.s3.objects(), {})
        ok = self.wait_job(self.create("storage"))
        self.assertEqual(ok["state"], "verified", ok)
        self.assertEqual(self.listed_ids(), [ok["id"]])

    def test_unreadable_bucket_at_start_answers_503_until_it_is_reachable(self):
        dead = "http://127.0.0.1:%d" % h.free_port()
        self.levee(["files: { paths: [%s] }" % self.files_dir()], extra=self.s3_policy(endpoint=dead),
                   wait_catalog=False)

        def refused():
            r = self.api("GET", "/api/v1/backup/list")
            return r if r.status == 503 and "cannot be read" in r.json().get("error", "") else None
        r = h.poll(refused, 20, what="503 naming the unreadable catalog")
        self.assertIn("127.0.0.1", r.json()["error"])
        self.assertEqual(self.api("POST", "/api/v1/backup/create", {"type": "storage"}).status, 503)
        self.lv.wait_log("reading the catalog in s3://")
        # The bucket comes up on that address: the catalog load is retried (every 15 s).
        late = S3rver(os.path.join(self.tmp, "late"))
        late.port = int(dead.rsplit(":", 1)[1])
        late.start()
        self.addCleanup(late.stop)
        h.poll(lambda: self.api("GET", "/api/v1/backup/list").status == 200, 40, interval=0.5,
               what="the catalog loaded after the bucket came up")
        self.assertEqual(self.listed_ids(), [])

    def test_https_endpoint_verifies_the_certificate(self):
        if not shutil.which("openssl"):
            self.skipTest("openssl not installed")
        key, cert = os.path.join(self.tmp, "tls.key"), os.path.join(self.tmp, "tls.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=h.deadline(60))
        secure = S3rver(os.path.join(self.tmp, "tls"), tls=(key, cert)).start()
        self.addCleanup(secure.stop)
        targets = ["files: { paths: [%s] }" % self.files_dir()]
        # Not signed by a CA levee trusts: the bucket cannot be read.
        self.levee(targets, extra=self.s3_policy(endpoint=secure.endpoint), wait_catalog=False)
        r = h.poll(lambda: (lambda r: r if r.status == 503 and "cannot be read" in r.body.decode() else None)(
            self.api("GET", "/api/v1/backup/list")), 20, what="503 for an untrusted certificate")
        self.assertIn("certificate", r.json()["error"])
        self.lv.stop()
        # With the certificate as the CA bundle: verified end to end over https.
        self.levee(targets, extra=self.s3_policy(endpoint=secure.endpoint, tls="{ ca_file: %s }" % cert))
        job = self.wait_job(self.create("storage"))
        self.assertEqual(job["state"], "verified", job)
        self.assertIn(PREFIX + "catalog/%s.json" % job["id"], secure.objects())


if __name__ == "__main__":
    unittest.main()
