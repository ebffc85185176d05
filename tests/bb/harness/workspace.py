"""The reference workspace server for tests: init + serve in a temporary
directory, over TLS on loopback, with fast durations.

    ws = Workspace(lease_ttl="2s")        # tether-workspace init, not started
    ws.start()                             # serve; .url, .plain_port known
    status, headers, body = ws.api("GET", "/api/v1/jobs")
    ws.kill9(); ws.start()                 # same directory, same database
    ws.stop()

`Agent`-side helpers (register, lease, log, events) are small wrappers over
api() so tests can play the agent with raw HTTP calls."""
import json
import os
import ssl
import urllib.error
import urllib.request

from harness.common import Proc, binary, run, tmpdir, wait_until

FAST = {"lease_ttl": "3s", "lost_grace": "1s", "lost_margin": "500ms",
        "poll": "2s", "poll_max_wait": "10s"}


class Remote:
    """The workspace as an agent in a network namespace sees it: the same
    workspace at another URL (the test's address of the host)."""

    def __init__(self, ws, url):
        self._ws, self.url = ws, url

    def __getattr__(self, name):
        return getattr(self._ws, name)


class Workspace:
    def __init__(self, directory=None, plain=True, init_args=(), **settings):
        self.dir = directory or os.path.join(tmpdir("tether-ws-"), "ws")
        self.settings = dict(FAST)
        self.settings.update({k: str(v) for k, v in settings.items()})
        self.plain = plain
        self.proc = None
        self.port = None
        self.plain_port = None
        if not os.path.exists(os.path.join(self.dir, "workspace.conf")):
            run([binary("tether-workspace"), "init", "--dir", self.dir,
                 *init_args])
        with open(os.path.join(self.dir, "admin.token")) as f:
            self.admin_token = f.read().strip()
        self.ca_file = os.path.join(self.dir, "tls.crt")
        self.ctx = ssl.create_default_context(cafile=self.ca_file)
        self.log_path = os.path.join(os.path.dirname(self.dir), "workspace.log")

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    @property
    def plain_url(self):
        return f"http://127.0.0.1:{self.plain_port}"

    def start(self, timeout=15):
        ports = os.path.join(self.dir, "ports.json")
        if os.path.exists(ports):
            os.unlink(ports)
        argv = [binary("tether-workspace"), "serve", "--dir", self.dir,
                "--port", str(self.port or 0)]
        argv += ["--plain-port", str(self.plain_port or 0) if self.plain else "-1"]
        for k, v in self.settings.items():
            argv += ["--set", f"{k}={v}"]
        self.proc = Proc(argv, self.log_path)

        def up():
            if not self.proc.alive():
                raise AssertionError("tether-workspace exited:\n" + self.proc.output())
            if not os.path.exists(ports):
                return False
            with open(ports) as f:
                p = json.load(f)
            self.port = p["port"]
            self.plain_port = p["plain_port"] if p["plain_port"] > 0 else None
            return True
        wait_until(up, timeout, what="tether-workspace to listen")
        return self

    def kill9(self):
        if self.proc:
            self.proc.kill9()
            self.proc.log.close()
            self.proc = None

    def stop(self):
        if self.proc:
            rc = self.proc.stop()
            self.proc = None
            return rc
        return None

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def api(self, method, path, json=None, data=None, token=None, headers=None,
            timeout=30, plain=False):
        """One call; returns (status, headers, body). body is parsed JSON
        when the reply is JSON, else bytes. token=None uses the admin token;
        token="" sends none."""
        import json as _json
        base = self.plain_url if plain else self.url
        hdrs = {"Tether-Protocol": "1"}
        if token is None:
            token = self.admin_token
        if token:
            hdrs["Authorization"] = "Bearer " + token
        if json is not None:
            data = _json.dumps(json).encode()
            hdrs["Content-Type"] = "application/json"
        elif data is not None and isinstance(data, str):
            data = data.encode()
        if headers:
            hdrs.update(headers)
        req = urllib.request.Request(base + path, data=data, headers=hdrs,
                                     method=method)
        ctx = None if plain else self.ctx
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
                status, rh, raw = resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            status, rh, raw = e.code, dict(e.headers), e.read()
        if rh.get("Content-Type", "").startswith("application/json"):
            return status, rh, _json.loads(raw)
        return status, rh, raw

    # --- playing the agent -------------------------------------------
    def token(self, **kw):
        st, _, b = self.api("POST", "/api/v1/tokens", json=kw)
        assert st == 201, b
        return b["token"]

    def register(self, name="node-1", cpus=2, memory=4 << 30, gpus=0,
                 labels=None, **extra):
        tok = self.token()
        body = {"name": name, "labels": labels or [], "version": "0.1.0",
                "protocol": 1, "transport": "https", "os": "Debian 12",
                "capacity": {"cpus": cpus, "memory": memory, "disk": 10 << 30,
                             "gpus": [{"index": i, "model": "H200",
                                       "memory": 1.4e11} for i in range(gpus)]},
                "queue_depth": 2}
        body.update(extra)
        st, _, b = self.api("POST", "/api/v1/agents/register", json=body, token=tok)
        assert st == 201, b
        return b["secret"]

    def lease(self, secret, wait=0, running=(), queue_room=2, **extra):
        body = {"wait": wait, "queue_room": queue_room,
                "running": [{"job": j, "attempt": a, "state": "running"}
                            for j, a in running]}
        body.update(extra)
        st, _, b = self.api("POST", "/api/v1/agents/lease", json=body,
                            token=secret, timeout=wait + 30)
        assert st == 200, b
        return b

    def append(self, secret, job, attempt, offset, data):
        return self.api("POST", f"/api/v1/attempts/{job}/{attempt}/log?offset={offset}",
                        data=data, token=secret,
                        headers={"Content-Type": "application/octet-stream"})

    def events(self, secret, job, attempt, events):
        return self.api("POST", f"/api/v1/attempts/{job}/{attempt}/events",
                        json={"events": events}, token=secret)

    def finish(self, secret, job, attempt, reason="succeeded", seq=1, exit_code=0):
        return self.events(secret, job, attempt, [
            {"seq": seq, "time": 1.0, "type": "final", "reason": reason,
             "exit_code": exit_code, "signal": None, "peak_memory_bytes": 1,
             "cpu_seconds": 0.1, "durations": {"run": 0.1}}])

    def submit(self, spec=None, **kw):
        spec = dict(spec or {"name": "job", "command": ["true"]})
        spec.update(kw)
        st, _, b = self.api("POST", "/api/v1/jobs", json=spec)
        assert st == 201, b
        return b["id"]

    def job(self, job_id):
        st, _, b = self.api("GET", f"/api/v1/jobs/{job_id}")
        assert st == 200, b
        return b
