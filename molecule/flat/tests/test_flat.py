"""Flat mode end to end: two clusters with unique pod ranges, alpha on Calico (BGP, no encapsulation) and beta on
Flannel, a BGP router between them, an external host behind it.

Every traffic check starts in a real pod (or on the external host) and is answered by a real server that reports
the client address it saw: in flat mode that is always the real source, never a translated one. Every probe is
bounded (connect and idle timeouts, and `timeout` around them) and aims only at this scenario's lab addresses.
The tests run in file order: Calico's state first, then the traffic tests inside the router capture, and the BGP
router's tests last.
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

from scenario import ask, echo_server, inventory_nodes, run_playbook, run_verify_playbook, wait_for

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
ROUTER = "10.224.1.2"  # the router on alpha's network: calico-node's BGP peer
CLIENT_ROUTES_UNIT = "archipelago-flat-routes"
CALICO = yaml.safe_load((REPO / "versions.yml").read_text())["calico"]  # the images' tag, as the role's defaults read it


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


def test_router_routes_beta_node_pod_ranges_via_the_node():
    """beta runs flannel, which speaks no BGP: the router routes each of its Node objects' pod ranges statically."""
    router = lab_host("router")
    kernel = router.run("ip -4 route show").stdout
    for node, cidrs in node_pod_cidrs("beta").items():
        # FRR's staticd installs them (iproute2 names FRR's protocol "static" through FRR's rt_protos file).
        route = rf"^{re.escape(cidrs[0])} (nhid \d+ )?via {re.escape(NODES[node])} .*proto static"
        assert re.search(route, kernel, re.M), (node, kernel)
    frr = router.run("vtysh -c 'show running-config'")
    assert frr.rc == 0 and f"ip route {node_pod_cidrs('beta')['beta-cp1'][0]} {NODES['beta-cp1']}" in frr.stdout
    # alpha's Node objects carry pod ranges too (the controller manager allocates them), but Calico does not use
    # them: the router must not route them statically.
    assert not any(f"ip route {cidrs[0]} " in frr.stdout for cidrs in node_pod_cidrs("alpha").values()), frr.stdout
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
    host = lab_host("beta-cp1")
    assert host.file("/run/flannel/subnet.env").contains("FLANNEL_IPMASQ=false")
    assert '"ipMasq": false' in host.file("/etc/cni/net.d/10-flannel.conflist").content_string
    nat = host.run("iptables-save -t nat").stdout
    # flanneld's masquerade chain, and the bridge plugin's per-pod chains (CNI-<hash>), would hide pod IPs.
    assert "FLANNEL-POSTRTG" not in nat and not re.search(r"^-A CNI-[0-9a-f]{24} ", nat, re.M)


def calico(resource):
    return json.loads(kubectl("alpha", f"get {resource}.crd.projectcalico.org -o json"))["items"]


def test_calico_node_runs_ready_on_every_alpha_node_from_the_offline_images():
    pods = json.loads(kubectl("alpha", "-n kube-system get pods -l k8s-app=calico-node -o json"))["items"]
    assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(inventory_nodes("alpha")), pods
    for p in pods:
        ready = {c["type"]: c["status"] for c in p["status"]["conditions"]}
        assert ready["Ready"] == "True", (p["metadata"]["name"], p["status"])
        images = {c["image"] for c in p["status"]["containerStatuses"] + p["status"]["initContainerStatuses"]}
        assert images == {f"docker.io/calico/node:{CALICO}", f"docker.io/calico/cni:{CALICO}"}, images
    # Nothing of flannel on alpha: its pods get their addresses from the calico plugin and calico-ipam.
    for name in ("alpha-cp1", "alpha-w1"):
        host = lab_host(name)
        assert sorted(host.run("ls /etc/cni/net.d").stdout.split()) == ["10-calico.conflist", "calico-kubeconfig"], name
        assert host.file("/opt/cni/bin/calico-ipam").is_file, name


