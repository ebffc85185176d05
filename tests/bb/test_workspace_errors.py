"""Every 4xx/5xx from the workspace is the documented JSON error with
`code`, `message` and, when one request field is at fault, `field`: a bad
value for every field of the job spec and every query parameter; names
that must be variable names are checked at submit by the one job spec
parser; query numbers are digits only; did-you-mean hints for unknown
fields; the replies libmicrohttpd makes itself are the ones
docs/protocol.md lists."""
import json
import os
import re
import socket
import ssl

import pytest

from harness.common import binary, run, tmpdir

GOOD = {"name": "x", "command": ["true"]}
HEX = "0" * 64

# (patch to a valid spec, the field the error must name)
BAD_SPEC = [
    ({"name": 5}, "name"),
    ({"name": ""}, "name"),
    ({"name": "a\nb"}, "name"),
    ({"name": "x" * 129}, "name"),
    ({"command": "true"}, "command"),
    ({"command": []}, "command"),
    ({"command": [5]}, "command[0]"),
    ({"command": [""]}, "command[0]"),
    ({"source": 5}, "source"),
    ({"source": {"git": {"url": "u"}, "snapshot": HEX}}, "source"),
    ({"source": {"git": 5}}, "source.git"),
    ({"source": {"git": {}}}, "source.git.url"),
    ({"source": {"git": {"url": "-x"}}}, "source.git.url"),
    ({"source": {"git": {"url": "u", "commit": "xyz"}}}, "source.git.commit"),
    ({"source": {"git": {"url": "u", "ref": "a..b"}}}, "source.git.ref"),
    ({"source": {"git": {"url": "u", "token_secret": "$(touch x)"}}},
     "source.git.token_secret"),
    ({"source": {"git": {"url": "u", "token_secret": "A\nB"}}},
     "source.git.token_secret"),
    ({"source": {"git": {"url": "u", "ssh_key_secret": "1KEY"}}},
     "source.git.ssh_key_secret"),
    ({"source": {"git": {"url": "u", "submodules": "yes"}}},
     "source.git.submodules"),
    ({"source": {"snapshot": "abc"}}, "source.snapshot"),
    ({"source": {"snapshot": HEX}}, "source.snapshot"),
    ({"source": {"path": "/tmp"}}, "source.path"),
    ({"source": {"path": "rel"}}, "source.path"),
    ({"environment": 5}, "environment"),
    ({"environment": {}}, "environment.kind"),
    ({"environment": {"kind": "nix"}}, "environment.kind"),
    ({"environment": {"kind": "venv", "python": "python3"}},
     "environment.python"),
    ({"environment": {"kind": "venv", "system_site_packages": 1}},
     "environment.system_site_packages"),
    ({"environment": {"kind": "venv", "requirements_file": "../r.txt"}},
     "environment.requirements_file"),
    ({"environment": {"kind": "venv", "requirements": "numpy"}},
     "environment.requirements"),
    ({"environment": {"kind": "venv", "requirements": [1]}},
     "environment.requirements[0]"),
    ({"environment": {"kind": "venv", "pip_options": ["a\nb"]}},
     "environment.pip_options[0]"),
    ({"environment": {"kind": "conda", "file": "/abs.yml"}}, "environment.file"),
    ({"environment": {"kind": "conda", "inline": 5}}, "environment.inline"),
    ({"environment": {"kind": "conda", "inline": "x", "tool": "pip"}},
     "environment.tool"),
    ({"environment": {"kind": "conda"}}, "environment"),
    ({"environment": {"kind": "docker", "image": "a b"}}, "environment.image"),
    ({"environment": {"kind": "docker", "dockerfile": "../D"}},
     "environment.dockerfile"),
    ({"environment": {"kind": "docker", "image": "a",
                      "registry_secret": "$(touch x)"}},
     "environment.registry_secret"),
    ({"environment": {"kind": "docker", "image": "a",
                      "registry_secret": "R\nEG"}},
     "environment.registry_secret"),
    ({"resources": 5}, "resources"),
    ({"resources": {"cpus": "2"}}, "resources.cpus"),
    ({"resources": {"cpus": -1}}, "resources.cpus"),
    ({"resources": {"memory": "lots"}}, "resources.memory"),
    ({"resources": {"memory": 1}}, "resources.memory"),
    ({"resources": {"gpus": 65}}, "resources.gpus"),
    ({"resources": {"pids": -1}}, "resources.pids"),
    ({"env": []}, "env"),
    ({"env": {"$(touch x)": "1"}}, "env.$(touch x)"),
    ({"env": {"A\nB": "1"}}, "env.A\nB"),
    ({"env": {"1A": "1"}}, "env.1A"),
    ({"env": {"TETHER_X": "1"}}, "env.TETHER_X"),
    ({"env": {"A": 1}}, "env.A"),
    ({"secrets": {"$(touch x)": "abcd"}}, "secrets.$(touch x)"),
    ({"secrets": {"S": "ab"}}, "secrets.S"),
    ({"timeout": "soon"}, "timeout"),
    ({"timeout": -1}, "timeout"),
    ({"hang_timeout": []}, "hang_timeout"),
    ({"retries": 101}, "retries"),
    ({"retries": "1"}, "retries"),
    ({"priority": 1.5}, "priority"),
    ({"placement": 5}, "placement"),
    ({"placement": {"agent": 5}}, "placement.agent"),
    ({"placement": {"agent": "a\nb"}}, "placement.agent"),
    ({"placement": {"labels": "gpu"}}, "placement.labels"),
    ({"placement": {"labels": ["g\npu"]}}, "placement.labels[0]"),
    ({"launcher": "k8s"}, "launcher"),
    ({"launcher": 1}, "launcher"),
    ({"network": "bridge"}, "network"),
    ({"network": "none", "nodes": 2}, "network"),
    ({"nodes": 0}, "nodes"),
    ({"processes_per_node": "4"}, "processes_per_node"),
    ({"outputs_from": "rank1"}, "outputs_from"),
    ({"mounts": {}}, "mounts"),
    ({"mounts": [5]}, "mounts[0]"),
    ({"mounts": [{}]}, "mounts[0].source"),
    ({"mounts": [{"source": "data"}]}, "mounts[0]"),
    ({"mounts": [{"source": "/data", "target": "/proc/x"}]}, "mounts[0].target"),
    ({"mounts": [{"source": "/data", "readonly": "no"}]}, "mounts[0].readonly"),
    ({"workdir": "../x"}, "workdir"),
    ({"workdir": 5}, "workdir"),
    ({"checkpoint": 5}, "checkpoint"),
    ({"checkpoint": {"signal": "KILL"}}, "checkpoint.signal"),
    ({"checkpoint": {"grace": "forever"}}, "checkpoint.grace"),
    ({"checkpoint": {"grace": -5}}, "checkpoint.grace"),
    ({"checkpoint": {"on_timeout": 1}}, "checkpoint.on_timeout"),
    ({"slurm": 5}, "slurm"),
    ({"slurm": {"partition": 5}}, "slurm.partition"),
    ({"slurm": {"partition": "gpu\n#SBATCH --uid=0"}}, "slurm.partition"),
    ({"slurm": {"account": "a\nb"}}, "slurm.account"),
    ({"slurm": {"qos": "q\rq"}}, "slurm.qos"),
    ({"slurm": {"nodes": 0}}, "slurm.nodes"),
    ({"slurm": {"ntasks": "2"}}, "slurm.ntasks"),
    ({"colour": "red"}, "colour"),
    ({"resources": {"gpu": 1}}, "resources.gpu"),
    ({"weird key\n": 1}, "weird key\n"),
]


