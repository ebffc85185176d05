"""Debian 12 guests for the VM tier (tests/vm/, docs/testing-vm.md).

    image = ensure_image()                   # built once, cached by its inputs
    with Guest(image, name="a") as g:        # boots a qcow2 overlay, waits for ssh
        g.put("build/tether.deb", "/root/")  # scp
        r = g.sh("systemctl is-system-running --wait")
        g.sh("false", check=False).returncode
    # leaving the block collects the journal and the console log into the
    # log directory and stops the guest, whatever happened inside.

The image: `debootstrap --variant=minbase` from the machine's own apt mirror
(harness/baseimage.apt_mirror: never a host name in the tree) with systemd,
Debian's kernel, sshd and Tether's runtime libraries, customised (networkd
DHCP, an ssh key made for the image, an empty machine-id, timers masked) and
written with `mkfs.ext4 -d` into a raw disk; kernel and initrd beside it.
It lives in $TETHER_VM_CACHE (default /var/cache/tether-vm)/image-<key>/, where
key hashes the package list and the code that builds it, built under a lock and renamed into
place whole, so a crash leaves no half image and parallel runs build it once.

Guests: qemu's software emulator (TCG; /dev/kvm on this machine cannot boot
a stock kernel), 2 vCPUs, user networking (the host is 10.0.2.2 to the guest;
its sshd is forwarded to a free loopback port).  Each guest has a run
directory under <cache>/run/ holding its overlay, pid files and console log;
qemu runs under `setpriv --pdeathsig KILL` (it dies with the harness), and
reap_stale() kills and removes the guests of harness processes that are gone
(a crashed run), so nothing accumulates."""
import fcntl
import hashlib
import inspect
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bb"))
from harness import baseimage  # noqa: E402

CACHE = os.environ.get("TETHER_VM_CACHE", "/var/cache/tether-vm")
RUN_DIR = os.path.join(CACHE, "run")



def _deb_depends():
    """The .deb's Depends (cmake/TetherPackage.cmake), read from the tree so
    that a library the package gains is in the guest too."""
    path = os.path.join(HERE, "..", "..", "cmake", "TetherPackage.cmake")
    with open(path) as f:
        m = re.search(r'CPACK_DEBIAN_PACKAGE_DEPENDS\s*"([^"]*)"', f.read())
    if m is None:
        raise RuntimeError("%s: no CPACK_DEBIAN_PACKAGE_DEPENDS" % path)
    return [d.split()[0] for d in m.group(1).split(",") if d.strip()]


# The guest: systemd (PID 1, cgroup v2), Debian's kernel, sshd, and what
# the tether .deb depends on, so that `dpkg -i` needs no network.
PACKAGES = sorted(set([
    "systemd", "systemd-sysv", "udev", "dbus", "linux-image-amd64",
    "openssh-server", "iproute2", "python3", "ca-certificates", "procps",
    "kmod", "e2fsprogs",
] + _deb_depends()) - {"libc6"})
# Units a test guest never needs: they only cost CPU under emulation.
MASK = ["apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer",
        "fstrim.timer", "man-db.timer", "getty@tty1.service",
        "systemd-timesyncd.service", "dpkg-db-backup.timer",
        "logrotate.timer", "systemd-tmpfiles-clean.timer"]
# What the digits example (examples/digits/job-venv.json) needs on a node:
# Debian's PyTorch and scikit-learn (the venv takes them from the system
# site packages) and python3-venv.  Not in the base image: only
# test_vm_digits boots the image with them (ensure_image(DIGITS)), so the
# other guests keep a small image and a cold base build does not fetch
# them; they are installed with apt-get in a chroot of the base root.
DIGITS = sorted(["python3-torch", "python3-sklearn", "python3-venv"])
DISK_SIZE = "3G"
# They take ≈ 1.8 GB: the image with extra packages gets a larger (sparse)
# disk, so that the guest keeps room for venvs and job directories.
EXTRA_DISK_SIZE = "5G"
SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o",
            "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o",
            "BatchMode=yes", "-o", "ConnectTimeout=10", "-o",
            "ServerAliveInterval=15", "-o", "ServerAliveCountMax=8"]