def test_calico_pool_is_the_plan_and_ipam_hands_out_addresses_only_inside_it(plan, workloads):
    wanted = plan["alpha"]["calico"]["ipv4"]
    pools = calico("ippools")
    assert [p["metadata"]["name"] for p in pools] == ["archipelago-ipv4"], pools
    spec = pools[0]["spec"]
    assert (spec["cidr"], spec["blockSize"]) == (wanted["cidr"], wanted["blockSize"]), (spec, wanted)
    assert spec["ipipMode"] == spec["vxlanMode"] == "Never" and spec["natOutgoing"] is False, spec
    pool = ipaddress.ip_network(wanted["cidr"])
    blocks = calico("ipamblocks")
    assert blocks, "calico-ipam allocated no block"
    for block in blocks:
        cidr = ipaddress.ip_network(block["spec"]["cidr"])
        assert cidr.subnet_of(pool) and cidr.prefixlen == wanted["blockSize"], block["spec"]
    for name, ip in workloads["alpha"].items():
        assert ipaddress.ip_address(ip) in pool, (name, ip)
    # Felix masquerades nothing: pod addresses leave the nodes as they are.
    for name in ("alpha-cp1", "alpha-w1"):
        nat = lab_host(name).run("iptables-save -t nat").stdout
        assert not [line for line in nat.splitlines() if line.startswith("-A cali-") and "MASQUERADE" in line], name


def node_blocks():
    """Each alpha node's IPAM blocks (the ones affine to it), from Calico's datastore."""
    blocks = {}
    for block in calico("ipamblocks"):
        affinity = block["spec"].get("affinity") or ""
        if affinity.startswith("host:"):
            blocks.setdefault(affinity.removeprefix("host:"), set()).add(block["spec"]["cidr"])
    return blocks


def test_pod_reaches_pod_on_the_other_calico_node_with_plain_ip_on_the_wire(workloads):
    """Pure BGP routing: between alpha's nodes a capture of everything from or to the server pod and anything VXLAN
    (UDP 4789/8472) or IP-in-IP (protocol 4) shows only plain TCP between the two pod addresses."""
    w1 = lab_host("alpha-w1")
    client, server = workloads["alpha"]["client"], workloads["alpha"]["whoami-w1"]
    w1.run("rm -f /tmp/calico.pcap")
    w1.run(f"timeout 30 tcpdump -i eth0 -n -c 200 -w /tmp/calico.pcap 'host {server} or udp port 4789 or udp port 8472 "
           f"or ip proto 4' >/dev/null 2>&1 & echo $! > /tmp/calico.pid")
    time.sleep(2)
    answer = in_pod("alpha", "client", ask(server, 8080))
    time.sleep(1)
    w1.run("kill $(cat /tmp/calico.pid); rm -f /tmp/calico.pid")
    time.sleep(1)
    assert answer.rc == 0 and answer.stdout.strip() == client, (answer.stdout, answer.stderr)
    lines = w1.run("tcpdump -n -r /tmp/calico.pcap 2>/dev/null").stdout.splitlines()
    assert any(f"IP {client}." in line and f"> {server}.8080:" in line for line in lines), lines
    assert any(f"IP {server}.8080 > {client}." in line for line in lines), lines
    others = [line for line in lines if not re.search(rf"IP ({re.escape(client)}|{re.escape(server)})\.\d+ > "
                                                         rf"({re.escape(client)}|{re.escape(server)})\.\d+: Flags", line)]
    assert others == [], f"not plain pod-to-pod TCP: {others[:5]}"


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


