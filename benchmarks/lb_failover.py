"""LoadBalancer failover: the gap in answers when the node announcing a LoadBalancer address stops (MetalLB, L2 mode).

Runs against the molecule flat lab once alpha has two workers: after `molecule test -s flat --destroy never`, or
`molecule converge -s flat` then `molecule verify -s flat` (tests/test_node_join.py joins alpha-w2). MetalLB never
announces from a control plane, so the two workers are the candidates. The benchmark deploys its own server on every
worker (each answer names the node whose pod answered) behind a LoadBalancer Service with externalTrafficPolicy Local,
so the node that answers is the node that announces the address. Each round:

1. waits until every worker is Ready and the address answers from the external host (ext1);
2. starts a steady probe stream on ext1: one TCP request to the address every --interval ms, each with a 1 s connect
   and read timeout, logging the time and the answering node (--duration seconds at most);
3. stops the announcing node's container (`podman stop`: a clean shutdown, the speaker leaves MetalLB's memberlist;
   with --kill, `podman kill`: SIGKILL, the node goes silent and the others must notice), and waits until the other
   worker answers;
4. reports the gap: from the last answer of the stopped node to the first answer of the other one, and the probes
   that failed in between;
5. starts the node again, waits until it is Ready and its server and speaker are ready, and records the second gap,
   if the address moves back to it (the L2 election is a hash of the node names, so it usually does).

Only lab addresses are targeted (the Service's address, from ext1), every stream and wait is bounded. The benchmark's
namespace is deleted at the end. Exit status 1 when a stop gap exceeds --goal seconds, 2 when the lab is not ready.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREFIX = "arch-mol-flat-"
CONTROL_PLANE = "alpha-cp1"
KUBECTL = ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"]
NS = "archipelago-lb-bench"
IMAGE = "localhost/archipelago/nettest:1"
PORT = 80

# On ext1: one request every INTERVAL until STOP exists or DURATION passes; one JSON line per request:
# {"t": monotonic seconds, "node": answering node or "", "error": null or why}.
PROBE = r"""
import json, os, socket, sys, time
address, port, interval, duration, stop = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
end = time.monotonic() + duration
while time.monotonic() < end and not os.path.exists(stop):
    started = time.monotonic()
    node, error = "", None
    try:
        with socket.create_connection((address, port), timeout=1) as s:
            s.settimeout(1)
            data = b""
            while True:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            node = (data.split() or [b""])[0].decode()
    except OSError as exc:
        error = type(exc).__name__
    print(json.dumps({"t": round(started, 4), "node": node, "error": error}), flush=True)
    time.sleep(max(0.0, interval - (time.monotonic() - started)))
