"""The router role's frr.conf, rendered for static and BGP, dual-stack, and checked by FRR itself (vtysh --dryrun).

FRR runs from the lab image (Debian's frr 8.4, the same package the role installs), in a throwaway container
without a network. Without the image the tests skip, unless ARCHIPELAGO_REQUIRE_LAB=1 (CI, after `make lab-up`).
"""

import os
import subprocess
import sys
from pathlib import Path

import netaddr
import pytest
import yaml
from helpers import ROOT, run_ansible

sys.path.insert(0, str(ROOT / "plugins" / "filter"))

from network_plan import plan_network
from router_bgp import router_bgp
from router_static_routes import router_static_routes

ENV = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(ROOT / "lab" / "containers.conf"))}


def lab_image() -> str | None:
    try:
        out = subprocess.run(["podman", "images", "--filter", "reference=localhost/arch-lab-base", "--format", "{{.Repository}}:{{.Tag}}"],
                             env=ENV, capture_output=True, text=True, timeout=60, check=False).stdout.split()
    except FileNotFoundError:
        return None
    return out[0] if out else None


IMAGE = lab_image()
if IMAGE is None and os.environ.get("ARCHIPELAGO_REQUIRE_LAB") == "1":
    raise RuntimeError("ARCHIPELAGO_REQUIRE_LAB=1 but there is no lab image (localhost/arch-lab-base): run `make lab-up`.")
pytestmark = pytest.mark.skipif(IMAGE is None, reason="no lab image with FRR: run `make lab-up`")

PLAN = plan_network(yaml.safe_load((ROOT / "inventories" / "examples" / "flat" / "group_vars" / "all" / "network_plan.yml").read_text())
                    ["network_plan"])


def render(tmp_path: Path, variables: dict) -> Path:
    dest = tmp_path / "frr.conf"
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "vars_files": [str(ROOT / "roles" / "router" / "defaults" / "main.yml"), str(ROOT / "roles" / "router" / "vars" / "main.yml")],
        "tasks": [{"name": "Render", "ansible.builtin.template": {"src": str(ROOT / "roles" / "router" / "templates" / "frr.conf.j2"),
                                                                   "dest": str(dest)}, "vars": variables}],
    }]))
    result = run_ansible("ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
                         "-e", "inventory_hostname=r1", str(playbook))
    assert result.returncode == 0, result.stdout
    return dest


def frr_check(path: Path) -> subprocess.CompletedProcess:
    command = ["podman", "run", "--rm", "--network", "none", "-v", f"{path}:/frr.conf:ro,Z", IMAGE,
               "vtysh", "--dryrun", "--inputfile", "/frr.conf"]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=120, check=False)


def nodes(cluster: str, count: int, v4: str, v6: str) -> list[dict]:
    """Node objects with one pod range per family, the way kube-controller-manager hands them out."""
    pods = [netaddr.IPNetwork(c) for c in PLAN["clusters"][cluster]["pod_cidrs"]]
    ranges = zip(pods[0].subnet(24), pods[1].subnet(64), range(count), strict=False)
    return [{"metadata": {"name": f"{cluster}-{i}"}, "spec": {"podCIDRs": [str(r4), str(r6)]},
             "status": {"addresses": [{"type": "InternalIP", "address": address} for address in (f"{v4}.{10 + i}", f"{v6}::{10 + i}")]}}
            for r4, r6, i in ranges]


def test_static_dual_stack_config_is_accepted_by_frr(tmp_path):
    by_cluster = {"amber": nodes("amber", 3, "192.168.0", "fd00:0"), "birch": nodes("birch", 2, "192.168.10", "fd00:10")}
    routes = router_static_routes(by_cluster, PLAN)
    config = render(tmp_path, {"router_mode": "static", "router_static_routes": routes})
    text = config.read_text()
    assert "ip route 10.32.1.0/24 192.168.0.11" in text and "ipv6 route " in text and "router bgp" not in text
    result = frr_check(config)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("keep_received", [False, True])
def test_bgp_dual_stack_config_with_per_rack_as_is_accepted_by_frr(tmp_path, keep_received):
    hosts = [{"inventory_hostname": "a1", "cluster_name": "amber", "node_ips": ["192.168.0.11", "fd00::11"], "bgp_asn": 64601},
             {"inventory_hostname": "a2", "cluster_name": "amber", "node_ips": ["192.168.0.12", "fd00::12"], "bgp_asn": 64602},
             {"inventory_hostname": "c1", "cluster_name": "cedar", "node_ips": ["192.168.20.11", "fd00:20::11"], "bgp_asn": 4200000001}]
    bgp = router_bgp(hosts, PLAN, accept_services=True)
    config = render(tmp_path, {"router_mode": "bgp", "router_bgp": bgp, "router_id": "192.168.0.1",
                               "router_bgp_keep_received_routes": keep_received})
    text = config.read_text()
    kept = sorted(line.split()[1] for line in text.splitlines() if line.strip().endswith("soft-reconfiguration inbound"))
    # One line per peer group (cluster and family), inside its address family, or none at all.
    assert kept == (sorted(g["name"] for g in bgp["peer_groups"]) if keep_received else []), text
    amber_v4 = PLAN["clusters"]["amber"]["pod_cidrs"][0]
    assert f"ip prefix-list amber-ipv4-in seq 5 permit {amber_v4} le 32" in text
    assert "neighbor 192.168.0.12 remote-as 64602" in text and "neighbor fd00::11 peer-group amber-ipv6" in text
    assert "neighbor 192.168.20.11 remote-as 4200000001" in text
    result = frr_check(config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_frr_check_rejects_a_broken_config(tmp_path):
    """The same check on a configuration FRR cannot parse fails: what the role's validate step relies on."""
    config = render(tmp_path, {"router_mode": "bgp", "router_bgp": {"peer_groups": [], "announce": {"ipv4": [], "ipv6": []}},
                               "router_asn": "banana", "router_id": "192.168.0.1"})
    result = frr_check(config)
    assert result.returncode != 0 and "router bgp banana" in result.stdout + result.stderr
