"""Seeing a multi-node job (docs/multi-node.md, "Seeing a multi-node
job"): GET /jobs/{id} lists the ranks of the current gang; the log call's
`rank` argument reads rank k of a gang, a bad rank is refused naming the
field; `tether status` shows every rank; `tether logs` shows rank 0
byte-exact, `--rank k` rank k's bytes, `--all-ranks` every rank's lines
with a "[rank k] " prefix; outputs come from rank 0 unless the spec says
`outputs_from: "all"`, then every rank's under `rank-k/`.

The protocol tests play the agents over the API (each byte exact); the
others run two real agents on this machine, each with its own `machine_id`
(as tests/bb/test_multinode.py does)."""
import hashlib
import os
import subprocess

from harness.common import binary, tmpdir, wait_until
from test_multinode import SPEC, _agents, _reserve

LIVE = ("queued", "assigned", "running", "cancelling")


def tether(ws, *args, timeout=120):
    e = dict(os.environ)
    e["XDG_CONFIG_HOME"] = os.path.join(tmpdir(), "nocfg")
    e.update(TETHER_WORKSPACE=ws.url, TETHER_TOKEN=ws.admin_token,
             TETHER_CA=ws.ca_file)
    return subprocess.run([binary("tether"), *args], env=e,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


def _log(ws, jid, query):
    st, h, b = ws.api("GET", f"/api/v1/jobs/{jid}/log?{query}")
    return st, h, b


def _put_output(ws, secret, jid, att, path, data):
    sha = hashlib.sha256(data).hexdigest()
    return ws.api("PUT", f"/api/v1/attempts/{jid}/{att}/outputs/{path}",
                  data=data, token=secret,
                  headers={"Tether-Sha256": sha,
                           "Content-Type": "application/octet-stream"})


# --- the protocol, agents played over the API --------------------------

def test_job_lists_the_ranks_of_its_current_gang(workspace):
    ws = workspace
    a, b = ws.register("n1"), ws.register("n2")
    jid, ia, ib = _reserve(ws, a, b)
    ws.finish(b, jid, ib["attempt"], reason="failed", exit_code=3)
    jb = ws.job(jid)
    assert jb["nodes"] == 2 and jb["attempt"] == 1
    ranks = jb["ranks"]
    assert [(r["rank"], r["attempt"], r["agent"]) for r in ranks] == \
        [(0, 1, "n1"), (1, 2, "n2")], ranks
    assert ranks[1]["exit_code"] == 3 and ranks[1]["state"] == "failed"
    assert ranks[1]["peak_memory_bytes"] == 1
    assert [x["rank"] for x in jb["attempts"]] == [0, 1]
    # a one-node job: nodes 1, its attempt is its rank 0
    one = ws.submit(SPEC)
    assert ws.job(one)["nodes"] == 1 and ws.job(one)["ranks"] == []
    ws.lease(a)
    assert [(r["rank"], r["attempt"]) for r in ws.job(one)["ranks"]] == \
        [(0, 1)]


def test_log_rank_argument_reads_rank_k_of_a_gang(workspace):
    ws = workspace
    a, b = ws.register("n1"), ws.register("n2")
    jid, ia, ib = _reserve(ws, a, b)
    assert ws.append(a, jid, 1, 0, b"rank zero\n")[0] == 200
    assert ws.append(b, jid, 2, 0, b"rank one\n")[0] == 200
    # no rank: the job's attempt, its gang's rank 0, as before
    st, h, body = _log(ws, jid, "offset=0")
    assert (st, body, h["Tether-Attempt"]) == (200, b"rank zero\n", "1")
    st, h, body = _log(ws, jid, "rank=1")
    assert (st, body, h["Tether-Attempt"]) == (200, b"rank one\n", "2")
    # rank k of the gang of the attempt named (any of its ranks)
    for q in ("attempt=1&rank=1", "attempt=2&rank=1"):
        assert _log(ws, jid, q)[2] == b"rank one\n", q
    assert _log(ws, jid, "attempt=2&rank=0")[2] == b"rank zero\n"
    assert _log(ws, jid, "attempt=2")[2] == b"rank one\n"
    # rank past the gang, not a number: refused naming the field
    for q, words in (("rank=2", "job %d has 2 nodes" % jid),
                     ("rank=-1", "whole number"), ("rank=x", "whole number")):
        st, _, err = _log(ws, jid, q)
        assert st == 400 and err["error"]["field"] == "rank", (q, err)
        assert words in err["error"]["message"], err
    one = ws.submit(SPEC)
    st, _, err = _log(ws, one, "rank=1")
    assert st == 400 and err["error"]["field"] == "rank", err
    assert "1 node (ranks 0 to 0)" in err["error"]["message"]
    st, h, body = _log(ws, one, "rank=0")
    assert (st, body, h["Tether-Attempt"]) == (200, b"", "0")


def test_outputs_from_all_are_kept_under_rank_dirs(workspace):
    ws = workspace
    a, b = ws.register("n1"), ws.register("n2")
    jid, ia, ib = _reserve(ws, a, b, outputs_from="all")
    assert _put_output(ws, a, jid, 1, "m/x.txt", b"zero")[0] == 201
    st, _, rep = _put_output(ws, b, jid, 2, "m/x.txt", b"one")
    assert st == 201 and rep["path"] == "rank-1/m/x.txt", rep
    st, _, out = ws.api("GET", f"/api/v1/jobs/{jid}/outputs")
    assert out["attempt"] == 1
    assert [o["path"] for o in out["outputs"]] == ["rank-0/m/x.txt",
                                                   "rank-1/m/x.txt"], out
    st, _, got = ws.api("GET", f"/api/v1/jobs/{jid}/outputs/rank-1/m/x.txt")
    assert (st, got) == (200, b"one")


def test_outputs_of_a_rank_other_than_0_are_refused_by_default(workspace):
    ws = workspace
    a, b = ws.register("n1"), ws.register("n2")
    jid, ia, ib = _reserve(ws, a, b)
    assert _put_output(ws, a, jid, 1, "x.txt", b"zero")[0] == 201
    st, _, err = _put_output(ws, b, jid, 2, "x.txt", b"one")
    assert st == 400 and err["error"]["field"] == "outputs_from", err
    st, _, out = ws.api("GET", f"/api/v1/jobs/{jid}/outputs")
    assert [o["path"] for o in out["outputs"]] == ["x.txt"], out


def test_cli_reads_a_rank_log_past_8_mib_whole(workspace):
    # 12 MB on rank 1: more than one 8 MiB read, a line cut by the read
    ws = workspace
    a, b = ws.register("n1"), ws.register("n2")
    jid, ia, ib = _reserve(ws, a, b)
    big = b"".join(b"rank 1 line %07d\n" % i for i in range(600_000))
    for off in range(0, len(big), 4 << 20):
        st, _, rep = ws.append(b, jid, 2, off, big[off:off + (4 << 20)])
        assert st == 200, rep
    assert ws.append(a, jid, 1, 0, b"rank 0 only line\n")[0] == 200
    r = tether(ws, "logs", str(jid), "--rank", "1")
    assert r.returncode == 0 and r.stdout == big, (len(r.stdout), r.stderr)
    r = tether(ws, "logs", str(jid), "--all-ranks")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 600_000 + 2, len(lines)
    assert b"[rank 0] rank 0 only line" in lines
    assert [ln for ln in lines if ln.startswith(b"[rank 1] ")] == \
        [b"[rank 1] " + ln for ln in big.split(b"\n")[:-1]]


# --- two real agents ----------------------------------------------------

# rank r (of the first gang: attempt r + 1) prints five lines naming it,
# rank 1 first waits a little so the ranks' lines arrive apart
RANKED = ('r=$((TETHER_ATTEMPT - 1)); [ "$r" = 1 ] && sleep 1; '
          'for i in 1 2 3 4 5; do echo "rank $r line $i"; done; '
          'printf "rank $r no newline"')


def _ended(ws, jid, timeout=90):
    wait_until(lambda: ws.job(jid)["state"] not in LIVE, timeout,
               what=f"job {jid} to end")
    # every rank's log complete (the last bytes may follow the final event)
    wait_until(lambda: all(x["log_complete"]
                           for x in ws.job(jid)["attempts"]), 30,
               what="every rank's log")
    return ws.job(jid)


def test_cli_status_and_logs_of_a_real_two_node_job(workspace,
                                                     agent_factory):
    ws = workspace
    agents = _agents(ws, agent_factory, 2)
    jid = ws.submit(SPEC, nodes=2, command=["sh", "-c", RANKED])
    jb = _ended(ws, jid)
    assert jb["state"] == "succeeded", jb
    names = {ag.name for ag in agents}
    assert {r["agent"] for r in jb["ranks"]} == names, jb["ranks"]
    r0 = _log(ws, jid, "attempt=1")[2]
    r1 = _log(ws, jid, "attempt=2")[2]
    assert b"rank 0 line 1\n" in r0 and b"rank 1 line 1\n" in r1

    r = tether(ws, "status", str(jid))
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "ranks of attempt 1 (2 nodes):" in out, out
    rows = [ln.split() for ln in out.splitlines()
            if ln.split()[:1] in (["0"], ["1"])]
    assert [(x[0], x[1], x[3], x[4]) for x in rows] == \
        [("0", "1", "succeeded", "0"), ("1", "2", "succeeded", "0")], out
    assert {x[2] for x in rows} == names, out
    assert "attempt 2 on" in out and "(rank 1)" in out

    # rank 0 byte-exact, as before; --rank k: rank k's bytes
    r = tether(ws, "logs", str(jid))
    assert (r.returncode, r.stdout) == (0, r0), r.stderr
    for args, want in ((["--rank", "1"], r1), (["--rank", "0"], r0),
                       (["-f", "--rank", "1"], r1),
                       (["--attempt", "1", "--rank", "1"], r1)):
        r = tether(ws, "logs", str(jid), *args)
        assert (r.returncode, r.stdout) == (0, want), (args, r.stderr)

    # --all-ranks: every line of every rank, each with its prefix; the
    # last line without its newline gets one
    for args in ([], ["-f"]):
        r = tether(ws, "logs", str(jid), "--all-ranks", *args)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.decode().splitlines(keepends=True)
        assert all(ln.endswith("\n") for ln in lines)
        want = sorted([f"[rank 0] {ln}" for ln in
                       r0.decode().replace("newline", "newline\n")
                       .splitlines(keepends=True)] +
                      [f"[rank 1] {ln}" for ln in
                       r1.decode().replace("newline", "newline\n")
                       .splitlines(keepends=True)])
        assert sorted(lines) == want, (args, lines)
        # each rank's own lines stay in order
        for k in (0, 1):
            mine = [ln for ln in lines if ln.startswith(f"[rank {k}] rank")]
            assert mine == sorted(mine), mine

    # a bad rank: a clear error naming the field
    r = tether(ws, "logs", str(jid), "--rank", "2")
    assert r.returncode == 6, r
    assert b"rank: job" in r.stderr and b"2 nodes" in r.stderr, r.stderr
    r = tether(ws, "logs", str(jid), "--rank", "one")
    assert r.returncode == 2 and b"--rank" in r.stderr, r.stderr
    r = tether(ws, "logs", str(jid), "--rank", "1", "--all-ranks")
    assert r.returncode == 2, r.stderr


def test_outputs_from_all_and_rank0_with_real_agents(workspace,
                                                     agent_factory):
    ws = workspace
    agents = _agents(ws, agent_factory, 2)
    write = ('r=$((TETHER_ATTEMPT - 1)); mkdir -p "$TETHER_OUTPUTS/m"; '
             'echo "model of rank $r" > "$TETHER_OUTPUTS/m/model.txt"')
    every = ws.submit(SPEC, nodes=2, outputs_from="all",
                      command=["sh", "-c", write])
    only0 = ws.submit(SPEC, nodes=2, command=["sh", "-c", write])
    for jid in (every, only0):
        assert _ended(ws, jid, timeout=120)["state"] == "succeeded"

    st, _, out = ws.api("GET", f"/api/v1/jobs/{every}/outputs")
    assert [o["path"] for o in out["outputs"]] == \
        ["rank-0/m/model.txt", "rank-1/m/model.txt"], out
    dest = os.path.join(tmpdir(), "dl")
    r = tether(ws, "outputs", str(every), "--download", dest)
    assert r.returncode == 0, r.stderr
    for k in (0, 1):
        with open(os.path.join(dest, f"rank-{k}", "m", "model.txt")) as f:
            assert f.read() == f"model of rank {k}\n"

    # the default: rank 0's outputs only; rank 1's agent sent none
    g = ws.job(only0)["attempt"]
    st, _, out = ws.api("GET", f"/api/v1/jobs/{only0}/outputs")
    assert [o["path"] for o in out["outputs"]] == ["m/model.txt"], out
    st, _, got = ws.api("GET", f"/api/v1/jobs/{only0}/outputs/m/model.txt")
    assert got == b"model of rank 0\n"
    st, _, out = ws.api("GET",
                        f"/api/v1/jobs/{only0}/outputs?attempt={g + 1}")
    assert out["outputs"] == [], out
    rank1 = ws.job(only0)["ranks"][1]["agent"]
    [ag] = [x for x in agents if x.name == rank1]
    log = ag.output()
    assert f"job={only0} attempt={g + 1}: a rank other than 0" in log, log
    assert "refused" not in log


# --- the web page -------------------------------------------------------

def test_web_page_shows_the_ranks_and_each_rank_log(workspace, web_page):
    from harness.fixtures_web import web_login
    ws, page = workspace, web_page
    a, b = ws.register("n1"), ws.register("n2")
    jid, ia, ib = _reserve(ws, a, b)
    assert ws.append(a, jid, 1, 0, b"rank zero line\n")[0] == 200
    assert ws.append(b, jid, 2, 0, b"rank one line\n")[0] == 200
    ws.finish(b, jid, 2, reason="failed", exit_code=3)
    web_login(page, ws, path=f"/jobs/{jid}")
    page.wait("document.querySelectorAll('#ranks tbody tr').length === 2")
    rows = page.eval("""[...document.querySelectorAll('#ranks tbody tr')]
        .map((tr) => [...tr.children].map((td) => td.textContent))""")
    assert [r[:5] for r in rows] == [["0", "1", "n1", "assigned", ""],
                                     ["1", "2", "n2", "failed", "3"]], rows
    assert rows[0][6] == "shown below" and rows[1][6] == "rank 1 log", rows
    page.wait("document.querySelector('#log .win').textContent"
              ".includes('rank zero line')")
    page.click("#ranks tr[data-rank='1'] a")
    page.wait("document.querySelector('#log .win') && document.querySelector("
              "'#log .win').textContent.includes('rank one line')")
    assert "rank zero line" not in page.eval(
        "document.querySelector('#log .win').textContent")
    assert page.eval("location.search") == "?rank=1"
    page.wait("document.querySelector('#log-info').textContent"
              ".includes('rank 1')")
    page.screenshot("job-page-ranks.png", full=True)


def test_logs_follow_every_rank_of_a_live_job(workspace, agent_factory):
    # followers start while the job is still queued: they wait for the
    # gang, follow it live and stop when the job ends
    ws = workspace
    tick = ('r=$((TETHER_ATTEMPT - 1)); sleep 1; for i in 1 2 3; do '
            'echo "rank $r tick $i"; sleep 0.5; done')
    jid = ws.submit(SPEC, nodes=2, command=["sh", "-c", tick])
    e = dict(os.environ)
    e["XDG_CONFIG_HOME"] = os.path.join(tmpdir(), "nocfg")
    e.update(TETHER_WORKSPACE=ws.url, TETHER_TOKEN=ws.admin_token,
             TETHER_CA=ws.ca_file)
    procs = [subprocess.Popen([binary("tether"), "logs", str(jid), "-f", *a],
                              env=e, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
             for a in (["--all-ranks"], ["--rank", "1"])]
    _agents(ws, agent_factory, 2)
    outs = [p.communicate(timeout=90) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert ws.job(jid)["state"] == "succeeded"
    every = outs[0][0].decode()
    for r in (0, 1):
        assert [ln for ln in every.splitlines() if "tick" in ln] != []
        assert [ln for ln in every.splitlines()
                if ln.startswith(f"[rank {r}] rank")] == \
            [f"[rank {r}] rank {r} tick {i}" for i in (1, 2, 3)], every
    assert outs[1][0] == _log(ws, jid, "attempt=2")[2], outs[1]
    assert b"rank 1 tick 3\n" in outs[1][0]
