"""Traffic from outside the cluster: a LoadBalancer Service of alpha (MetalLB in L2 mode, the plan's range carved from
alpha's node network) reached from the external host, its address moving to the other worker when the announcing
node is stopped; and an ExternalName Service resolved from a pod.

This file runs last (pytest's file order): it needs alpha's two workers, the second of which test_node_join.py joins,
and its last test stops and starts one of them. Every probe is bounded and aims only at this scenario's lab addresses.
"""

import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenario import ask, wait_for
from test_flat import EXT, IMAGE, PREFIX, kubectl, lab_host

EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", ""))
LB_NS = "archipelago-lb"
PROBE_LOG = "/tmp/lb-probe.log"
PROBE_UNIT = "flat-lb-probe"
# Each answer names the node whose pod answered and the client address the pod saw.
NODE_WHOAMI = ["socat", "TCP-LISTEN:8080,fork,reuseaddr", "SYSTEM:echo $NODE_NAME $SOCAT_PEERADDR"]


@pytest.fixture(scope="module")
def plan():
    return yaml.safe_load((EPHEMERAL / "network-plan.lock.yml").read_text())["clusters"]


def workers():
    nodes = json.loads(kubectl("alpha", "get nodes -o json"))["items"]
    return sorted(n["metadata"]["name"] for n in nodes if "node-role.kubernetes.io/control-plane" not in n["metadata"]["labels"])


@pytest.fixture(scope="module")
def service():
    """A server pod on every worker of alpha behind a LoadBalancer Service with externalTrafficPolicy Local: only a
    node with a ready server announces the address, answers come from that node's pod, and the client address is
    kept. The control plane runs no server, so stopping the announcing node never stops the API server. Returns the
    Service's address."""
    assert len(workers()) >= 2, f"alpha needs two workers for the failover (test_node_join.py adds one): {workers()}"
    labels = {"app": "lb-whoami"}
    container = {"name": "whoami", "image": IMAGE, "imagePullPolicy": "Never", "command": NODE_WHOAMI,
                 "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                 "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2}}
    not_control_plane = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"}]}]}}}
    items = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LB_NS}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "lb-whoami", "namespace": LB_NS},
         "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
             "affinity": not_control_plane, "terminationGracePeriodSeconds": 1, "containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb-whoami", "namespace": LB_NS},
         "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": labels,
                  "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}},
    ]
    kubectl("alpha", "apply -f -", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    kubectl("alpha", f"-n {LB_NS} rollout status daemonset/lb-whoami --timeout=180s")

    def address():
        status = json.loads(kubectl("alpha", f"-n {LB_NS} get service lb-whoami -o json"))["status"]
        return next((i["ip"] for i in status.get("loadBalancer", {}).get("ingress", []) if "ip" in i), None)

    assert wait_for(address, 60), kubectl("alpha", f"-n {LB_NS} describe service lb-whoami")
    # The address is assigned and announced before every node's kube-proxy has the new endpoints: until then the
    # announcing node rejects the connection (seen once at load 30: "Connection refused" right after the rollout).
    ext = lab_host("ext1")
    assert wait_for(lambda: ext.run(ask(address(), 80)).rc == 0, 60), \
        kubectl("alpha", f"-n {LB_NS} get endpointslices -o wide")
    return address()


def test_metallb_runs_on_every_alpha_node_with_the_planned_pool(plan):
    kubectl("alpha", "-n metallb-system rollout status deployment/controller --timeout=120s")
    kubectl("alpha", "-n metallb-system rollout status daemonset/speaker --timeout=180s")
    speakers = json.loads(kubectl("alpha", "-n metallb-system get pods -l component=speaker -o json"))["items"]
    nodes = json.loads(kubectl("alpha", "get nodes -o json"))["items"]
    assert {p["spec"]["nodeName"] for p in speakers} == {n["metadata"]["name"] for n in nodes}
    pool = json.loads(kubectl("alpha", "-n metallb-system get ipaddresspools.metallb.io archipelago -o json"))
    assert pool["spec"]["addresses"] == plan["alpha"]["load_balancer_cidrs"] != []
    advert = json.loads(kubectl("alpha", "-n metallb-system get l2advertisements.metallb.io archipelago -o json"))
    assert advert["spec"]["ipAddressPools"] == ["archipelago"]
    # beta has no LoadBalancer range and no MetalLB.
    assert plan["beta"]["load_balancer_cidrs"] == []
    assert "metallb-system" not in kubectl("beta", "get namespaces -o name")


def test_load_balancer_address_is_from_the_plan_and_answers_the_external_host_with_its_address(plan, service):
    assert ipaddress.ip_address(service) in ipaddress.ip_network(plan["alpha"]["load_balancer_cidrs"][0])
    answer = lab_host("ext1").run(ask(service, 80))
    assert answer.rc == 0, answer.stderr
    node, client = answer.stdout.split()
    assert node in workers() and client == EXT, answer.stdout  # Local policy: no SNAT, the client address is kept
    # L2 mode: the router reaches the address on alpha's link, at the MAC address of the answering node.
    neighbour = lab_host("router").run(f"ip -4 neigh show {service}").stdout.split()
    assert "lladdr" in neighbour, neighbour
    mac = neighbour[neighbour.index("lladdr") + 1]
    assert lab_host(node).run(f"ip -o link | grep -qiF 'link/ether {mac} '").rc == 0, (node, neighbour)


def test_external_name_service_resolves_to_its_target_from_a_pod(service):
    """CoreDNS answers an ExternalName Service with a CNAME; the lab has no outside DNS, so the target is a name the
    cluster resolves: the LoadBalancer Service's own cluster name."""
    domain = "cluster.local"  # kubeadm_control_plane_dns_domain's default
    target = f"lb-whoami.{LB_NS}.svc.{domain}"
    alias = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb-alias", "namespace": LB_NS},
             "spec": {"type": "ExternalName", "externalName": target}}
    kubectl("alpha", "apply -f -", stdin=json.dumps(alias))
    cluster_ip = json.loads(kubectl("alpha", f"-n {LB_NS} get service lb-whoami -o json"))["spec"]["clusterIP"]
    pods = json.loads(kubectl("alpha", f"-n {LB_NS} get pods -l app=lb-whoami --field-selector status.phase=Running -o json"))
    name = pods["items"][0]["metadata"]["name"]

    def resolved():
        # getent prints "<address> <canonical name> <alias>": the CNAME's target is the canonical name.
        out = lab_host("alpha-cp1").run(f"kubectl --kubeconfig /etc/kubernetes/admin.conf -n {LB_NS} exec {name} -- "
                                        f"getent hosts lb-alias.{LB_NS}.svc.{domain}")
        return out.stdout.split() if out.rc == 0 else None

    assert wait_for(resolved, 30), resolved()
    fields = resolved()
    assert fields[0] == cluster_ip and fields[1] == target, (fields, cluster_ip)


