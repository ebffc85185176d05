"""A network namespace joined to the host by a veth pair, for partition
tests (docs/reliability.md).  This kernel has no netem: a partition is the
link set down, or nftables rules in the namespace that drop everything.

    ns = NetNS()                  # host side ns.host_ip, namespace ns.ns_ip
    argv = ns.wrap([...])         # run a command inside the namespace
    ns.link(False); ns.link(True) # cable pulled / plugged back
    ns.drop(True); ns.drop(False) # packets silently dropped / passed
    ns.close()
"""
import os
import secrets
import subprocess


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


class NetNS:
    def __init__(self):
        tag = secrets.token_hex(4)
        self.name = "trel" + tag
        self.host_if, self.ns_if = "vh" + tag, "vn" + tag
        k = int(tag[:2], 16) % 250 + 2
        self.host_ip, self.ns_ip = f"10.231.{k}.1", f"10.231.{k}.2"
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name",
                self.ns_if)
            _ip("link", "set", self.ns_if, "netns", self.name)
            _ip("addr", "add", self.host_ip + "/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            self._in("ip", "addr", "add", self.ns_ip + "/30", "dev", self.ns_if)
            self._in("ip", "link", "set", self.ns_if, "up")
            self._in("ip", "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise
        self.dropping = False

    def _in(self, *argv):
        subprocess.run(self.wrap(list(argv)), check=True, capture_output=True)

    def wrap(self, argv):
        return ["ip", "netns", "exec", self.name, *argv]

    def wrapper_script(self, binary, directory):
        """An executable that runs `binary` inside the namespace with the
        same pid (sh exec -> nsenter -> exec)."""
        # nsenter, not `ip netns exec`: that one remounts /sys, and the
        # cgroup hierarchies with it.
        p = os.path.join(directory, "in-" + self.name + "-" + os.path.basename(binary))
        with open(p, "w") as f:
            f.write(f'#!/bin/sh\nexec nsenter --net=/var/run/netns/{self.name} '
                    f'{binary} "$@"\n')
        os.chmod(p, 0o755)
        return p

    def link(self, up):
        _ip("link", "set", self.host_if, "up" if up else "down")

    def drop(self, on):
        if on and not self.dropping:
            rules = (f"table inet {self.name} {{\n"
                     " chain in { type filter hook input priority 0; policy accept;"
                     f" ip saddr {self.host_ip} drop; }}\n"
                     " chain out { type filter hook output priority 0; policy accept;"
                     f" ip daddr {self.host_ip} drop; }}\n}}\n")
            subprocess.run(self.wrap(["nft", "-f", "-"]), input=rules.encode(),
                           check=True, capture_output=True)
        elif not on and self.dropping:
            self._in("nft", "delete", "table", "inet", self.name)
        self.dropping = on

    def close(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
