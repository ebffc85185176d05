"""The docs cannot rot: every `sh` block of docs/getting-started.md runs, in
order, as one script (as root, from the repository root, on this machine);
every command of README's walk-through appears among the commands that ran.

Pass criterion: the script exits 0 (it submits the digits example and waits
for it, downloads its outputs, cancels a job), and the README check finds each
of its commands."""
import os
import re
import shlex
import shutil
import subprocess

from harness.common import BUILD_DIR, SOURCE_DIR, tmpdir

WS_DIR = "/var/lib/tether-workspace"


def sh_blocks(path):
    with open(path) as f:
        text = f.read()
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def commands(block):
    """Command lines of a block: continuation lines joined, comments and
    blank lines dropped, trailing comments removed."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def head(cmd):
    """The program and its subcommand: 'tether logs', './install/install.sh'."""
    words = shlex.split(cmd.replace("$(", " ").replace(")", " "))
    words = [w for w in words if "=" not in w.split("/")[0] or w.startswith("-")]
    if words and words[0] == "export":
        return None
    return " ".join(words[:2]) if words and words[0] in (
        "tether", "tether-workspace", "tether-agent") else (words[0] if words else None)


def cleanup():
    subprocess.run([os.path.join(SOURCE_DIR, "install", "uninstall.sh"), "--purge"],
                   capture_output=True, timeout=120)
    subprocess.run(["pkill", "-f", "tether-workspace serve --dir " + WS_DIR],
                   capture_output=True)
    shutil.rmtree(WS_DIR, ignore_errors=True)


def test_getting_started_runs_and_readme_commands_are_covered():
    guide = os.path.join(SOURCE_DIR, "docs", "getting-started.md")
    blocks = sh_blocks(guide)
    assert len(blocks) >= 6, "getting-started lost its command blocks"
    work = tmpdir()
    script = os.path.join(work, "guide.sh")
    # The guide speaks of build/ (what tests/run.sh builds); use the build
    # under test wherever it is.
    text = "\n".join(blocks).replace("$PWD/build", BUILD_DIR).replace(
        "--build-dir build", "--build-dir " + BUILD_DIR)
    with open(script, "w") as f:
        f.write("set -euo pipefail\n")
        f.write(text)
    cleanup()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["HOME"] = work
    try:
        r = subprocess.run(["bash", script], cwd=SOURCE_DIR, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"getting-started failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
        assert "epoch 8/8" in r.stdout and "succeeded" in r.stdout, r.stdout[-3000:]
        assert "cancelled" in r.stdout
    finally:
        cleanup()
        shutil.rmtree(os.path.join(SOURCE_DIR, "digits-outputs"), ignore_errors=True)

    ran = {head(c) for b in blocks for c in commands(b)}
    with open(os.path.join(SOURCE_DIR, "README.md")) as f:
        readme = f.read()
    walk = readme.split("## What just happened", 1)[1].split("\n## ", 1)[0]
    for block in re.findall(r"```sh\n(.*?)```", walk, re.S):
        for c in commands(block):
            h = head(c)
            if h is not None:
                assert h in ran, f"README command '{c}' is not exercised by getting-started"
    # README command 1 is tests/bb/test_quickstart.py; command 2 is CI itself.
    first = sh_blocks(os.path.join(SOURCE_DIR, "README.md"))[0]
    assert [c.split()[0] for c in commands(first)] == ["./install/quickstart.sh",
                                                       "./tests/run.sh"]