def check_error(st, b, status, field=None):
    assert st == status, b
    assert isinstance(b, dict) and set(b) >= {"error"}, b
    err = b["error"]
    assert isinstance(err["code"], str) and isinstance(err["message"], str)
    assert err["message"], b
    if field is not None:
        assert err.get("field") == field, b
    # messages quote client text escaped: one line, no control characters
    assert not re.search(r"[\x00-\x1f\x7f]", err["message"]), err["message"]


@pytest.mark.parametrize("patch,field", BAD_SPEC,
                         ids=[repr(f) for _, f in BAD_SPEC])
def test_every_jobspec_field_names_itself(workspace, patch, field):
    spec = dict(GOOD)
    spec.update(patch)
    st, _, b = workspace.api("POST", "/api/v1/jobs", json=spec)
    check_error(st, b, 400, field)
    assert b["error"]["code"] == "invalid"


def test_bad_variable_names_are_refused_by_the_cli_before_upload(workspace):
    # the one parser: the CLI refuses the same spec, naming the field
    d = tmpdir()
    path = os.path.join(d, "job.json")
    with open(path, "w") as f:
        json.dump({"name": "x", "command": ["true"],
                   "source": {"git": {"url": "u", "token_secret": "$(id)"}}}, f)
    env = dict(os.environ, TETHER_WORKSPACE=workspace.url,
               TETHER_TOKEN=workspace.admin_token, TETHER_CA=workspace.ca_file,
               XDG_CONFIG_HOME=os.path.join(d, "cfg"))
    r = run([binary("tether"), "submit", path], check=False, env=env)
    assert r.returncode != 0
    assert "source.git.token_secret" in r.stderr


