"""A real Docker engine for the black-box tests.

Uses the engine on /var/run/docker.sock when it answers /_ping; otherwise
starts `dockerd` on that socket (cgroup v1 hybrid works) and stops it at exit
only if this process started it.  The docker CLI on PATH is newer than
Debian's engine, so every CLI call goes through `cli()`, which pins
DOCKER_API_VERSION to the engine's."""
import atexit
import http.client
import json
import os
import socket
import subprocess
import time

from harness.common import Proc, run, wait_until

SOCKET = os.environ.get("TETHER_TEST_DOCKER_SOCKET", "/var/run/docker.sock")
LOG = "/var/log/tether-test-dockerd.log"

_started = None


class _UnixConn(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def api(method, path, body=None, sock=SOCKET, timeout=30, headers=None):
    """One Engine API request; returns (status, parsed JSON or bytes)."""
    c = _UnixConn(sock, timeout)
    try:
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=hdrs)
        resp = c.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw
    finally:
        c.close()


def ping(sock=SOCKET):
    try:
        st, body = api("GET", "/_ping", sock=sock, timeout=2)
        return st == 200
    except OSError:
        return False


def api_version(sock=SOCKET):
    st, v = api("GET", "/version", sock=sock)
    return v["ApiVersion"]


def _dockerd_running():
    """True when some dockerd process exists (ours or the system's)."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/comm" % pid) as f:
                    if f.read().strip() == "dockerd":
                        with open("/proc/%s/stat" % pid) as st:
                            if st.read().rsplit(")", 1)[1].split()[0] != "Z":
                                return True
            except OSError:
                pass
    return False


def ensure_dockerd(timeout=60):
    """Return the socket of an answering engine, starting dockerd if needed.
    A busy engine gets time to answer; a running dockerd is never replaced
    (its socket is never removed)."""
    global _started
    if ping():
        return SOCKET
    if os.path.exists(SOCKET) or _dockerd_running():
        try:
            wait_until(ping, 20, interval=0.2, what="dockerd /_ping")
            return SOCKET
        except TimeoutError:
            if _dockerd_running():
                raise
    if _started is None or not _started.alive():
        if os.path.exists(SOCKET):
            os.unlink(SOCKET)  # stale socket, no daemon behind it
        _started = Proc(["dockerd", "--host", "unix://" + SOCKET,
                         "--pidfile", "/run/tether-test-dockerd.pid"],
                        LOG, new_session=True)
    wait_until(ping, timeout, interval=0.2, what="dockerd /_ping")
    return SOCKET


@atexit.register
def _stop_dockerd():
    if _started is not None and _started.alive():
        _started.stop(timeout=20)


def cli(*args, check=True, timeout=300, **kw):
    """Run the docker CLI against the test engine with its API version."""
    env = dict(os.environ)
    env["DOCKER_API_VERSION"] = api_version()
    env["DOCKER_HOST"] = "unix://" + SOCKET
    return run(["docker", *args], check=check, timeout=timeout, env=env, **kw)


def containers(label):
    """Containers (all states) carrying a label filter like tether.job=42."""
    q = json.dumps({"label": [label]})
    from urllib.parse import quote
    st, lst = api("GET", "/containers/json?all=1&filters=" + quote(q))
    assert st == 200, lst
    return lst


def image_exists(ref):
    st, _ = api("GET", "/images/%s/json" % ref)
    return st == 200


def remove_images(prefix):
    """Remove images whose tags start with prefix (e.g. tether-env:)."""
    st, imgs = api("GET", "/images/json")
    for img in imgs or []:
        for tag in img.get("RepoTags") or []:
            if tag.startswith(prefix):
                api("DELETE", "/images/%s?force=1" % tag)


DOCKERFILE = "FROM tether-test-base:bookworm\nRUN echo built > /built.txt\n"


def docker_attempt(command, files=None, dockerfile=DOCKERFILE, job="D1",
                   attempt=1, state=None, spec=None, runner=None):
    """An attempt dir whose job runs `command` in the docker launcher, in an
    environment built from the Dockerfile of a git source holding files."""
    from harness import gitserver
    from harness import runner as hr
    root = state or hr.state_dir()
    repo_files = {"Dockerfile": dockerfile}
    repo_files.update(files or {})
    bare, ids, _ = gitserver.make_repo(os.path.join(root, "repos-%s" % job),
                                       files=repo_files)
    settings = {"launcher": "docker", "docker_socket": SOCKET,
                "agent_id": "test-agent"}
    settings.update(runner or {})
    full = {"source": {"git": {"url": bare, "commit": ids[-1]}},
            "environment": {"kind": "docker", "dockerfile": "Dockerfile"},
            "launcher": "docker"}
    full.update(spec or {})
    d = hr.make_attempt(command, job=job, attempt=attempt, state=root,
                        runner=settings, **full)
    _attempts.append(d)
    return d


_attempts = []


@atexit.register
def _remove_test_containers():
    """Containers a failed test left behind (its runner killed at exit)."""
    for d in _attempts:
        try:
            for c in containers("tether.dir=" + d):
                api("DELETE", "/containers/%s?force=1" % c["Id"])
        except Exception:
            pass


def container_of(d):
    """The container id recorded in an attempt's state.json."""
    with open(os.path.join(d, "state.json")) as f:
        return json.load(f).get("launcher_ref") or ""


