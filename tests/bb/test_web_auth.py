"""Who sees what on the web page: without a token only the login page
(never data); the admin token or a viewer token logs in through a POST
that sets an HttpOnly cookie (the token never goes in a URL); cookie calls
that change state need the CSRF header; viewer tokens (`tether viewer-token
create`) are read-only and stop working when revoked."""
import json
import os
import subprocess
import urllib.error
import urllib.request

from harness.common import binary, tmpdir
from harness.fixtures_web import web_login, web_running_job

PAGES = ["/", "/login", "/agents", "/jobs", "/jobs/1", "/compare"]


def http(ws, method, path, body=None, headers=None):
    """A raw request without the harness's bearer token."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(ws.url + path, data=data, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, context=ws.ctx, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def login_cookie(ws, token):
    st, h, b = http(ws, "POST", "/web/login", {"token": token},
                    {"Content-Type": "application/json", "Tether-CSRF": "1"})
    assert st == 200, b
    return h["Set-Cookie"].split(";")[0]


def tether(ws, *args, check=0):
    env = dict(os.environ, TETHER_WORKSPACE=ws.url, TETHER_TOKEN=ws.admin_token,
               TETHER_CA=ws.ca_file, XDG_CONFIG_HOME=os.path.join(tmpdir(), "c"))
    r = subprocess.run([binary("tether"), *args], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == check, (args, r.returncode, r.stdout, r.stderr)
    return r.stdout


def test_without_a_token_only_the_login_page(workspace):
    ws = workspace
    secret, job = web_running_job(ws, name="confidential-run-name")
    ws.append(secret, job, 1, 0, b"confidential log line\n")
    for path in PAGES:
        st, h, body = http(ws, "GET", path)
        assert st == 200, path
        assert h["Content-Type"].startswith("text/html")
        assert b'id="login-form"' in body and b"confidential" not in body
        assert "default-src 'none'" in h["Content-Security-Policy"]
        assert h["Cache-Control"] == "no-store"
    for path in ["/api/v1/jobs", f"/api/v1/jobs/{job}", f"/api/v1/jobs/{job}/log",
                 f"/api/v1/jobs/{job}/events", "/api/v1/agents", "/web/session"]:
        st, _, body = http(ws, "GET", path)
        assert st == 401 and b"confidential" not in body, (path, st, body)
    # a made-up or stale cookie is no session
    st, _, body = http(ws, "GET", "/", headers={"Cookie": "tether_session=ts_00"})
    assert b'id="login-form"' in body
    st, _, _ = http(ws, "GET", "/api/v1/jobs", headers={"Cookie": "tether_session=ts_00"})
    assert st == 401
    # a wrong token does not log in; a login without the CSRF header neither
    st, h, _ = http(ws, "POST", "/web/login", {"token": "tw_wrong"},
                    {"Content-Type": "application/json", "Tether-CSRF": "1"})
    assert st == 401 and "Set-Cookie" not in h
    st, h, _ = http(ws, "POST", "/web/login", {"token": ws.admin_token},
                    {"Content-Type": "application/json"})
    assert st == 403 and "Set-Cookie" not in h
    # static files hold no data and need no login
    st, h, body = http(ws, "GET", "/static/app.js")
    assert st == 200 and h["Content-Type"].startswith("text/javascript")
    assert http(ws, "GET", "/static/nosuch.js")[0] == 404
    assert http(ws, "GET", "/static/../admin.token")[0] == 404


def test_cookie_session_and_csrf(workspace):
    ws = workspace
    secret, job = web_running_job(ws, name="csrf-target")
    st, h, b = http(ws, "POST", "/web/login", {"token": ws.admin_token},
                    {"Content-Type": "application/json", "Tether-CSRF": "1"})
    cookie = h["Set-Cookie"]
    for attr in ("HttpOnly", "SameSite=Strict", "Secure", "Path=/"):
        assert attr in cookie, cookie
    assert ws.admin_token not in cookie
    c = {"Cookie": cookie.split(";")[0]}
    st, _, body = http(ws, "GET", f"/api/v1/jobs/{job}", headers=c)
    assert st == 200 and json.loads(body)["name"] == "csrf-target"
    st, h, body = http(ws, "GET", "/jobs", headers=c)
    assert b'id="main"' in body and b'id="login-form"' not in body
    # state-changing call with the cookie but without the header: refused
    st, _, _ = http(ws, "POST", f"/api/v1/jobs/{job}/cancel", headers=c)
    assert st == 401
    assert ws.job(job)["state"] == "running"
    # agent calls never take a cookie
    st, _, _ = http(ws, "POST", "/api/v1/agents/lease", {}, dict(c, **{"Tether-CSRF": "1"}))
    assert st == 401
    st, _, body = http(ws, "POST", f"/api/v1/jobs/{job}/cancel",
                       headers=dict(c, **{"Tether-CSRF": "1"}))
    assert st == 200, body
    assert ws.job(job)["state"] == "cancelling"
    # logout ends the session on the server, not only in the browser
    st, h, _ = http(ws, "POST", "/web/logout", headers=dict(c, **{"Tether-CSRF": "1"}))
    assert st == 200 and "Max-Age=0" in h["Set-Cookie"]
    assert http(ws, "GET", "/api/v1/jobs", headers=c)[0] == 401


def test_viewer_token_is_read_only_and_revocable(workspace):
    ws = workspace
    secret, job = web_running_job(ws, name="viewed")
    token = tether(ws, "viewer-token", "create", "--name", "alice").strip()
    assert token.startswith("tv_")
    listed = json.loads(tether(ws, "--json", "viewer-token", "list"))["viewer_tokens"]
    assert [t["name"] for t in listed] == ["alice"] and not listed[0]["revoked"]
    assert token not in json.dumps(listed)
    bearer = {"Authorization": "Bearer " + token}
    for path in ["/api/v1/jobs", f"/api/v1/jobs/{job}", f"/api/v1/jobs/{job}/log",
                 f"/api/v1/jobs/{job}/events", f"/api/v1/jobs/{job}/outputs",
                 "/api/v1/agents"]:
        assert http(ws, "GET", path, headers=bearer)[0] == 200, path
    for method, path in [("POST", f"/api/v1/jobs/{job}/cancel"),
                         ("GET", "/api/v1/tokens"), ("GET", "/api/v1/viewer-tokens"),
                         ("POST", "/api/v1/tokens"), ("POST", "/api/v1/viewer-tokens"),
                         ("DELETE", "/api/v1/agents/web-node-1")]:
        st, _, _ = http(ws, method, path, {} if method == "POST" else None, bearer)
        assert st == 401, (method, path, st)
    # a viewer token is not a registration token
    st, _, _ = http(ws, "POST", "/api/v1/agents/register",
                    {"name": "x", "protocol": 1, "capacity": {"cpus": 1, "memory": 1 << 30}},
                    dict(bearer, **{"Content-Type": "application/json"}))
    assert st == 401
    # viewer session: reads, never cancels, even with the CSRF header
    c = {"Cookie": login_cookie(ws, token)}
    assert http(ws, "GET", "/web/session", headers=c)[2] == b'{"role":"viewer"}'
    assert http(ws, "GET", f"/api/v1/jobs/{job}", headers=c)[0] == 200
    st, _, _ = http(ws, "POST", f"/api/v1/jobs/{job}/cancel",
                    headers=dict(c, **{"Tether-CSRF": "1"}))
    assert st == 401 and ws.job(job)["state"] == "running"
    # revoking the token ends its sessions at once
    tether(ws, "viewer-token", "revoke", listed[0]["id"])
    assert http(ws, "GET", "/api/v1/jobs", headers=bearer)[0] == 401
    assert http(ws, "GET", "/api/v1/jobs", headers=c)[0] == 401
    assert b'id="login-form"' in http(ws, "GET", "/", headers=c)[2]
    tether(ws, "viewer-token", "revoke", "v_nosuch", check=5)


def test_browser_login_with_keyboard_token_not_in_url(workspace, web_page):
    ws, page = workspace, web_page
    secret, job = web_running_job(ws, name="kbd")
    token = tether(ws, "viewer-token", "create").strip()
    page.goto(ws.url + f"/jobs/{job}")
    page.wait("document.querySelector('#login-form') !== null")
    assert page.eval("document.activeElement.id") == "token"  # autofocus
    assert page.eval("document.querySelector('label[for=token]').textContent") == "Token"
    page.fill("#token", "tv_wrong")
    page.press("Enter")
    page.wait("document.querySelector('#login-error').textContent.includes('refused')")
    page.eval("document.querySelector('#token').value = ''")
    page.fill("#token", token)
    page.press("Enter")
    page.wait("document.querySelector('#job-h') && "
              "document.querySelector('#job-h').textContent.includes('kbd')")
    assert page.eval("location.pathname") == f"/jobs/{job}"
    assert token not in page.eval("location.href + document.cookie + "
                                  "JSON.stringify(sessionStorage) + "
                                  "JSON.stringify(localStorage)")
    assert page.eval("document.querySelector('#role').textContent") == "logged in as viewer"
    page.wait("document.querySelector('#log .win').textContent !== undefined")
    assert page.eval("document.querySelector('#cancel')") is None
    # log out: back to the login page
    page.click("#logout")
    page.wait("document.querySelector('#login-form') !== null")
    assert page.console_errors() == []
