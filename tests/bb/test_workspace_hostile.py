"""Hostile input: oversized bodies, deep JSON, bad UTF-8, unknown fields,
wrong types, huge names, slow clients.  Each gets a clear 4xx, the server
stays up and nothing is stored."""
import json
import socket
import ssl
import time

import pytest

SPEC = {"name": "h", "command": ["true"]}


def assert_nothing_stored(ws):
    assert ws.alive()
    assert ws.api("GET", "/api/v1/jobs")[2]["jobs"] == []


def post_raw(ws, path, data, ctype="application/json"):
    return ws.api("POST", path, data=data, headers={"Content-Type": ctype})


def test_oversized_json_body(workspace):
    big = json.dumps(dict(SPEC, env={"A": "x" * (1 << 20)})).encode()
    st, _, b = post_raw(workspace, "/api/v1/jobs", big)
    assert st == 413 and b["error"]["code"] == "too_large"
    assert_nothing_stored(workspace)


def test_oversized_body_without_content_length(workspace):
    """Chunked transfer: the limit holds without a declared length."""
    import http.client
    c = http.client.HTTPSConnection("127.0.0.1", workspace.port, context=workspace.ctx)
    c.putrequest("POST", "/api/v1/jobs")
    c.putheader("Authorization", "Bearer " + workspace.admin_token)
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    chunk = b"x" * 65536
    for _ in range(20):
        c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    c.send(b"0\r\n\r\n")
    r = c.getresponse()
    assert r.status == 413
    assert_nothing_stored(workspace)


def test_huge_declared_length_is_refused_early(workspace):
    ctx = workspace.ctx
    with socket.create_connection(("127.0.0.1", workspace.port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            t.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                      + workspace.admin_token.encode() +
                      b"\r\nContent-Length: 99999999999\r\n\r\n")
            reply = t.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")
    assert_nothing_stored(workspace)


def test_deep_json(workspace):
    deep = ("[" * 100) + ("]" * 100)
    body = '{"name": "x", "command": ["a"], "env": ' + deep + "}"
    st, _, b = post_raw(workspace, "/api/v1/jobs", body.encode())
    assert st == 400 and "deeper" in b["error"]["message"]
    st, _, b = post_raw(workspace, "/api/v1/jobs", ("[" * 100000).encode())
    assert st == 400
    assert_nothing_stored(workspace)


def test_bad_utf8(workspace):
    body = b'{"name": "\xff\xfe", "command": ["a"]}'
    st, _, b = post_raw(workspace, "/api/v1/jobs", body)
    assert st == 400 and "UTF-8" in b["error"]["message"]
    assert_nothing_stored(workspace)


@pytest.mark.parametrize("body", [b"", b"null", b"[]", b"42", b'"s"', b"{", b"{}x",
                                  b'{"name": "a", "name": "b", "command": ["x"]}'])
def test_not_a_json_object(workspace, body):
    st, _, b = post_raw(workspace, "/api/v1/jobs", body)
    assert st == 400 and b["error"]["code"] == "invalid"
    assert_nothing_stored(workspace)


@pytest.mark.parametrize("patch,field", [
    ({"unknown": 1}, "unknown"), ({"resources": {"cpus": 1, "tpus": 1}}, "resources.tpus"),
    ({"command": [1]}, "command"), ({"priority": "high"}, "priority"),
    ({"env": {"A": 1}}, "env.A"), ({"timeout": []}, "timeout"),
    ({"name": "n" * 10000}, "name")])
def test_unknown_fields_wrong_types_huge_names(workspace, patch, field):
    st, _, b = workspace.api("POST", "/api/v1/jobs", json=dict(SPEC, **patch))
    assert st == 400 and b["error"]["field"].startswith(field), b
    assert_nothing_stored(workspace)


def test_huge_agent_name_and_labels(workspace):
    tok = workspace.token()
    for body in [{"name": "a" * 100000, "capacity": {}},
                 {"name": "ok", "labels": ["l" * 1000], "capacity": {}},
                 {"name": "ok", "labels": ["x"] * 10000, "capacity": {}}]:
        st, _, b = workspace.api("POST", "/api/v1/agents/register", json=body, token=tok)
        assert st == 400, b
    assert workspace.api("GET", "/api/v1/agents")[2]["agents"] == []


def test_huge_url_and_headers(workspace):
    st, _, _ = workspace.api("GET", "/api/v1/jobs/" + "9" * 100000)
    assert 400 <= st < 500
    st, _, _ = workspace.api("GET", "/api/v1/jobs", headers={"X-Big": "y" * 200000})
    assert 400 <= st < 500
    assert_nothing_stored(workspace)


def test_slow_client_does_not_hold_the_server(workspace):
    """Connections that send half a request and stall do not stop others."""
    socks = []
    for _ in range(16):
        s = socket.create_connection(("127.0.0.1", workspace.port), timeout=5)
        t = workspace.ctx.wrap_socket(s, server_hostname="127.0.0.1")
        t.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        socks.append(t)
    t0 = time.monotonic()
    assert workspace.api("GET", "/api/v1/jobs")[0] == 200
    assert time.monotonic() - t0 < 3
    for s in socks:
        s.close()
    # raw garbage instead of TLS
    with socket.create_connection(("127.0.0.1", workspace.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n" * 10)
    assert_nothing_stored(workspace)


def test_garbage_on_the_plain_port(workspace):
    with socket.create_connection(("127.0.0.1", workspace.plain_port), timeout=5) as s:
        s.sendall(b"\x00\xff" * 5000 + b"\r\n\r\n")
        try:
            s.recv(100)
        except OSError:
            pass
    assert_nothing_stored(workspace)
