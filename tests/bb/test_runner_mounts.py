"""allowed_mounts is one rule for both launchers (runner/allowlist.c): a
data mount is compared resolved, so a symlink inside an allowed directory
that leads out of it (which a job with a read-write mount could plant for
the next job) is refused before anything starts, in the sandbox and in
docker alike."""
import os
import tempfile

import pytest

from harness import dockerd
from harness import runner as hr


def planted(tag):
    data = tempfile.mkdtemp(prefix="tether-data-%s-" % tag, dir="/var/tmp")
    os.symlink("/etc", os.path.join(data, "evil"))
    return data


@pytest.mark.parametrize("launcher", ["sandbox", "docker"])
def test_symlink_out_of_allowed_mount_refused(launcher, request):
    data = planted(launcher)
    mounts = [{"source": os.path.join(data, "evil"), "target": "/data"}]
    allowed = {"allowed_mounts": [{"source": data, "readonly": False}]}
    if launcher == "docker":
        request.getfixturevalue("docker_base")
        d = dockerd.docker_attempt(["cat", "/data/hostname"], job="M1",
                                   spec={"mounts": mounts}, runner=allowed)
    else:
        d = hr.make_attempt(["cat", "/data/hostname"], job="M2",
                            mounts=mounts, runner=allowed)
    r = hr.run_runner(d, timeout=300)
    res = hr.result(d)
    assert res["reason"] == "launch_failed", (res, r.stderr)
    assert "/evil" in res["message"], res
    assert not any(e["type"] == "started" for e in hr.events(d))
    if launcher == "docker":
        assert dockerd.containers("tether.dir=" + d) == []
