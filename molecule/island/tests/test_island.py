"""Island mode end to end, dual-stack: two clusters with identical ranges in both families, their gateways (two for
alpha, highly available; one for beta; both families translated, IPv6 by NAT66), an external host on transit; alpha's
gateways export a LoadBalancer address (MetalLB in L2 mode on alpha's one node).

Every traffic check starts in a real pod (or on the external host), crosses the real gateways and is answered by a
real server that reports the client address it saw. Every probe is bounded (connect and idle timeouts, and `timeout`
around them) and aims only at this scenario's lab addresses. The tests run in file order: the transit capture spans
the traffic tests and is checked before any test probes forbidden destinations on purpose.
"""

import ipaddress
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

import gateway_failover
from scenario import ask, run_playbook, run_verify_playbook, wait_for

PREFIX = "arch-mol-island-"
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
NS = "archipelago-test"
SCENARIO = Path(__file__).resolve().parents[1]
REPO = SCENARIO.parents[1]
WORKLOADS = Path(__file__).with_name("workloads.yml")
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", ""))
NODE = {"alpha": "10.223.1.11", "beta": "10.223.2.11"}
NODE6 = {"alpha": "fd00:223:1::11", "beta": "fd00:223:2::11"}
NODE_NETWORKS = [ipaddress.ip_network(n) for n in ("10.223.1.0/24", "10.223.2.0/24", "fd00:223:1::/64", "fd00:223:2::/64")]
EXT = "10.223.0.100"
EXT6 = "fd00:223::100"
# Each cluster's next hop on transit: alpha's transit virtual address (its two gateways), beta's gateway.
GATEWAY_TRANSIT = {"alpha": "10.223.0.10", "beta": "10.223.0.12"}
GATEWAY_TRANSIT6 = {"alpha": "fd00:223::10", "beta": "fd00:223::12"}
ALPHA_GATEWAYS = ("alpha-gw", "alpha-gw2")
ALPHA_INTERNAL_VIP = "10.223.1.10"
ALPHA_INTERNAL_VIP6 = "fd00:223:1::10"
# alpha's web-lb export (molecule.yml) targets this LoadBalancer address, port 8080, of alpha's planned range.
LOAD_BALANCER = "10.223.1.241"
CAPTURES = {"alpha-gw": "eth1", "alpha-gw2": "eth1", "beta-gw": "eth1", "ext1": "eth0"}
RULES = "/etc/archipelago/gateway/gateway.nft"
UNIT = "archipelago-gateway"


def lab_host(name):
    return testinfra.get_host(f"podman://{PREFIX}{name}")


def kubectl(cluster, args):
    result = lab_host(f"{cluster}-cp1").run(f"{KUBECTL} {args}")
    assert result.rc == 0, f"kubectl {args} in {cluster}: {result.stderr}"
    return result.stdout


def in_pod(cluster, pod, command):
    return lab_host(f"{cluster}-cp1").run(f"{KUBECTL} -n {NS} exec {pod} -- sh -c {json.dumps(command)}")


def in_any(address, networks):
    return any(ipaddress.ip_address(address) in n for n in networks)


def ask6(address, port, timeout=3):
    """scenario.ask over IPv6 (socat needs the address in brackets)."""
    return f"timeout {timeout + 3} socat -T{timeout} - TCP6:[{address}]:{port},connect-timeout={timeout} </dev/null"


def answered(result):
    """The address a whoami server answered with (socat may bracket an IPv6 address), normalised; None if none."""
    text = result.stdout.strip().strip("[]")
    try:
        return str(ipaddress.ip_address(text)) if result.rc == 0 else None
    except ValueError:
        return None


def first_answer(run, seconds=30):
    """Runs run() until a whoami server answers with an address, bounded (the pods' IPv6 listeners and kube-proxy's
    IPv6 NodePort come up on their own); returns the last result, to be checked by the caller."""
    results = []

    def answers():
        results.append(run())
        return answered(results[-1]) is not None

    wait_for(answers, seconds)
    return results[-1]


def addresses_in(text):
    """Every IPv6 address in tcpdump's text output (an address may carry its port after a dot, or end a field with ':')."""
    found = set()
    for token in re.findall(r"[0-9a-fA-F:.]*:[0-9a-fA-F:.]+", text):
        token = token.strip(":.,")
        for candidate in (token, token.rsplit(".", 1)[0]):
            try:
                address = ipaddress.ip_address(candidate)
            except ValueError:
                continue
            if address.version == 6:
                found.add(str(address))
                break
    return found


@pytest.fixture(scope="module")
def plan():
    return yaml.safe_load((EPHEMERAL / "network-plan.lock.yml").read_text())["clusters"]


def vip_lock(cluster):
    return yaml.safe_load((EPHEMERAL / f"network-plan.gateway-{cluster}.lock.yml").read_text())


@pytest.fixture(scope="module")
def gw():
    """Egress address and the whoami VIP of each cluster, in both families, from the controller's lock."""
    return {c: {"egress": vip_lock(c)["egress"][0], "vip": vip_lock(c)["vips"]["whoami"],
                "egress6": vip_lock(c)["egress6"][0], "vip6": vip_lock(c)["vips6"]["whoami"]} for c in ("alpha", "beta")}


