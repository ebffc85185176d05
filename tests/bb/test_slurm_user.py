"""A Slurm job runs as the job user, never as root (issue 28).

With no slurm.shared_dir set (the default), the launcher stages each attempt
in <state_dir>-slurm/<job>/<attempt>/ beside the state directory, which stays
0700 and root's: the work dir, a restored checkpoint and empty outputs go
there, owned by the job user, sbatch gets --uid/--gid, and outputs and
checkpoints come back into the attempt when the job ends; then the staging
directory is removed (docs/slurm.md, "Staging directory")."""
import os
import pwd
import stat

from harness import slurm
from harness.common import Proc, binary, run, tmpdir, wait_until
from harness.life import snapshot
from harness.runner import JOB_USER, ensure_job_user


def test_slurm_job_id_u_is_the_job_users(slurm_cluster):
    ensure_job_user()
    user = pwd.getpwnam(JOB_USER)
    state = tmpdir("tether-slurm-state-")
    d = slurm.make_attempt(state, "U1", {
        "command": ["/bin/sh", "-c",
                    'id -u; id -g; echo made > "$TETHER_OUTPUTS/made.txt"; '
                    "while [ ! -e release ]; do sleep 0.05; done"]})
    runner = slurm.start_runner(slurm_cluster, d)
    job_id = slurm.slurm_job_id(d)
    wait_until(lambda: slurm_cluster.job(job_id).get("JobState") == "RUNNING",
               30, what="Slurm job RUNNING")
    assert slurm_cluster.job(job_id)["UserId"].startswith(JOB_USER + "(")
    # The state dir stays 0700 and root's; the job's own dir is the job
    # user's, its job dir only passable (0711).
    st = os.stat(state)
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o700, 0)
    place = slurm.stage_dir(d)
    st = os.stat(place)
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o700, user.pw_uid)
    st = os.stat(os.path.dirname(place))
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o711, 0)
    open(os.path.join(slurm.work_dir(d), "release"), "w").close()
    res = slurm.wait_result(d, 60, runner)
    assert res["reason"] == "succeeded", res
    assert slurm.job_output(d, job_id) == (
        "%d\n%d\n" % (user.pw_uid, user.pw_gid)).encode()
    with open(os.path.join(d, "outputs", "made.txt")) as f:
        assert f.read() == "made\n"
    assert [o["path"] for o in res["outputs"]] == ["made.txt"]
    # Cleanup: the attempt's staging dir and its (now empty) job dir.
    assert not os.path.exists(place)
    assert not os.path.exists(os.path.dirname(place))
    assert runner.stop() == 0


def test_slurm_checkpoint_restored_and_copied_back(slurm_cluster):
    """A requeued attempt's checkpoint reaches the job in its staging dir,
    and what the job leaves in /tether/checkpoints is what the attempt
    keeps (a file it removed is gone) for the agent to pack."""
    ensure_job_user()
    d = slurm.make_attempt(tmpdir("tether-slurm-state-"), "U2", {
        "command": ["/bin/sh", "-c",
                    'cat "$TETHER_CHECKPOINTS/step.txt"; '
                    'echo "resume=$TETHER_RESUME"; '
                    'echo 4 > "$TETHER_CHECKPOINTS/step.txt"; '
                    'rm "$TETHER_CHECKPOINTS/old.txt"']}, attempt=2)
    with open(os.path.join(d, "checkpoint.tar.gz"), "wb") as f:
        f.write(snapshot({"step.txt": b"3\n", "old.txt": b"stale\n"}))
    runner = slurm.start_runner(slurm_cluster, d)
    res = slurm.wait_result(d, 60, runner)
    assert res["reason"] == "succeeded", res
    job_id = slurm.slurm_job_id(d)
    assert slurm.job_output(d, job_id) == b"3\nresume=1\n"
    ck = os.path.join(d, "checkpoints")
    assert sorted(os.listdir(ck)) == ["step.txt"]
    with open(os.path.join(ck, "step.txt")) as f:
        assert f.read() == "4\n"
    assert not os.path.exists(slurm.stage_dir(d))
    # The agent packs it from the attempt dir as for any launcher.
    run([binary("tether-runner"), "pack-checkpoint", d])
    assert [n for n in os.listdir(d) if n.startswith("checkpoint-out.")]
    assert runner.stop() == 0