def test_unknown_field_suggests_the_nearest(workspace):
    spec = dict(GOOD, enviroment={"kind": "none"})
    st, _, b = workspace.api("POST", "/api/v1/jobs", json=spec)
    check_error(st, b, 400, "enviroment")
    assert b["error"]["message"] == \
        "enviroment: unknown field (did you mean environment?)"
    st, _, b = workspace.api("POST", "/api/v1/jobs",
                             json=dict(GOOD, resources={"cpu": 1}))
    assert "(did you mean resources.cpus?)" in b["error"]["message"]
    # nothing close: no hint
    st, _, b = workspace.api("POST", "/api/v1/jobs", json=dict(GOOD, zzzzzz=1))
    assert b["error"]["message"] == "zzzzzz: unknown field"


def leased(ws):
    sec = ws.register()
    j = ws.submit(GOOD)
    ws.lease(sec)
    return sec, j


# (method, path, the parameter at fault); {j} is a job with one attempt
BAD_QUERY = [
    ("GET", "/api/v1/jobs?limit=0", "limit"),
    ("GET", "/api/v1/jobs?limit=x", "limit"),
    ("GET", "/api/v1/jobs?limit=+10", "limit"),
    ("GET", "/api/v1/jobs?limit=%2010", "limit"),
    ("GET", "/api/v1/jobs?limit=10%20", "limit"),
    ("GET", "/api/v1/jobs?limit=0x10", "limit"),
    ("GET", "/api/v1/jobs?state=RUNNING", "state"),
    ("GET", "/api/v1/jobs?state=run%0A", "state"),
    ("GET", "/api/v1/jobs?agent=a%0Ab", "agent"),
    ("GET", "/api/v1/jobs?name=" + "n" * 129, "name"),
    ("GET", "/api/v1/jobs/{j}/log?offset=+10", "offset"),
    ("GET", "/api/v1/jobs/{j}/log?offset=%2010", "offset"),
    ("GET", "/api/v1/jobs/{j}/log?offset=-1", "offset"),
    ("GET", "/api/v1/jobs/{j}/log?offset=1e3", "offset"),
    ("GET", "/api/v1/jobs/{j}/log?attempt=0", "attempt"),
    ("GET", "/api/v1/jobs/{j}/log?attempt=%2B1", "attempt"),
    ("GET", "/api/v1/jobs/{j}/log?wait=61", "wait"),
    ("GET", "/api/v1/jobs/{j}/log?wait=%201", "wait"),
    ("GET", "/api/v1/jobs/{j}/outputs?attempt=x", "attempt"),
    ("GET", "/api/v1/jobs/{j}/outputs/a?attempt=-1", "attempt"),
    ("GET", "/api/v1/jobs/{j}/events?attempt=+1", "attempt"),
    ("POST", "/api/v1/attempts/{j}/1/log?offset=+0", "offset"),
    ("POST", "/api/v1/attempts/{j}/1/log?offset=%200", "offset"),
    ("POST", "/api/v1/attempts/{j}/1/log", "offset"),
]