@pytest.fixture(scope="module")
def inside(plan):
    """Every pod and service range of both clusters, and the node networks: none may be seen on transit."""
    ranges = {n for c in plan.values() for n in c["pod_cidrs"] + c["service_cidrs"]}
    return [ipaddress.ip_network(n) for n in sorted(ranges)] + NODE_NETWORKS


@pytest.fixture(scope="module")
def workloads():
    for cluster in ("alpha", "beta"):
        cp = lab_host(f"{cluster}-cp1")
        cp.run(f"mkdir -p /root/tests && cat > /root/tests/workloads.yml <<'EOF'\n{WORKLOADS.read_text()}\nEOF")
        kubectl(cluster, "apply -f /root/tests/workloads.yml")
    for cluster in ("alpha", "beta"):
        kubectl(cluster, f"-n {NS} wait --for=condition=Ready pod --all --timeout=180s")
    return {c: {p["metadata"]["name"]: p for p in json.loads(kubectl(c, f"-n {NS} get pods -o json"))["items"]} for c in ("alpha", "beta")}


@pytest.fixture(scope="module")
def capture():
    """tcpdump on both gateways' transit interfaces and on the external host, bounded in packets and time. It starts
    before playbooks/verify.yml, whose traffic it checks."""
    for name, iface in CAPTURES.items():
        host = lab_host(name)
        host.run("rm -f /tmp/transit.pcap /tmp/transit.pid")
        host.run(f"timeout 900 tcpdump -i {iface} -n -c 20000 -w /tmp/transit.pcap >/dev/null 2>&1 & echo $! > /tmp/transit.pid")
    time.sleep(2)
    yield
    stop_capture()


def stop_capture():
    for name in CAPTURES:
        lab_host(name).run("test -s /tmp/transit.pid && kill $(cat /tmp/transit.pid); rm -f /tmp/transit.pid")


def test_clusters_share_pod_and_service_ranges(plan):
    alpha, beta = plan["alpha"], plan["beta"]
    assert alpha["pod_cidrs"] == beta["pod_cidrs"] and alpha["service_cidrs"] == beta["service_cidrs"]
    assert alpha["global_cidrs"] != beta["global_cidrs"]
    for cluster in ("alpha", "beta"):
        manifests = lab_host(f"{cluster}-cp1").file("/etc/kubernetes/manifests/kube-controller-manager.yaml").content_string
        assert f"--cluster-cidr={alpha['pod_cidrs'][0]}" in manifests, cluster
        apiserver = lab_host(f"{cluster}-cp1").file("/etc/kubernetes/manifests/kube-apiserver.yaml").content_string
        assert f"--service-cluster-ip-range={alpha['service_cidrs'][0]}" in apiserver, cluster
        assert kubectl(cluster, "get service kubernetes -o jsonpath={.spec.clusterIP}") == alpha["api_service_ips"][0]


def test_addresses_come_from_each_cluster_global_range(plan, gw):
    for cluster in ("alpha", "beta"):
        for family, suffix in ((0, ""), (1, "6")):
            global_range = ipaddress.ip_network(plan[cluster]["global_cidrs"][family])
            assert global_range.version == 4 + 2 * family, plan[cluster]["global_cidrs"]
            assert ipaddress.ip_address(gw[cluster]["egress" + suffix]) == global_range[1], "egress is the first usable address"
            vip = gw[cluster]["vip" + suffix]
            assert ipaddress.ip_address(vip) in global_range and vip != gw[cluster]["egress" + suffix]
    # alpha's echo and web-lb exports have IPv4 targets only: they get no IPv6 VIP.
    assert set(vip_lock("alpha")["vips6"]) == {"whoami"}, vip_lock("alpha")


def test_gateway_rules_are_one_table_with_maps_and_default_deny():
    for name in (*ALPHA_GATEWAYS, "beta-gw"):
        host = lab_host(name)
        table = host.run("nft list table inet archipelago_gateway").stdout
        assert "map exports" in table and "@exports" in table and "@remotes" in table and "@own_networks" in table, name
        assert "map exports6" in table and "@exports6" in table and "@remotes6" in table and "@own_networks6" in table, name
        assert "meta nfproto ipv6" not in table, (name, "the dual-stack gateway forwards IPv6 through the same filter")
        assert re.search(r"hook forward priority filter; policy drop;", table), name
        assert re.search(r"hook input priority filter; policy drop;", table), name
        tables = host.run("nft list tables").stdout.splitlines()
        assert "table inet archipelago_gateway" in tables and "table ip archipelago_gateway" not in tables, (name, tables)
        assert host.service(UNIT).is_enabled and host.service(UNIT).is_running, name
        assert host.file(RULES).mode == 0o644


def test_verify_playbook_passes_every_check_and_leaves_nothing(capture):
    """playbooks/verify.yml, the users' checks, against this scenario: the traffic checks inside each cluster, the
    cross-cluster exports, egress and ingress by VIP, and the closed ports. Its JUnit XML must hold each check as passed
    (one node per cluster: only the cross-node check is skipped), and its namespace must be gone."""
    status = run_verify_playbook(EPHEMERAL)
    for cluster in ("alpha", "beta"):
        for check in ("nodes-ready", "pod-range", "service-range", "test-pods-ready", "pod-localhost", "pod-same-node", "service-dns",
                      "cross-cluster-export", "egress-external", "ingress-vip", "gateway-closed"):
            assert status.get((cluster, check)) == {"PASS"}, (cluster, check, status)
        assert status.get((cluster, "pod-cross-node")) == {"SKIP"}, status
        assert "archipelago-verify" not in kubectl(cluster, "get namespaces -o name")


