"""Injection through job fields (issue 13, item 12).

Every job field that reaches a command line, a path or a file name (name,
git url and ref, env names and values, docker image tag, conda file name,
output names) gets strings with $(...), backticks, ';', '&&', '|',
newlines and '../', each of which would create a canary file under
/var/tmp if any component (workspace, agent, runner, builder, all running
as root on the host) ran it through a shell or used it as a path.

Pass criterion, per test: no canary file ever exists; the field either is
refused with a 400 naming it, or arrives verbatim where it belongs (the
job's environment, the output list, the tool's argv); and no component runs
a shell with job data (the source scan below)."""
import glob
import json
import os
import re
import secrets as _secrets

import pytest

from harness import dockerd
from harness import runner as hr
from harness.common import wait_until
from harness.gitserver import make_repo, run_attempt, var_tmpdir
from test_env_conda import make_tools

SRC = os.environ.get("TETHER_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture
def canary():
    """A canary path prefix under /var/tmp; asserts at the end (and lets the
    test assert at any time) that nothing starting with it exists."""
    prefix = "/var/tmp/tether-canary-" + _secrets.token_hex(4)

    def check():
        found = glob.glob(prefix + "*") + glob.glob("/tmp/" + os.path.basename(prefix) + "*")
        assert found == [], found
    check.prefix = prefix
    yield check
    check()


def payloads(prefix, newline=True):
    """Strings that would create prefix-N under a shell or as a path."""
    p = [f"x$(touch {prefix}-1)", f"x`touch {prefix}-2`", f"x; touch {prefix}-3",
         f"x && touch {prefix}-4", f"x | touch {prefix}-5",
         f"../../../../../../..{prefix}-6", f"'\"; touch {prefix}-7 #"]
    if newline:
        p.append(f"x\ntouch {prefix}-8")
    return p


def test_no_shell_with_job_data_in_the_sources():
    """Static half: no system(), popen() or `sh -c` in the C code that
    handles job data (the slurm batch script is a shell script by nature:
    its words are single-quoted, tests/unit/test_runner_slurm_script.c)."""
    bad = []
    for d in ("agent", "runner", "transport", "common", "docker",
              "workspace/server", "cli"):
        for f in glob.glob(os.path.join(SRC, d, "*.c")):
            text = open(f).read()
            for m in re.finditer(r"\b(system|popen|execl|execlp)\s*\(|\"/bin/sh\"", text):
                bad.append(f"{f}: {m.group(0)}")
    assert bad == [], bad


def test_name_and_env_values(workspace, agent_factory, canary):
    """name and env values carry every payload; the job prints its env.
    Pass: no canary; a name with a newline is refused (400, field named);
    the others run; env values arrive byte for byte."""
    ag = agent_factory().start()
    pl = payloads(canary.prefix)
    st, _, b = workspace.api("POST", "/api/v1/jobs", json={
        "name": pl[-1], "command": ["true"]})
    assert st == 400 and "name" in json.dumps(b), b
    env = {f"V{i}": v for i, v in enumerate(pl)}
    jobs = []
    for v in pl[:-1]:
        jobs.append(workspace.submit(name=v, command=["/usr/bin/env", "-0"], env=env))
    for j in jobs:
        ag.wait_job(j, "succeeded", timeout=60)
    log = ag.ws_log(jobs[0])
    for i, v in enumerate(pl):
        assert f"V{i}={v}".encode() + b"\0" in log, (i, v)
    for j in jobs:
        names = [x["name"] for x in workspace.api("GET", "/api/v1/jobs")[2]["jobs"]
                 if x["id"] == j]
        assert names and names[0] in pl, names


def test_env_names_refused(workspace, canary):
    """env names are identifiers: every payload as a name is a 400."""
    for v in payloads(canary.prefix):
        st, _, b = workspace.api("POST", "/api/v1/jobs", json={
            "name": "n", "command": ["true"], "env": {v: "1"}})
        assert st == 400 and "env" in json.dumps(b), (v, b)


def test_git_url_and_ref(canary):
    """Git url and ref carry the payloads (plus ext:: and option-looking
    urls); the runner fetches with libgit2.  Pass: source_failed (or a 400
    from the spec parser), never a canary."""
    root = var_tmpdir("tether-inj-")
    bare, ids, _ = make_repo(os.path.join(root, "repos"))
    specs = []
    for v in payloads(canary.prefix):
        specs.append({"git": {"url": bare, "ref": v}})
        specs.append({"git": {"url": bare + v}})
    specs.append({"git": {"url": f"ext::sh -c touch% {canary.prefix}-ext"}})
    specs.append({"git": {"url": f"--upload-pack=touch {canary.prefix}-up"}})
    for i, src in enumerate(specs):
        att = run_attempt(root, {"name": "g", "command": ["true"], "source": src},
                          job=str(100 + i))
        res = att["result"]
        assert res is not None and res["reason"] in (
            "source_failed", "launch_failed"), (src, res, att["log"][-2000:])
        canary()


def test_conda_file_name(canary):
    """environment.file names a file of the source whose name carries the
    payloads; the stand-in conda tool records its argv.  Pass: the build
    succeeds with the tool's argv in its fixed form (the file one word),
    a name with '../' is refused, no canary."""
    b, rec = make_tools(["micromamba"])
    root = var_tmpdir("tether-inj-")
    src = os.path.join(root, "src")
    os.makedirs(src)
    for i, v in enumerate(payloads(canary.prefix, newline=False)):
        name = v.replace("/", "_") + ".yml"
        with open(os.path.join(src, name), "w") as f:
            # a different text each: each job builds (no cache hit), so
            # each leaves its own argv record in its work directory
            f.write(f"name: x{i}\ndependencies:\n  - python=3.11\n")
        spec = {"name": "c", "command": ["true"], "source": {"path": src},
                "environment": {"kind": "conda", "file": name}}
        att = run_attempt(root, spec, job=str(200 + i),
                          env={"PATH": b + ":/usr/bin:/bin"})
        assert att["result"]["reason"] == "succeeded", att["log"][-2000:]
        # the stand-in records into the work directory: the only writable
        # place of the build's sandbox besides the prefix
        argv = open(os.path.join(att["dir"], "work",
                                 "micromamba.argv")).read().splitlines()
        # create -y -p PREFIX -f FILE: the file (or the builder's copy of
        # it) is one word, and no fragment of the name became a word.
        assert argv[1:5] == ["create", "-y", "-p", argv[4]] and \
            argv[5] == "-f" and len(argv) == 7, argv
        assert all("touch" not in w or w.endswith(".yml") for w in argv), argv
        canary()
    spec = {"name": "c", "command": ["true"], "source": {"path": src},
            "environment": {"kind": "conda", "file": f"../../..{canary.prefix}-9"}}
    att = run_attempt(root, spec, job="299", env={"PATH": b + ":/usr/bin:/bin"})
    assert att["result"]["reason"] in ("launch_failed", "env_failed"), att


def test_output_names(workspace, agent_factory, canary):
    """A job writes outputs whose names carry the payloads (a newline too).
    Pass: no canary; what the workspace lists is exactly the set of safe
    names the job wrote (names with control characters may be refused,
    but never altered into another name)."""
    ag = agent_factory().start()
    names = [v.replace("/", "_") for v in payloads(canary.prefix)] + ["-rf", "--x"]
    script = ("import os\nfor n in %r:\n"
              "    open(os.path.join(os.environ['TETHER_OUTPUTS'], n), 'w')"
              ".write(n)\n" % names)
    job = workspace.submit(name="outs", command=["/usr/bin/python3", "-c", script])
    j = ag.wait_job(job, timeout=60)
    st, _, outs = workspace.api("GET", f"/api/v1/jobs/{job}/outputs")
    listed = {o["path"] for o in outs.get("outputs", [])}
    assert listed <= set(names), listed - set(names)
    assert {n for n in names if "\n" not in n} <= listed, (j, listed)


def test_docker_image_tag(docker_engine, canary):
    """environment.image carries the payloads (docker launcher, real
    engine).  Pass: each attempt ends env_failed (or launch_failed), no
    canary."""
    for i, v in enumerate(payloads(canary.prefix)):
        d = hr.make_attempt(["true"], job=f"DI{i}",
                            runner={"launcher": "docker",
                                    "docker_socket": dockerd.SOCKET,
                                    "agent_id": "test-agent"},
                            environment={"kind": "docker",
                                         "image": "tether-test-base:bookworm" + v},
                            launcher="docker")
        hr.run_runner(d, timeout=120)
        res = hr.result(d)
        assert res["reason"] in ("env_failed", "launch_failed"), (v, res)
        canary()