def probe_answers(ext):
    """(time, node) of every answer the probe logged; node is '' for a failed probe."""
    lines = ext.run(f"cat {PROBE_LOG}").stdout.splitlines()
    return [(float(line.split()[0]), (line.split()[1:2] or [""])[0]) for line in lines if line.strip()]


def test_address_moves_to_the_other_worker_when_the_announcing_node_stops(service):
    ext = lab_host("ext1")
    first = ext.run(ask(service, 80))
    assert first.rc == 0, first.stderr
    announcer = first.stdout.split()[0]
    other = [w for w in workers() if w != announcer]
    assert other, workers()
    # A probe every 0.2 s with a 1 s connect timeout, for at most 150 s, logging "<epoch> <node> <client>" per try.
    ext.run(f"systemctl stop {PROBE_UNIT} 2>/dev/null; systemctl reset-failed {PROBE_UNIT} 2>/dev/null; rm -f {PROBE_LOG}")
    loop = (f"end=$((SECONDS + 150)); while [ $SECONDS -lt $end ]; do t=$(date +%s.%N); "
            f"a=$(timeout 2 socat -T1 - TCP:{service}:80,connect-timeout=1 </dev/null 2>/dev/null); "
            f"echo \"$t $a\" >> {PROBE_LOG}; sleep 0.2; done")
    started = ext.run(f"systemd-run --unit={PROBE_UNIT} bash -c '{loop}'")
    assert started.rc == 0, started.stderr
    container = f"{PREFIX}{announcer}"
    try:
        assert wait_for(lambda: any(n == announcer for _, n in probe_answers(ext)), 20), probe_answers(ext)
        stopped_at = time.time()
        stop = subprocess.run(["podman", "stop", "--time", "10", container], capture_output=True, text=True, timeout=120, check=False)
        assert stop.returncode == 0, stop.stderr
        assert wait_for(lambda: any(t > stopped_at and n in other for t, n in probe_answers(ext)), 120), probe_answers(ext)[-20:]
        answers = probe_answers(ext)
        last_before = max(t for t, n in answers if n == announcer)
        first_after = min(t for t, n in answers if t > stopped_at and n in other)
        failed = sum(1 for t, n in answers if last_before < t < first_after and not n)
        measured = (f"LoadBalancer {service}: {announcer} stopped, {other} answered {first_after - last_before:.1f} s after the "
                    f"last answer from {announcer} ({failed} probes failed in between; podman stop took "
                    f"{first_after - stopped_at:.1f} s to the first new answer; load average {os.getloadavg()[0]:.1f})")
        print(measured)
        # Kept beside the scenario's other measurements (the ephemeral directory), for benchmarks/README.md.
        (Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / "lb-failover.txt").write_text(measured + "\n")
        # Memberlist notices a dead speaker within seconds; the bound leaves room for the loaded lab machine.
        assert first_after - last_before < 60, answers[-40:]
        answer = ext.run(ask(service, 80))
        assert answer.rc == 0, answer.stderr
        node, client = answer.stdout.split()
        assert node in other and client == EXT, answer.stdout
    finally:
        ext.run(f"systemctl stop {PROBE_UNIT} 2>/dev/null")
        subprocess.run(["podman", "start", container], capture_output=True, text=True, timeout=120, check=False)
    state = subprocess.run(["podman", "inspect", "--format", "{{.State.Running}}", container],
                           capture_output=True, text=True, timeout=60, check=False)
    assert state.stdout.strip() == "true", state


def test_the_restarted_node_serves_its_pods_again(service):
    """The failover above stopped and started a node: once it is back, its server pod is ready again, which needs the
    pods' gateway route (169.254.1.1, role cni_calico's unit) back on the node. Without it the pod's ARP for its gateway
    went unanswered after the restart and the pod never became ready."""
    kubectl("alpha", f"-n {LB_NS} rollout status daemonset/lb-whoami --timeout=300s")
    pods = json.loads(kubectl("alpha", f"-n {LB_NS} get pods -o json"))["items"]
    ready = {p["spec"]["nodeName"]: {c["type"]: c["status"] for c in p["status"].get("conditions", [])}.get("Ready") for p in pods}
    assert set(ready) == set(workers()) and set(ready.values()) == {"True"}, ready