def test_status_lists_exports_and_translations(capture, gw):
    status = lab_host("beta-gw").run("archipelago-gateway-status")
    assert status.rc == 0, status.stderr
    assert f'{gw["beta"]["vip"]} . tcp . 8080 . 0 comment "whoami" : {NODE["beta"]} . 30080' in status.stdout
    assert f"egress: {gw['beta']['egress']}" in status.stdout
    # The conntrack entries of verify.yml's traffic: alpha's egress address, DNATed to beta's node.
    assert re.search(rf"src={re.escape(gw['alpha']['egress'])} dst={re.escape(gw['beta']['vip'])} .* src={NODE['beta']} ", status.stdout)
    alpha_status = lab_host(gateway_failover.active_gateway()).run("archipelago-gateway-status").stdout
    assert re.search(rf"src={NODE['alpha']} dst={re.escape(gw['beta']['vip'])} .* dst={re.escape(gw['alpha']['egress'])} ", alpha_status)


@pytest.fixture(scope="module")
def load_balancer(workloads):
    """alpha's whoami behind a LoadBalancer Service pinned to the address the web-lb export targets, with
    externalTrafficPolicy Local (the pod sees the client's address). Returns the export's VIP once the external host
    gets an answer through it (bounded: MetalLB assigns and announces, kube-proxy programs the endpoints)."""
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web-lb", "namespace": NS, "annotations": {"metallb.io/loadBalancerIPs": LOAD_BALANCER}},
               "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": {"app": "whoami"},
                        "ports": [{"port": 8080, "targetPort": 8080, "protocol": "TCP"}]}}
    cp = lab_host("alpha-cp1")
    applied = cp.run(f"{KUBECTL} apply -f - <<'EOF'\n{json.dumps(service)}\nEOF")
    assert applied.rc == 0, applied.stderr

    def assigned():
        ingress = json.loads(kubectl("alpha", f"-n {NS} get service web-lb -o json"))["status"].get("loadBalancer", {}).get("ingress", [])
        return [i.get("ip") for i in ingress] == [LOAD_BALANCER]

    assert wait_for(assigned, 90), kubectl("alpha", f"-n {NS} describe service web-lb")
    vip = vip_lock("alpha")["vips"]["web-lb"]
    ext = lab_host("ext1")
    assert wait_for(lambda: ext.run(ask(vip, 80)).rc == 0, 60), kubectl("alpha", f"-n {NS} get endpointslices -o wide")
    return vip


def test_external_host_reaches_a_load_balancer_address_through_alpha_gateway(load_balancer, capture, plan):
    """MetalLB gave the Service the pinned address of alpha's planned range and alpha's one node, a control plane,
    announces it (the active gateway's ARP entry for it is the node's MAC address); the external host reaches it only
    through the export's global VIP, and the pod sees the external host's own address."""
    assert ipaddress.ip_address(LOAD_BALANCER) in ipaddress.ip_network(plan["alpha"]["load_balancer_cidrs"][0])
    vip = load_balancer
    assert ipaddress.ip_address(vip) in ipaddress.ip_network(plan["alpha"]["global_cidrs"][0])
    answer = lab_host("ext1").run(ask(vip, 80))
    assert answer.rc == 0 and answer.stdout.strip() == EXT, (answer.stdout, answer.stderr)
    active = lab_host(gateway_failover.active_gateway())
    assert f'{vip} . tcp . 80 . 0 comment "web-lb" : {LOAD_BALANCER} . 8080' in active.run("archipelago-gateway-status").stdout
    node_mac = lab_host("alpha-cp1").run("cat /sys/class/net/eth0/address").stdout.strip()
    neighbour = active.run(f"ip neigh show {LOAD_BALANCER} dev eth0").stdout
    assert f"lladdr {node_mac}" in neighbour, (neighbour, node_mac)
    # The address is on alpha's node network only: the external host has no route to it.
    assert lab_host("ext1").run(ask(LOAD_BALANCER, 8080, timeout=2)).rc != 0


def test_external_host_reaches_no_other_port_of_a_vip_nor_an_egress_address(workloads, capture, gw):
    ext = lab_host("ext1")
    for cluster in ("alpha", "beta"):
        for address, port in ((gw[cluster]["vip"], 8081), (gw[cluster]["vip"], 30080), (gw[cluster]["vip"], 30081),
                              (gw[cluster]["vip"], 6443), (gw[cluster]["egress"], 8080)):
            result = ext.run(ask(address, port, timeout=2))
            assert result.rc != 0 and not result.stdout.strip(), (cluster, address, port, result.stdout)


def conntrackd_external_cache(name):
    return lab_host(name).run("conntrackd -C /etc/conntrackd/conntrackd.conf -e").stdout


