"""`tether logs N` without -f prints the whole log as it stands (it used to
stop at one 8 MiB read), and a log is called complete only when the
workspace holds as many bytes as the final event says the log has: an
ended job whose log is still arriving is never shown as complete, and
`logs` says so on stderr with a non-zero exit instead of ending early."""
import hashlib
import json
import os
import subprocess

from harness.common import binary, tmpdir

MiB = 1 << 20


def tether(ws, *args, stdout=subprocess.PIPE, timeout=120):
    e = dict(os.environ)
    e["XDG_CONFIG_HOME"] = os.path.join(tmpdir(), "nocfg")
    e.update(TETHER_WORKSPACE=ws.url, TETHER_TOKEN=ws.admin_token,
             TETHER_CA=ws.ca_file)
    return subprocess.run([binary("tether"), *args], env=e, stdout=stdout,
                          stderr=subprocess.PIPE, timeout=timeout)


def leased_job(ws):
    sec = ws.register()
    jid = ws.submit({"name": "big", "command": ["true"]})
    assert ws.lease(sec)["jobs"][0]["job"] == jid
    return sec, jid


def upload(ws, sec, jid, data, start=0, chunk=8 * MiB):
    for off in range(start, len(data), chunk):
        st, _, b = ws.append(sec, jid, 1, off, data[off:off + chunk])
        assert st == 200, b


def final(ws, sec, jid, log_length):
    st, _, b = ws.events(sec, jid, 1, [
        {"seq": 1, "time": 1.0, "type": "final", "reason": "succeeded",
         "exit_code": 0, "log_length": log_length}])
    assert st == 200, b


def logs_to_file(ws, *args):
    path = os.path.join(tmpdir(), "log.out")
    with open(path, "wb") as f:
        r = tether(ws, "logs", *args, stdout=f)
    with open(path, "rb") as f:
        return r, f.read()


