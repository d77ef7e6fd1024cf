"""The island gateway's rules, rendered by the role and loaded in network namespaces: what they let through.

Three namespaces joined by veth pairs (nothing else: no packet can leave them):

    node (10.99.1.11, fd99:1::11)  --eth0-- gw --eth1--  far (transit: 172.31.250.0/24, fd99::/64)
                                  10.99.1.2   172.31.250.11

`gw` renders the rules with the role's own tasks (validate.yml, then the template) through ansible-playbook run
inside the namespace, so the facts are its real interfaces, and loads them with `nft -f`. `far` holds every
transit-side source a test needs: the peer gateway and its egress address, the external host, strangers, and
addresses of the cluster's own networks (spoofed). rp_filter is 0 everywhere, so only the rules can drop a packet.

Each probe is bounded (1 s). A UDP datagram carries a fresh token and a recorder on the target writes down what
arrives, so "dropped" means "the target never saw it", whatever the reply path. The last test removes the table and
shows every blocked probe then gets through: the drops are the rules' doing. The tests skip when not root or without
`ip netns`/`nft`, and fail instead when ARCHIPELAGO_REQUIRE_LAB=1.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

TABLE = "archipelago_gateway"
VIP = "100.64.0.18"
PEER_EGRESS = "100.64.0.33"  # beta's egress address, in beta's global range 100.64.0.32/28
EXT = "172.31.250.100"  # inside the external network 172.31.250.96/28, which is also the management network
STRANGERS = ["172.31.250.50", "100.64.1.5"]  # on transit, in no remote network
SPOOFED = {"pod": "10.32.0.5", "service": "10.96.0.5", "node network": "10.99.1.50", "own global": "100.64.0.20"}
CORPORATE = "10.200.0.5"  # in the external network 10.0.0.0/8, which overlaps the cluster's private ranges
GW_TRANSIT, GW_INTERNAL, NODE = "172.31.250.11", "10.99.1.2", "10.99.1.11"
GW_TRANSIT6, NODE6, FAR6 = "fd99::11", "fd99:1::11", "fd99::100"
# A LoadBalancer Service's address of alpha's planned range, on the node network: the node namespace holds it, as
# MetalLB's L2 speaker answers ARP for it on the announcing node.
LOAD_BALANCER = "10.99.1.241"

PLAN = {
    "model": "island",
    "clusters": {
        "alpha": {"pod_cidrs": ["10.32.0.0/12"], "service_cidrs": ["10.96.0.0/12"], "global_cidrs": ["100.64.0.16/28"],
                  "load_balancer_cidrs": ["10.99.1.240/30"]},
        "beta": {"pod_cidrs": ["10.32.0.0/12"], "service_cidrs": ["10.96.0.0/12"], "global_cidrs": ["100.64.0.32/28"]},
    },
}
ROLE_VARS = {
    "island_gateway_cluster": "alpha",
    "island_gateway_plan": PLAN,
    "island_gateway_peers": {"beta": "172.31.250.12"},
    "island_gateway_nodes": [NODE],
    "island_gateway_external_networks": ["172.31.250.96/28", "10.0.0.0/8"],
    "island_gateway_management_networks": ["172.31.250.96/28"],
    "island_gateway_exports": [
        {"name": "web", "protocol": "tcp", "port": 8080, "node_port": 30080, "vip": VIP},
        {"name": "dns", "protocol": "udp", "port": 5353, "node_port": 30053, "vip": VIP},
        {"name": "lb", "protocol": "tcp", "port": 80, "load_balancer": {"address": LOAD_BALANCER, "port": 8080}, "vip": VIP},
    ],
}

# One server per namespace: TCP ports answer with the client's address; UDP ports append "port address payload" to
# a file. Dual-stack sockets; the server exits after its deadline.
SERVER = r"""
import selectors, socket, sys, time
record, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
sel = selectors.DefaultSelector()
for spec in sys.argv[3:]:
    proto, port = spec.split(":")
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", int(port)))
    if proto == "tcp":
        s.listen(16)
    sel.register(s, selectors.EVENT_READ, (proto, int(port)))