def test_a_pod_in_alpha_reaches_beta_export_over_ipv6_and_the_server_sees_alpha_ipv6_egress(workloads, capture, gw, plan):
    """NAT66 both ways, through alpha's active gateway (its IPv6 next hops move with the IPv4 ones) and beta's gateway:
    the pod leaves with its node's IPv6 address (flannel masquerades), alpha's gateway translates it to alpha's IPv6
    egress address, beta's gateway translates the IPv6 VIP to beta's node; both gateways hold IPv6 conntrack entries,
    and alpha's backup gateway holds the entry in its conntrackd external cache (IPv6 entries are replicated)."""
    active = gateway_failover.active_gateway()
    backup = next(name for name in ALPHA_GATEWAYS if name != active)
    assert f"via {ALPHA_INTERNAL_VIP6}" in lab_host("alpha-cp1").run(f"ip -6 route show {plan['beta']['global_cidrs'][1]}").stdout
    result = first_answer(lambda: in_pod("alpha", "client", ask6(gw["beta"]["vip6"], 8080)))
    assert answered(result) == gw["alpha"]["egress6"], (result.rc, result.stdout, result.stderr)
    beta_status = lab_host("beta-gw").run("archipelago-gateway-status").stdout
    translated = rf"src={re.escape(gw['alpha']['egress6'])} dst={re.escape(gw['beta']['vip6'])} .* src={NODE6['beta']} "
    assert re.search(translated, beta_status), beta_status
    alpha_status = lab_host(active).run("archipelago-gateway-status").stdout
    translated = rf"src={NODE6['alpha']} dst={re.escape(gw['beta']['vip6'])} .* dst={re.escape(gw['alpha']['egress6'])} "
    assert re.search(translated, alpha_status), alpha_status
    assert wait_for(lambda: f"dst={gw['beta']['vip6']} " in conntrackd_external_cache(backup), 15), conntrackd_external_cache(backup)


def test_external_host_reaches_both_clusters_exports_over_ipv6_and_nothing_else(workloads, capture, gw):
    """ext1 reaches each cluster's whoami export at its IPv6 VIP (alpha's through its active gateway, beta's through its
    gateway), and the pod sees ext1's own IPv6 address; no other port of an IPv6 VIP answers, nor the egress address."""
    ext = lab_host("ext1")
    for cluster in ("alpha", "beta"):
        result = first_answer(lambda vip=gw[cluster]["vip6"]: ext.run(ask6(vip, 8080)))
        assert answered(result) == EXT6, (cluster, result.rc, result.stdout, result.stderr)
        for address, port in ((gw[cluster]["vip6"], 8081), (gw[cluster]["vip6"], 30080), (gw[cluster]["egress6"], 8080)):
            result = ext.run(ask6(address, port, timeout=2))
            assert result.rc != 0 and not result.stdout.strip(), (cluster, address, port, result.stdout)


def test_transit_capture_holds_no_pod_service_or_node_address(workloads, load_balancer, capture, gw, inside):
    stop_capture()
    time.sleep(1)
    seen = set()
    for name in CAPTURES:
        text = lab_host(name).run("tcpdump -nr /tmp/transit.pcap 2>/dev/null").stdout
        assert text.strip(), f"the capture on {name} is empty"
        seen |= set(re.findall(r"\b(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\b", text))
        seen |= addresses_in(text)
    # Both families: the plan's IPv4 and IPv6 pod and service ranges, and both node networks of each cluster.
    assert {n.version for n in inside} == {4, 6}, inside
    leaked = sorted(a for a in seen if in_any(a, inside))
    assert not leaked, f"inside addresses on the transit network: {leaked}"
    assert LOAD_BALANCER not in seen and in_any(LOAD_BALANCER, inside)
    # And the capture did see the translated traffic, the LoadBalancer export's VIP and the IPv6 traffic included.
    assert {gw["alpha"]["egress"], gw["beta"]["vip"], load_balancer, EXT} <= seen, sorted(seen)
    assert {gw["alpha"]["egress6"], gw["beta"]["vip6"], gw["alpha"]["vip6"], EXT6} <= seen, sorted(seen)


@pytest.fixture
def forbidden_routes(plan):
    """Routes that make the forward filter the only thing between the external host and beta's inside (removed
    afterwards): the external host aims beta's node network, pod and service ranges at beta's gateway, and the gateway
    routes the pod and service ranges to beta's node (the node network is its own). Without the filter, each probe
    below would be answered."""
    ext, gateway = lab_host("ext1"), lab_host("beta-gw")
    beta = plan["beta"]
    inside = [beta["pod_cidrs"][0], beta["service_cidrs"][0]]
    inside6 = [beta["pod_cidrs"][1], beta["service_cidrs"][1]]
    added = []
    try:
        routes = [(ext, c, GATEWAY_TRANSIT["beta"]) for c in [str(NODE_NETWORKS[1]), *inside]]
        routes += [(gateway, c, NODE["beta"]) for c in inside]
        routes += [(ext, c, GATEWAY_TRANSIT6["beta"]) for c in [str(NODE_NETWORKS[3]), *inside6]]
        routes += [(gateway, c, NODE6["beta"]) for c in inside6]
        for host, cidr, via in routes:
            assert host.run(f"ip route replace {cidr} via {via}").rc == 0
            added.append((host, cidr, via))
        yield
    finally:
        for host, cidr, via in added:
            host.run(f"ip route del {cidr} via {via}")


