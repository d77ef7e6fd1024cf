"""Pod-to-pod throughput and latency: flat (routed) vs island (two NAT gateways), Calico across nodes vs same node.

Runs against the molecule flat and island labs left up (`molecule converge -s flat` and `molecule converge -s island`;
`make bench-dataplane` does both). Every path starts in a real pod and ends in a real pod:

- flat:      flat alpha pod (Calico) -> alpha node -> router -> beta node -> beta pod (Flannel), by its pod IP;
- island:    island alpha pod -> alpha node (masquerade) -> alpha gateway (SNAT) -> transit -> beta gateway (DNAT to
             the VIP's NodePort) -> beta node (kube-proxy) -> beta pod, addressed by the export's VIP;
- calico:    flat alpha pod on alpha-cp1 -> a pod on alpha-w1 (Calico: routed by BGP between the nodes, no
             encapsulation);
- samenode:  flat alpha pod on alpha-cp1 -> a pod on alpha-cp1 (Calico: host routes to the pods' veths);
- vxlan:     with --vxlan, node-scenario pod on cp1 -> a pod on w1 (Flannel VXLAN between the nodes), and
  vxlan-samenode, a pod on cp1 -> a pod on cp1 (Flannel's bridge). The flat and island labs have no two-node Flannel
  cluster; the node scenario's consumer-built cluster is one, so `molecule converge -s node` brings it up as well.

Throughput: iperf3 (one TCP stream, SECONDS per run). Latency: 1-byte TCP request/response round trips on one
connection (TCP_NODELAY), median of each run. The paths take turns in every round, and each ratio is the median of
the per-round ratios, because the machine's load drifts between rounds far more than within one. Only lab addresses
are targeted; every run is bounded in time.

Exit status 1 when a goal is missed: island throughput at least 0.9 x flat, island latency at most 2 x flat.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
NS = "archipelago-bench"
IMAGE = "localhost/archipelago/nettest:1"
IPERF_PORT, RR_PORT = 5201, 7000
NODE_PORTS = {IPERF_PORT: 30201, RR_PORT: 30700}
THROUGHPUT_GOAL, LATENCY_GOAL = 0.9, 2.0

RR_CLIENT = r"""
import json, socket, sys, time
address, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((address, port), timeout=5)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.settimeout(5)
rtts = []
for _ in range(count):
    t0 = time.perf_counter()
    s.sendall(b"x")
    if s.recv(1) != b"x":
        raise SystemExit("bad echo")
    rtts.append(time.perf_counter() - t0)
