"""Metric curves on the web page in headless Chromium: the job page of a
running job draws a live loss chart that gains points as they arrive, and
the compare page overlays one metric of two jobs picked on the jobs page.
The test plays the agent over the API; it reads the drawn data (the SVG
lines' points and data attributes), not pixels.  Screenshots go to
harness.browser.ARTIFACTS (printed)."""
import json
import time

from harness.fixtures_web import web_login, web_running_job


def mev(seq, points):
    return {"seq": seq, "time": time.time(), "type": "metrics", "points": points}


def loss_points(first, last, f=lambda i: 2.0 / (i + 1)):
    return [{"name": "loss", "value": f(i), "step": i, "time": time.time()}
            for i in range(first, last + 1)]


def line(page, selector):
    return page.eval(f"""(() => {{
        const l = document.querySelector({json.dumps(selector)});
        if (!l) return null;
        return {{rows: Number(l.dataset.rows), lastX: Number(l.dataset.lastX),
                lastY: Number(l.dataset.lastY), job: Number(l.dataset.job),
                points: l.getAttribute('points').trim().split(/\\s+/)}};
    }})()""")


def test_job_page_chart_gains_points_while_the_job_runs(workspace, web_page):
    ws, page = workspace, web_page
    secret, job = web_running_job(ws, name="digits-train")
    ws.events(secret, job, 1, [mev(4, loss_points(0, 4) + [
        {"name": "accuracy", "value": 0.5, "step": 4}])])
    web_login(page, ws, path=f"/jobs/{job}")
    sel = "#metrics figure[data-metric=loss] polyline.line"
    page.wait(f"document.querySelector('{sel}') !== null && "
              f"document.querySelector('{sel}').dataset.rows === '5'")
    before = line(page, sel)
    assert before["rows"] == 5 and before["lastX"] == 4 and before["lastY"] == 0.4
    assert len(before["points"]) == 5
    assert page.eval("document.querySelector('#metrics figure[data-metric=loss] svg')"
                     ".dataset.x") == "step"
    assert "accuracy" in page.text("#metrics")
    page.screenshot("metrics-job-1.png")

    # the job goes on: five more points reach the chart without a reload
    ws.events(secret, job, 1, [mev(5, loss_points(5, 9))])
    page.wait(f"document.querySelector('{sel}').dataset.rows === '10'", timeout=5)
    after = line(page, sel)
    assert after["lastX"] == 9 and after["lastY"] == 0.2
    assert len(after["points"]) == 10
    # the axes now span steps 0-9: step 4 moved left, and it is no longer
    # the lowest point (SVG y grows downwards)
    bx, by = map(float, before["points"][4].split(","))
    ax, ay = map(float, after["points"][4].split(","))
    lx, ly = map(float, after["points"][9].split(","))
    assert ax < bx and ay < by and ly > ay and lx > ax
    page.screenshot("metrics-job-2.png")
    assert page.console_errors() == []


def test_points_without_steps_are_drawn_by_time(workspace, web_page):
    ws, page = workspace, web_page
    secret, job = web_running_job(ws, name="timed")
    t0 = 1790000000.0
    ws.events(secret, job, 1, [mev(4, [{"name": "gpu_util", "value": v, "time": t0 + i}
                                       for i, v in enumerate([10.0, 50.0, 90.0])])])
    web_login(page, ws, path=f"/jobs/{job}")
    sel = "#metrics figure[data-metric=gpu_util] polyline.line"
    page.wait(f"document.querySelector('{sel}') !== null")
    assert line(page, sel)["lastX"] == 2.0  # seconds since the first point
    assert page.eval("document.querySelector('#metrics figure[data-metric=gpu_util] svg')"
                     ".dataset.x") == "time"