def forward_dropped(host):
    text = host.run("nft list counter inet archipelago_gateway forward_dropped").stdout
    return int(re.search(r"packets (\d+)", text).group(1))


def test_external_host_reaches_no_node_pod_or_service_address_and_the_filter_is_what_stops_it(workloads, forbidden_routes):
    ext, gateway = lab_host("ext1"), lab_host("beta-gw")
    beta = workloads["beta"]
    service_ips = kubectl("beta", f"-n {NS} get service whoami -o jsonpath={{.spec.clusterIPs[*]}}").split()
    pod_ips = [p["ip"] for p in beta["whoami"]["status"]["podIPs"]]
    assert len(service_ips) == 2 and len(pod_ips) == 2, (service_ips, pod_ips)
    targets = [(NODE["beta"], 30080), (NODE["beta"], 30081), (NODE["beta"], 6443), (pod_ips[0], 8080),
               (beta["private"]["status"]["podIP"], 8081), (service_ips[0], 8080)]
    # The same over IPv6: the node's NodePort and API port, the whoami pod and its Service.
    targets6 = [(NODE6["beta"], 30080), (NODE6["beta"], 6443), (pod_ips[1], 8080), (service_ips[1], 8080)]
    for address, port in targets + targets6:
        before = forward_dropped(gateway)
        result = ext.run((ask6 if ":" in address else ask)(address, port, timeout=2))
        assert result.rc != 0 and not result.stdout.strip(), (address, port, result.stdout)
        assert forward_dropped(gateway) > before, f"the probe to {address}:{port} was not dropped by beta-gw's forward filter"
    # The control: one rule per family that lets the external host through, and every probe connects.
    rule = f"ip saddr {EXT} ip daddr {{ {', '.join(sorted({a for a, _ in targets}))} }} accept"
    rule6 = f"ip6 saddr {EXT6} ip6 daddr {{ {', '.join(sorted({a for a, _ in targets6}))} }} accept"
    try:
        assert gateway.run(f"nft insert rule inet archipelago_gateway forward {rule}").rc == 0
        assert gateway.run(f"nft insert rule inet archipelago_gateway forward {rule6}").rc == 0
        for address, port in targets + targets6:
            result = ext.run((ask6 if ":" in address else ask)(address, port, timeout=2))
            assert result.rc == 0, f"{address}:{port} is unreachable even without the filter: {result.stderr}"
    finally:
        assert gateway.run(f"systemctl reload {UNIT}").rc == 0
    forward = gateway.run("nft list chain inet archipelago_gateway forward").stdout
    assert EXT not in forward and EXT6 not in forward, "the control rules are still there"


def run_gateways(extra=None):
    """Re-run plan + gateways against this scenario; returns (rc, per-host changed task names, text)."""
    return run_playbook(SCENARIO / "gateways.yml", None if extra is None else {"island_test_exports": extra})


def reloads(host):
    return int(host.run(f"journalctl -u {UNIT} -o cat | grep -c '^Reloaded' || true").stdout.strip() or 0)


def test_adding_an_export_changes_only_the_rules_and_reloads_once(workloads, gw):
    beta = lab_host("beta-gw")
    before = {"reloads": reloads(beta), "started": beta.run(f"systemctl show -p ExecMainStartTimestamp {UNIT}").stdout}
    new = [{"name": "private", "protocol": "tcp", "port": 8081, "node_port": 30081}]
    rc, changed, text = run_gateways(new)
    assert rc == 0, text[-3000:]
    assert set(changed) == {"beta-gw"}, changed
    assert sorted(changed["beta-gw"]) == sorted([
        "island_gateway : Record the assigned VIPs in the controller's lock file",
        "island_gateway : Write the gateway rules (checked with nft -c before they replace the old file)",
        "island_gateway : Reload the gateway rules",
    ]), changed
    try:
        assert reloads(beta) == before["reloads"] + 1
        assert beta.run(f"systemctl show -p ExecMainStartTimestamp {UNIT}").stdout == before["started"], "restarted, not reloaded"
        lock = vip_lock("beta")["vips"]
        assert lock["whoami"] == gw["beta"]["vip"], "an existing VIP moved"
        answer = lab_host("ext1").run(ask(lock["private"], 8081))
        assert answer.rc == 0 and answer.stdout.strip() == f"private {EXT}", (answer.stdout, answer.stderr)
    finally:
        # Back to the converged state: one more reload, and the new export's VIP answers no more.
        rc, changed, text = run_gateways()
    assert rc == 0 and set(changed) == {"beta-gw"}, (changed, text[-2000:])
    assert reloads(beta) == before["reloads"] + 2
    assert lab_host("ext1").run(ask(lock["private"], 8081, timeout=2)).rc != 0


def live_exports(host):
    return host.run("nft list map inet archipelago_gateway exports").stdout


WRITE_RULES = "island_gateway : Write the gateway rules (checked with nft -c before they replace the old file)"


