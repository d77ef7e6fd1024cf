"""Flat mode end to end: two clusters with unique pod ranges, a router between them, an external host behind it.

Every traffic check starts in a real pod (or on the external host) and is answered by a real server that reports
the client address it saw: in flat mode that is always the real source, never a translated one. Every probe is
bounded (connect and idle timeouts, and `timeout` around them) and aims only at this scenario's lab addresses.
The tests run in file order: the router capture spans the traffic tests, and the BGP tests come last.
"""

import ipaddress
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
import testinfra
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from scenario import ask, echo_server, inventory_nodes, run_playbook, wait_for

PREFIX = "arch-mol-flat-"
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
NS = "archipelago-test"
IMAGE = "localhost/archipelago/nettest:1"
SCENARIO = Path(__file__).resolve().parents[1]
REPO = SCENARIO.parents[1]
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", ""))
CONTROL_PLANE = {"alpha": "alpha-cp1", "beta": "beta-cp1"}
NODES = {"alpha-cp1": "10.224.1.11", "alpha-w1": "10.224.1.12", "beta-cp1": "10.224.2.11"}
EXT = "10.224.0.100"
ROUTER_BGP = "10.224.1.3"
CLIENT_ROUTES_UNIT = "archipelago-flat-routes"


def lab_host(name):
    return testinfra.get_host(f"podman://{PREFIX}{name}")


def kubectl(cluster, args, stdin=None):
    command = f"{KUBECTL} {args}" if stdin is None else f"{KUBECTL} {args} <<'EOF'\n{stdin}\nEOF"
    result = lab_host(CONTROL_PLANE[cluster]).run(command)
    assert result.rc == 0, f"kubectl {args} in {cluster}: {result.stderr}"
    return result.stdout


def in_pod(cluster, pod, command):
    return lab_host(CONTROL_PLANE[cluster]).run(f"{KUBECTL} -n {NS} exec {pod} -- sh -c {json.dumps(command)}")


def pod(name, node, command, port=None):
    spec = {"nodeName": node, "containers": [{"name": name, "image": IMAGE, "imagePullPolicy": "Never", "command": command}]}
    if port:
        spec["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 2}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS}, "spec": spec}


WHOAMI = ["socat", "TCP-LISTEN:8080,fork,reuseaddr", "SYSTEM:echo $SOCAT_PEERADDR"]


@pytest.fixture(scope="module")
def plan():
    return yaml.safe_load((EPHEMERAL / "network-plan.lock.yml").read_text())["clusters"]


@pytest.fixture(scope="module")
def workloads():
    """A whoami server on every node and a client on each control plane; returns each pod's IP."""
    pods = {"alpha": [pod("whoami-cp1", "alpha-cp1", WHOAMI, 8080), pod("whoami-w1", "alpha-w1", WHOAMI, 8080),
                      pod("client", "alpha-cp1", ["sleep", "infinity"])],
            "beta": [pod("whoami-cp1", "beta-cp1", WHOAMI, 8080), pod("client", "beta-cp1", ["sleep", "infinity"])]}
    for cluster, manifests in pods.items():
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
        kubectl(cluster, "apply -f -", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [namespace, *manifests]}))
    for cluster in pods:
        kubectl(cluster, f"-n {NS} wait --for=condition=Ready pod --all --timeout=180s")
    return {c: {p["metadata"]["name"]: p["status"]["podIP"] for p in json.loads(kubectl(c, f"-n {NS} get pods -o json"))["items"]}
            for c in pods}


@pytest.fixture(scope="module")
def capture(workloads):
    """tcpdump on every router interface, bounded in packets and time."""
    router = lab_host("router")
    router.run("rm -f /tmp/flat.pcap /tmp/flat.pid")
    router.run("timeout 600 tcpdump -i any -n -c 20000 -w /tmp/flat.pcap tcp port 8080 or tcp port 9000 >/dev/null 2>&1 & "
               "echo $! > /tmp/flat.pid")
    time.sleep(2)
    yield
    stop_capture()


def stop_capture():
    lab_host("router").run("test -s /tmp/flat.pid && kill $(cat /tmp/flat.pid); rm -f /tmp/flat.pid")


@pytest.fixture(scope="module")
def ext_server():
    """A server on the external host that answers with the client address it sees (bounded to 10 minutes)."""
    yield from echo_server(lab_host("ext1"), "flat-test-echo", 9000)


def node_pod_cidrs(cluster):
    """Each Node object's pod ranges; the Node objects must be exactly the inventory's nodes of the cluster."""
    items = json.loads(kubectl(cluster, "get nodes -o json"))["items"]
    cidrs = {n["metadata"]["name"]: n["spec"]["podCIDRs"] for n in items}
    assert set(cidrs) == inventory_nodes(cluster), f"{cluster}'s Node objects {sorted(cidrs)}, inventory {sorted(inventory_nodes(cluster))}"
    return cidrs