def log(msg):
    """To stderr, and to harness.log in $TETHER_VM_LOGS (boot times and
    other measurements, kept when the tests pass)."""
    line = "[vm %s] %s" % (time.strftime("%H:%M:%S"), msg)
    print(line, file=sys.stderr, flush=True)
    if os.environ.get("TETHER_VM_LOGS"):
        try:
            with open(os.path.join(os.environ["TETHER_VM_LOGS"],
                                   "harness.log"), "a") as f:
                f.write(line + "\n")
        except OSError:
            pass


def _key(extra=()):
    """Hash of what the image is made of: the packages, the masked units,
    the disk size and the code that builds it (not the guest runner); for
    an image with extra packages, those and the code that adds them too."""
    h = hashlib.sha256()
    h.update(repr((PACKAGES, MASK, DISK_SIZE)).encode())
    for fn in (_write, _customise, ensure_image):
        h.update(inspect.getsource(fn).encode())
    if extra:
        h.update(repr((sorted(extra), EXTRA_DISK_SIZE)).encode())
        h.update(inspect.getsource(_install_extra).encode())
    return h.hexdigest()[:12]


class Image:
    def __init__(self, path):
        self.dir = path
        self.disk = os.path.join(path, "base.img")
        self.kernel = os.path.join(path, "vmlinuz")
        self.initrd = os.path.join(path, "initrd.img")
        self.ssh_key = os.path.join(path, "id_ed25519")


def _write(root, rel, text, mode=0o644):
    path = os.path.join(root, rel.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _customise(root, pubkey):
    """Make the debootstrapped root bootable as a test guest."""
    def chroot(*argv):
        subprocess.run(["chroot", root] + list(argv), check=True,
                       capture_output=True, timeout=300,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                            "LC_ALL": "C"})

    _write(root, "/etc/hostname", "tether-vm\n")
    _write(root, "/etc/hosts", "127.0.0.1 localhost\n127.0.1.1 tether-vm\n")
    _write(root, "/etc/fstab", "/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    _write(root, "/etc/systemd/network/10-dhcp.network",
           "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n")
    # resolv.conf: the user-mode network's DNS (nothing is resolved anyway).
    if os.path.islink(os.path.join(root, "etc/resolv.conf")):
        os.unlink(os.path.join(root, "etc/resolv.conf"))
    _write(root, "/etc/resolv.conf", "nameserver 10.0.2.3\n")
    _write(root, "/root/.ssh/authorized_keys", pubkey, 0o600)
    os.chmod(os.path.join(root, "root/.ssh"), 0o700)
    _write(root, "/etc/ssh/sshd_config.d/tether-vm.conf",
           "PermitRootLogin prohibit-password\nUseDNS no\n"
           "MaxStartups 100\nMaxSessions 100\n")
    # Every guest must have its own machine-id (the workspace refuses a
    # second agent with the same one): empty, systemd makes one at boot.
    _write(root, "/etc/machine-id", "")
    for p in ("var/lib/dbus/machine-id",):
        if os.path.lexists(os.path.join(root, p)):
            os.unlink(os.path.join(root, p))
    # The serial console gets the kernel messages and a getty; the journal
    # is kept in memory only (less I/O under emulation).
    _write(root, "/etc/systemd/journald.conf.d/tether-vm.conf",
           "[Journal]\nStorage=volatile\n")
    chroot("systemctl", "enable", "systemd-networkd.service", "ssh.service")
    chroot("systemctl", "mask", *MASK)
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        shutil.rmtree(os.path.join(root, d), ignore_errors=True)
        os.makedirs(os.path.join(root, d), exist_ok=True)