def test_rules_written_by_a_run_that_failed_before_its_handler_are_loaded_by_the_next_run(workloads, gw):
    """A run writes the new rules and then fails before its handler: the status command's path is made unwritable
    (/proc), so "Install the status command", a later task of the same role, fails on every gateway. The next normal
    run must load the rules the failed run wrote, and the run after it must change nothing."""
    beta, ext = lab_host("beta-gw"), lab_host("ext1")
    new = [{"name": "interrupted", "protocol": "tcp", "port": 8082, "node_port": 30081}]
    try:
        rc, changed, text = run_playbook(SCENARIO / "gateways.yml", {"island_test_exports": new,
                                                                      "island_gateway_status_command": "/proc/archipelago-interrupt"})
        assert rc != 0 and "beta-gw: island_gateway : Install the status command" in text, text[-3000:]
        assert WRITE_RULES in changed.get("beta-gw", []), changed
        assert "Reload the gateway rules" not in " ".join(changed.get("beta-gw", [])), "the handler ran: nothing was interrupted"
        assert '"interrupted"' in beta.file(RULES).content_string, "the failed run did not write the rules"
        assert '"interrupted"' not in live_exports(beta), "the failed run loaded the rules"
        vip = vip_lock("beta")["vips"]["interrupted"]

        rc, changed, text = run_gateways(new)
        assert rc == 0, text[-3000:]
        assert sorted(changed.get("beta-gw", [])) == sorted([
            "island_gateway : Compare the gateway rules on disk with the rules last loaded",
            "island_gateway : Reload the gateway rules",
        ]), changed
        assert '"interrupted"' in live_exports(beta)
        answer = ext.run(ask(vip, 8082))
        assert answer.rc == 0 and answer.stdout.strip() == f"private {EXT}", (answer.stdout, answer.stderr)

        rc, changed, text = run_gateways(new)
        assert rc == 0 and changed == {}, (changed, text[-2000:])
    finally:
        rc, changed, text = run_gateways()
    assert rc == 0 and '"interrupted"' not in live_exports(beta), text[-2000:]


def test_a_converge_killed_after_writing_the_rules_converges_on_the_next_run(workloads):
    """ansible-playbook is killed (SIGKILL to its process group, by tests/callback_plugins/kill_at_task.py) when the
    task after the rules' template starts: the new rules are on disk, not loaded. The re-run loads them, and the run
    after it changes nothing."""
    beta, ext = lab_host("beta-gw"), lab_host("ext1")
    new = [{"name": "killed", "protocol": "tcp", "port": 8083, "node_port": 30081}]
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
           "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"), "ANSIBLE_CALLBACKS_ENABLED": "kill_at_task",
           "ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).with_name("callback_plugins")),
           "ARCHIPELAGO_KILL_AT_TASK": "Write the gateway unit"}
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(EPHEMERAL / "inventory"), str(SCENARIO / "gateways.yml"),
               "-e", json.dumps({"island_test_exports": new})]
    try:
        killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False, start_new_session=True)
        assert killed.returncode == -9, (killed.returncode, killed.stdout[-2000:], killed.stderr[-2000:])
        assert '"killed"' in beta.file(RULES).content_string, "the killed run had not written the rules yet"
        assert '"killed"' not in live_exports(beta), "the killed run loaded the rules"

        rc, changed, text = run_gateways(new)
        assert rc == 0, text[-3000:]
        assert "island_gateway : Reload the gateway rules" in changed.get("beta-gw", []), changed
        assert WRITE_RULES not in changed.get("beta-gw", []), changed
        assert '"killed"' in live_exports(beta)
        vip = vip_lock("beta")["vips"]["killed"]
        answer = ext.run(ask(vip, 8083))
        assert answer.rc == 0 and answer.stdout.strip() == f"private {EXT}", (answer.stdout, answer.stderr)

        rc, changed, text = run_gateways(new)
        assert rc == 0 and changed == {}, (changed, text[-2000:])
    finally:
        rc, changed, text = run_gateways()
    assert rc == 0 and '"killed"' not in live_exports(beta), text[-2000:]


def test_routes_written_by_a_run_that_failed_before_its_handler_are_installed_by_the_next_run(plan):
    """The external host's routes unit gets one more route (towards beta's gateway, for a lab network nothing uses)
    from a run that fails right after writing it; the next run installs it, the one after changes nothing, and
    gateways.yml puts the original list back."""
    ext = lab_host("ext1")
    extra = "10.223.9.0/24"
    routes = [{"cidr": plan[c]["global_cidrs"][0], "via": GATEWAY_TRANSIT[c]} for c in ("alpha", "beta")]
    routes.append({"cidr": extra, "via": GATEWAY_TRANSIT["beta"]})
    playbook = SCENARIO / "routes-interrupted.yml"
    try:
        rc, changed, text = run_playbook(playbook, {"island_test_routes": routes, "island_test_interrupt": True})
        assert rc != 0 and "Interrupted on purpose" in text, text[-3000:]
        assert "static_routes : Write the routes unit" in changed.get("ext1", []), changed
        assert extra in ext.file("/etc/systemd/system/archipelago-routes.service").content_string
        assert not ext.run(f"ip route show {extra}").stdout.strip(), "the failed run installed the route"

        rc, changed, text = run_playbook(playbook, {"island_test_routes": routes})
        assert rc == 0, text[-3000:]
        assert sorted(changed.get("ext1", [])) == ["static_routes : Compare the routes unit on disk with the one last applied",
                                                  "static_routes : Restart the routes"], changed
        assert f"{extra} via {GATEWAY_TRANSIT['beta']}" in ext.run(f"ip route show {extra}").stdout

        rc, changed, text = run_playbook(playbook, {"island_test_routes": routes})
        assert rc == 0 and changed == {}, (changed, text[-2000:])
    finally:
        rc, changed, text = run_gateways()
    assert rc == 0 and not ext.run(f"ip route show {extra}").stdout.strip(), text[-2000:]


