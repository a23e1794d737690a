"""Every public method of the Network/Node surface, on a real pair (skipped when not root).

One test per method, each asserting what the method is for, so a broken method (or a
pyroute2 release that breaks ``node.ipr``) fails here by name. The tox env ``pyroute2-min``
runs this file with the lowest pyroute2 the package admits.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

import pytest
from rawstack_harness import Network
from rawstack_harness.backends.linux.nodes import LinuxNode
from rawstack_harness.topology import Topology, pair

pytestmark = [pytest.mark.netns]


@pytest.fixture
def net(netns_topology: Callable[[Topology], Network]) -> Network:
    return netns_topology(pair())


def test_name_netns_ifnames(net: Network) -> None:
    a = net["a"]
    assert (a.name, a.ifnames()) == ("a", ["eth0"])
    assert a.netns != net["b"].netns
    assert a.net is net


def test_addresses_and_addr(net: Network) -> None:
    a = net["a"]
    assert a.addresses() == ["10.0.0.1", "fd00::1"]
    assert a.addresses("eth0", 6) == ["fd00::1"]
    assert (a.addr(), a.addr(6)) == ("10.0.0.1", "fd00::1")
    with pytest.raises(LookupError):
        a.addr(4, "eth9")


def test_mac_is_what_the_kernel_reports(net: Network) -> None:
    out = net["a"].run(["ip", "-o", "link", "show", "eth0"], capture_output=True, text=True)
    assert net["a"].mac() in out.stdout
    with pytest.raises(LookupError):
        net["a"].mac("eth9")


def test_sysctl_reads_and_writes_in_the_node_only(net: Network) -> None:
    a, b = net["a"], net["b"]
    assert a.sysctl("net.ipv4.ip_forward", "1") == "1"
    assert b.sysctl("net.ipv4.ip_forward") == "0"


def test_socket_lives_in_the_node(net: Network) -> None:
    with net["b"].socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("10.0.0.2", 0))
        port = server.getsockname()[1]
        with net["a"].socket() as client:
            client.sendto(b"hi", ("10.0.0.2", port))
            server.settimeout(5)
            assert server.recvfrom(10) == (b"hi", ("10.0.0.1", client.getsockname()[1]))


def test_opening_a_node_socket_leaves_this_thread_in_its_own_namespace(net: Network) -> None:
    # The socket is opened from this thread (setns there and back): it must come back, also
    # when socket() fails inside the node.
    home = os.readlink("/proc/thread-self/ns/net")
    with net["a"].socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("10.0.0.1", 0))  # only node a has this address
    assert os.readlink("/proc/thread-self/ns/net") == home
    with pytest.raises(OSError, match="Protocol not supported"):
        net["a"].socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_UDP)
    assert os.readlink("/proc/thread-self/ns/net") == home
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mine,
        pytest.raises(OSError, match="Cannot assign requested address"),
    ):
        mine.bind(("10.0.0.1", 0))  # and this thread's own sockets are not in the node


def test_run_text_and_bytes(net: Network) -> None:
    text = net["a"].run(["ip", "-o", "addr", "show", "eth0"], capture_output=True, text=True)
    assert "10.0.0.1/24" in text.stdout
    raw = net["a"].run([sys.executable, "-c", "print('x')"], capture_output=True)
    assert raw.stdout == b"x\n"
    here = net["a"].run(["pwd"], cwd="/", env={"PATH": os.defpath}, capture_output=True, text=True)
    assert here.stdout == "/\n"
    pwd = net["a"].popen(["pwd"], cwd="/", stdout=subprocess.PIPE, text=True)
    assert pwd.communicate(timeout=30)[0] == "/\n"


def test_popen_stop_process_and_stop_processes(net: Network) -> None:
    a = net["a"]
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    one, two = a.popen(sleeper), a.popen(sleeper, stdout=subprocess.DEVNULL)
    assert a.stop_process(one) == -signal.SIGTERM
    assert two.poll() is None  # stopping one process leaves the others
    a.stop_processes()
    assert two.returncode == -signal.SIGTERM


def test_ipr_is_a_pyroute2_handle_inside_the_node(net: Network) -> None:
    a = net["a"]
    assert isinstance(a, LinuxNode)
    names = {link.get_attr("IFLA_IFNAME") for link in a.ipr.get_links()}
    assert names >= {"lo", "eth0"}
    assert a.ipr is a.ipr  # one handle, closed with the node
    assert a.ifindex("eth0") in {link["index"] for link in a.ipr.get_links()}


def test_describe_and_destroy(net: Network) -> None:
    info = net.describe()
    assert info["name"] == "pair"
    nodes = info["nodes"]
    assert isinstance(nodes, dict)
    assert set(nodes) == {"a", "b"}
    net.destroy()
    net.destroy()  # idempotent
    assert net.topology.name == "pair"


def test_linux_extras_endpoints_netlink_signal(net: Network) -> None:
    a = net["a"]
    assert isinstance(a, LinuxNode)
    assert [(e.node, e.ifname) for e in a.endpoints()] == [("a", "eth0")]
    assert a.netlink().family == socket.AF_NETLINK
    proc = a.popen([sys.executable, "-c", "import time; time.sleep(60)"])
    a.signal_processes(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    a.stop_processes()


def test_peers_of_a_pair(netns_pair: Network) -> None:
    peer = netns_pair.peers["b"]
    assert peer.port("http") == 8080
    assert peer.port("udp") == 8080
    assert peer.servers["icmp"] == "rawstack"
    assert not peer.died()
    assert "--- " in peer.logs()
    assert set(peer.ready) == {"http", "udp", "chao", "icmp"}