def test_pod_ranges_are_unique_and_every_node_range_inside_its_cluster(plan):
    alpha, beta = (ipaddress.ip_network(plan[c]["pod_cidrs"][0]) for c in ("alpha", "beta"))
    assert not alpha.overlaps(beta)
    for cluster in ("alpha", "beta"):
        assert plan[cluster]["masquerade_pod_egress"] is False
        for node, cidrs in node_pod_cidrs(cluster).items():
            assert ipaddress.ip_network(cidrs[0]).subnet_of(ipaddress.ip_network(plan[cluster]["pod_cidrs"][0])), (node, cidrs)


def test_router_routes_every_node_pod_range_via_the_node():
    router = lab_host("router")
    kernel = router.run("ip -4 route show").stdout
    for cluster in ("alpha", "beta"):
        for node, cidrs in node_pod_cidrs(cluster).items():
            # FRR's staticd installs them (iproute2 names FRR's protocol "static" through FRR's rt_protos file).
            route = rf"^{re.escape(cidrs[0])} (nhid \d+ )?via {re.escape(NODES[node])} .*proto static"
            assert re.search(route, kernel, re.M), (node, kernel)
    frr = router.run("vtysh -c 'show running-config'")
    assert frr.rc == 0 and f"ip route {node_pod_cidrs('alpha')['alpha-w1'][0]} {NODES['alpha-w1']}" in frr.stdout
    assert router.sysctl("net.ipv4.ip_forward") == 1


def test_nodes_and_external_host_route_flat_ranges_via_the_router(plan):
    for name, via in (("alpha-cp1", "10.224.1.2"), ("beta-cp1", "10.224.2.2"), ("ext1", "10.224.0.2")):
        host = lab_host(name)
        assert host.service(CLIENT_ROUTES_UNIT).is_enabled and host.service(CLIENT_ROUTES_UNIT).is_running, name
        routes = host.run("ip -4 route show proto 178").stdout
        others = [c for c in ("alpha", "beta") if not name.startswith(c)]
        for cluster in others:
            assert f"{plan[cluster]['pod_cidrs'][0]} via {via} " in routes, (name, routes)
    assert "default" not in lab_host("ext1").run("ip route").stdout


def test_flannel_never_masquerades_in_flat_mode():
    for name in ("alpha-cp1", "alpha-w1", "beta-cp1"):
        host = lab_host(name)
        assert host.file("/run/flannel/subnet.env").contains("FLANNEL_IPMASQ=false"), name
        assert '"ipMasq": false' in host.file("/etc/cni/net.d/10-flannel.conflist").content_string, name
        nat = host.run("iptables-save -t nat").stdout
        # flanneld's masquerade chain, and the bridge plugin's per-pod chains (CNI-<hash>), would hide pod IPs.
        assert "FLANNEL-POSTRTG" not in nat and not re.search(r"^-A CNI-[0-9a-f]{24} ", nat, re.M), name


def test_pod_in_alpha_reaches_pod_in_beta_by_pod_ip_and_beta_sees_alpha_pod_ip(workloads, capture):
    answer = in_pod("alpha", "client", ask(workloads["beta"]["whoami-cp1"], 8080))
    assert answer.rc == 0, answer.stderr
    assert answer.stdout.strip() == workloads["alpha"]["client"], "beta must see alpha's pod IP: no NAT on the way"


def test_pod_in_beta_reaches_both_alpha_nodes_pods_and_alpha_sees_beta_pod_ip(workloads, capture):
    for server in ("whoami-cp1", "whoami-w1"):
        answer = in_pod("beta", "client", ask(workloads["alpha"][server], 8080))
        assert answer.rc == 0, (server, answer.stderr)
        assert answer.stdout.strip() == workloads["beta"]["client"], server


def test_external_host_reaches_pod_ips_directly_and_pods_see_its_address(workloads, capture):
    ext = lab_host("ext1")
    for cluster, server in (("alpha", "whoami-cp1"), ("alpha", "whoami-w1"), ("beta", "whoami-cp1")):
        answer = ext.run(ask(workloads[cluster][server], 8080))
        assert answer.rc == 0, (cluster, server, answer.stderr)
        assert answer.stdout.strip() == EXT, (cluster, server, answer.stdout)


def test_pod_reaches_external_host_which_sees_the_pod_ip(workloads, capture, ext_server):
    for cluster in ("alpha", "beta"):
        answer = in_pod(cluster, "client", ask(EXT, ext_server))
        assert answer.rc == 0, (cluster, answer.stderr)
        assert answer.stdout.strip() == workloads[cluster]["client"], cluster


