"""Docker build and pull colour their output with terminal escapes.  The
log keeps those bytes (the API and `tether logs` give them as sent), and
the web page renders them: colours as styled text, other escapes dropped,
never a raw ESC or "[0m" on the page."""
import json
import os
import subprocess

from harness.common import binary, tmpdir
from harness.fixtures_web import web_login, web_running_job

ESC = "\x1b"
LOG = (f"#5 [2/3] RUN pip install numpy\n"
       f"{ESC}[31mred error{ESC}[0m then plain\n"
       f"{ESC}[1;32mbold green{ESC}[0m{ESC}[2K{ESC}[?25l cursor codes\n"
       f"{ESC}]0;a window title{ESC}\\osc gone\n"
       f"{ESC}[38;5;208morange 256{ESC}[39m back\n").encode()


def test_colour_escapes_render_on_the_page(workspace, web_page):
    ws, page = workspace, web_page
    secret, job = web_running_job(ws, name="docker-build")
    st, _, b = ws.append(secret, job, 1, 0, LOG)
    assert st == 200, b
    # the log bytes stay as they were sent, through the API and the CLI
    st, _, body = ws.api("GET", f"/api/v1/jobs/{job}/log")
    assert body == LOG
    e = dict(os.environ, TETHER_WORKSPACE=ws.url, TETHER_TOKEN=ws.admin_token,
             TETHER_CA=ws.ca_file, XDG_CONFIG_HOME=os.path.join(tmpdir(), "c"))
    r = subprocess.run([binary("tether"), "logs", str(job)], env=e,
                       capture_output=True, timeout=60)
    assert r.stdout == LOG

    web_login(page, ws, path=f"/jobs/{job}")
    page.wait("document.querySelector('#log .win') !== null && "
              "document.querySelector('#log .win').textContent"
              ".includes('back')")
    text = page.eval("Array.from(document.querySelectorAll('#log .ln'), "
                     "(d) => d.textContent).join('\\n')")
    assert ESC not in text and "[0m" not in text and "[2K" not in text, text
    assert "window title" not in text
    for want in ("red error then plain", "bold green cursor codes",
                 "osc gone", "orange 256 back"):
        assert want in text, text
    styles = page.eval("""Array.from(document.querySelectorAll('#log .ln span'),
        (s) => [s.textContent, getComputedStyle(s).color,
                getComputedStyle(s).fontWeight])""")
    by_text = {t: (c, w) for t, c, w in styles}
    assert by_text["red error"][0] == "rgb(255, 123, 114)", styles
    assert by_text["bold green"][0] == "rgb(63, 185, 80)", styles
    assert int(by_text["bold green"][1]) >= 700, styles
    assert by_text["orange 256"][0] == "rgb(255, 135, 0)", styles
    assert "then plain" not in by_text and " back" not in by_text
    page.screenshot("log-colours.png")
    assert page.console_errors() == []
