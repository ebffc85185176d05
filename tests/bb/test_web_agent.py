"""End to end with the real agent: a job printing 100,000 lines runs under
tether-agent; the job page follows its log live and shows the job's last
line within a second of the job printing it; the page's cancel stops a
running job on the node (the job ends cancelled)."""
import time

from harness.browser import ARTIFACTS
from harness.fixtures_web import web_login

SCRIPT = ("seq -f 'line %g of the real run' 1 100000; sleep 2; "
          "echo \"LAST LINE printed at $(date +%s.%N)\"; sleep 2")


def test_real_agent_live_log_and_cancel(workspace, agent, web_page):
    ws, page = workspace, web_page
    job = ws.submit(name="hundred-thousand", command=["sh", "-c", SCRIPT])
    web_login(page, ws, path=f"/jobs/{job}")
    page.wait("document.querySelector('#log .win').textContent"
              ".includes('line 100000 of the real run')", timeout=60)
    text = page.wait("(() => { const t = document.querySelector('#log .win')"
                     ".textContent; return t.includes('LAST LINE') && t; })()",
                     timeout=30, interval=0.01)
    seen = time.time()
    printed = float(text.split("LAST LINE printed at ")[1].split()[0][:20])
    print(f"last line shown {(seen - printed) * 1000:.0f} ms after the job printed it")
    assert seen - printed < 1.0
    assert page.eval("document.querySelectorAll('#log .ln').length") < 200
    page.wait("document.querySelector('.jobhead .state').textContent === 'succeeded'",
              timeout=30)
    # the job's 100,001 lines (the runner may add [tether] lines of its own)
    info = page.wait("(() => { const t = document.querySelector('#log-info')"
                     ".textContent; return t.includes('complete') && t; })()")
    assert int(info.split(" lines")[0].split()[-1]) >= 100001, info
    page.screenshot("job-page-real-agent.png", full=True)

    # cancel from the page reaches the runner through the agent
    job2 = ws.submit(name="to-cancel", command=["sh", "-c", "echo started; sleep 300"])
    page.goto(ws.url + f"/jobs/{job2}")
    page.wait("document.querySelector('#log .win').textContent.includes('started')",
              timeout=60)
    page.click("#cancel")
    page.click("#cancel-yes")
    page.wait("document.querySelector('.jobhead .state').textContent === 'cancelled'",
              timeout=30)
    assert ws.job(job2)["state"] == "cancelled"
    assert ws.job(job2)["attempts"][-1]["reason"] == "cancelled"
    print(f"screenshots in {ARTIFACTS}")
