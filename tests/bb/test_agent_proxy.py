"""The agent reaches the workspace through an HTTP CONNECT proxy (the
`proxy` setting), TLS still verified end to end."""
import socket
import threading

from harness.agent import Agent


class ConnectProxy:
    """A minimal HTTP CONNECT proxy on loopback that records its tunnels."""

    def __init__(self):
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(16)
        self.port = self.s.getsockname()[1]
        self.tunnels = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(c,), daemon=True).start()

    def handle(self, c):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                c.close()
                return
            data += chunk
        line = data.split(b"\r\n", 1)[0].decode()
        method, target, _ = line.split(" ", 2)
        if method != "CONNECT":
            c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            c.close()
            return
        host, port = target.rsplit(":", 1)
        self.tunnels.append(target)
        up = socket.create_connection((host, int(port)))
        c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pump(a, b):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    b.sendall(d)
            except OSError:
                pass
            finally:
                try:
                    b.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        threading.Thread(target=pump, args=(c, up), daemon=True).start()
        pump(up, c)

    def close(self):
        self.s.close()


def test_agent_works_through_connect_proxy(workspace, agent_factory):
    px = ConnectProxy()
    try:
        ag = agent_factory(proxy=f"http://127.0.0.1:{px.port}",
                           no_proxy="example.invalid").start()
        job = workspace.submit(name="proxied", command=["echo", "via-proxy"])
        ag.wait_job(job, "succeeded", timeout=60)
        assert b"via-proxy\n" in ag.ws_log(job)
        assert f"127.0.0.1:{workspace.port}" in px.tunnels
    finally:
        px.close()