def test_verify_playbook_passes_every_flat_check_and_leaves_nothing():
    """playbooks/verify.yml, the users' checks, against this scenario: inside each cluster the four traffic patterns
    and the ranges; flat mode, each cluster's pod to the other's pod by pod IP with the source kept, and the external
    host to a pod of each cluster, seen with its own address. Its JUnit XML must hold every check as passed (beta has
    one node: only its cross-node check is skipped), and its namespace must be gone."""
    status = run_verify_playbook(EPHEMERAL)
    for cluster in ("alpha", "beta"):
        for check in ("nodes-ready", "pod-range", "service-range", "test-pods-ready", "pod-localhost", "pod-same-node",
                      "service-dns", "cross-cluster-pod", "external-to-pod"):
            assert status.get((cluster, check)) == {"PASS"}, (cluster, check, status)
        assert "archipelago-verify" not in kubectl(cluster, "get namespaces -o name")
    assert status.get(("alpha", "pod-cross-node")) == {"PASS"}, status  # Calico, routed between alpha's two nodes
    assert status.get(("beta", "pod-cross-node")) == {"SKIP"}, status


# BGP: the router peers with calico-node's BIRD on both alpha nodes (each at its own AS) and keeps what each sent
# before its inbound filter (router_bgp_keep_received_routes), so the tests see what Calico announced, refused
# prefixes included.
OUTSIDE = "10.250.0.0/24"  # in no pool, node network or reserved range of this scenario's plan
ROGUE = ("flat-test-outside", "flat-test-hijack")


def bgp(command):
    result = lab_host("router").run(f"vtysh -c {json.dumps(command)}")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def run_routers(extra=None):
    """Re-run plan + routers against this scenario; returns (rc, per-host changed task names, text)."""
    return run_playbook(SCENARIO / "routers.yml", extra)


def established(address):
    peers = bgp("show bgp ipv4 unicast summary json").get("peers", {})
    return peers.get(address, {}).get("state") == "Established"


def bird(node, command):
    """A command on the node's calico-node BIRD (birdcl, Debian's birdc, in the calico-node container)."""
    pods = json.loads(kubectl("alpha", f"-n kube-system get pods -l k8s-app=calico-node --field-selector spec.nodeName={node} -o json"))
    name = pods["items"][0]["metadata"]["name"]
    return kubectl("alpha", f"-n kube-system exec {name} -c calico-node -- birdcl -s /var/run/calico/bird.ctl {command}")


def test_calico_node_bird_and_the_router_have_established_sessions_each_node_at_its_own_as():
    assert wait_for(lambda: established("10.224.1.11") and established("10.224.1.12"), 60), bgp("show bgp ipv4 unicast summary json")
    peers = bgp("show bgp ipv4 unicast summary json")["peers"]
    assert peers["10.224.1.11"]["remoteAs"] == 64601 and peers["10.224.1.12"]["remoteAs"] == 64602, peers
    assert "10.224.2.11" not in peers, "beta runs flannel, which speaks no BGP"
    for node in ("alpha-cp1", "alpha-w1"):
        protocols = bird(node, "show protocols")
        # Calico names a BGPPeer's session Global_<address> or Node_<address> (a peer with a node selector); BIRD 1.6
        # prints "Established" for an up session.
        session = rf"^(Global|Node)_{ROUTER.replace('.', '_')}\s+BGP\s+master\s+up\s+.*Established"
        assert re.search(session, protocols, re.M), (node, protocols)


def test_router_learns_and_accepts_each_calico_node_block_via_that_node(workloads):
    blocks = node_blocks()
    assert set(blocks) == {"alpha-cp1", "alpha-w1"}, blocks
    kernel = lab_host("router").run("ip -4 route show proto bgp").stdout
    for node, cidrs in blocks.items():
        for cidr in cidrs:
            received = bgp(f"show bgp ipv4 unicast neighbors {NODES[node]} received-routes json").get("receivedRoutes", {})
            assert cidr in received, (node, cidr, received)
            best = [p for p in bgp(f"show bgp ipv4 unicast {cidr} json")["paths"] if p.get("bestpath", {}).get("overall")]
            assert best and best[0]["peer"]["peerId"] == NODES[node], (cidr, best)
            assert re.search(rf"^{re.escape(cidr)} (nhid \d+ )?via {re.escape(NODES[node])} ", kernel, re.M), (cidr, kernel)