def test_compare_overlays_one_metric_of_two_jobs(workspace, web_page):
    ws, page = workspace, web_page
    secret, a = web_running_job(ws, name="run-a")
    _, b = web_running_job(ws, name="run-b", secret=secret)
    ws.events(secret, a, 1, [mev(4, loss_points(0, 9))])
    ws.events(secret, b, 1, [mev(4, loss_points(0, 5, lambda i: 1.0 / (i + 2)) + [
        {"name": "lr", "value": 0.1, "step": 0}])])
    web_login(page, ws, path="/jobs")
    page.wait(f"document.querySelector('input.pick[value=\"{b}\"]') !== null")
    page.click(f"input.pick[value='{a}']")
    page.click(f"input.pick[value='{b}']")
    page.click("#compare-picked")
    page.wait("location.pathname === '/compare'")
    assert page.eval("location.search") == f"?jobs={a}%2C{b}"
    sel = "#compare-chart polyline.line"
    page.wait(f"document.querySelectorAll('{sel}').length === 2")
    # the metric both jobs have, loss, is the one shown; lr is offered too
    assert page.eval("document.querySelector('#compare-metric').value") == "loss"
    assert sorted(page.eval("Array.from(document.querySelectorAll('#compare-metric "
                            "option'), o => o.value)")) == ["loss", "lr"]
    lines = {line(page, f"{sel}[data-job='{j}']")["job"]: line(page, f"{sel}[data-job='{j}']")
             for j in (a, b)}
    assert lines[a]["rows"] == 10 and lines[a]["lastY"] == 0.2
    assert lines[b]["rows"] == 6 and lines[b]["lastX"] == 5 and lines[b]["lastY"] == 1.0 / 7
    # one x axis for both: job a's ten steps reach further right
    assert float(lines[a]["points"][-1].split(",")[0]) > \
        float(lines[b]["points"][-1].split(",")[0])
    page.screenshot("metrics-compare.png")
    # the overlay follows the runs too
    ws.events(secret, b, 1, [mev(5, loss_points(6, 11, lambda i: 1.0 / (i + 2)))])
    page.wait(f"document.querySelector(\"{sel}[data-job='{b}']\").dataset.rows === '12'",
              timeout=8)
    assert page.console_errors() == []


def test_real_agent_digits_chart_grows_and_two_runs_overlay(workspace, agent, web_page):
    """End to end: examples/digits under the real tether-agent prints
    TETHER_METRIC loss/accuracy per epoch (EPOCH_SLEEP slows it down so the
    page is seen mid-run); the job page's loss chart has some epochs while
    the job runs and all of them once it ended; a second digits run is
    overlaid with the first on the compare page."""
    from harness.life import digits_snapshot
    ws, page = workspace, web_page
    snap = digits_snapshot(ws)
    spec = {"command": ["/usr/bin/python3", "train.py"], "source": {"snapshot": snap}}
    a = ws.submit(name="digits-slow", env={"EPOCHS": "6", "EPOCH_SLEEP": "1.5"}, **spec)
    web_login(page, ws, path=f"/jobs/{a}")
    sel = "#metrics figure[data-metric=loss] polyline.line"
    page.wait(f"document.querySelector('{sel}') !== null", timeout=120)
    mid = line(page, sel)
    state_mid = ws.job(a)["state"]
    page.screenshot("metrics-digits-running.png")
    page.wait(f"document.querySelector('{sel}').dataset.rows === '6'", timeout=60)
    end = line(page, sel)
    assert state_mid == "running" and 1 <= mid["rows"] < 6, (state_mid, mid)
    assert end["rows"] == 6 and end["lastX"] == 6 and mid["points"] != end["points"]
    agent.wait_job(a, "succeeded", timeout=60)
    page.screenshot("metrics-digits-done.png")
    # the chart's data is the log's: epoch N/6 loss L
    log = agent.ws_log(a).decode()
    last_loss = float(log.split("epoch 6/6 loss ")[1].split()[0])
    assert abs(end["lastY"] - last_loss) <= 5.1e-5

    b = ws.submit(name="digits-fast", env={"EPOCHS": "3"}, **spec)
    agent.wait_job(b, "succeeded", timeout=120)
    page.goto(ws.url + f"/compare?jobs={a},{b}&metric=loss")
    sel = "#compare-chart polyline.line"
    page.wait(f"document.querySelectorAll('{sel}').length === 2", timeout=15)
    assert line(page, f"{sel}[data-job='{a}']")["rows"] == 6
    assert line(page, f"{sel}[data-job='{b}']")["rows"] == 3
    page.screenshot("metrics-digits-compare.png")
    assert page.console_errors() == []
