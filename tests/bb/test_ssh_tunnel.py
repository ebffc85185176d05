"""The SSH tunnel (transport/ssh-tunnel*.c) against a real OpenSSH sshd:
host key checks before any authentication, key types, clear errors, and
several HTTP streams at once over one SSH connection.

The C driver tests/unit/test_transport_ssh_tunnel.c opens the tunnel and, in
"concurrent" mode, runs the agent's HTTP client (transport/http.c) over it."""
import hashlib
import http.server
import json
import os
import subprocess
import threading
import time

import pytest

from harness.common import BUILD_DIR, tmpdir

DRIVER = os.path.join(BUILD_DIR, "tests", "test_transport_ssh_tunnel")
MB = 1 << 20


class Recorder(http.server.ThreadingHTTPServer):
    """A loopback HTTP server that records every request it gets.
    GET /poll is held until POST /upload has received 8 MiB (a long-poll
    that can only end while the upload is in flight); POST /upload reads
    the whole body and answers its size and sha256."""
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests = []
        self.received = 0
        self.lock = threading.Condition()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.server_address[1]

    def stop(self):
        self.shutdown()
        self.server_close()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        srv = self.server
        srv.requests.append(("GET", self.path, dict(self.headers)))
        with srv.lock:
            srv.lock.wait_for(lambda: srv.received >= 8 * MB, timeout=30)
            seen = srv.received
        self.reply({"upload_bytes_at_reply": seen})

    def do_POST(self):
        srv = self.server
        srv.requests.append(("POST", self.path, dict(self.headers)))
        left = int(self.headers.get("Content-Length", "0"))
        h = hashlib.sha256()
        while left > 0:
            chunk = self.rfile.read(min(left, 256 * 1024))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
            with srv.lock:
                srv.received += len(chunk)
                srv.lock.notify_all()
        self.reply({"size": srv.received, "sha256": h.hexdigest()})


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.stop()


def drive(sshd, mode="open", key="ed25519", known_hosts=True, pin=None,
          passfile=None, remote_port=None, timeout=120, **env):
    if not os.access(DRIVER, os.X_OK):
        pytest.fail(f"{DRIVER} not built (cmake --build ... --target "
                    "test_transport_ssh_tunnel)")
    e = dict(os.environ, TETHER_SSH_URL=sshd.url, TETHER_SSH_MODE=mode,
             TETHER_SSH_KEY=sshd.keys[key])
    if known_hosts is True:
        e["TETHER_SSH_KNOWN_HOSTS"] = sshd.known_hosts()
    elif known_hosts:
        e["TETHER_SSH_KNOWN_HOSTS"] = known_hosts
    if pin:
        e["TETHER_SSH_PIN"] = pin
    if passfile:
        e["TETHER_SSH_PASSFILE"] = passfile
    if remote_port:
        e["TETHER_SSH_REMOTE_PORT"] = str(remote_port)
    e.update(env)
    return subprocess.run([DRIVER], env=e, capture_output=True, text=True,
                          timeout=timeout)


def empty_known_hosts():
    path = os.path.join(tmpdir("tether-kh-"), "known_hosts")
    open(path, "w").close()
    return path


def test_unknown_host_key_refused_before_authentication(sshd, recorder):
    r = drive(sshd, known_hosts=empty_known_hosts(), remote_port=recorder.port)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "unknown host key " + sshd.fingerprint() in r.stdout
    assert "refusing before authentication" in r.stdout
    # No authentication was even attempted, and nothing reached the far side.
    assert sshd.auth_attempts() == [], sshd.auth_attempts()
    assert recorder.requests == []


def test_pinned_fingerprint_admits_unknown_key(sshd):
    r = drive(sshd, known_hosts=empty_known_hosts(), pin=sshd.fingerprint())
    assert r.returncode == 0, r.stdout + r.stderr
    other = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    r = drive(sshd, known_hosts=empty_known_hosts(), pin=other)
    assert r.returncode == 1
    assert "does not match the pinned fingerprint " + other in r.stdout
    assert sshd.fingerprint() in r.stdout


def test_changed_host_key_refused_even_when_pinned(sshd, recorder):
    known = sshd.known_hosts()
    old = sshd.fingerprint()
    sshd.rotate_host_key()
    new = sshd.fingerprint()
    assert old != new
    for pin in (None, new):
        r = drive(sshd, known_hosts=known, pin=pin, remote_port=recorder.port)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "HOST KEY CHANGED" in r.stdout
        assert new in r.stdout and old in r.stdout, r.stdout
    assert sshd.auth_attempts() == [], sshd.auth_attempts()
    assert recorder.requests == []


