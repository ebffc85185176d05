"""`tether-agent envs prune` removes an evicted docker environment's images
through the agent's docker_socket (issue 21: tether-runner used a hard-coded
/var/run/docker.sock).  A fake Engine on a socket of the test's own records
what it is asked; no real docker is needed."""
import json
import os
import socket
import threading
import time

from harness.agent import Agent
from harness.common import tmpdir

KEY = "ab" * 32


class FakeEngine:
    """HTTP/1.1 over a Unix socket: /version answers, everything else 404."""

    def __init__(self, path):
        self.path = path
        self.requests = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(conn,),
                             daemon=True).start()

    def _conn(self, conn):
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                self.requests.append(lines[0])
                length = 0
                for h in lines[1:]:
                    if h.lower().startswith("content-length:"):
                        length = int(h.split(":", 1)[1])
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                if " /version " in lines[0] or lines[0].split()[1].endswith(
                        "/version"):
                    code, body = "200 OK", {"ApiVersion": "1.43",
                                            "MinAPIVersion": "1.24",
                                            "Version": "24.0.0"}
                else:
                    code, body = "404 Not Found", {"message": "no such image"}
                data = json.dumps(body).encode()
                conn.sendall(b"HTTP/1.1 " + code.encode() +
                             b"\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(data)).encode() +
                             b"\r\n\r\n" + data)

    def close(self):
        self.sock.close()


def test_prune_uses_configured_docker_socket():
    base = tmpdir("tether-sock-")
    sock = os.path.join(base, "engine.sock")
    engine = FakeEngine(sock)
    # docker_socket: the setting this test is about (not the default).
    ag = Agent(None, docker_socket=sock)
    try:
        env_dir = os.path.join(ag.state_dir, "envs", KEY)
        os.makedirs(env_dir)
        os.makedirs(os.path.join(ag.state_dir, "envs", ".meta"))
        now = int(time.time())
        with open(os.path.join(ag.state_dir, "envs", ".meta", KEY + ".json"),
                  "w") as f:
            json.dump({"key": KEY, "kind": "docker", "size_bytes": 10,
                       "created": now, "last_used": now}, f)
        r = ag.cmd("envs", "prune", "--all")
        assert "removed 1 environment" in r.stdout, r.stdout + r.stderr
        deletes = [q for q in engine.requests if q.startswith("DELETE ")]
        assert any("tether-env:" + KEY in q for q in deletes), \
            engine.requests
    finally:
        engine.close()