@pytest.mark.parametrize("method,path,field", BAD_QUERY,
                         ids=[p for _, p, _ in BAD_QUERY])
def test_every_query_parameter_names_itself(workspace, method, path, field):
    sec, j = leased(workspace)
    token = sec if path.startswith("/api/v1/attempts") else None
    data = b"x" if method == "POST" else None
    st, _, b = workspace.api(method, path.format(j=j), data=data, token=token,
                             headers={"Content-Type": "application/octet-stream"})
    check_error(st, b, 400, field)


def test_digits_only_still_reads_good_numbers(workspace):
    sec, j = leased(workspace)
    workspace.append(sec, j, 1, 0, b"0123456789")
    st, _, b = workspace.api("GET", f"/api/v1/jobs/{j}/log?offset=004")
    assert st == 200 and b == b"456789"


def raw(ws, request, plain=True):
    """Send raw bytes; return (status, headers text, body bytes)."""
    s = socket.create_connection(("127.0.0.1", ws.plain_port), timeout=10)
    try:
        s.sendall(request)
        data = b""
        while True:
            try:
                got = s.recv(65536)
            except socket.timeout:
                break
            if not got:
                break
            data += got
            if b"\r\n\r\n" in data:
                head, _, body = data.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    break
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, head.decode("latin-1"), body


def test_bad_request_framing_gets_the_documented_reply(workspace):
    # What libmicrohttpd answers itself, before any handler, is what
    # docs/protocol.md lists under "Replies libmicrohttpd makes itself".
    with open(os.path.join(os.environ["TETHER_SOURCE_DIR"], "docs",
                           "protocol.md")) as f:
        doc = " ".join(f.read().split())
    assert "Replies libmicrohttpd makes itself" in doc
    auth = b"Authorization: Bearer " + workspace.admin_token.encode() + b"\r\n"
    post = b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\n" + auth
    cases = [
        (post + b"Content-Length: -5\r\n\r\n", 400,
         "negative `Content-Length`"),
        (post + b"Content-Length: +2\r\n\r\n{}", 400, "`+2`"),
        (post + b"Content-Length: 99999999999999999999999\r\n\r\n", 413,
         "too large to be a number"),
        (post + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
         400, "broken chunked body"),
        (b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\n" + auth + b"X-A: "
         + b"a" * 70000 + b"\r\n\r\n", 431, "431 for request headers"),
        (b"GET /api/v1/jobs HTTP/2.0\r\nHost: x\r\n" + auth + b"\r\n", 505,
         "505 for an HTTP version"),
    ]
    for req, status, words in cases:
        st, head, body = raw(workspace, req)
        assert st == status, (req[:80], st, body)
        assert words in doc, words
    # a request the library lets through gets the handler's JSON error
    st, head, body = raw(workspace, b"GET /api/v1/jobs?limit=+1 HTTP/1.1\r\n"
                         b"Host: x\r\n" + auth + b"Connection: close\r\n\r\n")
    assert st == 400 and "application/json" in head
    assert json.loads(body)["error"]["field"] == "limit"


def test_path_ids_are_digits_only(workspace):
    j = workspace.submit(GOOD)
    assert workspace.api("GET", f"/api/v1/jobs/{j}")[0] == 200
    for bad in (f"+{j}", f"%20{j}", f"{j}%0A", f"0x{j}"):
        st, _, b = workspace.api("GET", f"/api/v1/jobs/{bad}")
        check_error(st, b, 404)
        assert b["error"]["code"] == "not_found"
