"""A real OpenSSH sshd on a loopback port, for the SSH transport tests (and
git-over-ssh tests): its own host keys, sshd_config, authorized_keys and
generated client keys, started by the test and killed by pid at exit.

    s = Sshd(); s.start()
    s.url            # ssh://root@127.0.0.1:PORT
    s.keys["ed25519"], s.keys["rsa"], s.keys["ed25519_pass"] (+ s.passfile),
    s.keys["stranger"]  (a key the server does not accept)
    s.known_hosts()  # a known_hosts file with the server's current key
    s.fingerprint()  # "SHA256:..." of the host key
    s.rotate_host_key()  # new host key, sshd restarted on the same port
    s.log()          # sshd's own log (LogLevel DEBUG1)

sshd runs as root and logs users in as `user` (default root: the test
machine runs as root; PermitRootLogin prohibit-password)."""
import os
import shutil
import signal
import subprocess

from harness.common import Proc, free_port, tmpdir, wait_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


def keygen(path, kind="ed25519", passphrase="", comment="tether-test"):
    """A fresh key pair at path (+ .pub); returns path."""
    argv = ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", comment,
            "-f", path]
    if kind == "rsa":
        argv[2:2] = ["-b", "2048"]
    subprocess.run(argv, check=True, capture_output=True)
    return path


def fingerprint_of(pub_path):
    """SHA256 fingerprint of a public key file, as ssh-keygen -l prints it."""
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", pub_path],
                         check=True, capture_output=True, text=True).stdout
    return out.split()[1]


class Sshd:
    def __init__(self, user="root", host_key_type="ed25519", extra_config="",
                 rsa_sha1=True, chroot=None):
        self.dir = tmpdir("tether-sshd-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.user = user
        self.host_key_type = host_key_type
        self.extra_config = extra_config
        # chroot: sessions (and SFTP, served in-process) run inside that
        # directory, which sshd wants root-owned and not group/world
        # writable along its whole path (so not under /tmp).
        self.chroot = chroot
        self.sftp = "internal-sftp" if chroot else SFTP_SERVER
        if chroot:
            self.extra_config += f"\nChrootDirectory {chroot}\n"
        # libssh2 1.10 (Debian 12) signs RSA keys with ssh-rsa (SHA-1), which
        # OpenSSH 8.8+ refuses by default: let RSA keys in unless told not to.
        if rsa_sha1:
            self.extra_config += "\nPubkeyAcceptedAlgorithms +ssh-rsa\n"
        self.proc = None
        self.log_path = os.path.join(self.dir, "sshd.log")
        self.host_key = os.path.join(self.dir, "ssh_host_key")
        keygen(self.host_key, host_key_type, comment="host")
        self.passphrase = "correct horse battery staple"
        self.passfile = os.path.join(self.dir, "passphrase")
        with open(self.passfile, "w") as f:
            f.write(self.passphrase + "\n")
        self.keys = {}
        for name, kind, pw in (("ed25519", "ed25519", ""), ("rsa", "rsa", ""),
                               ("ed25519_pass", "ed25519", self.passphrase),
                               ("stranger", "ed25519", "")):
            self.keys[name] = keygen(os.path.join(self.dir, "id_" + name),
                                     kind, pw)
        self.authorized_keys = os.path.join(self.dir, "authorized_keys")
        with open(self.authorized_keys, "w") as out:
            for name in ("ed25519", "rsa", "ed25519_pass"):
                with open(self.keys[name] + ".pub") as f:
                    out.write(f.read())
        self.config = os.path.join(self.dir, "sshd_config")
        self._write_config()

    @property
    def url(self):
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def _write_config(self):
        with open(self.config, "w") as f:
            f.write(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {self.dir}/sshd.pid
AuthorizedKeysFile {self.authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
AllowTcpForwarding yes
AllowAgentForwarding no
X11Forwarding no
PrintMotd no
MaxStartups 50
LogLevel DEBUG1
Subsystem sftp {self.sftp}
{self.extra_config}
""")

    def start(self):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privsep dir
        check = subprocess.run([SSHD, "-t", "-f", self.config],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"sshd -t: {check.stderr}")
        self.proc = Proc([SSHD, "-D", "-f", self.config, "-E", self.log_path],
                         os.path.join(self.dir, "sshd.out"))
        wait_port(self.port)
        return self

    def stop(self):
        """Stop the listener and drop its connections."""
        if self.proc is not None:
            self.drop_connections()
            self.proc.stop()
            self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def _children(self, pid):
        kids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                kids.append(int(d))
        return kids

    def drop_connections(self):
        """SIGKILL the per-connection sshd processes (the clients see their
        connections die); the listener stays.  Returns how many."""
        if self.proc is None:
            return 0
        kids = self._children(self.proc.pid)
        for k in kids:
            for g in self._children(k):
                try:
                    os.kill(g, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(kids)

    def signal_connections(self, sig):
        """Send sig to the per-connection sshd processes (SIGSTOP: a server
        that has gone silent without closing anything)."""
        if self.proc is None:
            return 0
        kids = self._children(self.proc.pid)
        for k in kids + [g for k in kids for g in self._children(k)]:
            try:
                os.kill(k, sig)
            except ProcessLookupError:
                pass
        return len(kids)

    def rotate_host_key(self):
        """Replace the host key (a 'reinstalled' server) and restart."""
        for p in (self.host_key, self.host_key + ".pub"):
            os.unlink(p)
        keygen(self.host_key, self.host_key_type, comment="host")
        return self.restart()

    def host_pub(self):
        with open(self.host_key + ".pub") as f:
            kind, blob = f.read().split()[:2]
        return kind, blob

    def fingerprint(self):
        return fingerprint_of(self.host_key + ".pub")

    def known_hosts(self, path=None, host="127.0.0.1"):
        """Write a known_hosts file naming the current host key; its path."""
        path = path or os.path.join(tmpdir("tether-kh-"), "known_hosts")
        kind, blob = self.host_pub()
        with open(path, "w") as f:
            f.write(f"[{host}]:{self.port} {kind} {blob}\n")
        return path

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def auth_attempts(self):
        """sshd log lines that show a client tried to authenticate."""
        marks = ("userauth-request", "Accepted publickey", "Failed publickey",
                 "userauth_pubkey")
        return [ln for ln in self.log().splitlines()
                if any(m in ln for m in marks)]

    def accepted(self):
        return [ln for ln in self.log().splitlines()
                if "Accepted publickey" in ln]