def test_load_balancer_export_outside_the_planned_range_is_refused_before_any_change():
    """alpha's gateways (group exports, so both hold the same) get a web-lb export at an address of alpha's node
    network outside its LoadBalancer range: refused at validation, no gateway changes (beta's gateway, whose cluster has
    no LoadBalancer range, refuses it too)."""
    alpha = {name: lab_host(name).file(RULES).sha256sum for name in ALPHA_GATEWAYS}
    exports = [{"name": "echo", "protocol": "tcp", "port": 7100, "backends": [{"address": NODE["alpha"], "port": 7100}]},
               {"name": "web-lb", "protocol": "tcp", "port": 80, "load_balancer": {"address": "10.223.1.200", "port": 8080}}]
    rc, changed, text = run_playbook(SCENARIO / "gateways.yml", {"island_gateway_group_exports": exports})
    assert rc != 0, text[-2000:]
    assert "export web-lb targets LoadBalancer address 10.223.1.200, outside the cluster's LoadBalancer ranges 10.223.1.240/30" \
        in text, text[-3000:]
    assert "export web-lb targets LoadBalancer address 10.223.1.200, but the cluster has no LoadBalancer range" in text, text[-3000:]
    assert not any(changed.get(name) for name in (*ALPHA_GATEWAYS, "beta-gw")), changed
    assert {name: lab_host(name).file(RULES).sha256sum for name in ALPHA_GATEWAYS} == alpha


BAD_EXPORTS = [
    # (beta's bad exports, its message; alpha's bad exports, their message): one run refuses both, each on its own hosts.
    ([{"name": "bad", "port": 8081, "node_port": 30081, "vip": "100.64.200.1"}],
     "export bad has vip 100.64.200.1, outside the cluster's global range 100.64.0.16/28",
     [{"name": "bad6", "port": 8081, "node_port": 30081, "vip6": "fd64:ffff::1"}],
     "export bad6 has vip6 fd64:ffff::1, outside the cluster's global range fd64::/124"),
    ([{"name": "bad1", "port": 8081, "node_port": 30081, "vip": "100.64.0.25"},
      {"name": "bad2", "port": 8081, "node_port": 30080, "vip": "100.64.0.25"}], "exports bad1 and bad2 both use 100.64.0.25:8081/tcp",
     [{"name": "bad6", "port": 8081, "backends": [{"address": NODE6["alpha"], "port": 8080}], "vip6": "100.64.0.5"}],
     "export bad6's vip6 is 100.64.0.5, which is not an IPv6 address"),
    ([{"name": "bad", "port": 8081, "node_port": 8081}], "outside the NodePort range 30000-32767",
     [{"name": "bad", "port": 8080, "node_port": 30081, "vip6": "__WHOAMI_VIP6__"}], "which export whoami already holds"),
]


@pytest.mark.parametrize(("beta_exports", "beta_message", "alpha_exports", "alpha_message"), BAD_EXPORTS)
def test_bad_export_is_refused_before_any_change(beta_exports, beta_message, alpha_exports, alpha_message, gw):
    """Two refusals per run: beta's gateway gets one bad export, both of alpha's gateways another (host exports, the same
    on both); each gateway fails with its own message at validation, and no gateway changes."""
    gateways = (*ALPHA_GATEWAYS, "beta-gw")
    rules = {name: lab_host(name).file(RULES).sha256sum for name in gateways}
    alpha_exports = [{k: (gw["alpha"]["vip6"] if v == "__WHOAMI_VIP6__" else v) for k, v in e.items()} for e in alpha_exports]
    rc, changed, text = run_playbook(SCENARIO / "gateways.yml", {"island_test_exports": beta_exports,
                                                                  "island_test_alpha_exports": alpha_exports})
    assert rc != 0, text[-2000:]
    failures = {line.split(":", 1)[0]: line for line in text.splitlines() if line.split(":", 1)[0] in gateways}
    assert beta_message in failures.get("beta-gw", ""), text[-3000:]
    for name in ALPHA_GATEWAYS:
        assert alpha_message in failures.get(name, ""), (name, text[-3000:])
    assert not any(changed.get(name) for name in gateways), changed
    assert {name: lab_host(name).file(RULES).sha256sum for name in gateways} == rules


def cross_cluster_ok(gw):
    answer = in_pod("alpha", "client", ask(gw["beta"]["vip"], 8080, timeout=2))
    return answer.rc == 0 and answer.stdout.strip() == gw["alpha"]["egress"]


