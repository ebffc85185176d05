"""pytest fixtures: a real OpenSSH sshd on loopback (harness/sshd.py)."""
import os
import shutil

import pytest

from harness.sshd import SSHD, Sshd


@pytest.fixture
def sshd():
    """A started sshd with its own host key, authorized_keys and client keys
    (sshd.keys); skipped when sshd is missing or the test is not root."""
    if not os.access(SSHD, os.X_OK) or shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH server not installed: run install/deps.sh")
    if os.geteuid() != 0:
        pytest.skip("the sshd harness runs sshd as root")
    s = Sshd().start()
    yield s
    s.stop()
