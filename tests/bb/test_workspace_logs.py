"""Log protocol: append at offset (append, overlap, gap -> 416), and the
reader's offset + long-poll.  The property test replays many seeded random
schedules of chunking, duplicates, reordering and gaps and checks that the
stored log is byte-identical to the source."""
import random
import threading
import time

SPEC = {"name": "log", "command": ["true"]}


def leased(ws, n=1):
    sec = ws.register()
    ids = [ws.submit(SPEC) for _ in range(n)]
    got = ws.lease(sec, queue_room=n)["jobs"]
    assert sorted(j["job"] for j in got) == sorted(ids)
    return sec, ids


def read_all(ws, job, attempt=1):
    st, h, body = ws.api("GET", f"/api/v1/jobs/{job}/log?attempt={attempt}")
    assert st == 200
    return body, h


def test_append_overlap_and_gap(workspace):
    sec, [j] = leased(workspace)
    st, _, b = workspace.append(sec, j, 1, 0, b"hello ")
    assert st == 200 and b == {"length": 6}
    st, _, b = workspace.append(sec, j, 1, 7, b"x")
    assert st == 416 and b["error"]["code"] == "gap" and b["length"] == 6
    st, _, b = workspace.append(sec, j, 1, 3, b"lo world")  # overlap
    assert st == 200 and b == {"length": 11}
    st, _, b = workspace.append(sec, j, 1, 0, b"hello")  # all known
    assert st == 200 and b == {"length": 11}
    body, h = read_all(workspace, j)
    assert body == b"hello world"
    assert h["Tether-Log-Length"] == "11" and h["Tether-Attempt"] == "1"
    assert "Tether-Log-Complete" not in h


def test_append_errors(workspace):
    sec, [j] = leased(workspace)
    st, _, b = workspace.api("POST", f"/api/v1/attempts/{j}/1/log", data=b"x", token=sec)
    assert st == 400 and b["error"]["field"] == "offset"
    st, _, b = workspace.append(sec, j, 1, -1, b"x")
    assert st == 400
    st, _, b = workspace.append(sec, j, 2, 0, b"x")
    assert st == 404 and b["error"]["code"] == "not_found"
    other = workspace.register("n2")
    assert workspace.append(other, j, 1, 0, b"x")[0] == 404
    assert workspace.append(workspace.admin_token, j, 1, 0, b"x")[0] == 401


def test_log_chunk_limit():
    from harness.workspace import Workspace
    ws = Workspace(max_log_chunk="64K").start()
    sec, [j] = leased(ws)
    st, _, b = ws.append(sec, j, 1, 0, b"x" * (64 * 1024 + 1))
    assert st == 413 and b["error"]["code"] == "too_large"
    assert ws.append(sec, j, 1, 0, b"x" * 1024)[2] == {"length": 1024}
    ws.stop()


def test_read_offsets_complete_and_empty(workspace):
    sec, [j] = leased(workspace)
    workspace.append(sec, j, 1, 0, b"0123456789")
    st, h, b = workspace.api("GET", f"/api/v1/jobs/{j}/log?offset=4")
    assert b == b"456789" and h["Tether-Log-Length"] == "10"
    st, h, b = workspace.api("GET", f"/api/v1/jobs/{j}/log?offset=50")
    assert st == 200 and b == b""
    workspace.finish(sec, j, 1)
    st, h, b = workspace.api("GET", f"/api/v1/jobs/{j}/log")
    assert b == b"0123456789" and h["Tether-Log-Complete"] == "1"
    st, h, b = workspace.api("GET", f"/api/v1/jobs/{j}/log?offset=2")
    assert h["Tether-Log-Complete"] == "1"
    assert workspace.api("GET", f"/api/v1/jobs/{j}/log?attempt=5")[0] == 404
    assert workspace.api("GET", "/api/v1/jobs/999/log")[0] == 404
    assert workspace.api("GET", f"/api/v1/jobs/{j}/log?wait=61")[0] == 400
    # a queued job has an empty log
    j2 = workspace.submit(SPEC)
    st, h, b = workspace.api("GET", f"/api/v1/jobs/{j2}/log")
    assert st == 200 and b == b"" and h["Tether-Attempt"] == "0"


def test_read_long_poll_returns_when_bytes_arrive(workspace):
    sec, [j] = leased(workspace)
    res = {}

    def reader():
        t = time.monotonic()
        res["r"] = workspace.api("GET", f"/api/v1/jobs/{j}/log?offset=0&wait=20")
        res["t"] = time.monotonic() - t
    th = threading.Thread(target=reader)
    th.start()
    time.sleep(0.5)
    assert th.is_alive()  # held: nothing to return yet
    workspace.append(sec, j, 1, 0, b"line\n")
    th.join(10)
    assert res["r"][2] == b"line\n" and res["t"] < 5


