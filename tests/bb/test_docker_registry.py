"""Images from a registry that wants credentials (Debian's docker-registry
with htpasswd on loopback): pulled with the job's registry secret, progress
summarised in the log as [env] lines, and a clear env_failed with wrong
credentials."""
import pytest

from harness import dockerd
from harness import runner as hr


@pytest.fixture(scope="module")
def registry_image(docker_base):
    reg = dockerd.Registry()
    ref = reg.push(docker_base, "tether/base", "bookworm")
    yield reg, ref
    dockerd.api("DELETE", "/images/%s?force=1" % ref)
    reg.stop()


def job(ref, secret, jobid):
    dockerd.api("DELETE", "/images/%s?force=1" % ref)  # must be pulled
    assert not dockerd.image_exists(ref)
    d = dockerd.docker_attempt(
        ["python3", "-c", "print('from the registry')"], job=jobid,
        spec={"environment": {"kind": "docker", "image": ref,
                              "registry_secret": "REGISTRY"},
              "secrets": {"REGISTRY": secret}})
    r = hr.run_runner(d, timeout=300)
    return d, hr.result(d), hr.log(d).decode(errors="replace"), r


def test_pull_with_credentials_from_secret(registry_image):
    reg, ref = registry_image
    d, res, log, r = job(ref, "%s:%s" % (reg.user, reg.password), "D-reg")
    assert res["reason"] == "succeeded", (res, r.stderr, log)
    assert "[env] pulling %s (with registry credentials)" % ref in log
    assert "[env] pulled %s:" % ref in log
    assert "from the registry\n" in log
    assert reg.password not in log
    assert dockerd.image_exists(ref)


def test_wrong_credentials_fail_clearly(registry_image):
    reg, ref = registry_image
    d, res, log, r = job(ref, "%s:wrong-password" % reg.user, "D-regbad")
    assert res["reason"] == "env_failed", res
    assert "check the registry secret" in res["message"], res
    assert ref in res["message"]
    assert "wrong-password" not in log
    assert not dockerd.image_exists(ref)


def test_missing_secret_is_named(registry_image):
    reg, ref = registry_image
    dockerd.api("DELETE", "/images/%s?force=1" % ref)
    d = dockerd.docker_attempt(
        ["true"], job="D-regmiss",
        spec={"environment": {"kind": "docker", "image": ref,
                              "registry_secret": "NOPE"}})
    hr.run_runner(d, timeout=120)
    res = hr.result(d)
    assert res["reason"] == "env_failed"
    assert "no secret named 'NOPE'" in res["message"], res