def test_router_capture_shows_pod_addresses_on_the_wire(workloads, capture):
    stop_capture()
    time.sleep(1)
    router = lab_host("router")
    lines = router.run("tcpdump -n -r /tmp/flat.pcap 2>/dev/null").stdout.splitlines()
    alpha_client, beta_server = workloads["alpha"]["client"], workloads["beta"]["whoami-cp1"]
    assert any(f"{alpha_client}." in line and f"> {beta_server}.8080" in line for line in lines), \
        f"no packet from alpha's pod {alpha_client} to beta's pod {beta_server} among {len(lines)}"
    assert any(f"{EXT}." in line and f"> {workloads['alpha']['whoami-w1']}.8080" in line for line in lines)
    node_sources = [line for line in lines if any(f"IP {ip}." in line for ip in NODES.values())]
    assert node_sources == [], f"node addresses stood in for pods: {node_sources[:3]}"


# BGP mode: router-bgp peers with alpha's nodes. calico-node cannot run in the lab, so a bgpd on alpha-w1 stands in
# for its BIRD. It announces the node's pod range, which the router must take, and three it must refuse: beta's range,
# a prefix outside every planned range and a supernet of alpha's range. The router keeps what each neighbor sent
# before its filter (router_bgp_keep_received_routes), so the tests see every prefix arrive and all but one refused.
# (When the real calico-node replaces the stand-in, keep these checks: they read only the router and the speaker.)
SPEAKER = """frr defaults traditional
hostname alpha-w1-speaker
router bgp 64602
 bgp router-id 10.224.1.12
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {router} remote-as 64512
 address-family ipv4 unicast
{networks} exit-address-family
"""
SPEAKER_VTY = "/run/speaker"
OUTSIDE = "10.250.0.0/24"  # in no pool, node network or reserved range of this scenario's plan


def bgp(command):
    result = lab_host("router-bgp").run(f"vtysh -c {json.dumps(command)}")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def run_routers(extra=None):
    """Re-run plan + routers against this scenario; returns (rc, per-host changed task names, text)."""
    return run_playbook(SCENARIO / "routers.yml", extra)


@pytest.fixture(scope="module")
def speaker(plan):
    w1 = lab_host("alpha-w1")
    alpha = ipaddress.ip_network(plan["alpha"]["pod_cidrs"][0])
    prefixes = {"own": node_pod_cidrs("alpha")["alpha-w1"][0], "hijack": plan["beta"]["pod_cidrs"][0],
                "outside": OUTSIDE, "supernet": str(alpha.supernet())}
    planned = [ipaddress.ip_network(c) for cluster in plan.values() for c in cluster["pod_cidrs"] + cluster["service_cidrs"]]
    planned.append(ipaddress.ip_network("10.224.0.0/16"))  # every lab network of this scenario
    assert not any(ipaddress.ip_network(OUTSIDE).overlaps(p) for p in planned), f"{OUTSIDE} must be outside {planned}"
    config = SPEAKER.format(router=ROUTER_BGP, networks="".join(f"  network {p}\n" for p in prefixes.values()))
    w1.run(f"mkdir -p {SPEAKER_VTY} && cat > {SPEAKER_VTY}/bgpd.conf <<'EOF'\n{config}EOF\nchown -R frr:frr {SPEAKER_VTY}")
    w1.run("systemctl stop flat-test-speaker 2>/dev/null; systemctl reset-failed flat-test-speaker 2>/dev/null")
    # No zebra, no kernel routes, no vty port: a bgpd that only speaks BGP, for at most 10 minutes.
    started = w1.run(f"systemd-run --unit=flat-test-speaker timeout 600 /usr/lib/frr/bgpd --no_zebra --no_kernel "
                     f"-f {SPEAKER_VTY}/bgpd.conf -i {SPEAKER_VTY}/bgpd.pid --vty_socket {SPEAKER_VTY} -P 0")
    assert started.rc == 0, started.stderr
    yield prefixes
    w1.run("systemctl stop flat-test-speaker")


def speaker_bgp(command):
    """A show command on the stand-in speaker's bgpd (its own vty socket), as JSON."""
    result = lab_host("alpha-w1").run(f"vtysh --vty_socket {SPEAKER_VTY} -d bgpd -c {json.dumps(command)}")
    assert result.rc == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def established(address):
    peers = bgp("show bgp ipv4 unicast summary json").get("peers", {})
    return peers.get(address, {}).get("state") == "Established"


def test_bgp_router_peers_with_each_alpha_node_at_its_own_as():
    peers = bgp("show bgp ipv4 unicast summary json")["peers"]
    assert peers["10.224.1.11"]["remoteAs"] == 64601 and peers["10.224.1.12"]["remoteAs"] == 64602, peers
    assert "10.224.2.11" not in peers, "router-bgp serves alpha only"


