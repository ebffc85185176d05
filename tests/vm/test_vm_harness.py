"""The VM harness itself, without booting: a guest left by a crashed run
(its owner process gone) is killed and its run directory removed by the
next start; a live run's guest is left alone."""
import os
import subprocess
import tempfile
import time

import vm


def _fake_guest(owner_pid):
    """A run directory owned by owner_pid with a process standing in for
    its qemu (the directory in its command line, as qemu's has)."""
    os.makedirs(vm.RUN_DIR, exist_ok=True)
    d = tempfile.mkdtemp(prefix="%d-fake-" % owner_pid, dir=vm.RUN_DIR)
    proc = subprocess.Popen(["bash", "-c", 'exec -a "qemu-fake %s" sleep 601'
                             % d])
    with open(os.path.join(d, "owner.pid"), "w") as f:
        f.write(str(owner_pid))
    with open(os.path.join(d, "qemu.pid"), "w") as f:
        f.write(str(proc.pid))
    return d, proc


def test_reap_stale_kills_orphans_and_spares_live_runs():
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale, orphan = _fake_guest(gone.pid)
    live, keeper = _fake_guest(os.getpid())
    try:
        time.sleep(0.2)
        vm.reap_stale()
        assert orphan.wait(timeout=10) == -9
        assert not os.path.exists(stale)
        assert keeper.poll() is None and os.path.isdir(live)
    finally:
        keeper.kill()
        orphan.kill()
        keeper.wait()
        subprocess.run(["rm", "-rf", stale, live])
