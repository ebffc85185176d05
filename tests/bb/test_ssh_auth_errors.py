"""When sshd refuses the agent's key, the error names the likelier causes
(a locked account, AllowUsers, the key type), not only authorized_keys; and
the tunnel user made as docs/ssh.md says is one sshd lets in."""
import os
import re
import secrets
import subprocess

import pytest

from harness.common import SOURCE_DIR
from harness.sshd import SSHD, Sshd

from test_ssh_tunnel import drive  # the C driver of the tunnel


def need_sshd():
    if not os.access(SSHD, os.X_OK) or os.geteuid() != 0:
        pytest.skip("needs OpenSSH's sshd and root")


def likely_causes(out):
    for words in ("account is locked", "usermod -p", "AllowUsers",
                  "PubkeyAcceptedAlgorithms", "authorized_keys",
                  "docs/ssh.md"):
        assert words in out, (words, out)


def test_allowusers_refusal_names_the_likely_causes():
    need_sshd()
    s = Sshd(extra_config="AllowUsers nobody").start()
    try:
        r = drive(s)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "authentication refused" in r.stdout
        likely_causes(r.stdout)
    finally:
        s.stop()


def doc_usermod():
    """The command docs/ssh.md gives to unlock the tunnel user."""
    with open(os.path.join(SOURCE_DIR, "docs", "ssh.md")) as f:
        doc = f.read()
    m = re.search(r"^usermod -p '\*' tether\b.*$", doc, re.M)
    assert m, "docs/ssh.md: no 'usermod -p' line for the tunnel user"
    assert re.search(r"^useradd --system .*tether$", doc, re.M), \
        "docs/ssh.md: no useradd line for the tunnel user"
    return ["usermod", "-p", "*"]


def test_locked_system_user_then_the_documented_fix():
    need_sshd()
    user = "ttun" + secrets.token_hex(4)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                    "/usr/sbin/nologin", user], check=True)
    s = None
    try:
        s = Sshd(user=user).start()
        r = drive(s)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "authentication refused" in r.stdout
        assert f"for user '{user}'" in r.stdout
        likely_causes(r.stdout)
        assert "locked" in s.log() or "not allowed" in s.log()
        subprocess.run(doc_usermod() + [user], check=True)
        r = drive(s)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        if s:
            s.stop()
        subprocess.run(["userdel", user], check=False)
