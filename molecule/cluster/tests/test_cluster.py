"""A live kubeadm cluster in the lab: the four traffic patterns, from real pods, and the plan's ranges."""

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

from scenario import inventory_nodes

PREFIX = "podman://arch-mol-cluster-"
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
NS = "archipelago-test"
WORKLOADS = Path(__file__).with_name("workloads.yml")
NODE_IPS = {"cp1": "10.220.0.11", "cp2": "10.220.0.12", "cp3": "10.220.0.13", "w1": "10.220.0.21", "w2": "10.220.0.22"}
VXLAN_PORT = 8472


def lab_host(name):
    return testinfra.get_host(PREFIX + name)


@pytest.fixture(scope="module")
def cp():
    return lab_host("cp1")


def kubectl(cp, args, check=True):
    result = cp.run(f"{KUBECTL} {args}")
    if check:
        assert result.rc == 0, f"kubectl {args}: {result.stderr}"
    return result.stdout


def exec_in(cp, pod, command, container=None):
    """Run a shell command inside a pod; returns the result (rc, stdout)."""
    which = f"-c {container} " if container else ""
    return cp.run(f"{KUBECTL} -n {NS} exec {pod} {which}-- sh -c {json.dumps(command)}")


@pytest.fixture(scope="module")
def plan():
    """The plan this run wrote beside molecule's inventory."""
    lock = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "network-plan.lock.yml"
    return yaml.safe_load(lock.read_text())["clusters"]["alpha"]


@pytest.fixture(scope="module")
def workloads(cp):
    cp.run(f"mkdir -p /root/tests && cat > /root/tests/workloads.yml <<'EOF'\n{WORKLOADS.read_text()}\nEOF")
    kubectl(cp, "apply -f /root/tests/workloads.yml")
    kubectl(cp, f"-n {NS} wait --for=condition=Ready pod --all --timeout=180s")
    pods = json.loads(kubectl(cp, f"-n {NS} get pods -o json"))["items"]
    return {p["metadata"]["name"]: p for p in pods}


def pod_ip(workloads, name):
    return workloads[name]["status"]["podIP"]


def test_every_node_is_ready(cp):
    nodes = json.loads(kubectl(cp, "get nodes -o json"))["items"]
    assert {n["metadata"]["name"] for n in nodes} == inventory_nodes("alpha") == set(NODE_IPS)
    for node in nodes:
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True", node["metadata"]["name"]


def test_live_ranges_are_the_plans(cp, plan):
    manifests = "/etc/kubernetes/manifests"
    apiserver = cp.file(f"{manifests}/kube-apiserver.yaml").content_string
    controller = cp.file(f"{manifests}/kube-controller-manager.yaml").content_string
    assert f"--service-cluster-ip-range={','.join(plan['service_cidrs'])}" in apiserver
    assert f"--cluster-cidr={','.join(plan['pod_cidrs'])}" in controller
    pod_range = ipaddress.ip_network(plan["pod_cidrs"][0])
    nodes = json.loads(kubectl(cp, "get nodes -o json"))["items"]
    assert {n["metadata"]["name"] for n in nodes} == inventory_nodes("alpha")
    for node in nodes:
        node_range = ipaddress.ip_network(node["spec"]["podCIDR"])
        assert node_range.subnet_of(pod_range)
        assert node_range.prefixlen == plan["node_cidr_mask_sizes"][0]
    assert kubectl(cp, "get service kubernetes -o jsonpath={.spec.clusterIP}") == plan["api_service_ips"][0]
    assert kubectl(cp, "-n kube-system get service kube-dns -o jsonpath={.spec.clusterIP}") == plan["dns_service_ips"][0]


def test_kube_proxy_runs_in_nftables_mode(cp):
    config = yaml.safe_load(kubectl(cp, "-n kube-system get configmap kube-proxy -o 'jsonpath={.data.config\\.conf}'"))
    assert config["mode"] == "nftables"
    for name in NODE_IPS:
        table = lab_host(name).run("nft list table ip kube-proxy")
        assert table.rc == 0 and "services" in table.stdout, name