print(json.dumps(sorted(rtts)[len(rtts) // 2]))
"""


def server_pod(name: str, node: str) -> dict:
    """iperf3 and a TCP echo (socat PIPE) in one pod, pinned to a node."""
    containers = [{"name": "iperf3", "image": IMAGE, "imagePullPolicy": "Never", "command": ["iperf3", "-s", "-p", str(IPERF_PORT)]},
                  {"name": "echo", "image": IMAGE, "imagePullPolicy": "Never",
                   "command": ["socat", f"TCP-LISTEN:{RR_PORT},fork,reuseaddr", "PIPE"]}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
            "spec": {"nodeName": node, "containers": containers}}


def client_pod(node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": NS},
            "spec": {"nodeName": node, "containers": [{"name": "client", "image": IMAGE, "imagePullPolicy": "Never",
                                                       "command": ["sleep", "infinity"]}]}}


def node_port_service(name: str) -> dict:
    """The export's backend as the island scenario builds it: externalTrafficPolicy Local, so kube-proxy forwards to
    the node's own pod without a second masquerade (and the pod sees the gateway's egress address)."""
    ports = [{"name": f"p{p}", "port": p, "targetPort": p, "nodePort": n} for p, n in NODE_PORTS.items()]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"type": "NodePort", "externalTrafficPolicy": "Local", "selector": {"app": name}, "ports": ports}}


class Cluster:
    def __init__(self, prefix: str, control_plane: str):
        self.container = f"{prefix}{control_plane}"

    def run(self, command: str, stdin: str | None = None, timeout: float = 120) -> str:
        env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "lab" / "containers.conf"))}
        proc = subprocess.run(["podman", "exec", "-i", self.container, "sh", "-c", command], input=stdin, env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode:
            sys.exit(f"{self.container}: {command!r} failed:\n{proc.stderr[-2000:]}")
        return proc.stdout

    def apply(self, objects: list[dict]) -> None:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
        self.run(f"{KUBECTL} apply -f -", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [namespace, *objects]}))
        self.run(f"{KUBECTL} -n {NS} wait --for=condition=Ready pod --all --timeout=180s", timeout=200)

    def pod_ip(self, name: str) -> str:
        return self.run(f"{KUBECTL} -n {NS} get pod {name} -o jsonpath={{.status.podIP}}").strip()

    def in_client(self, argv: str, stdin: str | None = None, timeout: float = 60) -> str:
        return self.run(f"{KUBECTL} -n {NS} exec -i client -- {argv}", stdin=stdin, timeout=timeout)

    def delete(self) -> None:
        self.run(f"{KUBECTL} delete namespace {NS} --ignore-not-found --wait=false")


def ephemeral_dir(scenario: str) -> Path:
    # The most recently converged checkout's directory: every clone of the repository has one of its own.
    found = [Path(p) for p in glob.glob(os.path.expanduser(f"~/.ansible/tmp/molecule.*.{scenario}")) if (Path(p) / "inventory").exists()]
    if not found:
        sys.exit(f"No molecule {scenario} lab: run `molecule converge -s {scenario}` first.")
    return max(found, key=lambda p: max((f.stat().st_mtime for f in (p / "inventory").iterdir()), default=0))


def island_exports(ephemeral: Path, exports: list[dict]) -> dict:
    """Export beta's benchmark NodePorts through beta's island gateway with the real role; returns the VIPs by name."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
           "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"), "MOLECULE_EPHEMERAL_DIRECTORY": str(ephemeral)}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"island_test_exports": exports}, handle)
    try:
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(ephemeral / "inventory"),
                               str(REPO / "molecule" / "island" / "gateways.yml"), "-e", f"@{handle.name}"],
                              env=env, capture_output=True, text=True, timeout=900, check=False)
    finally:
        os.unlink(handle.name)
    if proc.returncode:
        sys.exit(f"island gateways playbook failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return yaml.safe_load((ephemeral / "network-plan.gateway-beta.lock.yml").read_text())["vips"]


def throughput(client: Cluster, address: str, seconds: int) -> float:
    out = client.in_client(f"timeout {seconds + 20} iperf3 -c {address} -p {IPERF_PORT} -t {seconds} --connect-timeout 3000 -J",
                           timeout=seconds + 40)
    return json.loads(out)["end"]["sum_received"]["bits_per_second"]


def latency(client: Cluster, address: str, count: int) -> float:
    return float(client.in_client(f"timeout 60 python3 - {address} {RR_PORT} {count}", stdin=RR_CLIENT, timeout=90))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds; every path is measured once per round")
    parser.add_argument("--seconds", type=int, default=5, help="iperf3 seconds per run")
    parser.add_argument("--round-trips", type=int, default=2000, help="request/response round trips per latency run")
    parser.add_argument("--vxlan", action="store_true", help="also measure Flannel VXLAN in the node scenario's lab")
    args = parser.parse_args()

    flat_alpha, flat_beta = Cluster("arch-mol-flat-", "alpha-cp1"), Cluster("arch-mol-flat-", "beta-cp1")
    island_alpha, island_beta = Cluster("arch-mol-island-", "alpha-cp1"), Cluster("arch-mol-island-", "beta-cp1")
    island = ephemeral_dir("island")
    ephemeral_dir("flat")

    flat_alpha.apply([client_pod("alpha-cp1"), server_pod("server-cp1", "alpha-cp1"), server_pod("server-w1", "alpha-w1")])
    flat_beta.apply([server_pod("server", "beta-cp1")])
    island_alpha.apply([client_pod("alpha-cp1")])
    island_beta.apply([server_pod("server", "beta-cp1"), node_port_service("server")])
    clusters = [flat_alpha, flat_beta, island_alpha, island_beta]
    if args.vxlan:
        ephemeral_dir("node")
        flannel = Cluster("arch-mol-node-", "cp1")
        flannel.apply([client_pod("cp1"), server_pod("server-cp1", "cp1"), server_pod("server-w1", "w1")])
        clusters.append(flannel)
    try:
        vips = island_exports(island, [{"name": f"bench-{p}", "protocol": "tcp", "port": p, "node_port": n} for p, n in NODE_PORTS.items()])
        paths = {
            "flat": (flat_alpha, flat_beta.pod_ip("server"), flat_beta.pod_ip("server")),
            "island": (island_alpha, vips[f"bench-{IPERF_PORT}"], vips[f"bench-{RR_PORT}"]),
            "calico": (flat_alpha, flat_alpha.pod_ip("server-w1"), flat_alpha.pod_ip("server-w1")),
            "samenode": (flat_alpha, flat_alpha.pod_ip("server-cp1"), flat_alpha.pod_ip("server-cp1")),
        }
        if args.vxlan:
            paths["vxlan"] = (flannel, flannel.pod_ip("server-w1"), flannel.pod_ip("server-w1"))
            paths["vxlan-samenode"] = (flannel, flannel.pod_ip("server-cp1"), flannel.pod_ip("server-cp1"))
        for client, iperf_address, rr_address in paths.values():  # warm-up: ARP, conntrack, caches
            throughput(client, iperf_address, 1)
            latency(client, rr_address, 100)
        results = {name: {"bps": [], "rtt": []} for name in paths}
        for _ in range(args.rounds):
            for name, (client, iperf_address, rr_address) in paths.items():
                results[name]["bps"].append(throughput(client, iperf_address, args.seconds))
                results[name]["rtt"].append(latency(client, rr_address, args.round_trips))
    finally:
        island_exports(island, [])
        for cluster in clusters:
            cluster.delete()

    def paired(a: str, b: str, key: str) -> tuple[float, list[float]]:
        pairs = [x / y for x, y in zip(results[a][key], results[b][key], strict=True)]
        return statistics.median(pairs), pairs

    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {args.rounds} rounds, iperf3 {args.seconds} s, "
          f"{args.round_trips} round trips per latency run")
    print("| path | throughput, median (Gbit/s) | round-trip time, median (µs) |")
    print("|---|---:|---:|")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values['bps']) / 1e9:.2f} | {statistics.median(values['rtt']) * 1e6:.0f} |")
    island_bps, island_bps_pairs = paired("island", "flat", "bps")
    island_rtt, island_rtt_pairs = paired("island", "flat", "rtt")
    calico_bps, _ = paired("calico", "samenode", "bps")
    calico_rtt, _ = paired("calico", "samenode", "rtt")
    print(f"island / flat throughput: {island_bps:.2f} (goal >= {THROUGHPUT_GOAL}); "
          f"per round {' '.join(f'{p:.2f}' for p in island_bps_pairs)}")
    print(f"island / flat round-trip time: {island_rtt:.2f} (goal <= {LATENCY_GOAL}); "
          f"per round {' '.join(f'{p:.2f}' for p in island_rtt_pairs)}")
    print(f"calico across nodes / same node throughput: {calico_bps:.2f}; round-trip time: {calico_rtt:.2f}")
    if args.vxlan:
        vxlan_bps, _ = paired("vxlan", "vxlan-samenode", "bps")
        vxlan_rtt, _ = paired("vxlan", "vxlan-samenode", "rtt")
        versus_bps, versus_bps_pairs = paired("calico", "vxlan", "bps")
        versus_rtt, _ = paired("calico", "vxlan", "rtt")
        print(f"vxlan across nodes / same node throughput: {vxlan_bps:.2f}; round-trip time: {vxlan_rtt:.2f}")
        print(f"calico / vxlan across nodes throughput: {versus_bps:.2f} (per round {' '.join(f'{p:.2f}' for p in versus_bps_pairs)}); "
              f"round-trip time: {versus_rtt:.2f}")
    return 0 if island_bps >= THROUGHPUT_GOAL and island_rtt <= LATENCY_GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
