"""A keep-alive HTTPS client for the workspace API (urllib opens a new TLS
connection per call, which would make the bench measure Python's
handshakes instead of the workspace)."""
import http.client
import json
import re
import ssl
import time

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out", "oom", "lost",
            "preempted", "hung", "source_failed", "env_failed",
            "launch_failed", "outputs_failed", "disk_limit"}
STAMP = re.compile(rb"(?<![\d.])(1\d{9}\.\d{3,9})(?![\d.])")


class Api:
    def __init__(self, ws, token=None):
        self.host, self.port = "127.0.0.1", ws.port
        self.ctx = ssl.create_default_context(cafile=ws.ca_file)
        self.token = token or ws.admin_token
        self.conn = None

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Tether-Protocol": "1", "Authorization": "Bearer " + self.token}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPSConnection(
                        self.host, self.port, context=self.ctx, timeout=60)
                self.conn.request(method, path, body=data, headers=hdrs)
                r = self.conn.getresponse()
                raw = r.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn = None  # the server closed a kept-alive connection
                if attempt == 2:
                    raise
        if r.getheader("Content-Type", "").startswith("application/json"):
            return r.status, json.loads(raw)
        return r.status, raw

    def submit(self, spec):
        st, b = self.call("POST", "/api/v1/jobs", spec)
        if st != 201:
            raise RuntimeError("submit: %s %s" % (st, b))
        return b["id"]

    def job(self, job):
        st, b = self.call("GET", "/api/v1/jobs/%s" % job)
        if st != 200:
            raise RuntimeError("job %s: %s %s" % (job, st, b))
        return b

    def wait_terminal(self, job, timeout=120, interval=0.01):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            j = self.job(job)
            if j["state"] in TERMINAL:
                return j
            time.sleep(interval)
        raise TimeoutError("job %s not terminal after %ss" % (job, timeout))

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def stamps(data):
    """`date +%s.%N` values in a byte string, in order."""
    return [float(m.group(1)) for m in STAMP.finditer(data)]


def line_stamps(data):
    """The same for stamps that begin a line, found with bytes.find (C speed)
    instead of running the regex over every byte: a reader of 1 GB of log
    in Python otherwise spends seconds of CPU and the GIL on it, on the
    machine it measures (row 4b)."""
    out, p = [], 0 if data[:1] == b"1" else data.find(b"\n1")
    while p >= 0:
        at = p if data[p:p + 1] == b"1" else p + 1
        m = STAMP.match(data, at)
        if m:
            out.append(float(m.group(1)))
        p = data.find(b"\n1", at)
    return out


def head_tail(path, n=65536):
    """First and last n bytes of a (possibly huge) file."""
    with open(path, "rb") as f:
        head = f.read(n)
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - n))
        return head, f.read(), size
