"""`tether submit --resume-from JOB` and the spec field it sets,
`checkpoint.resume_from` (docs/checkpointing.md, issue 28): a new job
starts from another job's kept checkpoint."""
import json
import os
import subprocess

from harness.common import binary, tmpdir
from harness.life import attempt

# Attempt 1 of the first job saves "step 7" when stopped at its timeout;
# a job that resumes prints what it found.
JOB = ("if [ -f \"$TETHER_CHECKPOINTS/s\" ]; then "
       "echo \"resumed resume=$TETHER_RESUME from $(cat $TETHER_CHECKPOINTS/s)\"; "
       "exit 0; fi; "
       "trap 'echo step-7 > $TETHER_CHECKPOINTS/s; exit 0' TERM; "
       "echo fresh; while :; do sleep 0.1; done")


def tether(ws, *args):
    env = dict(os.environ, TETHER_WORKSPACE=ws.url, TETHER_TOKEN=ws.admin_token,
               TETHER_CA=ws.ca_file,
               XDG_CONFIG_HOME=os.path.join(tmpdir(), "nocfg"))
    return subprocess.run([binary("tether"), *args], env=env,
                          capture_output=True, text=True, timeout=60)


def spec_file(**kw):
    spec = {"name": "resumed", "command": ["sh", "-c", JOB]}
    spec.update(kw)
    path = os.path.join(tmpdir(), "job.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


def timed_out_with_checkpoint(ws, agent):
    job = ws.submit(name="first", command=["sh", "-c", JOB], timeout="2s",
                    checkpoint={"on_timeout": True, "grace": "2s"})
    j = agent.wait_job(job, timeout=30)
    assert j["state"] == "timed_out", j
    assert j["checkpoint"] and j["checkpoint"]["attempt"] == 1, j
    return job, j["checkpoint"]


def test_submit_resume_from_starts_from_the_kept_checkpoint(workspace, agent):
    """Scenario: a job times out with checkpoint.on_timeout and keeps a
    checkpoint; `tether submit --resume-from` it.  Pass: the new job's
    spec has checkpoint.resume_from, its checkpoint pointer is the first
    job's (attempt 0: given at submit), and its attempt 1 resumes from it
    (TETHER_RESUME=1, the saved state) and succeeds."""
    first, ck = timed_out_with_checkpoint(workspace, agent)
    r = tether(workspace, "--json", "submit", spec_file(
        checkpoint={"grace": "1s"}), "--resume-from", str(first))
    assert r.returncode == 0, (r.stdout, r.stderr)
    job = json.loads(r.stdout)["id"]
    j = workspace.job(job)
    assert j["spec"]["checkpoint"] == {"grace": "1s", "resume_from": first}, j
    assert j["checkpoint"]["id"] == ck["id"], j
    assert j["checkpoint"]["attempt"] == 0, j
    j = agent.wait_job(job, timeout=30)
    assert j["state"] == "succeeded", j
    log = agent.ws_log(job, 1).decode()
    assert "resumed resume=1 from step-7" in log, log
    assert "fresh" not in log, log


def test_spec_field_resume_from(workspace, agent):
    """Scenario: the spec field itself, through the API.  Pass: the job
    resumes as with the CLI option."""
    first, _ = timed_out_with_checkpoint(workspace, agent)
    job = workspace.submit(name="api-resume", command=["sh", "-c", JOB],
                           checkpoint={"resume_from": first})
    j = agent.wait_job(job, timeout=30)
    assert j["state"] == "succeeded", j
    assert "resumed resume=1 from step-7" in agent.ws_log(job, 1).decode()


def test_resume_from_a_job_without_checkpoint_is_refused(workspace):
    """Scenario: --resume-from a job that kept no checkpoint, or no such
    job, or not a job id.  Pass: refused before anything is stored (400
    naming checkpoint.resume_from; CLI exit 2 for a bad id), no job made."""
    plain = workspace.submit(name="plain", command=["true"])
    for bad in (plain, 99999):
        st, _, b = workspace.api("POST", "/api/v1/jobs", json={
            "name": "x", "command": ["true"],
            "checkpoint": {"resume_from": bad}})
        assert st == 400, b
        assert b["error"]["field"] == "checkpoint.resume_from", b
        assert f"job {bad} has no kept checkpoint" in b["error"]["message"]
    st, _, b = workspace.api("POST", "/api/v1/jobs", json={
        "name": "x", "command": ["true"], "checkpoint": {"resume_from": "1"}})
    assert st == 400 and "checkpoint.resume_from" in b["error"]["message"], b
    r = tether(workspace, "submit", spec_file(), "--resume-from", "abc")
    assert r.returncode == 2 and "--resume-from 'abc'" in r.stderr, r.stderr
    r = tether(workspace, "submit", spec_file(), "--resume-from", str(plain))
    assert r.returncode != 0 and "no kept checkpoint" in r.stderr, r.stderr
    st, _, b = workspace.api("GET", "/api/v1/jobs")
    assert [j["id"] for j in b["jobs"]] == [plain], b
