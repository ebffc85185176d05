"""pytest configuration: make the harness importable and load every
harness/fixtures_*.py module's fixtures."""
import glob
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

for _path in sorted(glob.glob(os.path.join(os.path.dirname(__file__), "harness",
                                           "fixtures_*.py"))):
    _mod = importlib.import_module("harness." + os.path.basename(_path)[:-3])
    globals().update({k: v for k, v in vars(_mod).items() if not k.startswith("_")})


import pwd as _pwd
import subprocess as _subprocess

import pytest as _pytest


@_pytest.fixture(autouse=True)
def _job_user_exists():
    """Jobs run as tether-job; a test that uninstalls with --purge removes the
    user, so make sure it exists before every test (cheap when it does)."""
    try:
        _pwd.getpwnam("tether-job")
    except KeyError:
        # exit 9: another process (a parallel run's install test) made it
        # between the lookup and here; that is as good
        r = _subprocess.run(["useradd", "--system", "--no-create-home",
                             "--shell", "/usr/sbin/nologin", "tether-job"])
        if r.returncode not in (0, 9):
            raise RuntimeError("useradd tether-job: exit %d" % r.returncode)
    yield


@_pytest.fixture(autouse=True)
def _agent_cgroups_removed():
    """After each test, the cgroup parents of its agents that have exited."""
    yield
    from harness.agent import remove_dead_cgroup_parents
    remove_dead_cgroup_parents()


def pytest_sessionfinish(session, exitstatus):
    from harness.agent import remove_dead_cgroup_parents
    remove_dead_cgroup_parents(end=True)