def test_read_long_poll_returns_when_the_attempt_ends(workspace):
    sec, [j] = leased(workspace)
    res = {}
    th = threading.Thread(target=lambda: res.update(
        r=workspace.api("GET", f"/api/v1/jobs/{j}/log?offset=0&wait=20")))
    th.start()
    time.sleep(0.3)
    workspace.finish(sec, j, 1)
    th.join(10)
    assert res["r"][1]["Tether-Log-Complete"] == "1"


def test_read_long_poll_times_out(workspace):
    sec, [j] = leased(workspace)
    t = time.monotonic()
    st, h, b = workspace.api("GET", f"/api/v1/jobs/{j}/log?offset=0&wait=1")
    assert st == 200 and b == b"" and 0.8 < time.monotonic() - t < 5


def schedule(rng, src):
    """A random upload schedule: chunks of random size, each sent one to
    three times, in a locally shuffled order, plus a few far-ahead gaps."""
    chunks, off = [], 0
    while off < len(src):
        n = rng.randint(1, 700)
        chunks.append((off, src[off:off + n]))
        off += n
    sends = []
    for c in chunks:
        sends.extend([c] * rng.choice([1, 1, 1, 2, 3]))
    for i in range(len(sends)):  # reorder within a window (retries)
        j = min(len(sends) - 1, i + rng.randint(0, 4))
        sends[i], sends[j] = sends[j], sends[i]
    for _ in range(rng.randint(0, 3)):  # overlapping re-sends at odd offsets
        a = rng.randrange(len(src))
        sends.insert(rng.randrange(len(sends) + 1), (a, src[a:a + rng.randint(1, 900)]))
    return sends


def test_log_property_random_schedules(workspace):
    seeds = list(range(40))
    sec, jobs = leased(workspace, len(seeds))
    for seed, j in zip(seeds, jobs):
        rng = random.Random(seed)
        src = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 6000)))
        length = 0
        for off, data in schedule(rng, src):
            st, _, b = workspace.append(sec, j, 1, off, data)
            if off > length:
                assert st == 416 and b["length"] == length, (seed, off, length)
            else:
                assert st == 200, (seed, b)
                length = max(length, off + len(data))
                assert b["length"] == length, seed
        while length < len(src):  # the agent resends from the stored length
            st, _, b = workspace.append(sec, j, 1, length, src[length:length + 500])
            assert st == 200
            length = b["length"]
        body, h = read_all(workspace, j)
        assert body == src, f"seed {seed}: stored log differs from the source"
        assert h["Tether-Log-Length"] == str(len(src))


def test_an_append_whose_sender_went_silent_frees_the_log_soon(workspace):
    """An agent killed mid-body over a tunnel can leave its append's
    connection open at the workspace with nobody behind it (seen with
    ssh://: the attempt answered 503 busy for the listener's 120 s idle
    timeout, and the restarted agent's log stalled).  An append's connection
    may go 10 s without a byte: then it is dropped and the next append of
    the same attempt is taken."""
    import socket
    sec, [j] = leased(workspace)
    s = socket.create_connection(("127.0.0.1", workspace.plain_port))
    try:
        s.sendall((f"POST /api/v1/attempts/{j}/1/log?offset=0 HTTP/1.1\r\n"
                   f"Host: 127.0.0.1\r\nAuthorization: Bearer {sec}\r\n"
                   "Tether-Protocol: 1\r\n"
                   "Content-Type: application/octet-stream\r\n"
                   "Content-Length: 1000\r\n\r\n").encode() + b"d" * 100)
        time.sleep(0.5)  # the body has begun: the attempt is busy
        st, _, b = workspace.append(sec, j, 1, 0, b"live\n")
        assert st == 503 and b["error"]["code"] == "busy", (st, b)
        t0 = time.monotonic()
        while True:
            st, _, b = workspace.append(sec, j, 1, 0, b"live\n")
            if st != 503:
                break
            assert time.monotonic() - t0 < 30, "still busy after 30 s"
            time.sleep(0.5)
        waited = time.monotonic() - t0
        assert st == 200 and b == {"length": 5}, (st, b)
        assert 5 <= waited < 20, waited
        body, _ = read_all(workspace, j)
        assert body == b"live\n"  # nothing of the silent append
    finally:
        s.close()
