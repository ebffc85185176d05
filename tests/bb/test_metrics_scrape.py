"""Prometheus metrics of a real agent (metrics_listen on loopback), scraped
while a job runs and after it finished: jobs by state, attempts started and
finished by reason, log bytes shipped and pending, heartbeat time, the
workspace latency histogram.  Off by default; loopback only."""
import os
import re
import urllib.request

from harness.agent import Agent
from harness.common import free_port, run, binary, wait_until

PAYLOAD = 200000  # bytes of job output, so several metrics have to move


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return text, values


def test_metrics_follow_a_job(workspace, agent_factory):
    port = free_port()
    ag = agent_factory(metrics_listen=f"127.0.0.1:{port}").start()
    # the job writes its output, then waits for the test to let it end
    script = ("head -c %d /dev/zero | tr '\\000' x; "
              "while [ ! -e /tether/work/go ]; do sleep 0.05; done; echo end" % PAYLOAD)
    job = workspace.submit(name="metrics", command=["sh", "-c", script])

    def running():
        _, v = scrape(port)
        return v.get('tether_jobs{state="running"}') == 1 and \
            v["tether_log_bytes_shipped_total"] >= PAYLOAD and v
    v = wait_until(running, 60, interval=0.1, what="the job running with its log shipped")
    assert v["tether_attempts_started_total"] == 1
    assert v["tether_queue_length"] == 0
    assert v["tether_last_heartbeat_timestamp_seconds"] > 1.7e9
    assert v['tether_workspace_request_seconds_count{call="log"}'] >= 1
    assert v['tether_agent_info{version="0.1.0"}'] == 1
    assert not any(k.startswith("tether_attempts_finished_total") for k in v)

    with open(os.path.join(ag.attempt_dir(job), "work", "go"), "w"):
        pass
    ag.wait_job(job, "succeeded", timeout=60)

    last = {}

    def finished():
        _, v = scrape(port)
        last.update(v)
        return v.get('tether_attempts_finished_total{reason="succeeded"}') == 1 and \
            v.get('tether_jobs{state="running"}') == 0 and \
            v.get('tether_jobs{state="finishing"}') == 0 and \
            v.get("tether_status_events_pending") == 0 and v
    try:
        v = wait_until(finished, 30, interval=0.1, what="the job finished in the metrics")
    except TimeoutError:
        raise AssertionError({k: x for k, x in last.items()
                              if k.startswith(("tether_jobs", "tether_attempts",
                                               "tether_status"))})
    log = ag.ws_log(job)
    assert v["tether_log_bytes_shipped_total"] == len(log)
    assert v["tether_log_bytes_pending"] == 0
    assert v["tether_status_events_pending"] == 0
    assert v["tether_attempts_started_total"] == 1
    text, _ = scrape(port)
    assert "# TYPE tether_workspace_request_seconds histogram" in text
    assert re.search(r'tether_workspace_request_seconds_bucket\{call="log",le="\+Inf"\} \d+', text)
    # anything but GET /metrics is 404
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
        raise AssertionError("expected 404")
    except urllib.error.HTTPError as e:
        assert e.code == 404


def test_metrics_off_by_default_and_loopback_only(workspace, agent_factory):
    ag = agent_factory().start()
    assert "metrics on" not in ag.output()
    bad = Agent(workspace, metrics_listen=f"0.0.0.0:{free_port()}")
    r = bad.cmd("run", check=False, timeout=20)
    assert r.returncode != 0
    assert "metrics_listen" in r.stderr and "only loopback" in r.stderr
