"""Listeners that stand between the agent and the workspace in the
reliability and security tests (docs/reliability.md).

    certs = Certs()                        # a CA and leaf certs, by openssl
    cap = CaptureServer(*certs.leaf("bad", self_signed=True))
    ... agent pointed at cap.url ...; cap.plaintext, cap.handshakes

    fp = FaultProxy(workspace, faults=["416", "dup", "500", "slow"])
    view = fp.view()                       # a Workspace look-alike whose
    Agent(view)                            # url is the proxy's

CaptureServer is a TLS listener that records whatever a client sends
after a completed handshake (so a test can prove a secret was never sent
to an untrusted server).  FaultProxy is a plain-HTTP reverse proxy on
loopback to the workspace's plain port that injects faults into log
uploads (POST .../log): 416 with the stored length, duplicated delivery,
5xx before or after the workspace applied it, slow replies, dropped
connections."""
import http.client
import itertools
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness.common import tmpdir


def _ossl(*args, faketime=None):
    argv = ["openssl", *args]
    if faketime:
        argv = ["faketime", faketime, *argv]
    subprocess.run(argv, check=True, capture_output=True)


class Certs:
    """A throwaway CA and leaf certificates signed by it (or not)."""

    def __init__(self):
        self.dir = tmpdir("tether-certs-")
        self.ca_key = os.path.join(self.dir, "ca.key")
        self.ca = os.path.join(self.dir, "ca.crt")
        _ossl("req", "-x509", "-newkey", "ec", "-pkeyopt",
              "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", self.ca_key,
              "-out", self.ca, "-subj", "/CN=tether test CA", "-days", "2")

    def leaf(self, name, sans="IP:127.0.0.1,DNS:localhost", self_signed=False,
             expired=False):
        """(cert, key) for sans; signed by the CA unless self_signed;
        expired=True makes one whose validity ended in 2020."""
        key = os.path.join(self.dir, name + ".key")
        crt = os.path.join(self.dir, name + ".crt")
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName={sans}\n")
        if self_signed:
            _ossl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                  "-out", crt, "-subj", "/CN=" + name, "-days", "2",
                  "-addext", "subjectAltName=" + sans)
            return crt, key
        csr = os.path.join(self.dir, name + ".csr")
        _ossl("req", "-new", "-newkey", "ec", "-pkeyopt",
              "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
              "-out", csr, "-subj", "/CN=" + name)
        _ossl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
              "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext,
              faketime="2020-01-01 00:00:00" if expired else None)
        return crt, key


class CaptureServer:
    """TLS on 127.0.0.1: counts handshakes (ok / failed) and records the
    plaintext of every connection whose handshake completed; answers any
    request with 503 so a client keeps retrying."""

    def __init__(self, cert, key, port=0):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.handshakes_ok = 0
        self.handshakes_failed = 0
        self.plaintext = b""
        self.stopping = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(5)
        try:
            s = self.ctx.wrap_socket(c, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshakes_failed += 1
            c.close()
            return
        self.handshakes_ok += 1
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                self.plaintext += data
                if b"\r\n\r\n" in self.plaintext:
                    s.sendall(b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n"
                              b"Connection: close\r\n\r\n")
                    break
        except (ssl.SSLError, OSError):
            pass
        finally:
            s.close()

    def close(self):
        self.stopping = True
        self.sock.close()
        self.t.join(2)


class _View:
    """A Workspace look-alike whose url is the proxy's (for Agent)."""

    def __init__(self, ws, url):
        self._ws = ws
        self.url = url

    def __getattr__(self, name):
        return getattr(self._ws, name)


class FaultProxy:
    """http://127.0.0.1:PORT -> the workspace's plain port.  Every log
    upload takes the next fault from `faults` (cycled; "ok" = none):
      416      forward, then answer 416 with the length the workspace gave
      dup      forward twice (a duplicated delivery), answer the second
      500      forward, then answer 500 (applied, reply lost)
      503      answer 503 without forwarding
      slow     wait `slow_s`, then forward
      drop     forward, then close the connection without an answer
    Counts in .seen[fault]."""

    def __init__(self, ws, faults=("ok",), slow_s=1.5):
        self.ws = ws
        self.faults = itertools.cycle(faults)
        self.slow_s = slow_s
        self.seen = {}
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                proxy._handle(self)

            do_POST = do_PUT = do_DELETE = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.t.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def view(self):
        return _View(self.ws, self.url)

    def _forward(self, h, body):
        c = http.client.HTTPConnection("127.0.0.1", self.ws.plain_port,
                                       timeout=120)
        hdrs = {k: v for k, v in h.headers.items()
                if k.lower() not in ("host", "connection", "transfer-encoding")}
        hdrs["Content-Length"] = str(len(body))
        c.request(h.command, h.path, body=body, headers=hdrs)
        r = c.getresponse()
        data = r.read()
        out = (r.status, [(k, v) for k, v in r.getheaders()
                          if k.lower() not in ("connection", "transfer-encoding",
                                               "content-length")], data)
        c.close()
        return out

    def _reply(self, h, status, headers, data):
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _body(self, h):
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                n = int(h.rfile.readline().split(b";")[0], 16)
                if n == 0:
                    h.rfile.readline()
                    return out
                out += h.rfile.read(n)
                h.rfile.readline()
        return h.rfile.read(int(h.headers.get("Content-Length") or 0))

    def _handle(self, h):
        body = self._body(h)
        is_log = h.command == "POST" and h.path.split("?")[0].endswith("/log")
        fault = "ok"
        if is_log:
            with self.lock:
                fault = next(self.faults)
                self.seen[fault] = self.seen.get(fault, 0) + 1
        if fault == "503":
            return self._reply(h, 503, [("Content-Type", "application/json")],
                               b'{"error":{"code":"unavailable","message":"injected"}}')
        if fault == "slow":
            time.sleep(self.slow_s)
        status, headers, data = self._forward(h, body)
        if fault == "dup":
            status, headers, data = self._forward(h, body)
        if fault == "drop":
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "416" and status == 200:
            length = json.loads(data)["length"]
            return self._reply(h, 416, [("Content-Type", "application/json")],
                               json.dumps({"error": {"code": "gap", "message": "injected"},
                                           "length": length}).encode())
        if fault == "500":
            return self._reply(h, 500, [("Content-Type", "application/json")],
                               b'{"error":{"code":"internal","message":"injected"}}')
        return self._reply(h, status, headers, data)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