@pytest.fixture(scope="module")
def rogue_pools(plan):
    """Two pools alpha's plan does not give it, each with a pod on alpha-w1, so calico-node announces their blocks: one
    outside every planned range, one inside beta's pod range (a hijack). Removed afterwards."""
    planned = [ipaddress.ip_network(c) for cluster in plan.values() for c in cluster["pod_cidrs"] + cluster["service_cidrs"]]
    planned.append(ipaddress.ip_network("10.224.0.0/16"))  # every lab network of this scenario
    assert not any(ipaddress.ip_network(OUTSIDE).overlaps(p) for p in planned), f"{OUTSIDE} must be outside {planned}"
    hijack = str(next(ipaddress.ip_network(plan["beta"]["pod_cidrs"][0]).subnets(new_prefix=24)))
    items = []
    for name, cidr in zip(ROGUE, (OUTSIDE, hijack), strict=True):
        items.append({"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool", "metadata": {"name": name},
                      "spec": {"cidr": cidr, "blockSize": 26, "ipipMode": "Never", "vxlanMode": "Never", "natOutgoing": False,
                               "nodeSelector": "all()"}})
        rogue = pod(name, "alpha-w1", ["sleep", "600"])
        rogue["metadata"]["annotations"] = {"cni.projectcalico.org/ipv4pools": json.dumps([name])}
        items.append(rogue)
    kubectl("alpha", "apply -f -", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    kubectl("alpha", f"-n {NS} wait --for=condition=Ready pod {' '.join(ROGUE)} --timeout=120s")
    addresses = {p["metadata"]["name"]: p["status"]["podIP"] for p in json.loads(kubectl("alpha", f"-n {NS} get pods -o json"))["items"]}
    # Each pod's block: the /26 (the rogue pools' blockSize) around its address.
    blocks = {name: str(ipaddress.ip_interface(f"{addresses[name]}/26").network) for name in ROGUE}
    yield blocks
    kubectl("alpha", f"-n {NS} delete pod {' '.join(ROGUE)} --wait=true --timeout=60s")
    kubectl("alpha", f"delete ippools.crd.projectcalico.org {' '.join(ROGUE)}")


def test_router_refuses_blocks_of_pools_outside_the_plan(rogue_pools):
    """calico-node announces both rogue blocks (the router receives them from alpha-w1), and the router's prefix
    filter takes neither: no BGP route, no kernel route, while alpha-w1's own blocks stay accepted."""
    received = f"show bgp ipv4 unicast neighbors {NODES['alpha-w1']} received-routes json"
    wanted = set(rogue_pools.values())
    assert wait_for(lambda: wanted <= set(bgp(received).get("receivedRoutes", {})), 60), (wanted, bgp(received))
    accepted = set(bgp("show bgp ipv4 unicast json")["routes"])
    assert not wanted & accepted, f"a block outside the plan got past the filter: {wanted & accepted}"
    assert node_blocks()["alpha-w1"] & accepted, "alpha-w1's own blocks must stay accepted"
    kernel = lab_host("router").run("ip -4 route show").stdout
    assert not [b for b in wanted if re.search(rf"^{re.escape(b)} ", kernel, re.M)], kernel


ACCEPT_SERVICES = {"router_bgp_accept_services": True}


@pytest.fixture(scope="module")
def services_accepted():
    """The routers re-run with alpha's service range accepted too (router_bgp_accept_services), once for the two
    tests below: what bgpd was before it, and the run's (rc, changed, text). The refused configuration is tried on top
    of that state, so one run putting the plan's filter back serves both tests (a routers run costs a minute or more
    on the loaded lab machine). The teardown puts it back when no test did."""
    assert wait_for(lambda: established("10.224.1.12"), 60)
    router = lab_host("router")
    state = {"pid": router.run("pidof bgpd").stdout.strip(), "restored": False,
             "connections": bgp("show bgp neighbors 10.224.1.12 json")["10.224.1.12"]["connectionsEstablished"]}
    state["run"] = run_routers(ACCEPT_SERVICES)
    yield state
    if not state["restored"]:
        run_routers()


def test_bgp_filter_change_reloads_without_dropping_established_sessions(plan, services_accepted):
    """Accepting alpha's service range too (router_bgp_accept_services) rewrites the prefix lists: FRR reloads them
    in place, bgpd keeps running and calico-node's sessions stay up. The next test puts the plan's filter back."""
    router = lab_host("router")
    rc, changed, text = services_accepted["run"]
    assert rc == 0, text
    assert set(changed) == {"router"}, changed
    assert any("Write the FRR configuration" in task for task in changed["router"]), changed
    running = router.run("vtysh -c 'show running-config'").stdout
    assert all(f"permit {cidr}" in running for cidr in plan["alpha"]["service_cidrs"]), running
    after = bgp("show bgp neighbors 10.224.1.12 json")["10.224.1.12"]
    assert router.run("pidof bgpd").stdout.strip() == services_accepted["pid"], "bgpd was restarted"
    assert after["bgpState"] == "Established" and after["connectionsEstablished"] == services_accepted["connections"], \
        (services_accepted, after)


def test_a_configuration_frr_rejects_never_lands_and_frr_keeps_running_the_old_one(plan, services_accepted):
    """The router role checks frr.conf with vtysh --dryrun before it replaces the old one: a keepalive FRR cannot
    parse (70000 s, its range ends at 65535) fails the run on that task, and frr.conf, FRR's running configuration,
    bgpd and its sessions stay as they were (the previous test's, service range accepted). The run that then puts the
    plan's filter back changes the router and nothing else, and no more than accepting the service range did: the
    refused run left nothing behind for it to redo."""
    assert services_accepted["run"][0] == 0, "the previous test's routers run failed"
    assert wait_for(lambda: established("10.224.1.12"), 60)
    router = lab_host("router")
    before = {"sum": router.file("/etc/frr/frr.conf").sha256sum, "running": router.run("vtysh -c 'show running-config'").stdout,
              "pid": router.run("pidof bgpd").stdout.strip(),
              "connections": bgp("show bgp neighbors 10.224.1.12 json")["10.224.1.12"]["connectionsEstablished"]}
    assert "timers 3 9" in before["running"], before["running"]
    try:
        rc, changed, text = run_routers({**ACCEPT_SERVICES, "router_bgp_keepalive": 70000})
        assert rc != 0, text[-3000:]
        failure = text.split("\n", 1)[0]
        assert failure.startswith("router: router : Write the FRR configuration"), text[:2000]
        assert "timers 70000 9" in text and "Unknown command" in text, text[:3000]
        assert changed == {}, changed
        assert router.file("/etc/frr/frr.conf").sha256sum == before["sum"]
        assert router.run("vtysh -c 'show running-config'").stdout == before["running"]
        assert router.run("pidof bgpd").stdout.strip() == before["pid"]
        after = bgp("show bgp neighbors 10.224.1.12 json")["10.224.1.12"]
        assert after["bgpState"] == "Established" and after["connectionsEstablished"] == before["connections"], after
    finally:
        services_accepted["restored"] = True
        rc, changed, text = run_routers()
    accepted = services_accepted["run"][1]["router"]
    assert rc == 0 and set(changed) == {"router"}, (changed, text[-2000:])
    assert set(changed["router"]) <= set(accepted), (changed, accepted)
    running = router.run("vtysh -c 'show running-config'").stdout
    assert not any(f"permit {cidr}" in running for cidr in plan["alpha"]["service_cidrs"]), running
    assert router.run("pidof bgpd").stdout.strip() == before["pid"], "bgpd was restarted"