def test_wrong_client_key_is_a_clear_auth_error(sshd, recorder):
    r = drive(sshd, key="stranger", remote_port=recorder.port)
    assert r.returncode == 1
    assert "ERROR auth:" in r.stdout
    assert "authentication refused" in r.stdout
    assert sshd.keys["stranger"] in r.stdout
    assert sshd.accepted() == []
    assert recorder.requests == []


def test_missing_passphrase_is_a_clear_error(sshd):
    r = drive(sshd, key="ed25519_pass")
    assert r.returncode == 1
    assert "cannot use private key" in r.stdout and "passphrase" in r.stdout
    assert sshd.auth_attempts() == []  # the key never left the host


@pytest.mark.parametrize("key", ["ed25519", "rsa", "ed25519_pass"])
def test_key_types(sshd, key):
    r = drive(sshd, key=key,
              passfile=sshd.passfile if key == "ed25519_pass" else None)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(sshd.accepted()) == 1


def expected_sha256(mb):
    import numpy as np
    j = np.arange(65536, dtype=np.int64) * 7
    h = hashlib.sha256()
    for i in range(mb * 16):
        h.update(((i * 131 + j) & 0xff).astype(np.uint8).tobytes())
    return h.hexdigest()


def test_long_poll_and_50mb_upload_at_once_over_one_connection(sshd, recorder):
    t0 = time.monotonic()
    r = drive(sshd, mode="concurrent", remote_port=recorder.port,
              TETHER_SSH_UPLOAD_MB="50")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    lines = [ln.split(" ", 3) for ln in r.stdout.splitlines()[1:]]
    assert [ln[0] for ln in lines] == ["poll", "upload"], r.stdout
    poll, upload = json.loads(lines[0][3]), json.loads(lines[1][3])
    # The long-poll was answered while the upload was still in flight ...
    assert 8 * MB <= poll["upload_bytes_at_reply"] < 50 * MB, r.stdout
    # ... and every byte of the upload arrived intact.
    assert upload["size"] == 50 * MB
    assert upload["sha256"] == expected_sha256(50)
    assert len(sshd.accepted()) == 1  # one SSH connection carried both
    assert time.monotonic() - t0 < 60


def test_rsa_only_host_key_gets_a_clear_handshake_error():
    """Debian 12's libssh2 (1.10) has no rsa-sha2-* host key algorithms and
    OpenSSH 9 no longer offers ssh-rsa: say so instead of a bare failure."""
    from harness.sshd import Sshd
    s = Sshd(host_key_type="rsa").start()
    try:
        r = drive(s)
        if r.returncode == 0:
            pytest.skip("this libssh2 speaks rsa-sha2 host keys")
        assert "no key exchange or host key algorithm in common" in r.stdout
        assert "ed25519 host key" in r.stdout
        assert s.auth_attempts() == []
    finally:
        s.stop()


def test_known_key_type_is_negotiated_and_hashed_entries_work():
    """A server with an ECDSA and an ed25519 host key, known_hosts naming
    only the ed25519 one: the client must ask for ed25519 (else the ECDSA
    key would look like a changed key); hashed entries work the same."""
    from harness.sshd import Sshd, fingerprint_of, keygen
    s = Sshd()
    ecdsa = keygen(os.path.join(s.dir, "ssh_host_ecdsa"), "ecdsa",
                   comment="host2")
    s.extra_config += f"\nHostKey {ecdsa}\n"
    s._write_config()
    s.start()
    try:
        kh = s.known_hosts()
        r = drive(s, known_hosts=kh)
        assert r.returncode == 0, r.stdout + r.stderr
        assert s.fingerprint() in r.stderr  # the ed25519 key was used
        subprocess.run(["ssh-keygen", "-q", "-H", "-f", kh], check=True,
                       capture_output=True)
        with open(kh) as f:
            assert f.read().startswith("|1|")
        r = drive(s, known_hosts=kh)
        assert r.returncode == 0, r.stdout + r.stderr
        # And the other way round (one of the two orders is not libssh2's
        # default, so this pair fails without the preference).
        with open(ecdsa + ".pub") as f:
            kind, blob = f.read().split()[:2]
        with open(kh, "w") as f:
            f.write(f"[127.0.0.1]:{s.port} {kind} {blob}\n")
        r = drive(s, known_hosts=kh)
        assert r.returncode == 0, r.stdout + r.stderr
        assert fingerprint_of(ecdsa + ".pub") in r.stderr
    finally:
        s.stop()
