"""A new node joins the Calico cluster (alpha) the way the README adds nodes: the inventory gains the host, and site.yml
runs limited to it and the routers. Its calico-node must peer with the router and announce its own block, which the
router learns over BGP (no static route is written for it) and the rest of the flat network reaches by pod IP.

This file runs after test_flat.py (pytest's file order): it changes alpha's nodes, which test_flat.py checks against
the scenario's inventory.
"""

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenario import ask, run_playbook, wait_for
from test_flat import EXT, IMAGE, NS, WHOAMI, bgp, established, in_pod, kubectl, lab_host, node_blocks, pod

SCENARIO = Path(__file__).resolve().parents[1]
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", ""))
NEW = "alpha-w2"
NEW_IP = "10.224.1.13"
TEST_ARCHIVE_DIR = Path("/var/cache/archipelago/images")  # where molecule/cluster/prepare.yml saves the test image


def join_inventory() -> Path:
    """The scenario's inventory with alpha-w2 moved from the spare group into alpha and kube_node."""
    source = EPHEMERAL / "inventory"
    target = EPHEMERAL / "inventory-join"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    hosts_file = target / "ansible_inventory.yml"
    inventory = yaml.safe_load(hosts_file.read_text())
    assert NEW in inventory["spare"]["hosts"], inventory
    del inventory["spare"]
    inventory["alpha"]["hosts"][NEW] = {}
    inventory["kube_node"]["hosts"][NEW] = {}
    hosts_file.write_text(yaml.safe_dump(inventory))
    return target


def calico_node_ready(node: str) -> bool:
    pods = json.loads(kubectl("alpha", f"-n kube-system get pods -l k8s-app=calico-node --field-selector spec.nodeName={node} -o json"))
    return any(c["type"] == "Ready" and c["status"] == "True" for p in pods["items"] for c in p["status"].get("conditions", []))


def test_a_new_calico_node_is_peered_and_its_block_routed_by_bgp_alone():
    router = lab_host("router")
    assert NEW not in kubectl("alpha", "get nodes -o name")
    conf_before = router.file("/etc/frr/frr.conf").content_string
    assert NEW_IP not in conf_before

    started = time.monotonic()
    rc, changed, text = run_playbook(SCENARIO / "converge.yml", inventory=join_inventory(), limit=f"{NEW},routers",
                                     timeout=1500)  # a whole node's converge on the shared, loaded lab machine
    print(f"site.yml --limit {NEW},routers took {time.monotonic() - started:.0f} s")
    assert rc == 0, text[:4000]
    assert set(changed) <= {NEW, "router", "localhost"}, changed

    # The router's configuration gained the new node as a neighbor of alpha's peer group and nothing else: no static
    # route for its block, which comes over BGP.
    conf_after = router.file("/etc/frr/frr.conf").content_string
    added = sorted(set(conf_after.splitlines()) - set(conf_before.splitlines()))
    removed = sorted(set(conf_before.splitlines()) - set(conf_after.splitlines()))
    assert removed == [] and added and all(line.startswith(f" neighbor {NEW_IP} ") for line in added), (added, removed)

    # The test image for a server pod on the new node, preloaded as molecule's prepare does for the other nodes. Loaded
    # before the waits below: the copy and import overlap the new node's start of calico-node and its BGP session.
    new = lab_host(NEW)
    # The same image and archive as prepare.yml: the newest localhost/arch-lab-base, saved under its tag.
    images = subprocess.run(["podman", "images", "--filter", "reference=localhost/arch-lab-base", "--format", "{{.Repository}}:{{.Tag}}"],
                            capture_output=True, text=True, timeout=60, check=True).stdout.split()
    archive = TEST_ARCHIVE_DIR / f"{images[0].rsplit('/', 1)[1].replace(':', '-')}.docker.tar"
    copied = subprocess.run(["podman", "cp", str(archive), f"arch-mol-flat-{NEW}:/var/tmp/test-image.tar"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert copied.returncode == 0, copied.stderr
    imported = new.run(f"ctr -n k8s.io images import /var/tmp/test-image.tar && ctr -n k8s.io images tag --force {images[0]} {IMAGE}")
    assert imported.rc == 0, imported.stderr

    kubectl("alpha", f"wait --for=condition=Ready node/{NEW} --timeout=180s")
    assert wait_for(lambda: calico_node_ready(NEW), 240), kubectl("alpha", "-n kube-system get pods -l k8s-app=calico-node -o wide")
    assert wait_for(lambda: established(NEW_IP), 90), bgp("show bgp ipv4 unicast summary json")

    kubectl("alpha", "apply -f -", stdin=json.dumps(pod("whoami-w2", NEW, WHOAMI, 8080)))
    kubectl("alpha", f"-n {NS} wait --for=condition=Ready pod/whoami-w2 --timeout=120s")
    server = json.loads(kubectl("alpha", f"-n {NS} get pod whoami-w2 -o json"))["status"]["podIP"]

    blocks = node_blocks().get(NEW, set())
    assert blocks and any(ipaddress.ip_address(server) in ipaddress.ip_network(b) for b in blocks), (server, blocks)
    received = f"show bgp ipv4 unicast neighbors {NEW_IP} received-routes json"
    assert wait_for(lambda: blocks <= set(bgp(received).get("receivedRoutes", {})), 60), (blocks, bgp(received))
    kernel = router.run("ip -4 route show proto bgp").stdout
    for cidr in blocks:
        # alpha-w2 shares alpha-cp1's AS and the mesh gives cp1 its blocks too, so cp1 announces them at the same AS
        # path length: the BGPPeer's keepOriginalNextHop makes every path name the owner, so the router's one kernel
        # route goes straight to alpha-w2 (through cp1 it was ECMP, and cp1's conntrack dropped the asymmetric flows).
        paths = bgp(f"show bgp ipv4 unicast {cidr} json")["paths"]
        assert any(p["peer"]["peerId"] == NEW_IP for p in paths), (cidr, paths)
        assert {n["ip"] for p in paths for n in p["nexthops"]} == {NEW_IP}, (cidr, paths)
        assert re.search(rf"^{re.escape(cidr)} (nhid \d+ )?via {re.escape(NEW_IP)} ", kernel, re.M), (cidr, kernel)

    # Reached by pod IP from the external host and from beta's pod, each seen with its own address.
    answer = lab_host("ext1").run(ask(server, 8080))
    assert answer.rc == 0 and answer.stdout.strip() == EXT, (answer.stdout, answer.stderr)
    beta_client = json.loads(kubectl("beta", f"-n {NS} get pod client -o json"))["status"]["podIP"]
    answer = in_pod("beta", "client", ask(server, 8080))
    assert answer.rc == 0 and answer.stdout.strip() == beta_client, (answer.stdout, answer.stderr)
