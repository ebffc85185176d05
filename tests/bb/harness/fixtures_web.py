"""pytest fixtures for the web page tests: a headless Chromium per module
and helpers to log in and to play the agent that runs a job."""
import pytest

from harness.browser import Browser


@pytest.fixture(scope="module")
def web_browser():
    b = Browser()
    yield b
    b.close()


@pytest.fixture
def web_page(web_browser):
    """A fresh tab (own cookies) of the module's browser."""
    return web_browser.page()


def web_login(page, ws, token=None, path="/"):
    """Log in through the login form; the app is shown afterwards."""
    page.goto(ws.url + path)
    page.wait("document.querySelector('#login-form') !== null")
    page.fill("#token", token or ws.admin_token)
    page.click("#login-form button[type=submit]")
    page.wait("document.querySelector('#logout') !== null && "
              "document.querySelector('#role').textContent.length > 0")
    return page


def web_running_job(ws, name="job", secret=None, **spec):
    """Submit a job and lease it as a fake agent; the attempt is running.
    Returns (secret, job id)."""
    secret = secret or ws.register(name="web-node-1", labels=["gpu", "a100"])
    job = ws.submit(name=name, command=["python3", "train.py"], **spec)
    reply = ws.lease(secret)
    assert [j["job"] for j in reply["jobs"]] == [job], reply
    st, _, b = ws.events(secret, job, 1, [
        {"seq": 1, "time": _now(), "type": "phase", "phase": "source",
         "state": "start"},
        {"seq": 2, "time": _now(), "type": "phase", "phase": "source",
         "state": "end", "duration": 0.25},
        {"seq": 3, "time": _now(), "type": "started", "pid": 4242}])
    assert st == 200, b
    ws.lease(secret, running=[(job, 1)],
             free={"cpus": 1, "memory": 3 << 30, "gpus": 0})
    return secret, job


def _now():
    import time
    return time.time()
