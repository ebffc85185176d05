"""Git servers for the source tests, and a helper that runs one attempt.

- GitHttps: `git http-backend` (real git smart HTTP) behind a small TLS server
  on loopback with a self-signed certificate made by `openssl req`; every
  request must carry HTTP basic auth whose password is the token.
- GitSshd: a real OpenSSH sshd on a loopback port with its own host key and
  an authorized_keys holding a deploy key; git runs git-upload-pack over it.
- make_repo(): a bare repository with a few commits, made with the git CLI.
- run_attempt(): write spec.json for `tether-runner run DIR` and run it.
"""
import atexit
import base64
import http.server
import itertools
import json
import os
import shutil
import ssl
import tempfile
import subprocess
import threading

from harness.common import Proc, binary, free_port, run, tmpdir, wait_port

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


def git(*args, cwd=None):
    env = dict(os.environ)
    env.update(GIT_ENV)
    r = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"git {args}: {r.stderr}")
    return r.stdout.strip()


def make_repo(root, name="repo.git", files=None, commits=1):
    """A bare repo at root/name with `commits` commits on branch main; returns
    (bare path, [commit ids oldest first], work clone path)."""
    bare = os.path.join(root, name)
    work = os.path.join(root, name + ".work")
    git("init", "-q", "--bare", "-b", "main", bare)
    git("init", "-q", "-b", "main", work)
    ids = []
    for i in range(commits):
        for path, text in (files or {"hello.txt": "hello {i}\n"}).items():
            p = os.path.join(work, path)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(text.replace("{i}", str(i)))
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", f"commit {i}", cwd=work)
        ids.append(git("rev-parse", "HEAD", cwd=work))
    git("push", "-q", bare, "main", cwd=work)
    return bare, ids, work


def add_commit(work, bare, path, text):
    with open(os.path.join(work, path), "w") as f:
        f.write(text)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "more", cwd=work)
    git("push", "-q", bare, "main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def make_cert(d):
    """Self-signed certificate for localhost; returns (cert, key)."""
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
    return cert, key


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                n = int(self.rfile.readline().strip(), 16)
                if n == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(n)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _authorized(self):
        want = self.server.token
        h = self.headers.get("Authorization", "")
        if not h.startswith("Basic "):
            return False
        user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
        return pw == want

    def _reply(self, code, headers, body):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self):
        body = self._body() if self.command == "POST" else b""
        path, _, query = self.path.partition("?")
        self.server.requests.append((self.command, path, query))
        if not self._authorized():
            self.server.denied += 1
            # no body, and a fresh connection for the retry: libgit2 1.5
            # does not skip a 401's body before its next request
            self.close_connection = True
            return self._reply(401, [("WWW-Authenticate", 'Basic realm="git"'),
                                     ("Connection", "close")], b"")
        env = {"GIT_PROJECT_ROOT": self.server.root, "GIT_HTTP_EXPORT_ALL": "1",
               "PATH_INFO": path, "QUERY_STRING": query,
               "REQUEST_METHOD": self.command, "REMOTE_USER": "git",
               "REMOTE_ADDR": "127.0.0.1",
               "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)), "PATH": os.environ["PATH"]}
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        p = subprocess.run(["git", "http-backend"], input=body, env=env,
                           capture_output=True, timeout=60)
        head, _, out = p.stdout.partition(b"\r\n\r\n")
        code, headers = 200, []
        for line in head.decode().split("\r\n"):
            k, _, v = line.partition(":")
            if k.lower() == "status":
                code = int(v.split()[0])
            elif k:
                headers.append((k, v.strip()))
        self._reply(code, headers, out)

    do_GET = _serve
    do_POST = _serve


class GitHttps:
    """git http-backend over TLS on 127.0.0.1, repos under root, one token."""

    def __init__(self, root, token):
        d = tmpdir("tether-gitcert-")
        self.cert, key = make_cert(d)
        self.port = free_port()
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        srv.root, srv.token, srv.requests, srv.denied = root, token, [], 0
        self.srv = srv
        self.thread = threading.Thread(target=srv.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name):
        return f"https://localhost:{self.port}/{name}"

    @property
    def requests(self):
        return self.srv.requests

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


class GitSshd:
    """OpenSSH sshd on a loopback port; root logs in with the deploy key only."""

    def __init__(self):
        self.dir = d = tmpdir("tether-gitsshd-")
        self.host_key = os.path.join(d, "host_ed25519")
        self.deploy_key = os.path.join(d, "deploy_ed25519")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.host_key])
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.deploy_key])
        shutil.copy(self.deploy_key + ".pub", os.path.join(d, "authorized_keys"))
        self.port = free_port()
        cfg = os.path.join(d, "sshd_config")
        with open(cfg, "w") as f:
            f.write(f"Port {self.port}\nListenAddress 127.0.0.1\n"
                    f"HostKey {self.host_key}\nPidFile {d}/sshd.pid\n"
                    f"AuthorizedKeysFile {d}/authorized_keys\n"
                    "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n")
        os.makedirs("/run/sshd", exist_ok=True)
        self.proc = Proc(["/usr/sbin/sshd", "-D", "-e", "-f", cfg],
                         os.path.join(d, "sshd.log"))
        wait_port(self.port)

    def known_hosts(self, path):
        """Write a known_hosts line for this server to path."""
        with open(self.host_key + ".pub") as f:
            kind, key = f.read().split()[:2]
        with open(path, "w") as f:
            f.write(f"[127.0.0.1]:{self.port} {kind} {key}\n")
        return path

    def private_key(self):
        with open(self.deploy_key) as f:
            return f.read()

    def url(self, bare):
        return f"ssh://root@127.0.0.1:{self.port}{bare}"

    def stop(self):
        self.proc.stop()