def _venv_attempt(state, job, **settings):
    return slurm.make_attempt(state, job, {
        "environment": {"kind": "venv"},
        "command": ["python", "-c", "import os, sys; "
                    "print(os.getuid(), sys.prefix)"]}, **settings)


def test_slurm_env_the_job_user_cannot_enter_is_launch_failed(slurm_cluster):
    """The default env_dir is inside the 0700 state dir: a Slurm job (the
    job user's) could not use its venv there, and Slurm would only say
    JobLaunchFailure; the attempt ends launch_failed naming the fix."""
    ensure_job_user()
    state = tmpdir("tether-slurm-state-")
    # the agent's default env_dir (<state_dir>/envs; the runner's own
    # default is a fixed path outside the test's temp dirs)
    d = _venv_attempt(state, "U3", env_dir=os.path.join(state, "envs"))
    res = slurm.wait_result(d, 120, slurm.start_runner(slurm_cluster, d))
    assert res["reason"] == "launch_failed", res
    assert "the job's environment: the job user (uid %d) cannot enter %s" % (
        pwd.getpwnam(JOB_USER).pw_uid, state) in res["message"], res
    assert "env_dir" in res["message"], res
    assert not os.path.exists(slurm.stage_dir(d))


def test_slurm_job_uses_a_venv_in_an_env_dir_it_can_enter(slurm_cluster):
    """env_dir outside the state dir (as docs/slurm.md says to set it)."""
    ensure_job_user()
    envs = tmpdir("tether-slurm-envs-")
    os.chmod(envs, 0o711)
    d = _venv_attempt(tmpdir("tether-slurm-state-"), "U4", env_dir=envs)
    runner = slurm.start_runner(slurm_cluster, d)
    res = slurm.wait_result(d, 120, runner)
    assert res["reason"] == "succeeded", (res, slurm.read_bytes(
        os.path.join(d, "log")))
    uid, prefix = slurm.job_output(d, slurm.slurm_job_id(d)).split()
    assert int(uid) == pwd.getpwnam(JOB_USER).pw_uid
    assert prefix.decode().startswith(envs + "/")


def test_slurm_files_the_job_swaps_for_links_are_not_read(slurm_cluster):
    """The staging directory is the job user's: a job that replaces
    slurm.out with a symlink to a root-only file while its runner is down
    gets nothing of that file into the log (the restarted runner reads the
    staging files without following links)."""
    ensure_job_user()
    secret_dir = tmpdir("tether-slurm-secret-")
    secret = os.path.join(secret_dir, "root-only")
    with open(secret, "w") as f:
        f.write("ROOT-ONLY-BYTES 12\n" * 50)
    os.chmod(secret, 0o600)
    os.chmod(secret_dir, 0o711)
    d = slurm.make_attempt(tmpdir("tether-slurm-state-"), "U5", {
        "command": ["/bin/sh", "-c",
                    "echo up; while [ ! -e swap ]; do sleep 0.05; done; "
                    "rm -f ../slurm.out; ln -s %s ../slurm.out; "
                    "touch swapped; "
                    "while [ ! -e release ]; do sleep 0.05; done" % secret]})
    runner = slurm.start_runner(slurm_cluster, d)
    job_id = slurm.slurm_job_id(d)
    wait_until(lambda: b"up\n" in slurm.read_bytes(os.path.join(d, "log")),
               30, what="the job's first line")
    runner.kill9()
    work = slurm.work_dir(d)
    open(os.path.join(work, "swap"), "w").close()
    wait_until(lambda: os.path.exists(os.path.join(work, "swapped")), 30,
               what="the job to swap its files for links")
    runner = slurm.start_runner(slurm_cluster, d)
    open(os.path.join(work, "release"), "w").close()
    res = slurm.wait_result(d, 60, runner)
    assert b"ROOT-ONLY" not in slurm.read_bytes(os.path.join(d, "log"))
    assert res["reason"] == "succeeded", res
    assert slurm.jobs_in_dir(slurm_cluster, work) == [job_id]