def test_bgp_router_accepts_the_node_range_and_refuses_every_other_prefix_it_receives(speaker):
    announced = set(speaker.values())
    assert len(announced) == 4, speaker
    assert wait_for(lambda: established("10.224.1.12"), 60), bgp("show bgp ipv4 unicast summary json")
    # What the speaker sent: all four prefixes, to the router.
    advertised = f"show bgp ipv4 unicast neighbors {ROUTER_BGP} advertised-routes json"
    assert wait_for(lambda: set(speaker_bgp(advertised).get("advertisedRoutes", {})) == announced, 30), speaker_bgp(advertised)
    assert speaker_bgp("show bgp ipv4 unicast summary json")["peers"][ROUTER_BGP]["pfxSnt"] == 4
    # What the router received from it before the filter: the same four, so each refusal below is the filter's.
    received = "show bgp ipv4 unicast neighbors 10.224.1.12 received-routes json"
    assert wait_for(lambda: set(bgp(received).get("receivedRoutes", {})) == announced, 30), bgp(received)
    # What the router took: the node's own range only.
    assert set(bgp("show bgp ipv4 unicast json")["routes"]) == {speaker["own"]}, "a prefix got past the filter"
    assert bgp("show bgp ipv4 unicast summary json")["peers"]["10.224.1.12"]["pfxRcd"] == 1
    kernel = [line for line in lab_host("router-bgp").run("ip -4 route show").stdout.splitlines() if "proto bgp" in line]
    assert len(kernel) == 1 and kernel[0].startswith(f"{speaker['own']} ") and "via 10.224.1.12" in kernel[0], kernel


def test_bgp_peer_change_reloads_without_dropping_established_sessions(speaker):
    assert wait_for(lambda: established("10.224.1.12"), 60)
    router = lab_host("router-bgp")
    before_pid = router.run("pidof bgpd").stdout.strip()
    before = bgp("show bgp neighbors 10.224.1.12 json")["10.224.1.12"]
    try:
        rc, changed, text = run_routers({"flat_test_bgp_clusters": ["alpha", "beta"]})
        assert rc == 0, text
        assert set(changed) == {"router-bgp"}, changed
        assert any("Write the FRR configuration" in task for task in changed["router-bgp"]), changed
        assert "10.224.2.11" in bgp("show bgp ipv4 unicast summary json")["peers"], "beta's node is now a peer"
        after = bgp("show bgp neighbors 10.224.1.12 json")["10.224.1.12"]
        assert router.run("pidof bgpd").stdout.strip() == before_pid, "bgpd was restarted"
        assert after["bgpState"] == "Established" and after["connectionsEstablished"] == before["connectionsEstablished"], (before, after)
    finally:
        rc, changed, text = run_routers({"flat_test_bgp_clusters": ["alpha"]})
    assert rc == 0 and set(changed) == {"router-bgp"}, (changed, text)
    assert "10.224.2.11" not in bgp("show bgp ipv4 unicast summary json")["peers"]


def test_a_configuration_frr_rejects_never_lands_and_frr_keeps_running_the_old_one(speaker):
    """The router role checks frr.conf with vtysh --dryrun before it replaces the old one: a keepalive FRR cannot
    parse (70000 s, its range ends at 65535) fails the run on that task, and frr.conf, FRR's running configuration,
    bgpd and its sessions stay as they were."""
    assert wait_for(lambda: established("10.224.1.12"), 60)
    router = lab_host("router-bgp")
    before = {"sum": router.file("/etc/frr/frr.conf").sha256sum, "running": router.run("vtysh -c 'show running-config'").stdout,
              "pid": router.run("pidof bgpd").stdout.strip(),
              "connections": bgp("show bgp neighbors 10.224.1.12 json")["10.224.1.12"]["connectionsEstablished"]}
    assert "timers 3 9" in before["running"], before["running"]
    rc, changed, text = run_routers({"router_bgp_keepalive": 70000})
    try:
        assert rc != 0, text[-3000:]
        failure = text.split("\n", 1)[0]
        assert failure.startswith("router-bgp: router : Write the FRR configuration"), text[:2000]
        assert "timers 70000 9" in text and "Unknown command" in text, text[:3000]
        assert changed == {}, changed
        assert router.file("/etc/frr/frr.conf").sha256sum == before["sum"]
        assert router.run("vtysh -c 'show running-config'").stdout == before["running"]
        assert router.run("pidof bgpd").stdout.strip() == before["pid"]
        after = bgp("show bgp neighbors 10.224.1.12 json")["10.224.1.12"]
        assert after["bgpState"] == "Established" and after["connectionsEstablished"] == before["connections"], after
    finally:
        rc, changed, text = run_routers()
    assert rc == 0 and changed == {}, (changed, text[-2000:])