def test_logs_prints_a_40mb_log_whole_and_byte_exact(workspace):
    # 40 MB of bytes no re-encoding survives: every byte value, no newline
    # at the end.
    data = (bytes(range(256)) * (40_000_000 // 256 + 1))[:40_000_000]
    sec, jid = leased_job(workspace)
    upload(workspace, sec, jid, data)
    final(workspace, sec, jid, len(data))
    for args in ([str(jid)], [str(jid), "--attempt", "1"]):
        r, got = logs_to_file(workspace, *args)
        assert r.returncode == 0, r.stderr
        assert len(got) == len(data)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        assert r.stderr == b""
    a = workspace.job(jid)["attempts"][0]
    assert a["log_length"] == len(data)
    assert a["log_final_length"] == len(data) and a["log_complete"] is True


def test_an_ended_job_whose_log_is_still_arriving_is_not_complete(workspace):
    data = os.urandom(9 * MiB + 123)
    sec, jid = leased_job(workspace)
    upload(workspace, sec, jid, data[:3 * MiB])
    final(workspace, sec, jid, len(data))  # the job ended, log on its way
    assert workspace.job(jid)["state"] == "succeeded"

    # the API does not call the log complete
    st, h, body = workspace.api("GET", f"/api/v1/jobs/{jid}/log")
    assert st == 200 and body == data[:3 * MiB]
    assert "Tether-Log-Complete" not in h
    assert h["Tether-Log-Final-Length"] == str(len(data))
    a = workspace.job(jid)["attempts"][0]
    assert a["log_final_length"] == len(data) and a["log_complete"] is False

    # status and --json say so
    r = tether(workspace, "status", str(jid))
    assert r.returncode == 0, r.stderr
    assert b"incomplete" in r.stdout, r.stdout
    r = tether(workspace, "status", "--json", str(jid))
    assert json.loads(r.stdout)["attempts"][0]["log_complete"] is False

    # logs prints what is there, then says the rest is missing
    r, got = logs_to_file(workspace, str(jid))
    assert got == data[:3 * MiB]
    assert r.returncode == 1
    assert b"incomplete" in r.stderr and str(3 * MiB).encode() in r.stderr

    # a long-poll on the ended, incomplete log waits for bytes instead of
    # answering at once with nothing new (a follower would spin)
    import time
    t0 = time.monotonic()
    st, h, body = workspace.api(
        "GET", f"/api/v1/jobs/{jid}/log?offset={3 * MiB}&wait=1")
    assert st == 200 and body == b"" and time.monotonic() - t0 >= 0.9

    # the rest arrives: complete, and logs exits 0 with every byte
    upload(workspace, sec, jid, data, start=3 * MiB)
    st, h, body = workspace.api("GET", f"/api/v1/jobs/{jid}/log?offset={8 * MiB}")
    assert h["Tether-Log-Complete"] == "1" and body == data[8 * MiB:]
    assert workspace.job(jid)["attempts"][0]["log_complete"] is True
    r, got = logs_to_file(workspace, str(jid))
    assert r.returncode == 0, r.stderr
    assert got == data
    r, got = logs_to_file(workspace, "-f", str(jid))
    assert r.returncode == 0, r.stderr
    assert got == data


def test_final_event_log_length_is_checked(workspace):
    sec, jid = leased_job(workspace)
    st, _, b = workspace.events(sec, jid, 1, [
        {"seq": 1, "type": "final", "reason": "succeeded", "log_length": -1}])
    assert st == 400 and b["error"]["field"] == "events[0].log_length"


def test_agent_reports_the_final_length_of_a_40mb_log(workspace, agent):
    # The real agent and runner: the final event carries the log's length,
    # and `tether logs` gives the node's log file byte for byte.
    script = ("import sys\n"
              "for i in range(400000):\n"
              "    sys.stdout.write('%09d ' % i + 'x' * 90 + '\\n')\n")
    jid = workspace.submit(name="big", command=["python3", "-c", script])
    agent.wait_job(jid, "succeeded", timeout=180)
    with open(os.path.join(agent.attempt_dir(jid), "log"), "rb") as f:
        node_log = f.read()
    assert len(node_log) >= 40_000_000
    a = workspace.job(jid)["attempts"][-1]
    assert a["log_final_length"] == len(node_log)
    assert a["log_complete"] is True
    r, got = logs_to_file(workspace, str(jid))
    assert r.returncode == 0, r.stderr
    assert got == node_log


def test_a_log_deleted_by_retention_is_not_called_incomplete():
    # log_retention="1s": the setting under test (the default is 30 days)
    from harness.common import wait_until
    from harness.workspace import Workspace
    ws = Workspace(log_retention="1s").start()
    try:
        sec, jid = leased_job(ws)
        upload(ws, sec, jid, b"x" * 100)
        final(ws, sec, jid, 200)  # 100 bytes never came
        wait_until(lambda: ws.job(jid)["attempts"][0]["log_length"] == 0, 10,
                   what="retention")
        a = ws.job(jid)["attempts"][0]
        assert a["log_complete"] is True and a["log_final_length"] is None
        r, got = logs_to_file(ws, str(jid))
        assert r.returncode == 0 and got == b"", r.stderr
    finally:
        ws.stop()


def _connects(trace, port):
    """connect() calls to the workspace's port in an strace -f log."""
    with open(trace) as f:
        return sum(1 for line in f
                   if "connect(" in line and "htons(%d)" % port in line)


def test_the_cli_keeps_one_connection_for_all_its_requests(workspace):
    # A 40 MB log is read in 8 MiB replies, and `logs -f` polls for each
    # new append: one TCP and TLS connection for all of them (each
    # request used to open its own: a handshake every 50 ms per follower
    # under a busy log, docs/performance.md row 4b).
    import threading
    import time
    from urllib.parse import urlparse
    port = urlparse(workspace.url).port
    data = os.urandom(40 * MiB + 17)
    sec, jid = leased_job(workspace)
    upload(workspace, sec, jid, data)
    final(workspace, sec, jid, len(data))
    trace = os.path.join(tmpdir(), "whole.trace")
    path = os.path.join(tmpdir(), "whole.out")
    e = dict(os.environ, XDG_CONFIG_HOME=os.path.join(tmpdir(), "nocfg"),
             TETHER_WORKSPACE=workspace.url, TETHER_TOKEN=workspace.admin_token,
             TETHER_CA=workspace.ca_file)
    with open(path, "wb") as f:
        r = subprocess.run(["strace", "-f", "-e", "trace=connect", "-o", trace,
                            binary("tether"), "logs", str(jid)], env=e,
                           stdout=f, stderr=subprocess.PIPE, timeout=120)
    assert r.returncode == 0, r.stderr
    with open(path, "rb") as f:
        assert f.read() == data
    assert _connects(trace, port) == 1

    # -f: the reader parks, each append wakes it, the final one ends it
    jid = workspace.submit({"name": "follow", "command": ["true"]})
    assert workspace.lease(sec)["jobs"][0]["job"] == jid
    trace = os.path.join(tmpdir(), "follow.trace")
    p = subprocess.Popen(["strace", "-f", "-e", "trace=connect", "-o", trace,
                          binary("tether"), "logs", "-f", str(jid)], env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = []
    reader = threading.Thread(target=lambda: got.append(p.stdout.read()))
    reader.start()
    pieces = [b"line %d\n" % i for i in range(6)]
    off = 0
    for piece in pieces:
        time.sleep(0.3)
        st, _, b = workspace.append(sec, jid, 1, off, piece)
        assert st == 200, b
        off += len(piece)
    final(workspace, sec, jid, off)
    assert p.wait(60) == 0, p.stderr.read()
    reader.join(30)
    assert got == [b"".join(pieces)]
    assert _connects(trace, port) == 1