def container_exists(cid):
    st, _ = api("GET", "/containers/%s/json" % cid)
    return st == 200


def registry_auth(user, password, server):
    """An X-Registry-Auth header value."""
    import base64
    doc = {"username": user, "password": password, "serveraddress": server}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


class Registry:
    """Debian's docker-registry on a loopback port with htpasswd auth."""

    def __init__(self, user="tether", password="s3cret-pw"):
        from harness.common import free_port, tmpdir, wait_port
        self.user, self.password = user, password
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.dir = tmpdir("tether-registry-")
        htpasswd = os.path.join(self.dir, "htpasswd")
        run(["htpasswd", "-Bbc", htpasswd, user, password])
        conf = os.path.join(self.dir, "config.yml")
        with open(conf, "w") as f:
            f.write("version: 0.1\n"
                    "storage:\n  filesystem:\n    rootdirectory: %s/data\n"
                    "http:\n  addr: %s\n"
                    "auth:\n  htpasswd:\n    realm: tether-test\n"
                    "    path: %s\n" % (self.dir, self.addr, htpasswd))
        self.proc = Proc(["docker-registry", "serve", conf],
                         os.path.join(self.dir, "registry.log"))
        wait_port(self.port, timeout=20)

    def push(self, image, repo, tag):
        """Tag a local image as addr/repo:tag and push it with credentials;
        returns the remote reference."""
        ref = "%s/%s" % (self.addr, repo)
        st, body = api("POST", "/images/%s/tag?repo=%s&tag=%s" % (image, ref, tag))
        assert st == 201, body
        auth = registry_auth(self.user, self.password, self.addr)
        st, body = api("POST", "/images/%s/push?tag=%s" % (ref, tag),
                       headers={"X-Registry-Auth": auth}, timeout=600)
        assert st == 200 and b'"error"' not in (body if isinstance(body, bytes)
                                               else b""), body
        return "%s:%s" % (ref, tag)

    def stop(self):
        self.proc.stop()


def remove_env_images(*logs):
    """Remove the tether-env images a job log says were built (tests whose
    Dockerfiles are unique to the run clean up after themselves)."""
    import re
    for log in logs:
        if isinstance(log, bytes):
            log = log.decode(errors="replace")
        for key in set(re.findall(r"tether-env:([0-9a-f]{64})", log)):
            for tag in (key, key + "-base"):
                api("DELETE", "/images/tether-env:%s" % tag)
