"""tether-workspace init and serve: the files init writes, TLS with the
self-signed pair, the loopback plain listener, restart on the same
directory, schema version."""
import os
import socket
import sqlite3
import ssl
import stat
import subprocess

from harness.common import binary, run, tmpdir
from harness.workspace import Workspace


def test_init_writes_files_with_safe_modes():
    d = os.path.join(tmpdir(), "ws")
    r = run([binary("tether-workspace"), "init", "--dir", d])
    assert "initialised" in r.stdout
    for name in ["workspace.conf", "admin.token", "tls.crt", "tls.key", "workspace.db"]:
        assert os.path.exists(os.path.join(d, name)), name
    assert stat.S_IMODE(os.stat(os.path.join(d, "admin.token")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.join(d, "tls.key")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    with open(os.path.join(d, "admin.token")) as f:
        assert f.read().strip().startswith("tw_")
    db = sqlite3.connect(os.path.join(d, "workspace.db"))
    assert db.execute("PRAGMA user_version").fetchone()[0] >= 1
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # a second init refuses to clobber the workspace
    r = subprocess.run([binary("tether-workspace"), "init", "--dir", d],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "already a workspace" in r.stderr


def test_serve_without_init_says_what_to_do():
    d = os.path.join(tmpdir(), "nothing")
    r = subprocess.run([binary("tether-workspace"), "serve", "--dir", d],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert "tether-workspace init" in r.stderr


def test_tls_with_the_ca_file_and_not_without(workspace):
    st, _, body = workspace.api("GET", "/api/v1/jobs")
    assert st == 200 and body == {"jobs": []}
    # a client that does not trust the CA file fails the handshake
    ctx = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", workspace.port), timeout=5) as s:
        try:
            ctx.wrap_socket(s, server_hostname="127.0.0.1")
            raise AssertionError("handshake should fail")
        except ssl.SSLCertVerificationError:
            pass


def test_plain_listener_is_loopback_http(workspace):
    st, _, body = workspace.api("GET", "/api/v1/jobs", plain=True)
    assert st == 200 and body == {"jobs": []}
    # not reachable on another address of this host
    addrs = [a for a in _local_addrs() if ":" not in a and not a.startswith("127.")]
    for a in addrs:
        with socket.socket() as s:
            s.settimeout(1)
            assert s.connect_ex((a, workspace.plain_port)) != 0


def _local_addrs():
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout
    return out.split()


def test_restart_same_directory_keeps_data():
    ws = Workspace().start()
    jid = ws.submit(name="kept")
    ws.stop()
    ws.start()
    assert ws.job(jid)["name"] == "kept"
    ws.stop()


def test_newer_schema_is_refused():
    ws = Workspace()
    db = sqlite3.connect(os.path.join(ws.dir, "workspace.db"))
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    r = subprocess.run([binary("tether-workspace"), "serve", "--dir", ws.dir,
                        "--port", "0"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "newer than this server" in r.stderr


def test_migrates_an_empty_old_database():
    """A database at schema 0 (created by an old init that wrote no tables)
    is migrated forward on serve."""
    ws = Workspace()
    os.unlink(os.path.join(ws.dir, "workspace.db"))
    sqlite3.connect(os.path.join(ws.dir, "workspace.db")).close()
    ws.start()
    assert ws.api("GET", "/api/v1/jobs")[0] == 200
    ws.stop()
    db = sqlite3.connect(os.path.join(ws.dir, "workspace.db"))
    assert db.execute("PRAGMA user_version").fetchone()[0] >= 1


def test_upgrade_from_schema_1_keeps_data():
    """A database at schema 1 (before the sweeper indexes) with a job in it
    is migrated forward; the job is still there."""
    ws = Workspace().start()
    jid = ws.submit(name="from-v1")
    ws.stop()
    db = sqlite3.connect(os.path.join(ws.dir, "workspace.db"))
    db.execute("DROP INDEX attempts_live")
    db.execute("DROP INDEX jobs_ended")
    for table, col in [("attempts", "rank"), ("attempts", "accepted"),
                       ("attempts", "ready"), ("attempts", "rendezvous_sent"),
                       ("jobs", "gang_note")]:  # added by 4 -> 5
        db.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    ws.start()
    assert ws.job(jid)["name"] == "from-v1"
    ws.stop()
    db = sqlite3.connect(os.path.join(ws.dir, "workspace.db"))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 5
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"attempts_live", "jobs_ended"} <= names
    # 3 -> 4: agents found by secret through an index, not a scan of all
    assert {"agents_secret", "agents_new_secret"} <= names
    plan = db.execute("EXPLAIN QUERY PLAN SELECT id FROM agents WHERE "
                      "(secret_hash = ?1 OR new_secret_hash = ?1) AND "
                      "state != 'revoked'", ("x",)).fetchall()
    assert not any(r[-1].startswith("SCAN agents") for r in plan), plan


def test_upgrade_from_schema_4_makes_every_attempt_rank_0():
    """4 -> 5 (multi-node jobs, docs/multi-node.md): attempts gain `rank`;
    an attempt written before it is rank 0 of its own gang, and its agent
    still reports to it."""
    ws = Workspace().start()
    sec = ws.register("n1")
    jid = ws.submit(name="from-v4")
    [it] = ws.lease(sec)["jobs"]
    assert "rank" not in it and "nodes" not in it, it  # nodes: 1: as before
    ws.stop()
    db = sqlite3.connect(os.path.join(ws.dir, "workspace.db"))
    for table, col in [("attempts", "rank"), ("attempts", "accepted"),
                       ("attempts", "ready"), ("attempts", "rendezvous_sent"),
                       ("jobs", "gang_note")]:
        db.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
    db.execute("PRAGMA user_version = 4")
    db.commit()
    db.close()
    ws.start()
    st, _, b = ws.finish(sec, jid, it["attempt"])
    assert st == 200, b
    assert ws.job(jid)["state"] == "succeeded"
    ws.stop()
    db = sqlite3.connect(os.path.join(ws.dir, "workspace.db"))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 5
    assert db.execute("SELECT rank, accepted FROM attempts").fetchall() == \
        [(0, 1)]


def test_sigterm_stops_cleanly_with_a_parked_long_poll(workspace):
    import threading
    sec = workspace.register()
    got = {}
    t = threading.Thread(target=lambda: got.update(r=workspace.lease(sec, wait=8)))
    t.start()
    import time
    time.sleep(0.3)
    assert workspace.stop() == 0
    t.join(10)
    assert got["r"]["jobs"] == []


def test_docs_config_table_matches_the_binary():
    from harness.common import SOURCE_DIR
    table = run([binary("tether-workspace"), "config-markdown"]).stdout
    with open(os.path.join(SOURCE_DIR, "docs", "workspace.md")) as f:
        assert table in f.read(), "docs/workspace.md settings table is stale"