def test_slurm_outputs_come_back_as_the_job_user(slurm_cluster):
    """Outputs are copied back by the job user, never read by root on its
    behalf: a file the job made unreadable (mode 000) is not copied, and the
    attempt ends outputs_failed naming it, its staging directory kept."""
    ensure_job_user()
    d = slurm.make_attempt(tmpdir("tether-slurm-state-"), "U6", {
        "command": ["/bin/sh", "-c",
                    'echo fine > "$TETHER_OUTPUTS/ok.txt"; '
                    'echo hidden > "$TETHER_OUTPUTS/locked.txt"; '
                    'chmod 000 "$TETHER_OUTPUTS/locked.txt"']})
    res = slurm.wait_result(d, 60, slurm.start_runner(slurm_cluster, d))
    assert res["reason"] == "outputs_failed", res
    assert "locked.txt" in res["message"], res
    assert not os.path.exists(os.path.join(d, "outputs", "locked.txt"))
    assert os.path.isdir(slurm.stage_dir(d))


def test_retention_removes_a_staging_dir_left_behind(workspace, agent_factory,
                                                     slurm_cluster,
                                                     monkeypatch):
    """A staging directory its runner kept (the copy back failed) goes with
    the attempt directory when the agent's retention removes that."""
    ensure_job_user()
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.conf)
    # retention of seconds instead of 7 days, so that the test sees it
    ag = agent_factory(default_launcher="slurm", attempt_retention="4s",
                       housekeeping_interval="1s").start()
    job = workspace.submit(name="kept", command=[
        "/bin/sh", "-c", 'echo x > "$TETHER_OUTPUTS/locked"; '
        'chmod 000 "$TETHER_OUTPUTS/locked"'])
    j = ag.wait_job(job, timeout=60)
    assert j["attempts"][-1]["reason"] == "outputs_failed", j
    place = slurm.stage_dir(ag.attempt_dir(job))
    assert os.path.isdir(place)
    wait_until(lambda: not os.path.exists(ag.attempt_dir(job)), 30,
               what="retention to remove the attempt directory")
    assert not os.path.exists(place)
    assert not os.path.exists(os.path.dirname(place))


def test_slurm_disk_budget_counts_the_staging_dir(slurm_cluster):
    """resources.disk covers what the job writes in its staging directory
    (where it runs), as it covers the attempt's work dir for the sandbox."""
    ensure_job_user()
    d = slurm.make_attempt(tmpdir("tether-slurm-state-"), "U7", {
        "command": ["/bin/sh", "-c",
                    "head -c 16000000 /dev/zero > fill; echo filled; "
                    "while :; do sleep 0.05; done"],
        "resources": {"disk": "4M"}, "timeout": "2m"},
        disk_check_ms=200)  # measured often, so the test ends in seconds
    res = slurm.wait_result(d, 60, slurm.start_runner(slurm_cluster, d))
    assert res["reason"] == "disk_limit", res


def test_slurm_staging_dirs_passable_under_umask_077(slurm_cluster):
    """A runner started with umask 077 (an admin's hardened shell) still
    makes <stage> and <stage>/<job> 0711: else the job user could not reach
    its directory and Slurm would say only JobLaunchFailure."""
    ensure_job_user()
    d = slurm.make_attempt(tmpdir("tether-slurm-state-"), "U8", {
        "command": ["/bin/sh", "-c", "id -u"]})
    runner = Proc(["/bin/sh", "-c", 'umask 077; exec "$0" run "$1"',
                   binary("tether-runner"), d],
                  os.path.join(os.path.dirname(d), "runner.out"),
                  env=slurm_cluster.env)
    res = slurm.wait_result(d, 60, runner)
    assert res["reason"] == "succeeded", res
    assert slurm.job_output(d, slurm.slurm_job_id(d)) == b"%d\n" % (
        pwd.getpwnam(JOB_USER).pw_uid)
    root = os.path.dirname(os.path.dirname(slurm.stage_dir(d)))
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o711
