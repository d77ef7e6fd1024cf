"""Safety of the podman lab: no lab packet can leave the machine.

Every podman network named arch-* (the lab's and the molecule scenarios') must be --internal with explicit
subnets. Every host of the lab inventory must have no default route, in any routing table and either family,
and no route off the lab: a route's gateway must sit on a lab subnet, and a route's destination must be a lab
subnet, one of the plan's pools, or loopback/link-local/multicast.

The per-host tests need the lab up (make lab-up); without it they skip and say so, unless
ARCHIPELAGO_REQUIRE_LAB=1 (CI, after bringing the lab up), which turns the skip into a failure.
The network test always runs.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
INVENTORY = Path(os.environ.get("ARCHIPELAGO_LAB_INVENTORY", REPO / "inventories" / "lab"))
REQUIRE_LAB = os.environ.get("ARCHIPELAGO_REQUIRE_LAB") == "1"
ENV = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "lab" / "containers.conf"))}

# The venv's ansible-inventory when pytest runs from the venv, else the one on PATH.
_VENV_INVENTORY = Path(sys.executable).parent / "ansible-inventory"
ANSIBLE_INVENTORY = str(_VENV_INVENTORY) if _VENV_INVENTORY.exists() else "ansible-inventory"

# Always on the machine, never a way out: loopback, link-local, multicast.
ALWAYS_ALLOWED = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128", "fe80::/10", "ff00::/8", "224.0.0.0/4")]
# Route types that deliver locally or drop: they never send a packet anywhere.
HARMLESS_TYPES = {"local", "broadcast", "multicast", "anycast", "unreachable", "blackhole", "prohibit", "throw"}


def podman(*args: str) -> str:
    return subprocess.run(["podman", *args], check=True, capture_output=True, text=True, env=ENV).stdout


@cache
def inventory() -> dict:
    out = subprocess.run([ANSIBLE_INVENTORY, "-i", str(INVENTORY), "--list"], check=True, capture_output=True, text=True, cwd=REPO).stdout
    return json.loads(out)


def lab_hosts() -> dict[str, dict]:
    return inventory()["_meta"]["hostvars"]


def any_hostvars() -> dict:
    return next(iter(lab_hosts().values()))


def lab_subnets() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(s) for net in any_hostvars()["lab_networks"] for s in net["subnets"]]


def plan_pools() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    pools = any_hostvars().get("network_plan", {}).get("pools", {})
    return [ipaddress.ip_network(c) for by_family in pools.values() for cidrs in by_family.values() for c in cidrs]


def inside(network: ipaddress.IPv4Network | ipaddress.IPv6Network, allowed) -> bool:
    return any(network.version == a.version and network.subnet_of(a) for a in allowed)


def route_problems(routes: list[dict], subnets, allowed_destinations) -> list[str]:
    """Every route that could send a packet off the lab, as readable strings; [] when the table is safe."""
    problems = []
    for route in routes:
        kind = route.get("type", "unicast")
        if kind in HARMLESS_TYPES:
            continue
        dst = route.get("dst", "")
        if dst == "default":
            problems.append(f"default route {route}")
            continue
        gateways = [route["gateway"]] if "gateway" in route else [hop["gateway"] for hop in route.get("nexthops", []) if "gateway" in hop]
        # Flannel routes other nodes' pod ranges "via <their pod network address> dev flannel.1 onlink": the VXLAN
        # device wraps them for a node address, which test_overlay_tunnels_stay_on_the_lab checks.
        overlay = route.get("dev", "").startswith("flannel") and "onlink" in route.get("flags", [])
        for gateway in gateways:
            on_lab = inside(ipaddress.ip_network(gateway), subnets)
            if not on_lab and not (overlay and inside(ipaddress.ip_network(gateway), allowed_destinations)):
                problems.append(f"gateway off the lab subnets {route}")
        if not inside(ipaddress.ip_network(dst, strict=False), allowed_destinations):
            problems.append(f"destination off the lab {route}")
    return problems


def test_route_check_catches_what_it_must():
    # The checker itself, on tables it must refuse and accept (runs without the lab).
    subnets = [ipaddress.ip_network("10.210.1.0/24")]
    allowed = subnets + [ipaddress.ip_network("10.32.0.0/12")] + ALWAYS_ALLOWED
    assert route_problems([{"dst": "default", "gateway": "10.210.1.1", "dev": "eth0"}], subnets, allowed)
    assert route_problems([{"dst": "8.8.8.0/24", "dev": "eth0"}], subnets, allowed)
    assert route_problems([{"dst": "10.32.1.0/24", "gateway": "192.168.1.1", "dev": "eth0"}], subnets, allowed)
    assert route_problems([{"dst": "10.32.1.0/24", "gateway": "10.32.1.0", "dev": "eth0", "flags": ["onlink"]}], subnets, allowed)
    assert route_problems([{"dst": "10.32.1.0/24", "gateway": "192.168.1.0", "dev": "flannel.1", "flags": ["onlink"]}], subnets, allowed)
    assert not route_problems(
        [
            {"dst": "10.210.1.0/24", "dev": "eth0", "protocol": "kernel"},
            {"dst": "10.32.1.0/24", "gateway": "10.210.1.21", "dev": "eth0"},
            {"dst": "10.32.2.0/24", "gateway": "10.32.2.0", "dev": "flannel.1", "flags": ["onlink"]},
            {"type": "local", "dst": "10.210.1.11", "dev": "eth0", "table": "local"},
            {"dst": "fe80::/64", "dev": "eth0"},
            {"type": "unreachable", "dst": "default"},
        ],
        subnets,
        allowed,
    )


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_every_arch_network_is_internal_with_explicit_subnets():
    names = [n for n in podman("network", "ls", "--format", "{{.Name}}").split() if n.startswith("arch-")]
    for name in names:
        (net,) = json.loads(podman("network", "inspect", name))
        assert net["internal"] is True, f"podman network {name} is not --internal"
        assert net.get("subnets"), f"podman network {name} has no explicit subnets"


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_lab_networks_match_the_inventory():
    if not running_lab_containers():
        missing_lab()
    prefix = any_hostvars()["lab_prefix"]
    for net in any_hostvars()["lab_networks"]:
        (found,) = json.loads(podman("network", "inspect", prefix + net["name"]))
        assert found["internal"] is True
        assert sorted(ipaddress.ip_network(s["subnet"]) for s in found["subnets"]) == sorted(
            ipaddress.ip_network(s) for s in net["subnets"]
        )


def running_lab_containers() -> set[str]:
    if shutil.which("podman") is None:
        return set()
    name = any_hostvars().get("lab_name", "lab")
    return set(podman("ps", "--filter", f"label=archipelago.lab={name}", "--format", "{{.Names}}").split())


def missing_lab() -> None:
    message = f"the lab of {INVENTORY} is not up (make lab-up)"
    if REQUIRE_LAB:
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.parametrize("hostname", sorted(lab_hosts()))
@pytest.mark.parametrize("family", ["-4", "-6"])
def test_host_has_no_route_off_the_lab(hostname, family):
    container = any_hostvars()["lab_prefix"] + hostname
    if container not in running_lab_containers():
        missing_lab()
    routes = json.loads(podman("exec", container, "ip", "-json", family, "route", "show", "table", "all") or "[]")
    allowed = lab_subnets() + plan_pools() + ALWAYS_ALLOWED
    assert route_problems(routes, lab_subnets(), allowed) == []


@pytest.mark.parametrize("hostname", sorted(lab_hosts()))
def test_host_systemd_stays_inside_its_own_cgroup(hostname):
    """A lab host's systemd (and a kubelet under it) must never manage the host's cgroups.

    On cgroup v1, podman's systemd mode bind-mounted the host's whole name=systemd hierarchy into each container;
    every container's systemd then moved itself to the host's /init.scope ("/../../init.scope" from inside) and one
    booting container deleted the others' cgroups. The lab runs containers with --systemd=false to prevent it.
    """
    container = any_hostvars()["lab_prefix"] + hostname
    if container not in running_lab_containers():
        missing_lab()
    cgroups = podman("exec", container, "cat", "/proc/1/cgroup").splitlines()
    systemd = [line.split(":", 2)[2] for line in cgroups if ":name=systemd:" in line]
    assert systemd and not systemd[0].startswith("/.."), cgroups


@pytest.mark.parametrize("hostname", sorted(lab_hosts()))
def test_overlay_tunnels_stay_on_the_lab(hostname):
    """Every VXLAN forwarding entry of a flannel device sends its packets to an address on a lab subnet."""
    container = any_hostvars()["lab_prefix"] + hostname
    if container not in running_lab_containers():
        missing_lab()
    links = json.loads(podman("exec", container, "ip", "-json", "link", "show") or "[]")
    for device in [link["ifname"] for link in links if link["ifname"].startswith("flannel")]:
        entries = json.loads(podman("exec", container, "bridge", "-json", "fdb", "show", "dev", device) or "[]")
        for entry in entries:
            if "dst" in entry:
                assert inside(ipaddress.ip_network(entry["dst"]), lab_subnets()), (device, entry)