def _install_extra(root, packages):
    """apt-get install packages (with their dependencies) into the
    debootstrapped root, from the mirror debootstrap wrote into its
    sources.list; the lists and archives are removed again."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
           "DEBIAN_FRONTEND": "noninteractive"}
    # A snapshot mirror's Release files are past their Valid-Until.
    opts = ["-o", "Acquire::Check-Valid-Until=false", "-o",
            "Acquire::Retries=3", "-o", "APT::Install-Recommends=false"]
    resolv = os.path.join(root, "etc/resolv.conf")
    if os.path.lexists(resolv):
        os.unlink(resolv)
    shutil.copy("/etc/resolv.conf", resolv)  # the build reaches the mirror
    proc = os.path.join(root, "proc")
    subprocess.run(["mount", "-t", "proc", "proc", proc], check=True)
    try:
        for argv in (["apt-get"] + opts + ["update"],
                     ["apt-get"] + opts + ["install", "-y"] + list(packages)):
            r = subprocess.run(["chroot", root] + argv, capture_output=True,
                               text=True, timeout=1800, env=env)
            if r.returncode != 0:
                raise RuntimeError("%s: %s" % (" ".join(argv),
                                               (r.stdout + r.stderr)[-3000:]))
        subprocess.run(["chroot", root, "apt-get", "clean"], check=True,
                       capture_output=True, timeout=300, env=env)
    finally:
        subprocess.run(["umount", "-l", proc], check=False)


def _prune_images(keep, max_age=86400):
    """Remove images of other keys (older versions of the harness) that no
    run has used for max_age seconds."""
    for name in os.listdir(CACHE):
        d = os.path.join(CACHE, name)
        if not name.startswith("image-") or name.endswith(".lock") or \
                d == keep or not os.path.isdir(d):
            continue
        try:
            if time.time() - os.stat(d).st_mtime > max_age:
                shutil.rmtree(d, ignore_errors=True)
                os.unlink(d + ".lock")
        except OSError:
            pass


def ensure_image(extra=()):
    """The cached guest image, built (≈ 2-4 min) when missing; with extra,
    an image that also holds those Debian packages (its own key)."""
    path = os.path.join(CACHE, "image-" + _key(extra))
    os.makedirs(CACHE, exist_ok=True)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(path, "base.img")):
            os.utime(path)  # in use: not pruned
            _prune_images(path)
            return Image(path)
        log("building the guest image " + path)
        t0 = time.time()
        for attempt in (1, 2):  # a mirror hiccup should not fail the tier
            try:
                tarball = baseimage.ensure_rootfs_tarball(include=PACKAGES)
                break
            except (RuntimeError, subprocess.SubprocessError) as exc:
                if attempt == 2:
                    raise
                log("debootstrap failed, once more: %s" % str(exc)[-500:])
        work = tempfile.mkdtemp(prefix="build-", dir=CACHE)
        try:
            root = os.path.join(work, "root")
            out = os.path.join(work, "image")
            os.makedirs(root)
            os.makedirs(out)
            subprocess.run(["tar", "-C", root, "--numeric-owner", "-xf",
                            tarball], check=True, timeout=600)
            if extra:
                _install_extra(root, extra)
            key = os.path.join(out, "id_ed25519")
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                            "-C", "tether-vm", "-f", key], check=True)
            with open(key + ".pub") as f:
                _customise(root, f.read())
            boot = os.path.join(root, "boot")
            kernels = sorted(n for n in os.listdir(boot)
                             if n.startswith("vmlinuz-"))
            assert kernels, "no kernel in the guest root"
            version = kernels[-1][len("vmlinuz-"):]
            shutil.copy(os.path.join(boot, "vmlinuz-" + version),
                        os.path.join(out, "vmlinuz"))
            shutil.copy(os.path.join(boot, "initrd.img-" + version),
                        os.path.join(out, "initrd.img"))
            subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "tether-vm",
                            "-U", "6e7e7e7e-0000-4000-8000-000000000024",
                            "-E", "hash_seed=6e7e7e7e-0000-4000-8000-"
                            "000000000024", "-d", root,
                            os.path.join(out, "base.img"),
                            EXTRA_DISK_SIZE if extra else DISK_SIZE],
                           check=True, capture_output=True, timeout=600)
            os.chmod(os.path.join(out, "base.img"), 0o444)
            os.rename(out, path)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log("image built in %.0f s" % (time.time() - t0))
    return Image(path)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or "0")
    except (OSError, ValueError):
        return 0


def reap_stale():
    """Kill and remove guests whose harness process is gone."""
    if not os.path.isdir(RUN_DIR):
        return
    for name in os.listdir(RUN_DIR):
        d = os.path.join(RUN_DIR, name)
        owner = _read_int(os.path.join(d, "owner.pid"))
        if owner and _pid_alive(owner):
            continue
        qpid = _read_int(os.path.join(d, "qemu.pid"))
        if qpid and _pid_alive(qpid):
            try:
                with open("/proc/%d/cmdline" % qpid, "rb") as f:
                    cmd = f.read()
                if d.encode() in cmd:
                    os.kill(qpid, signal.SIGKILL)
            except OSError:
                pass
        log("removed stale guest " + d)
        shutil.rmtree(d, ignore_errors=True)


class Guest:
    """One booted guest; use as a context manager."""

    def __init__(self, image, name="guest", logdir=None, memory=1536, cpus=2,
                 boot_timeout=300, boot_tries=2, extra_args=()):
        self.image = image
        # More qemu arguments (test_vm_ddp: a second NIC on a network
        # shared with another guest).
        self.extra_args = list(extra_args)
        self.name = name
        self.logdir = logdir or os.environ.get("TETHER_VM_LOGS") or \
            tempfile.mkdtemp(prefix="tether-vm-logs-")
        os.makedirs(self.logdir, exist_ok=True)
        self.memory = memory
        self.cpus = cpus
        self.boot_timeout = boot_timeout
        self.boot_tries = boot_tries
        self.proc = None
        self.dir = None
        self.port = None
        self.boot_seconds = None

    # -- lifecycle -----------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        reap_stale()
        os.makedirs(RUN_DIR, exist_ok=True)
        last = None
        for attempt in range(1, self.boot_tries + 1):
            try:
                self._boot()
                return
            except Exception as exc:  # boot only is retried
                last = exc
                log("%s: boot attempt %d failed: %s" % (self.name, attempt,
                                                         exc))
                self._save_console("console-failed-%d.log" % attempt)
                self._kill()
        raise RuntimeError("guest %s did not boot: %s" % (self.name, last))

    def _boot(self):
        self.dir = tempfile.mkdtemp(prefix="%d-%s-" % (os.getpid(), self.name),
                                    dir=RUN_DIR)
        with open(os.path.join(self.dir, "owner.pid"), "w") as f:
            f.write(str(os.getpid()))
        overlay = os.path.join(self.dir, "overlay.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                        "-b", self.image.disk, overlay], check=True)
        self.port = free_port()
        self.console = os.path.join(self.dir, "console.log")
        argv = [
            "setpriv", "--pdeathsig", "KILL", "--",
            "qemu-system-x86_64", "-name", self.name,
            "-accel", "tcg,thread=multi,tb-size=256",
            # Every x86-64 feature the emulator has (SSE4, AVX2...), as
            # servers do: Debian's PyTorch dies with SIGILL on qemu's
            # default qemu64 model (SSE3 at most).
            "-cpu", "max",
            "-m", str(self.memory), "-smp", str(self.cpus),
            "-kernel", self.image.kernel, "-initrd", self.image.initrd,
            "-append", "root=/dev/vda rw console=ttyS0 quiet "
            "systemd.unified_cgroup_hierarchy=1 mitigations=off",
            "-drive", "file=%s,if=virtio,format=qcow2,cache=unsafe" % overlay,
            "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:%d-:22" % self.port,
            "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci",
            "-display", "none", "-monitor", "none",
            "-serial", "file:" + self.console,
            "-pidfile", os.path.join(self.dir, "qemu.pid"),
            "-no-reboot",
        ] + self.extra_args
        t0 = time.time()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=open(os.path.join(
                                         self.dir, "qemu.out"), "w"),
                                     stderr=subprocess.STDOUT)
        deadline = t0 + self.boot_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("qemu exited %d" % self.proc.returncode)
            if time.time() > deadline:
                raise RuntimeError("no ssh after %d s" % self.boot_timeout)
            r = subprocess.run(self._ssh_argv("true"), capture_output=True,
                               timeout=60, stdin=subprocess.DEVNULL)
            if r.returncode == 0:
                break
            time.sleep(2)
        self.boot_seconds = time.time() - t0
        log("%s up in %.0f s (ssh on 127.0.0.1:%d)" % (self.name,
                                                       self.boot_seconds,
                                                       self.port))

    def _save_console(self, name):
        if self.dir and os.path.exists(os.path.join(self.dir, "console.log")):
            shutil.copy(os.path.join(self.dir, "console.log"),
                        os.path.join(self.logdir, "%s-%s" % (self.name, name)))

    def _kill(self):
        if self.dir and os.path.exists(os.path.join(self.dir, "ssh.sock")):
            subprocess.run(["ssh", "-o", "ControlPath=%s/ssh.sock" % self.dir,
                            "-O", "exit", "root@127.0.0.1"],
                           capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def stop(self):
        """Collect the journal and console, then stop the guest."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                r = subprocess.run(self._ssh_argv(
                    "journalctl -b --no-pager -o short-monotonic"),
                    capture_output=True, timeout=90,
                    stdin=subprocess.DEVNULL)
                with open(os.path.join(self.logdir, self.name + "-journal.log"),
                          "wb") as f:
                    f.write(r.stdout)
            except Exception as exc:
                log("%s: journal not collected: %s" % (self.name, exc))
        self._save_console("console.log")
        self._kill()

    # -- use -----------------------------------------------------------
    def _mux(self):
        """One ssh connection per guest, shared by every command and copy
        (ControlMaster): a handshake costs seconds under emulation."""
        return ["-o", "ControlMaster=auto", "-o",
                "ControlPath=%s/ssh.sock" % self.dir, "-o",
                "ControlPersist=600"]

    def _ssh_argv(self, command):
        return ["ssh", "-i", self.image.ssh_key, "-p", str(self.port)] + \
            SSH_OPTS + self._mux() + ["root@127.0.0.1", command]

    def sh(self, command, check=True, timeout=300, input=None):
        """Run a shell command in the guest as root; CompletedProcess with
        text stdout/stderr."""
        r = subprocess.run(self._ssh_argv(command), capture_output=True,
                           text=True, timeout=timeout, input=input,
                           stdin=None if input is not None
                           else subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError("%s: `%s` exited %d\nstdout: %s\nstderr: %s"
                                 % (self.name, command, r.returncode,
                                    r.stdout[-3000:], r.stderr[-3000:]))
        return r

    def put(self, src, dst, timeout=300):
        subprocess.run(["scp", "-q", "-i", self.image.ssh_key, "-P",
                        str(self.port)] + SSH_OPTS + self._mux() + ["-r", src,
                                                      "root@127.0.0.1:" + dst],
                       check=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def get(self, src, dst, timeout=300):
        subprocess.run(["scp", "-q", "-i", self.image.ssh_key, "-P",
                        str(self.port)] + SSH_OPTS + self._mux() + [
                            "root@127.0.0.1:" + src,
                                                      dst],
                       check=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def wait_for(self, command, timeout=120, interval=2):
        """Run command until it exits 0; its CompletedProcess."""
        deadline = time.time() + timeout
        while True:
            r = self.sh(command, check=False, timeout=120)
            if r.returncode == 0:
                return r
            if time.time() > deadline:
                raise AssertionError("%s: `%s` not true after %d s: %s %s" % (
                    self.name, command, timeout, r.stdout[-2000:],
                    r.stderr[-2000:]))
            time.sleep(interval)


if __name__ == "__main__":
    # Smoke: build the image, boot one guest, print what it runs.
    img = ensure_image()
    with Guest(img, name="smoke") as g:
        print(g.sh("uname -r; stat -fc %T /sys/fs/cgroup; "
                   "cat /sys/fs/cgroup/cgroup.controllers; "
                   "systemctl is-system-running --wait; cat /etc/machine-id"
                   ).stdout)
        print("boot %.1f s" % g.boot_seconds)
