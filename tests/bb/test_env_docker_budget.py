"""Docker environments under env_budget_bytes: a docker environment is
listed in the env cache (kind docker, the image's size) and evicted like a
venv when over budget, which removes its tether-env image; dangling images
Tether built (label tether.env, untagged) are pruned in the same pass.
Against the real engine (docker_engine / docker_base fixtures)."""
import json
import os
import subprocess
import uuid

from harness import dockerd
from harness import runner as hr


def run_job(job, state, budget):
    dockerfile = "FROM tether-test-base:bookworm\nRUN echo %s > /env.txt\n" % (
        uuid.uuid4().hex)  # a key no other run has built
    d = dockerd.docker_attempt(["cat", "/env.txt"], dockerfile=dockerfile,
                               job=job, state=state,
                               runner={"env_budget_bytes": budget})
    r = hr.run_runner(d, timeout=300)
    res = hr.result(d)
    assert res["reason"] == "succeeded", (res, r.stderr, hr.log(d)[-2000:])
    key = [e for e in hr.events(d) if e["type"] == "phase" and
           e["phase"] == "env" and e["state"] == "end"][0]["env_key"]
    return d, key


def dangling_image():
    """An untagged image labelled tether.env, as an abandoned or replaced
    Tether build leaves behind."""
    env = dict(os.environ, DOCKER_API_VERSION=dockerd.api_version(),
               DOCKER_HOST="unix://" + dockerd.SOCKET)
    df = ("FROM tether-test-base:bookworm\nLABEL tether.env=test\n"
          "RUN echo %s > /x\n" % uuid.uuid4().hex)
    out = subprocess.run(["docker", "build", "-q", "-"], input=df, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_docker_env_counted_evicted_and_dangling_pruned(docker_base):
    state = hr.state_dir()
    env_dir = os.path.join(state, "envs")
    d1, k1 = run_job("B1", state, 1)  # in use while it ran: kept
    assert dockerd.image_exists("tether-env:" + k1)
    with open(os.path.join(env_dir, ".meta", k1 + ".json")) as f:
        meta = json.load(f)
    assert meta["kind"] == "docker" and meta["size_bytes"] > 1 << 20, meta
    listed = subprocess.run([hr.binary("tether-runner"), "envs", "--env-dir",
                             env_dir, "--json"], capture_output=True,
                            text=True, timeout=30)
    assert k1 in listed.stdout, listed
    dangling = dangling_image()
    assert dockerd.image_exists(dangling)

    d2, k2 = run_job("B2", state, 1)
    log2 = hr.log(d2).decode()
    assert "[env] evicted 1 unused environment(s)" in log2, log2
    assert "[env] pruned" in log2 and "dangling tether-env image" in log2
    assert not dockerd.image_exists("tether-env:" + k1), "evicted, kept"
    assert not os.path.exists(os.path.join(env_dir, k1))
    assert not dockerd.image_exists(dangling), "dangling image kept"
    assert dockerd.image_exists("tether-env:" + k2)  # the one in use
    dockerd.remove_env_images("tether-env:" + k2)


def test_no_budget_keeps_images(docker_base):
    state = hr.state_dir()
    d1, k1 = run_job("B3", state, 0)
    dangling = dangling_image()
    d2, k2 = run_job("B4", state, 0)
    assert dockerd.image_exists("tether-env:" + k1)
    assert dockerd.image_exists(dangling)
    assert "evicted" not in hr.log(d2).decode()
    dockerd.api("DELETE", "/images/%s" % dangling)
    dockerd.remove_env_images("tether-env:" + k1, "tether-env:" + k2)
