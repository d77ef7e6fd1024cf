"""A flat-mode router in both families: the consumer-built dual-stack cluster (cp1, w1) behind a router, and an
external host on an edge network of its own that reaches the pods by their IPv4 and IPv6 addresses.

The router's static routes come from the Node objects (each node's pod range of each family via the node's address
of that family, playbooks/routers.yml); the nodes route the edge back via the router (router_next_hop). The external
host has no other way into the cluster's network, and every pod answers with the client address it saw, so a right
answer proves the path is routed and untranslated. Probes are bounded and aim only at this scenario's lab addresses.
"""

from __future__ import annotations

import ipaddress
import json

import pytest
import testinfra

KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
NS = "archipelago-flat-router"
IMAGE = "localhost/archipelago/nettest:1"
ROUTER = "arch-mol-node-router"
EXT = {4: "10.219.1.100", 6: "fd00:219:1::100"}
NODE_ADDRESSES = {"cp1": {4: "10.219.0.21", 6: "fd00:219::21"}, "w1": {4: "10.219.0.22", 6: "fd00:219::22"}}
# One listener per family on the same port, each answering with the client address it saw.
WHOAMI = ("socat TCP4-LISTEN:8080,fork,reuseaddr 'SYSTEM:echo $SOCAT_PEERADDR' & "
          "exec socat TCP6-LISTEN:8080,ipv6only=1,fork,reuseaddr 'SYSTEM:echo $SOCAT_PEERADDR'")


def host(name: str):
    return testinfra.get_host(f"podman://arch-mol-node-{name}")


def kubectl(args: str, stdin: str | None = None) -> str:
    command = f"{KUBECTL} {args}" if stdin is None else f"{KUBECTL} {args} <<'EOF'\n{stdin}\nEOF"
    result = host("cp1").run(command)
    assert result.rc == 0, f"kubectl {args}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def whoami_pods():
    """A whoami pod on each node; yields node name to the pod's addresses by IP version."""
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"whoami-{node}", "namespace": NS},
             "spec": {"nodeName": node, "containers": [{
                 "name": "whoami", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sh", "-c", WHOAMI],
                 "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2}}]}}
            for node in NODE_ADDRESSES]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
    kubectl("apply -f -", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [namespace, *pods]}))
    kubectl(f"-n {NS} wait --for=condition=Ready pod --all --timeout=180s")
    items = json.loads(kubectl(f"-n {NS} get pods -o json"))["items"]
    yield {p["spec"]["nodeName"]: {ipaddress.ip_address(a["ip"]).version: a["ip"] for a in p["status"]["podIPs"]}
           for p in items}
    kubectl(f"delete namespace {NS} --wait=false")


def node_pod_cidrs() -> dict[str, list[str]]:
    return {n["metadata"]["name"]: n["spec"]["podCIDRs"] for n in json.loads(kubectl("get nodes -o json"))["items"]}


@pytest.mark.parametrize("version", [4, 6])
def test_router_routes_each_node_pod_range_of_the_family_via_that_node(version):
    routes = json.loads(testinfra.get_host(f"podman://{ROUTER}").check_output(f"ip -json -{version} route show"))
    gateways = {route["dst"]: route.get("gateway") for route in routes}
    cidrs = node_pod_cidrs()
    for node, addresses in NODE_ADDRESSES.items():
        (cidr,) = [c for c in cidrs[node] if ipaddress.ip_network(c).version == version]
        assert gateways.get(cidr) == addresses[version], (node, cidr, routes)


def test_external_host_has_no_default_route_in_either_family():
    ext = host("ext1")
    for version in (4, 6):
        assert "default" not in ext.check_output(f"ip -{version} route show"), version


@pytest.mark.parametrize("version", [4, 6])
def test_external_host_reaches_each_pod_by_its_address_of_the_family_and_the_pod_sees_the_host(whoami_pods, version):
    ext = host("ext1")
    for node, addresses in whoami_pods.items():
        assert version in addresses, (node, addresses)
        target = addresses[version] if version == 4 else f"[{addresses[version]}]"
        # The pod forks a shell per answer: on a loaded machine that may outlast an idle timeout, so up to three tries.
        for _ in range(3):
            answer = ext.run(f"timeout 12 socat -T8 - TCP:{target}:8080,connect-timeout=3 </dev/null")
            assert answer.rc == 0, (node, version, answer.stderr)
            if answer.stdout.strip():
                break
        seen = answer.stdout.strip().strip("[]")
        assert seen, f"{node}'s pod at {target} accepted the connection but never answered"
        assert ipaddress.ip_address(seen) == ipaddress.ip_address(EXT[version]), (node, version, seen)
