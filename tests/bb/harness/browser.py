"""Headless Chromium for the web page tests, driven over the DevTools
protocol on a pipe (--remote-debugging-pipe: JSON messages ending in NUL,
commands on fd 3, replies and events on fd 4).  Python stdlib only: no
npm, no websocket library.

    b = Browser()                        # skips the test without chromium
    page = b.page()
    page.goto("https://127.0.0.1:1234/")
    page.wait("document.querySelector('#login-form') !== null")
    page.fill("#token", token); page.click("button[type=submit]")
    page.screenshot("/var/tmp/x.png")
    b.close()
"""
import base64
import fcntl
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from harness.common import tmpdir

CHROMIUM = os.environ.get("TETHER_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = os.environ.get("TETHER_WEB_ARTIFACTS", "/var/tmp/tether-web-artifacts")


class CDPError(Exception):
    pass


class Browser:
    def __init__(self, width=1280, height=900):
        if not os.access(CHROMIUM, os.X_OK):
            pytest.skip(f"{CHROMIUM} not installed (install/deps.sh adds chromium)")
        self.profile = tmpdir("tether-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        # move the child's ends above 4 so that the dup2 below cannot
        # clobber one with the other or be a no-op that keeps CLOEXEC
        high_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
        high_w = fcntl.fcntl(resp_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(cmd_r)
        os.close(resp_w)
        cmd_r, resp_w = high_r, high_w

        def child_fds():
            os.dup2(cmd_r, 3, inheritable=True)
            os.dup2(resp_w, 4, inheritable=True)

        argv = [CHROMIUM, "--headless=new", "--remote-debugging-pipe",
                "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--ignore-certificate-errors", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-sync",
                "--mute-audio", "--hide-scrollbars",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}", "about:blank"]
        self.log_path = os.path.join(self.profile, "chromium.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log,
                                     close_fds=False, preexec_fn=child_fds,
                                     start_new_session=True)
        os.close(cmd_r)
        os.close(resp_w)
        self._id = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._replies = {}
        self.events = []  # (sessionId, method, params)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.version = self.send("Browser.getVersion", timeout=30)["product"]

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._resp_r, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._replies[None] = "closed"
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events.append((msg.get("sessionId"), msg["method"],
                                            msg.get("params", {})))
                    self._cond.notify_all()

    def send(self, method, params=None, session=None, timeout=15):
        with self._lock:
            self._id += 1
            mid = self._id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in self._replies:
                if None in self._replies:
                    raise CDPError(f"chromium went away; log: {self.output()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CDPError(f"{method}: no reply in {timeout}s")
                self._cond.wait(left)
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def page(self):
        """A tab in a fresh browser context (its own cookies and storage)."""
        ctx = self.send("Target.createBrowserContext")["browserContextId"]
        target = self.send("Target.createTarget", {
            "url": "about:blank", "browserContextId": ctx})["targetId"]
        sid = self.send("Target.attachToTarget", {"targetId": target,
                                                  "flatten": True})["sessionId"]
        return Page(self, sid)

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except CDPError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        os.close(self._cmd_w)
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    def __init__(self, browser, session):
        self.b = browser
        self.sid = session
        for domain in ("Page", "Runtime", "Network"):
            self.send(domain + ".enable")

    def send(self, method, params=None, timeout=15):
        return self.b.send(method, params, session=self.sid, timeout=timeout)

    def eval(self, expr, timeout=15):
        """The value of a JS expression (promises are awaited)."""
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in r:
            raise CDPError(f"{expr[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def goto(self, url, timeout=15):
        before = len(self.b.events)
        r = self.send("Page.navigate", {"url": url}, timeout=timeout)
        if r.get("errorText"):
            raise CDPError(f"navigate {url}: {r['errorText']}")
        self.wait_event("Page.loadEventFired", since=before, timeout=timeout)

    def wait_event(self, method, since=0, timeout=15):
        deadline = time.monotonic() + timeout
        with self.b._cond:
            while True:
                for sid, m, p in self.b.events[since:]:
                    if sid == self.sid and m == method:
                        return p
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CDPError(f"no {method} in {timeout}s")
                self.b._cond.wait(left)

    def wait(self, expr, timeout=10, interval=0.02):
        """Poll a JS expression until it is truthy (an exception counts as
        not yet, e.g. an element not there); returns its value."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                v = self.eval(expr)
            except CDPError as e:
                v, last = None, e
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for: "
                                     f"{expr} (last value {v!r}, error {last})")
            time.sleep(interval)

    def click(self, selector):
        """Focus and click the element (a real mouse event at its centre)."""
        box = self.wait(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e) return null; e.scrollIntoView({{block: "center"}});
            const r = e.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0],
                                                   "y": box[1], "button": "left",
                                                   "clickCount": 1})

    def fill(self, selector, text):
        self.eval(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", {"text": text})

    def press(self, key):
        """Press a key: 'Enter', 'Tab' (keyboard access checks)."""
        codes = {"Enter": 13, "Tab": 9}
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", {
                "type": kind, "key": key, "code": key,
                "windowsVirtualKeyCode": codes[key],
                "text": "\r" if key == "Enter" and kind == "keyDown" else ""})

    def text(self, selector):
        return self.eval(f"(document.querySelector({json.dumps(selector)}) || "
                         f"{{}}).textContent || ''")

    def screenshot(self, name, full=False):
        """Save a PNG of the viewport (or the whole page) under ARTIFACTS;
        returns its path."""
        os.makedirs(ARTIFACTS, exist_ok=True)
        data = self.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": full})["data"]
        path = os.path.join(ARTIFACTS, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        print(f"screenshot: {path}")
        return path

    def console_errors(self):
        out = []
        for sid, m, p in list(self.b.events):
            if sid != self.sid:
                continue
            if m == "Runtime.exceptionThrown":
                out.append(p["exceptionDetails"].get("text", "exception"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
                out.append(" ".join(str(a.get("value", a.get("description", "")))
                                    for a in p.get("args", [])))
        return out
