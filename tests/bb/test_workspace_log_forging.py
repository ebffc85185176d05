"""Log forging: a name a client sets (viewer tokens, agents, jobs, labels,
what an agent reports) is refused at the API when it carries a control
character, and the workspace's log lines quote client text escaped, so no
request can write a line of its own into the workspace's log."""
import re
import urllib.parse

# What an attacker would like to see as a line of its own in the log.
STAMP = "2026-01-01T00:00:00.000Z"
FORGED = f"{STAMP} tether-workspace level=error fn=admin msg=forged"


def no_forged_lines(ws):
    lines = ws.output().splitlines()
    assert lines, "the workspace logged nothing"
    bad = [ln for ln in lines if ln.startswith(STAMP)]
    assert not bad, bad
    for ln in lines:
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", ln), ln


def refused(st, b, field):
    assert st == 400, b
    assert b["error"]["code"] == "invalid" and b["error"]["field"] == field, b
    assert "\n" not in b["error"]["message"]


def test_names_with_control_characters_are_refused(workspace):
    ws = workspace
    st, _, b = ws.api("POST", "/api/v1/viewer-tokens",
                      json={"name": "alice\n" + FORGED})
    refused(st, b, "name")
    st, _, b = ws.api("POST", "/api/v1/viewer-tokens",
                      json={"name": "alice\r\x1b[2K" + FORGED})
    refused(st, b, "name")
    st, _, b = ws.api("POST", "/api/v1/jobs",
                      json={"name": "j\n" + FORGED, "command": ["true"]})
    refused(st, b, "name")
    st, _, b = ws.api("POST", "/api/v1/jobs",
                      json={"name": "j", "command": ["true"],
                            "placement": {"labels": ["gpu\n" + FORGED]}})
    refused(st, b, "placement.labels[0]")
    st, _, b = ws.api("POST", "/api/v1/tokens", json={"labels": ["a\nb"]})
    refused(st, b, "labels")
    tok = ws.token()
    reg = {"name": "node\n" + FORGED, "protocol": 1,
           "capacity": {"cpus": 1, "memory": 1 << 30}}
    st, _, b = ws.api("POST", "/api/v1/agents/register", json=reg, token=tok)
    refused(st, b, "name")
    for key in ("os", "kernel", "version", "machine_id", "transport"):
        reg = {"name": "node-1", "protocol": 1, key: "x\n" + FORGED,
               "capacity": {"cpus": 1, "memory": 1 << 30}}
        st, _, b = ws.api("POST", "/api/v1/agents/register", json=reg,
                          token=tok)
        refused(st, b, key)
    # what an agent reports: a final event's reason
    sec = ws.register()
    j = ws.submit({"name": "j", "command": ["true"]})
    ws.lease(sec)
    st, _, b = ws.events(sec, j, 1, [{"seq": 1, "type": "final",
                                      "reason": "failed\n" + STAMP}])
    refused(st, b, "events[0].reason")
    # a path segment quoted back: escaped, one line
    bad = urllib.parse.quote("v_x\n" + FORGED, safe="")
    st, _, b = ws.api("DELETE", f"/api/v1/viewer-tokens/{bad}")
    assert st == 404 and "\n" not in b["error"]["message"], b
    st, _, b = ws.api("POST", f"/api/v1/agents/{bad}/drain")
    assert st == 404 and "\n" not in b["error"]["message"], b
    no_forged_lines(ws)


def test_log_lines_quote_client_text(workspace):
    # printable but hostile: quotes and key=value pairs inside a name
    name = 'x" level=error msg="forged'
    st, _, b = workspace.api("POST", "/api/v1/viewer-tokens",
                             json={"name": name})
    assert st == 201, b
    j = workspace.submit({"name": name, "command": ["true"]})
    out = workspace.output()
    assert 'name="x\\" level=error msg=\\"forged"' in out, out
    assert f"job={j} submitted" in out
    no_forged_lines(workspace)
