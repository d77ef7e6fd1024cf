"""The dual-stack cluster a consumer's playbook built from the installed collection (converge.yml, prepare.yml).

playbooks/verify.yml, the checks users run against their own clusters, proves the four traffic patterns from real
pods in both families: containers of one pod over localhost, pods on one node, pods across nodes, a Service by name.
The nodes' own view is checked here as well: every node is Ready with an address and a pod range of each family.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from pathlib import Path

import testinfra
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from scenario import run_verify_playbook

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
SCENARIO = yaml.safe_load((Path(__file__).resolve().parents[1] / "molecule.yml").read_text())
PLAN_SPEC = SCENARIO["provisioner"]["inventory"]["group_vars"]["all"]["network_plan"]
FAMILIES = ("ipv4", "ipv6")
CHECKS = ("pod-localhost", "pod-same-node", "pod-cross-node", "service-dns")


def kubectl(args: str) -> str:
    cp1 = testinfra.get_host("podman://arch-mol-node-cp1")
    result = cp1.run(f"kubectl --kubeconfig /etc/kubernetes/admin.conf {args}")
    assert result.rc == 0, result.stderr
    return result.stdout


def in_pool(cidr: str, kind: str) -> bool:
    net = ipaddress.ip_network(cidr)
    family = f"ipv{net.version}"
    return any(net.subnet_of(ipaddress.ip_network(pool)) for pool in PLAN_SPEC["pools"][kind][family])


def test_every_node_is_ready_with_an_address_and_a_pod_range_of_each_family():
    nodes = json.loads(kubectl("get nodes -o json"))["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == ["cp1", "w1"]
    for node in nodes:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", node["metadata"]["name"]
        internal = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
        assert sorted(ipaddress.ip_address(a).version for a in internal) == [4, 6], internal
        pod_cidrs = node["spec"]["podCIDRs"]
        assert sorted(ipaddress.ip_network(c).version for c in pod_cidrs) == [4, 6], pod_cidrs
        assert all(in_pool(c, "pods") for c in pod_cidrs), pod_cidrs


DUAL_STACK_SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: dual, namespace: default, labels: {archipelago.io/owner: node-scenario}}
spec:
  ipFamilyPolicy: RequireDualStack
  ports: [{port: 80}]
"""


def test_a_dual_stack_service_gets_a_cluster_ip_of_each_family_from_the_plan():
    """The kubernetes Service is single-stack (the primary family) by design; a RequireDualStack one gets both."""
    cp1 = testinfra.get_host("podman://arch-mol-node-cp1")
    created = cp1.run(f"kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f - <<'EOF'{DUAL_STACK_SERVICE}EOF")
    assert created.rc == 0, created.stderr
    try:
        cluster_ips = json.loads(kubectl("get service dual -n default -o json"))["spec"]["clusterIPs"]
    finally:
        kubectl("delete service dual -n default --wait=false")
    assert sorted(ipaddress.ip_address(a).version for a in cluster_ips) == [4, 6], cluster_ips
    assert all(in_pool(f"{a}/{128 if ':' in a else 32}", "services") for a in cluster_ips), cluster_ips


def test_verify_playbook_proves_the_four_traffic_patterns_in_both_families():
    status = run_verify_playbook(EPHEMERAL, words=2)
    for family in FAMILIES:
        for check in CHECKS:
            assert status.get(("alpha", check, family)) == {"PASS"}, (check, family, status)
    assert all(outcomes == {"PASS"} or outcomes == {"SKIP"} for outcomes in status.values()), status
    assert "archipelago-verify" not in kubectl("get namespaces -o name")


def test_only_the_control_plane_holds_the_control_plane_images():
    """The node role imports kube-apiserver, kube-controller-manager, kube-scheduler and etcd on control planes only:
    a worker never runs them, and importing them cost the first converge a copy and an import per worker."""
    control_plane_images = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")

    def held(name: str) -> set[str]:
        images = testinfra.get_host(f"podman://arch-mol-node-{name}").check_output("ctr --namespace k8s.io images list --quiet")
        return {image.rsplit("/", 1)[-1].split(":")[0] for image in images.splitlines()}

    cp1, w1 = held("cp1"), held("w1")
    assert set(control_plane_images) <= cp1, cp1
    assert not set(control_plane_images) & w1, w1
    assert {"kube-proxy", "pause"} <= w1, w1
