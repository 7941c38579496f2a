#!/usr/bin/env python3
"""One-off measurement (not part of the test suite): backup and restore throughput of levee's
companion against a real PostgreSQL 15 on loopback.

  python3 bench/backup_throughput.py --size-mb 1024 [--levee build/levee]

Creates a database of about --size-mb MB (pg_database_size after loading), takes a `database`
backup through POST /api/v1/backup/create, restores it through POST /api/v1/backup/restore/{id},
and prints MB/s for both (database size / wall time of the job, including verification: checksum
re-read and pg_restore --list for the backup; row-count verification and swap for the restore).
Everything runs in a temp dir on free ports and is stopped by PID / pg_ctl at the end."""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import harness as h  # noqa: E402
import test_backup as tb  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--levee", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "levee"))
    args = ap.parse_args()
    h.LEVEE_BIN = os.path.abspath(args.levee)
    import tempfile
    tmp = tempfile.mkdtemp(prefix="levee-bench-backup-")
    os.chmod(tmp, 0o755)
    pg = tb.Postgres(tmp)
    lv = None
    try:
        pg.start()
        pg.sql("CREATE DATABASE bench")
        rows = args.size_mb * 1024 * 1024 // 180  # ~180 bytes per row on disk with the index
        t0 = time.monotonic()
        pg.sql("CREATE TABLE items (id bigint PRIMARY KEY, qty int, note text, payload text)", db="bench")
        batch = 500000
        for start in range(1, rows + 1, batch):  # batches: each psql call stays within its timeout
            pg.sql("INSERT INTO items SELECT g, g %% 97, 'item ' || g, md5(g::text) || md5((g * 7)::text) "
                   "FROM generate_series(%d, %d) g;" % (start, min(rows, start + batch - 1)), db="bench")
        size = int(pg.sql("SELECT pg_database_size('bench')"))
        print("loaded %d rows, database size %.0f MB in %.1fs" % (rows, size / 1e6, time.monotonic() - t0))
        ports = {"probes": h.free_port(), "admin": h.free_port(), "listener": h.free_port()}
        token = os.path.join(tmp, "token")
        with open(token, "w") as f:
            f.write(tb.TOKEN)
        store = os.path.join(tmp, "store")
        cfg = h.write_config(tmp, "\n".join([
            "version: 1", "service: bench",
            "admin: { address: 127.0.0.1:%d, token_file: %s }" % (ports["admin"], token),
            "probes: { address: 127.0.0.1:%d }" % ports["probes"],
            "listeners:",
            "  - { name: inbound, address: 127.0.0.1:%d, routes: [ { name: all, match: { prefix: / }, "
            "upstream: app } ] }" % ports["listener"],
            "upstreams:", "  app: { endpoints: [ { address: 127.0.0.1:9 } ] }",
            "companion:", "  backup:", "    dir: %s" % store, "    targets:",
            '      postgres: { dsn: "%s", databases: [bench] }' % pg.dsn]) + "\n")
        lv = h.Levee(cfg, ports["probes"], ports["admin"], workdir=tmp).start().wait_ready()

        def api(method, path, body=None):
            return lv.admin(method, path, body=body, token=tb.TOKEN, timeout=30)

        def wait(job_id):
            def done():
                j = api("GET", "/api/v1/backup/" + job_id).json()
                return j if j["state"] in ("verified", "failed", "succeeded") else None
            return h.poll(done, 3600, interval=0.2, what="job")

        h.poll(lambda: api("GET", "/api/v1/backup/list").status == 200, 30)
        t0 = time.monotonic()
        job = wait(api("POST", "/api/v1/backup/create", {"type": "database"}).json()["id"])
        backup_s = time.monotonic() - t0
        assert job["state"] == "verified", job
        stored = job["backup"]["size"]
        print("backup:  %.1fs, %.1f MB/s of database (%.0f MB stored, pg_dump -Fc)" % (
            backup_s, size / 1e6 / backup_s, stored / 1e6))
        t0 = time.monotonic()
        r = wait(api("POST", "/api/v1/backup/restore/" + job["id"], {"confirm": True}).json()["id"])
        restore_s = time.monotonic() - t0
        assert r["state"] == "succeeded", r
        print("restore: %.1fs, %.1f MB/s of database (into a new database, row counts verified, swapped in)" % (
            restore_s, size / 1e6 / restore_s))
    finally:
        if lv is not None:
            lv.stop()
        pg.stop()


if __name__ == "__main__":
    main()
