"""Helpers for the lifecycle tests (docs/checkpointing.md): a local
scheduled-events endpoint in Azure's format, snapshots of job files, and
reading a job's attempts and events from the workspace."""
import email.utils
import http.server
import io
import json
import tarfile
import threading
import time

from harness.common import SOURCE_DIR
import os


class ScheduledEvents:
    """Serves GET /metadata/scheduledevents like Azure's instance metadata
    service (header Metadata: true required); preempt() adds a Preempt
    event, clear() removes it."""

    def __init__(self):
        self.events = []
        self.incarnation = 1
        self.polls = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.polls += 1
                if self.headers.get("Metadata") != "true":
                    self.send_response(400)
                    self.end_headers()
                    return
                body = json.dumps({"DocumentIncarnation": owner.incarnation,
                                   "Events": owner.events}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    @property
    def url(self):
        return (f"http://127.0.0.1:{self.port}/metadata/scheduledevents"
                "?api-version=2020-07-01")

    def preempt(self, seconds=30):
        not_before = email.utils.formatdate(time.time() + seconds, usegmt=True)
        self.incarnation += 1
        self.events = [{"EventId": "A123BC45-1234-5678-AB90-ABCDEF123456",
                        "EventType": "Preempt",
                        "ResourceType": "VirtualMachine",
                        "Resources": ["node"], "EventStatus": "Scheduled",
                        "NotBefore": not_before, "Description": "spot",
                        "EventSource": "Platform", "DurationInSeconds": -1}]

    def clear(self):
        self.incarnation += 1
        self.events = []

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def snapshot(files):
    """A gzip tar of {name: bytes}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def upload_snapshot(ws, files):
    st, _, b = ws.api("POST", "/api/v1/snapshots", data=snapshot(files),
                      headers={"Content-Type": "application/octet-stream"})
    assert st == 201, b
    return b["id"]


def digits_snapshot(ws):
    with open(os.path.join(SOURCE_DIR, "examples", "digits", "train.py"),
              "rb") as f:
        return upload_snapshot(ws, {"train.py": f.read()})


def events(ws, job, attempt=None):
    q = f"?attempt={attempt}" if attempt else ""
    st, _, b = ws.api("GET", f"/api/v1/jobs/{job}/events{q}")
    assert st == 200, b
    return b["events"]


def attempt(ws, job, n):
    for a in ws.job(job)["attempts"]:
        if a["attempt"] == n:
            return a
    return None