"""


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "lab" / "containers.conf"))}
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False, env=env)


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    command = ["exec", "-i", f"{PREFIX}{CONTROL_PLANE}", *KUBECTL, *args] if stdin is not None else \
        ["exec", f"{PREFIX}{CONTROL_PLANE}", *KUBECTL, *args]
    env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "lab" / "containers.conf"))}
    result = subprocess.run(["podman", *command], input=stdin, capture_output=True, text=True, timeout=300, check=False, env=env)
    if check and result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def wait_for(check, seconds: float, step: float = 1.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return False


def workers() -> list[str]:
    nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    return sorted(n["metadata"]["name"] for n in nodes if "node-role.kubernetes.io/control-plane" not in n["metadata"]["labels"])


def ready_nodes() -> set[str]:
    nodes = json.loads(kubectl("get", "nodes", "-o", "json", check=False) or '{"items": []}')["items"]
    return {n["metadata"]["name"] for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))}


def ready_pods_on(namespace: str, selector: str) -> set[str]:
    pods = json.loads(kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "json", check=False) or '{"items": []}')
    return {p["spec"].get("nodeName") for p in pods["items"]
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))}


def deploy() -> str:
    labels = {"app": "lb-bench"}
    container = {"name": "whoami", "image": IMAGE, "imagePullPolicy": "Never",
                 "command": ["socat", "TCP-LISTEN:8080,fork,reuseaddr", "SYSTEM:echo $NODE_NAME"],
                 "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                 "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2}}
    not_control_plane = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"}]}]}}}
    items = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "lb-bench", "namespace": NS},
         "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
             "affinity": not_control_plane, "terminationGracePeriodSeconds": 1, "containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb-bench", "namespace": NS},
         "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": labels,
                  "ports": [{"port": PORT, "targetPort": 8080, "protocol": "TCP"}]}},
    ]
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    kubectl("-n", NS, "rollout", "status", "daemonset/lb-bench", "--timeout=180s")

    def address() -> str | None:
        status = json.loads(kubectl("-n", NS, "get", "service", "lb-bench", "-o", "json"))["status"]
        return next((i["ip"] for i in status.get("loadBalancer", {}).get("ingress", []) if "ip" in i), None)

    if not wait_for(address, 60):
        raise SystemExit(2)
    return address()


def ask(address: str) -> str:
    """The node answering one request from ext1, or ''."""
    result = podman("exec", f"{PREFIX}ext1", "timeout", "5", "socat", "-T2", "-", f"TCP:{address}:{PORT},connect-timeout=2",
                    timeout=30)
    return (result.stdout.split() or [""])[0] if result.returncode == 0 else ""


class Stream:
    """The probe stream on ext1, read back as a list of (t, node)."""

    def __init__(self, address: str, interval: float, duration: float):
        self.stop_file = f"/tmp/lb-bench-stop-{os.getpid()}"
        podman("exec", f"{PREFIX}ext1", "rm", "-f", self.stop_file)
        env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "lab" / "containers.conf"))}
        self.process = subprocess.Popen(
            ["podman", "exec", f"{PREFIX}ext1", "python3", "-c", PROBE, address, str(PORT), str(interval), str(duration),
             self.stop_file], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.duration = duration

    def finish(self) -> list[tuple[float, str]]:
        podman("exec", f"{PREFIX}ext1", "touch", self.stop_file)
        out, err = self.process.communicate(timeout=self.duration + 30)
        podman("exec", f"{PREFIX}ext1", "rm", "-f", self.stop_file)
        if self.process.returncode != 0:
            raise SystemExit(f"the probe stream on ext1 failed: {err.strip()}")
        return [(r["t"], r["node"]) for r in map(json.loads, out.splitlines())]


def largest_gap(answers: list[tuple[float, str]]) -> float:
    """The longest time between two consecutive answered probes."""
    times = [t for t, node in answers if node]
    return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


def one_round(address: str, nodes: list[str], args: argparse.Namespace) -> dict:
    if not wait_for(lambda: set(nodes) <= ready_nodes() and set(nodes) <= ready_pods_on(NS, "app=lb-bench")
                    and set(nodes) <= ready_pods_on("metallb-system", "component=speaker") and ask(address), 300, 2):
        raise SystemExit(f"the workers {nodes} are not all Ready with a ready server and speaker, or {address} does not answer")
    stream = Stream(address, args.interval / 1000, args.duration)
    if not wait_for(lambda: ask(address) != "", 10):
        raise SystemExit(f"{address} does not answer ext1")
    time.sleep(2)                                    # a steady stream before the stop
    announcer = ask(address)
    other = [n for n in nodes if n != announcer]
    container = f"{PREFIX}{announcer}"
    stop = podman("kill" if args.kill else "stop", *([] if args.kill else ["--time", "10"]), container)
    if stop.returncode != 0:
        stream.finish()
        raise SystemExit(f"podman {'kill' if args.kill else 'stop'} {container}: {stop.stderr.strip()}")
    try:
        moved = wait_for(lambda: ask(address) in other, args.duration - 5)
        time.sleep(2)
        answers = stream.finish()
        last_old = max((t for t, n in answers if n == announcer), default=None)
        first_new = min((t for t, n in answers if n in other and (last_old is None or t > last_old)), default=None)
        failed = sum(1 for t, n in answers if not n and last_old is not None and first_new is not None and last_old < t < first_new)
        result = {"announcer": announcer, "moved_to": next((n for t, n in answers if t == first_new), None),
                  "stop_gap_ms": round((first_new - last_old) * 1000) if moved and last_old and first_new else None,
                  "stop_failed_probes": failed, "stop_probes": len(answers)}
    finally:
        podman("start", container)
    # Back: the node rejoins, and the address moves back when the election picks it again.
    if not wait_for(lambda: announcer in ready_nodes() and announcer in ready_pods_on(NS, "app=lb-bench")
                    and announcer in ready_pods_on("metallb-system", "component=speaker"), 300, 2):
        raise SystemExit(f"{announcer} did not come back Ready with its server and speaker within 300 s")
    stream = Stream(address, args.interval / 1000, 40)
    wait_for(lambda: ask(address) == announcer, 30)
    time.sleep(2)
    answers = stream.finish()
    result.update({"moved_back": any(n == announcer for _, n in answers), "return_gap_ms": round(largest_gap(answers) * 1000),
                   "return_failed_probes": sum(1 for _, n in answers if not n), "return_probes": len(answers)})
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="failovers to measure (default 3, at most 10)")
    parser.add_argument("--interval", type=float, default=50, help="ms between probes (default 50, at least 10)")
    parser.add_argument("--duration", type=float, default=120, help="seconds a stop stream may last (default 120, at most 300)")
    parser.add_argument("--kill", action="store_true", help="podman kill (SIGKILL) instead of podman stop")
    parser.add_argument("--goal", type=float, default=10.0, help="largest acceptable stop gap in seconds (default 10)")
    args = parser.parse_args()
    if not (1 <= args.rounds <= 10 and args.interval >= 10 and 10 <= args.duration <= 300):
        parser.error("--rounds 1..10, --interval at least 10 ms, --duration 10..300 s")
    if podman("container", "exists", f"{PREFIX}{CONTROL_PLANE}").returncode != 0:
        print(f"no {PREFIX}{CONTROL_PLANE}: converge the flat scenario first (molecule converge -s flat)", file=sys.stderr)
        return 2
    nodes = workers()
    if len(nodes) < 2:
        print(f"alpha has the workers {nodes}; the failover needs two (molecule verify -s flat joins alpha-w2)", file=sys.stderr)
        return 2
    print(f"command: {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    address = deploy()
    print(f"LoadBalancer {address}, workers {nodes}, {'podman kill' if args.kill else 'podman stop --time 10'}, "
          f"a probe every {args.interval:g} ms (1 s timeouts)")
    results = []
    try:
        for number in range(1, args.rounds + 1):
            result = one_round(address, nodes, args)
            results.append(result)
            print(f"round {number}: {json.dumps(result)} (load {os.getloadavg()[0]:.2f})", flush=True)
    finally:
        kubectl("delete", "namespace", NS, "--wait=false", check=False)
    gaps = [r["stop_gap_ms"] for r in results if r["stop_gap_ms"] is not None]
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if len(gaps) < len(results):
        print("some round saw no move to the other worker", file=sys.stderr)
        return 1
    print(f"stop gap ms: median {statistics.median(gaps):.0f}, max {max(gaps)}, all {gaps}")
    back = [r["return_gap_ms"] for r in results if r["moved_back"]]
    if back:
        print(f"return gap ms (when the address moved back): median {statistics.median(back):.0f}, max {max(back)}, all {back}")
    return 0 if max(gaps) <= args.goal * 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