_var_tmp = []
_job_ids = itertools.count(os.getpid() * 1000)


def var_tmpdir(prefix="tether-env-"):
    """A 0755 directory under /var/tmp, removed at exit.  Environments built
    for sandboxed jobs live here in tests: the sandbox gives the job a
    private /tmp, so a prefix under /tmp would be invisible to it."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/var/tmp")
    os.chmod(d, 0o755)
    _var_tmp.append(d)
    return d


@atexit.register
def _cleanup_var_tmp():
    if os.environ.get("TETHER_KEEP_TMP") != "1":
        for d in _var_tmp:
            shutil.rmtree(d, ignore_errors=True)


def write_spec(root, d, spec, settings=None, job="1", attempt=1):
    """Write d/spec.json (the runner's input) for a job under root/state."""
    state = os.path.join(root, "state")
    os.makedirs(d, mode=0o700, exist_ok=True)
    # env_dir next to the state dir, so tests can look at it freely; the
    # default layout (inside the 0700 state dir) has a test of its own
    s = {"state_dir": state, "env_dir": os.path.join(root, "envs"),
         "job_user": "tether-job", "kill_grace": 2, "default_pids": 4096,
         "cgroup_parent": "tether-test", "allowed_mounts": [],
         "default_python": "/usr/bin/python3", "conda_tool": None,
         "max_log_bytes": 1 << 30, "launcher": "sandbox",
         "docker_socket": "/var/run/docker.sock", "gpus": []}
    s.update(settings or {})
    with open(os.path.join(d, "spec.json"), "w") as f:
        # a job id of its own (the cgroup is named by it): jobs of other
        # tests with the same directory name never share a cgroup with ours
        json.dump({"job": f"{job}{next(_job_ids)}", "attempt": attempt,
                   "spec": spec, "runner": s}, f)


def run_attempt(root, spec, settings=None, job="1", attempt=1, timeout=120,
                wait=True, env=None):
    """Write <root>/state/jobs/<job>/<attempt>/spec.json and run
    `tether-runner run` on it.  Returns a dict with dir, result, events and
    log (or the Popen when wait is False)."""
    d = os.path.join(root, "state", "jobs", job, str(attempt))
    write_spec(root, d, spec, settings, job, attempt)
    argv = [binary("tether-runner"), "run", d]
    full_env = dict(os.environ)
    full_env.update(env or {})
    if not wait:
        return subprocess.Popen(argv, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=full_env)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env=full_env)
    return read_attempt(d, p.stdout + p.stderr)


def cancel_when(p, d, ready, timeout=60, within=5):
    """Wait (at most timeout s) until ready() is true for the attempt at d
    that the runner p (run_attempt(wait=False)) works on, write its cancel
    file and check that p ends within `within` seconds (kill it if not).
    Returns the attempt (read_attempt)."""
    import time
    from harness import runner as R
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not ready():
            time.sleep(0.1)
        assert ready(), "the attempt never got to the point to cancel"
        t0 = time.monotonic()
        R.write_cancel(d)
        p.wait(30)
        assert time.monotonic() - t0 < within
    finally:
        if p.poll() is None:
            p.kill()
    return read_attempt(d)


def log_has(d, text):
    """A ready() for cancel_when: the attempt's log holds text."""
    def ready():
        path = os.path.join(d, "log")
        return os.path.exists(path) and text in open(path).read()
    return ready


def read_attempt(d, output=""):
    def read(name):
        p = os.path.join(d, name)
        return open(p, errors="replace").read() if os.path.exists(p) else ""
    result = json.loads(read("result.json") or "null")
    events = [json.loads(line) for line in read("events").splitlines() if line]
    return {"dir": d, "result": result, "events": events, "log": read("log"),
            "output": output}


def phase_end(att, phase):
    """The phase end event of an attempt (duration, commit)."""
    for ev in att["events"]:
        if ev.get("type") == "phase" and ev.get("phase") == phase and \
                ev.get("state") == "end":
            return ev
    raise AssertionError(f"no {phase} end event in {att['events']}\n{att['log']}")