print("ready", flush=True)
while time.monotonic() < deadline:
    for key, _ in sel.select(timeout=1):
        proto, port = key.data
        if proto == "tcp":
            conn, peer = key.fileobj.accept()
            conn.sendall(peer[0].removeprefix("::ffff:").encode())
            conn.close()
        else:
            data, peer = key.fileobj.recvfrom(2048)
            with open(record, "a") as f:
                f.write(f"{port} {peer[0].removeprefix('::ffff:')} {data.decode(errors='replace')}\n")
"""

# One probe: TCP prints what the server answered (exit 1 when no connection within 1 s); UDP sends the payload
# three times from the given source.
CLIENT = r"""
import socket, sys
proto, source, address, port, payload = sys.argv[1:6]
family = socket.AF_INET6 if ":" in address else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.settimeout(1)
s.bind((source, 0))
if proto == "udp":
    for _ in range(3):
        s.sendto(payload.encode(), (address, int(port)))
    sys.exit(0)
try:
    s.connect((address, int(port)))
    print(s.recv(100).decode())
except OSError as error:
    print(error, file=sys.stderr)
    sys.exit(1)
"""


def _usable() -> str | None:
    """Why the namespaces cannot be built here, or None."""
    if os.geteuid() != 0:
        return "not root: network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"no {tool} command"
    name = f"agw-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    return None


def sh(*command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)}: {result.stdout}{result.stderr}")
    return result


class Lab:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.prefix = f"agw{os.getpid() % 100000}"
        self.ns = {role: f"{self.prefix}-{role}" for role in ("gw", "node", "far")}
        self.servers: list[subprocess.Popen] = []
        self.rules = tmp / "gateway.nft"

    def run(self, role: str, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.ns[role], *command, check=check, timeout=timeout)

    def build(self) -> None:
        for name in self.ns.values():
            sh("ip", "netns", "add", name)
        for left, right, host_a, host_b in (("gw", "node", "eth0", "eth0"), ("gw", "far", "eth1", "eth0")):
            a, b = f"{self.prefix}{left[0]}{right[0]}a", f"{self.prefix}{left[0]}{right[0]}b"
            sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            sh("ip", "link", "set", a, "netns", self.ns[left])
            sh("ip", "link", "set", b, "netns", self.ns[right])
            self.run(left, "ip", "link", "set", a, "name", host_a)
            self.run(right, "ip", "link", "set", b, "name", host_b)
        for role in self.ns:
            for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"):
                self.run(role, "sysctl", "-q", "-w", f"{key}=0")
            self.run(role, "ip", "link", "set", "lo", "up")
        for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
            self.run("gw", "sysctl", "-q", "-w", f"{key}=1")
        addresses = {
            "gw": [("eth0", f"{GW_INTERNAL}/24"), ("eth0", "fd99:1::2/64"), ("eth1", f"{GW_TRANSIT}/24"), ("eth1", f"{GW_TRANSIT6}/64")],
            "node": [("eth0", f"{NODE}/24"), ("eth0", f"{NODE6}/64"), ("eth0", f"{LOAD_BALANCER}/32")],
            "far": [("eth0", "172.31.250.12/24"), ("eth0", f"{FAR6}/64")]
            + [("eth0", f"{a}/32") for a in (PEER_EGRESS, EXT, *STRANGERS, *SPOOFED.values(), CORPORATE)],
        }
        for role, entries in addresses.items():
            for device, cidr in entries:
                self.run(role, "ip", "addr", "add", cidr, "dev", device, *(["nodad"] if ":" in cidr else []))
            for device in sorted({d for d, _ in entries}):
                self.run(role, "sysctl", "-q", "-w", f"net.ipv4.conf.{device}.rp_filter=0")
                self.run(role, "ip", "link", "set", device, "up")
        routes = {
            # The peer's global range via the peer gateway (the role's routes), and the corporate network.
            "gw": [("100.64.0.32/28", "172.31.250.12"), ("10.0.0.0/8", "172.31.250.12")],
            "node": [("172.31.250.0/24", GW_INTERNAL), ("100.64.0.0/16", GW_INTERNAL), ("10.0.0.0/8", GW_INTERNAL),
                     ("fd99::/64", "fd99:1::2")],
            "far": [("100.64.0.16/28", GW_TRANSIT), ("10.99.1.0/24", GW_TRANSIT), ("fd99:1::/64", GW_TRANSIT6)],
        }
        for role, entries in routes.items():
            for cidr, via in entries:
                self.run(role, "ip", "route", "replace", cidr, "via", via)
        self.serve("node", "tcp:30080", "udp:30053", "tcp:8080")
        self.serve("gw", "tcp:22", "tcp:9100", "udp:9100")
        self.serve("far", "tcp:7000")

    def serve(self, role: str, *specs: str) -> None:
        record = self.tmp / f"{role}.udp"
        record.touch()
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns[role], sys.executable, "-c", SERVER, str(record), "600", *specs],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.servers.append(proc)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()

    def render(self) -> str:
        playbook = self.tmp / "render.yml"
        playbook.write_text(yaml.safe_dump([{
            "name": "Render the gateway rules", "hosts": "localhost", "gather_facts": False, "vars": ROLE_VARS,
            "tasks": [
                {"name": "Validate", "ansible.builtin.include_role": {"name": "island_gateway", "tasks_from": "validate", "public": True}},
                {"name": "Render", "ansible.builtin.template": {"src": str(ROOT / "roles/island_gateway/templates/gateway.nft.j2"),
                                                                 "dest": str(self.rules), "mode": "0644"}},
            ],
        }]))
        env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_NOCOLOR": "1"}
        command = ["ip", "netns", "exec", self.ns["gw"], str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,",
                   "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)]
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        return self.rules.read_text()

    def load(self) -> None:
        self.run("gw", "nft", "-f", str(self.rules))

    def counter(self, name: str) -> int:
        text = self.run("gw", "nft", "list", "counters").stdout
        found = re.search(rf"counter {name} {{\s*packets (\d+)", text)
        assert found, f"no counter {name} in the gateway's rules:\n{text}"
        return int(found.group(1))

    def tcp(self, role: str, source: str, address: str, port: int) -> str | None:
        """What the server answered (the client address it saw), or None when no connection was made."""
        result = self.run(role, sys.executable, "-c", CLIENT, "tcp", source, address, str(port), "", check=False, timeout=10)
        return result.stdout.strip() if result.returncode == 0 else None

    def udp_arrives(self, role: str, source: str, address: str, port: int, target: str) -> bool:
        """Send a fresh token from source; True when the target's recorder saw it."""
        token = uuid.uuid4().hex
        self.run(role, sys.executable, "-c", CLIENT, "udp", source, address, str(port), token, timeout=10)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if token in (self.tmp / f"{target}.udp").read_text():
                return True
            time.sleep(0.1)
        return False

    def destroy(self) -> None:
        for proc in self.servers:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for name in self.ns.values():
            sh("ip", "netns", "del", name, check=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    reason = _usable()
    if reason is not None:
        if os.environ.get("ARCHIPELAGO_REQUIRE_LAB") == "1":
            pytest.fail(f"ARCHIPELAGO_REQUIRE_LAB=1 but the gateway rules cannot be tried here: {reason}", pytrace=False)
        pytest.skip(reason)
    lab = Lab(tmp_path_factory.mktemp("gateway-rules"))
    try:
        lab.build()
        lab.render()
        lab.load()
        yield lab
    finally:
        lab.destroy()


def test_rules_are_one_inet_table_that_replaces_the_old_ip_table(lab):
    text = lab.rules.read_text()
    assert f"table inet {TABLE} {{\n" in text
    assert f"delete table ip {TABLE}\n" in text, "a gateway upgraded from the ip table would keep it beside the new one"
    tables = lab.run("gw", "nft", "list", "tables").stdout.split("\n")
    assert [t for t in tables if t.strip()] == [f"table inet {TABLE}"]


def test_exports_answer_the_peers_global_range_and_the_external_networks(lab):
    for source in (PEER_EGRESS, EXT, CORPORATE):
        assert lab.tcp("far", source, VIP, 8080) == source, f"{source} (a remote) does not reach the export"
        assert lab.udp_arrives("far", source, VIP, 5353, "node"), f"{source}'s datagram to the UDP export did not arrive"


def test_a_load_balancer_export_reaches_the_address_on_the_node_link(lab):
    """The export's VIP port 80 is DNATed to the LoadBalancer address and port, which the gateway reaches on its
    internal link; the client's address is kept, and only the remotes get through."""
    for source in (PEER_EGRESS, EXT):
        assert lab.tcp("far", source, VIP, 80) == source, f"{source} does not reach the LoadBalancer export"
    assert lab.tcp("far", STRANGERS[0], VIP, 80) is None, "a source in no remote network reached the LoadBalancer export"
    assert f"{VIP} . tcp . 80 . 0 comment \"lb\" : {LOAD_BALANCER} . 8080" in lab.rules.read_text()


def test_exports_drop_every_other_transit_source(lab):
    before = lab.counter("forward_dropped")
    for source in STRANGERS:
        assert lab.tcp("far", source, VIP, 8080) is None, f"{source} (no remote) reached the export"
        assert not lab.udp_arrives("far", source, VIP, 5353, "node"), f"{source}'s datagram reached the export's backend"
    assert lab.counter("forward_dropped") > before, "the drops did not happen at the forward filter"


def test_transit_sources_inside_the_clusters_own_networks_are_dropped(lab):
    """10.0.0.0/8 is an external network here, and it holds the pod, service and node ranges: only anti-spoofing
    stops those sources (the corporate address beside them reaches the export, see above)."""
    for key in ("all", "default", "eth1"):
        assert lab.run("gw", "sysctl", "-n", f"net.ipv4.conf.{key}.rp_filter").stdout.strip() == "0"
    before = lab.counter("spoofed")
    for what, source in SPOOFED.items():
        where = f"a transit packet from the cluster's {what} ({source})"
        assert not lab.udp_arrives("far", source, VIP, 5353, "node"), f"{where} was forwarded"
        assert not lab.udp_arrives("far", source, GW_TRANSIT, 9100, "gw"), f"{where} reached the gateway"
    assert lab.counter("spoofed") >= before + 2 * 3 * len(SPOOFED), "the spoofed packets were not dropped by the anti-spoofing rule"


def test_gateway_host_accepts_from_transit_only_management_and_replies(lab):
    before = lab.counter("input_dropped")
    assert lab.tcp("far", EXT, GW_TRANSIT, 22) == EXT, "the management network does not reach SSH"
    assert lab.tcp("far", STRANGERS[0], GW_TRANSIT, 22) is None, "a non-management source reached SSH"
    assert lab.tcp("far", EXT, GW_TRANSIT, 9100) is None, "the management network reached a port other than SSH"
    assert not lab.udp_arrives("far", EXT, GW_TRANSIT, 9100, "gw"), "a UDP datagram from transit reached the gateway"
    assert lab.tcp("far", FAR6, GW_TRANSIT6, 22) is None, "IPv6 from transit reached the gateway's SSH"
    assert lab.counter("input_dropped") > before
    # Not on transit: the input filter leaves the internal side alone. From the gateway: replies come back.
    assert lab.tcp("node", NODE, GW_INTERNAL, 9100) == NODE
    assert lab.tcp("gw", GW_TRANSIT, EXT, 7000) == GW_TRANSIT, "the reply to the gateway's own connection was dropped"


def test_ipv6_is_never_forwarded(lab):
    before = lab.counter("forward_dropped")
    assert lab.tcp("far", FAR6, NODE6, 30080) is None, "IPv6 from transit was forwarded to a node"
    assert not lab.udp_arrives("far", FAR6, NODE6, 30053, "node"), "an IPv6 datagram from transit was forwarded"
    assert lab.tcp("node", NODE6, FAR6, 7000) is None, "IPv6 from the cluster was forwarded to transit"
    assert lab.counter("forward_dropped") >= before + 3
    # Neighbour discovery works (the drop is the forward filter's, not a dead link).
    neighbours = lab.run("far", "ip", "-6", "neigh", "show", GW_TRANSIT6).stdout
    assert "lladdr" in neighbours, neighbours


def test_without_the_rules_every_blocked_probe_gets_through(lab):
    """The control: with the table deleted, each probe the tests above expect dropped arrives."""
    lab.run("gw", "nft", "delete", "table", "inet", TABLE)
    try:
        assert lab.udp_arrives("far", STRANGERS[0], NODE, 30053, "node")
        for source in SPOOFED.values():
            assert lab.udp_arrives("far", source, NODE, 30053, "node"), source
        assert lab.udp_arrives("far", EXT, GW_TRANSIT, 9100, "gw")
        assert lab.tcp("far", STRANGERS[0], GW_TRANSIT, 22) == STRANGERS[0]
        assert lab.udp_arrives("far", FAR6, NODE6, 30053, "node")
        assert lab.tcp("far", FAR6, NODE6, 30080) == FAR6
    finally:
        lab.load()
