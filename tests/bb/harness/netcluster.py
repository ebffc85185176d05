"""Several "machines" on one host for multi-node tests (docs/multi-node.md):
N network namespaces, each with its own address on one Ethernet segment
that the host is on too.

    with NetCluster(2) as net:           # or net = NetCluster(2); net.close()
        net.host_ip                      # the host's address on the segment
        net.nodes[i].ip                  # node i's address
        net.agent_binary(i)              # tether-agent run inside node i
        net.run(i, ["ip", "addr"])       # any command inside node i

The bridge lives in a namespace of its own ("the switch"), joined to the
host and to each node by a veth pair.  A bridge on the host would not do
here: with br_netfilter loaded, bridged frames go through the host's
iptables FORWARD chain, which dockerd sets to DROP.  In the switch's own
namespace that chain is empty, and the host only sends and receives.

Everything is removed by close(), also when setting up fails halfway, and
at exit for a cluster a test forgot.  Needs root (ip netns, veth)."""
import atexit
import os
import secrets
import subprocess

from harness.common import tmpdir

_open = []


def _ip(*args, ns=None):
    argv = ["ip", *args] if ns is None else ["ip", "-n", ns, *args]
    subprocess.run(argv, check=True, capture_output=True)


class Node:
    def __init__(self, ns, ip, ifname):
        self.ns, self.ip, self.ifname = ns, ip, ifname


class NetCluster:
    def __init__(self, n):
        tag = secrets.token_hex(3)
        self.tag = tag
        k = int(tag[:2], 16) % 200 + 20
        self.prefix = f"10.233.{k}"
        self.switch = "tsw" + tag
        self.host_if = "tch" + tag
        self.host_ip = f"{self.prefix}.1"
        self.nodes = []
        self._dir = tmpdir("tether-netcluster-")
        _open.append(self)
        try:
            _ip("netns", "add", self.switch)
            _ip("link", "add", "br0", "type", "bridge", ns=self.switch)
            _ip("link", "set", "br0", "up", ns=self.switch)
            _ip("link", "set", "lo", "up", ns=self.switch)
            self._plug(self.host_if, None, self.host_ip, "up0")
            for i in range(n):
                ns = f"tnd{tag}{i}"
                _ip("netns", "add", ns)
                self.nodes.append(Node(ns, f"{self.prefix}.{10 + i}",
                                       f"tn{tag}{i}"))
                self._plug(self.nodes[-1].ifname, ns, self.nodes[-1].ip,
                           f"up{i + 1}")
                _ip("link", "set", "lo", "up", ns=ns)
        except Exception:
            self.close()
            raise

    def _plug(self, ifname, ns, ip, port):
        """A veth pair: ifname (in ns, None: the host) with ip/24, and
        its peer `port` on the switch's bridge."""
        _ip("link", "add", ifname, "type", "veth", "peer", "name", port,
            "netns", self.switch)
        if ns is not None:
            _ip("link", "set", ifname, "netns", ns)
        _ip("addr", "add", ip + "/24", "dev", ifname, ns=ns)
        _ip("link", "set", ifname, "up", ns=ns)
        _ip("link", "set", port, "master", "br0", ns=self.switch)
        _ip("link", "set", port, "up", ns=self.switch)

    def wrap(self, i, argv):
        # nsenter, not `ip netns exec`: that one remounts /sys, and the
        # cgroup hierarchies with it (the sandbox needs them)
        return ["nsenter", f"--net=/var/run/netns/{self.nodes[i].ns}", *argv]

    def run(self, i, argv, **kw):
        return subprocess.run(self.wrap(i, argv), capture_output=True,
                              text=True, **kw)

    def agent_binary(self, i, binary):
        """An executable that runs `binary` inside node i (same pid)."""
        p = os.path.join(self._dir, f"node{i}-{os.path.basename(binary)}")
        with open(p, "w") as f:
            f.write(f'#!/bin/sh\nexec nsenter '
                    f'--net=/var/run/netns/{self.nodes[i].ns} {binary} "$@"\n')
        os.chmod(p, 0o755)
        return p

    def close(self):
        for node in self.nodes:
            subprocess.run(["ip", "netns", "del", node.ns],
                           capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_if],
                       capture_output=True)
        subprocess.run(["ip", "netns", "del", self.switch],
                       capture_output=True)
        if self in _open:
            _open.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@atexit.register
def _close_all():
    for c in list(_open):
        c.close()