def test_containers_of_one_pod_talk_over_localhost(cp, workloads):
    result = exec_in(cp, "duo", "curl -s --max-time 5 http://127.0.0.1:8080/", container="client")
    assert result.rc == 0 and result.stdout.strip() == "duo-localhost-ok"


def test_pods_on_one_node_talk_over_the_bridge(cp, workloads):
    target = pod_ip(workloads, "web-w1")
    assert exec_in(cp, "client-w1", f"curl -s --max-time 5 http://{target}:8080/").stdout.strip() == "web-w1"
    # On the node, the neighbour pod's range is reached through the bridge, not through flannel.1.
    route = lab_host("w1").run(f"ip route get {target}").stdout
    assert "dev cni0" in route, route


def test_pods_on_different_nodes_talk_through_vxlan(cp, workloads):
    w1 = lab_host("w1")
    target = pod_ip(workloads, "web-w2")
    assert "dev flannel.1" in w1.run(f"ip route get {target}").stdout
    details = w1.run("ip -details link show flannel.1").stdout
    assert re.search(rf"vxlan id 1 .*dstport {VXLAN_PORT}", details), details
    # Capture on w1's uplink while the client asks web-w2: the request crosses as VXLAN on the configured port.
    w1.run("rm -f /tmp/vxlan.pcap")
    capture = f"udp dst port {VXLAN_PORT} and dst host {NODE_IPS['w2']}"
    w1.run(f"timeout 20 tcpdump -i eth0 -c 4 -w /tmp/vxlan.pcap '{capture}' >/dev/null 2>&1 &")
    time.sleep(2)
    answer = exec_in(cp, "client-w1", f"curl -s --max-time 5 http://{target}:8080/")
    assert answer.stdout.strip() == "web-w2"
    for _ in range(20):
        if w1.run("test -s /tmp/vxlan.pcap && tcpdump -r /tmp/vxlan.pcap 2>/dev/null | wc -l").stdout.strip() not in ("", "0"):
            break
        time.sleep(1)
    decoded = w1.run("tcpdump -nr /tmp/vxlan.pcap -T vxlan 2>/dev/null").stdout
    assert "VXLAN" in decoded and target in decoded, decoded


def test_clusterip_service_answers_and_its_name_resolves(cp, workloads):
    cluster_ip = kubectl(cp, f"-n {NS} get service web -o jsonpath={{.spec.clusterIP}}")
    fqdn = f"web.{NS}.svc.cluster.local"
    resolved = exec_in(cp, "client-w1", f"python3 -c 'import socket; print(socket.gethostbyname(\"{fqdn}\"))'")
    assert resolved.rc == 0 and resolved.stdout.strip() == cluster_ip
    answers = {exec_in(cp, "client-w1", f"curl -s --max-time 5 http://{fqdn}:8080/").stdout.strip() for _ in range(12)}
    assert answers <= {"web-w1", "web-w2"} and answers, answers


def test_nodeport_answers_on_every_node(cp, workloads):
    for name, address in NODE_IPS.items():
        answer = exec_in(cp, "client-w1", f"curl -s --max-time 5 http://{address}:30080/").stdout.strip()
        assert answer in {"web-w1", "web-w2"}, (name, answer)


def test_external_host_reaches_the_nodeport(workloads):
    ext = lab_host("ext1")
    for address in NODE_IPS.values():
        answer = ext.run(f"curl -s --max-time 5 http://{address}:30080/")
        assert answer.rc == 0 and answer.stdout.strip() in {"web-w1", "web-w2"}, (address, answer.stderr)


def test_admin_kubeconfig_is_private(cp):
    assert cp.file("/etc/kubernetes/admin.conf").mode == 0o600


def test_no_bootstrap_token_is_left(cp):
    """kubeadm init's token and every join token are deleted once used (also after an interrupted run: the
    side_effect step kills a converge while two join tokens exist, and the next converge deletes them)."""
    secrets = json.loads(kubectl(cp, "-n kube-system get secrets --field-selector type=bootstrap.kubernetes.io/token -o json"))["items"]
    assert [s["metadata"]["name"] for s in secrets] == []
    tokens = cp.run("kubeadm token list --kubeconfig /etc/kubernetes/admin.conf")
    assert tokens.rc == 0 and tokens.stdout.strip() == "", tokens.stdout

