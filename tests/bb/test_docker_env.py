"""Docker environments: the image built from a Dockerfile is tagged
tether-env:<key> and the second job with the same Dockerfile (and context,
.dockerignore'd files aside) reuses it without a rebuild; the context
honours .dockerignore; an image can also be used by name."""
import os
import re

from harness import dockerd
from harness import runner as hr

DOCKERFILE = """FROM tether-test-base:bookworm
COPY . /ctx
RUN touch /ctx/.built-%s
"""
IGNORE = "secret.txt\nlogs/\n# comment\n"


def run_job(job, extra, state, tag):
    files = {"Dockerfile": DOCKERFILE % tag, ".dockerignore": IGNORE,
             "train.py": "print('hi')\n"}
    files.update(extra)
    d = dockerd.docker_attempt(["sh", "-c", "ls -A /ctx"],
                               files=files, dockerfile=files["Dockerfile"],
                               job=job, state=state)
    r = hr.run_runner(d, timeout=300)
    res = hr.result(d)
    assert res["reason"] == "succeeded", (res, r.stderr, hr.log(d)[-2000:])
    return hr.log(d).decode(errors="replace")


def env_key(log):
    m = re.search(r"\[env\] (?:cache hit: )?(?:building )?docker environment "
                  r"([0-9a-f]{12})", log)
    assert m, log
    return m.group(1)


def test_same_dockerfile_reuses_image(docker_base):
    state = hr.state_dir()
    tag = str(id(state))  # a Dockerfile no other test run has built
    first = run_job("D-env1", {"secret.txt": "one\n"}, state, tag)
    assert "Step 1/" in first, first
    key = env_key(first)
    images = [t for t in _env_tags() if t.startswith("tether-env:" + key)]
    assert len(images) == 1, images
    st, info = dockerd.api("GET", "/images/%s/json" % images[0])
    image_id = info["Id"]
    # Same Dockerfile and context; only ignored files differ.
    second = run_job("D-env2", {"secret.txt": "two\n",
                                "logs/run.log": "noise\n"}, state, tag)
    assert "Step 1/" not in second, second
    assert "cache hit: docker environment " + key in second
    st, info = dockerd.api("GET", "/images/%s/json" % images[0])
    assert info["Id"] == image_id
    # .dockerignore: the secret never reached the image
    for log in (first, second):
        listing = log.split("[env] image", 1)[-1]
        assert "train.py\n" in listing and ".built-" in listing, listing
        assert "secret.txt" not in listing and "logs" not in listing
    dockerd.remove_env_images(first)


def test_context_change_rebuilds(docker_base):
    state = hr.state_dir()
    tag = str(id(state))
    a = env_key(run_job("D-env3", {}, state, tag))
    first = hr.log(os.path.join(state, "jobs", "D-env3", "1"))
    second = run_job("D-env4", {"train.py": "print('changed')\n"}, state, tag)
    assert env_key(second) != a
    assert "Step 1/" in second
    dockerd.remove_env_images(first, second)


def test_image_by_name(docker_base):
    d = dockerd.docker_attempt(
        ["python3", "-c", "print('by name ok')"], job="D-img",
        spec={"environment": {"kind": "docker",
                              "image": "tether-test-base:bookworm"}})
    r = hr.run_runner(d, timeout=120)
    res = hr.result(d)
    assert res["reason"] == "succeeded", (res, r.stderr)
    log = hr.log(d).decode()
    assert "by name ok\n" in log
    key = env_key(log)
    assert any(t.startswith("tether-env:" + key) for t in _env_tags())


def _env_tags():
    st, imgs = dockerd.api("GET", "/images/json")
    return [t for i in imgs for t in (i.get("RepoTags") or [])
            if t.startswith("tether-env:")]


FAKE_PIP_DOCKERFILE = """FROM tether-test-base:bookworm
RUN d=/usr/local/lib/python3.11/dist-packages/pip && mkdir -p $d && \\
    touch $d/__init__.py && \\
    echo 'import sys; open("/pip-args", "w").write(" ".join(sys.argv[1:]))' \\
    > $d/__main__.py
"""


def test_pip_specs_layered_on_dockerfile_image(docker_base):
    """environment with both a Dockerfile and pip specs: the specs are
    layered on the built image (a stand-in pip records its arguments, as
    no package index is reachable here), and the layered image is reused."""
    state = hr.state_dir()
    env = {"kind": "docker", "dockerfile": "Dockerfile",
           "requirements_file": "reqs.txt", "requirements": ["pkg-b==1.0"],
           "pip_options": ["--no-index"]}
    logs = []
    for job in ("D-lay1", "D-lay2"):
        d = dockerd.docker_attempt(
            ["sh", "-c", "cat /pip-args; echo; cat /tether-env/requirements.txt"],
            files={"reqs.txt": "pkg-a>=2\n"},
            dockerfile=FAKE_PIP_DOCKERFILE + "# %s\n" % state,
            job=job, state=state, spec={"environment": env})
        r = hr.run_runner(d, timeout=300)
        res = hr.result(d)
        log = hr.log(d).decode(errors="replace")
        assert res["reason"] == "succeeded", (res, r.stderr, log[-2000:])
        assert ("install --no-cache-dir --no-index -r "
                "/tether-env/requirements.txt pkg-b==1.0\n") in log, log
        assert "pkg-a>=2\n" in log
        logs.append(log)
    assert "[env] layering pip requirements on tether-env:" in logs[0]
    assert "Step 1/" in logs[0] and "Step 1/" not in logs[1]
    assert "cache hit: docker environment " + env_key(logs[0]) in logs[1]
    dockerd.remove_env_images(logs[0])