def test_stopping_the_gateway_unit_fails_closed_and_starting_restores(workloads, gw):
    beta = lab_host("beta-gw")
    assert cross_cluster_ok(gw)
    try:
        assert beta.run(f"systemctl stop {UNIT}").rc == 0
        assert beta.run("sysctl -n net.ipv4.ip_forward").stdout.strip() == "0"
        assert not cross_cluster_ok(gw)
    finally:
        beta.run(f"systemctl start {UNIT}")
    assert wait_for(lambda: cross_cluster_ok(gw), 30)


def test_a_stopped_gateway_cuts_cross_cluster_traffic_and_its_reboot_restores_it(workloads, gw, plan):
    env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "lab" / "containers.conf"))}
    container = f"{PREFIX}beta-gw"
    assert cross_cluster_ok(gw)
    try:
        subprocess.run(["podman", "stop", "-t", "10", container], env=env, check=True, capture_output=True, timeout=60)
        assert not cross_cluster_ok(gw)
    finally:
        subprocess.run(["podman", "start", container], env=env, check=True, capture_output=True, timeout=60)
    # No Ansible here: the units load the rules and the routes at boot.
    beta = lab_host("beta-gw")
    beta.run("timeout 60 systemctl is-system-running --wait")
    # The rebooted gateway has new MAC addresses: its neighbours re-learn them within a neighbour timeout or two.
    assert wait_for(lambda: cross_cluster_ok(gw), 90), "cross-cluster traffic did not come back after the gateway's reboot"
    assert beta.service(UNIT).is_running
    assert f"{plan['alpha']['global_cidrs'][0]} via {GATEWAY_TRANSIT['alpha']}" in beta.run("ip route").stdout


def test_one_alpha_gateway_holds_both_virtual_addresses_and_the_routes_use_them(plan):
    active = gateway_failover.active_gateway()
    for name in ALPHA_GATEWAYS:
        host = lab_host(name)
        assert host.service("keepalived").is_running and host.service("conntrackd").is_running, name
        holds = host.run(f"ip -o -4 address show to {GATEWAY_TRANSIT['alpha']}").stdout.strip() != ""
        assert holds == (name == active), (name, active, "the transit address must move with the internal one")
        # The IPv6 next hops are in the same VRRP instance (excluded from its advertisements): they move together.
        holds6 = [host.run(f"ip -o -6 address show to {a}").stdout.strip() != "" for a in (ALPHA_INTERNAL_VIP6, GATEWAY_TRANSIT6["alpha"])]
        assert holds6 == [name == active] * 2, (name, active, holds6)
    assert f"via {ALPHA_INTERNAL_VIP}" in lab_host("alpha-cp1").run(f"ip route show {plan['beta']['global_cidrs'][0]}").stdout
    assert f"via {GATEWAY_TRANSIT['alpha']}" in lab_host("ext1").run(f"ip route show {plan['alpha']['global_cidrs'][0]}").stdout
    assert f"via {GATEWAY_TRANSIT6['alpha']}" in lab_host("ext1").run(f"ip -6 route show {plan['alpha']['global_cidrs'][1]}").stdout
    assert f"via {GATEWAY_TRANSIT6['beta']}" in lab_host(active).run(f"ip -6 route show {plan['beta']['global_cidrs'][1]}").stdout


@pytest.fixture
def echo_servers():
    gateway_failover.start_echo_servers(300)
    yield
    gateway_failover.stop_echo_servers()


def test_stopping_the_active_gateway_keeps_established_connections_and_the_gap_is_short(echo_servers):
    """podman stop on alpha's active gateway while a ping stream (every 20 ms) and long-lived TCP connections cross
    it, egress to the external host and from the external host to alpha's echo export: the backup had them replicated
    before the stop (failover_round waits for them in its conntrackd external cache, or fails), takes the addresses
    over, the ping gap stays within 2 s and every connection keeps echoing. The
    stopped gateway comes back as a backup and does not take the addresses back."""
    outcome = gateway_failover.failover_round(vip_lock("alpha")["vips"]["echo"], connections=1)
    assert outcome["took_over"], outcome
    assert outcome["survived"] == outcome["connections"] == 2, outcome["clients"]
    assert outcome["gap_s"] <= gateway_failover.GAP_GOAL, outcome
    assert outcome["returned_as_backup"] and outcome["kept_by_survivor"], outcome


def test_the_active_gateway_losing_its_transit_link_keeps_established_connections_and_the_gap_is_short(echo_servers):
    """The same streams while the active gateway's transit link goes down (`ip link set dev eth1 down` in it): its
    keepalived enters the fault state and gives the addresses up (it still tells the backup, on the internal link),
    the backup takes them over, the gap stays within 2 s. The link comes up again while the streams run: the gateway
    is a backup with the peers' routes through the link back (they left the kernel with it), the survivor keeps the
    addresses, no second gap opens, and every connection echoes through both."""
    outcome = gateway_failover.failover_round(vip_lock("alpha")["vips"]["echo"], connections=1, how="transit")
    assert outcome["took_over"] and outcome["released"], outcome
    assert outcome["survived"] == outcome["connections"] == 2, outcome["clients"]
    assert outcome["gap_s"] <= gateway_failover.GAP_GOAL, outcome
    assert outcome["returned_as_backup"] and outcome["kept_by_survivor"] and outcome["routes_back"], outcome
    assert outcome["second_gap_s"] <= gateway_failover.GAP_GOAL, outcome
