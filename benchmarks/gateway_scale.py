"""Connection setup through an island gateway with 10 and with 10,000 exports.

Runs against the molecule island lab left up (`molecule converge -s island`). The exports are installed by the real
role (molecule/island/gateways.yml with beta's host exports), once per size; the two rendered rule files are then
swapped with `nft -f` between rounds, so both sizes are measured alternately under the same machine load.

Client: the external host (ext1, on transit). Path: ext1 -> beta's gateway (DNAT from the exports map) -> beta's node,
where a small server accepts and closes. Each round opens CONNECTIONS TCP connections one after the other (bounded by
a deadline) and records the time to connect (SYN to SYN-ACK through the gateway). Only lab addresses are targeted.

Exit status 1 when the 10,000-export rate is below GOAL x the 10-export rate (median of paired rounds). Connections
that fail (2 s connect timeout) are counted and reported.
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREFIX = "arch-mol-island-"
BENCH_VIP = "100.64.0.30"  # beta's global range 100.64.0.16/28: .17 is egress, .18 is the whoami export
BENCH_PORT = 9999
NODE = "10.223.2.11"  # beta's node: the backend
FILLER_VIPS = [f"100.64.0.{i}" for i in range(19, 30)]
RULES = "/etc/archipelago/gateway/gateway.nft"
GOAL = 0.9

SERVER = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(4096)
deadline = time.monotonic() + float(sys.argv[2])
s.settimeout(5)
while time.monotonic() < deadline:
    try:
        c, _ = s.accept()
    except TimeoutError:
        continue
    c.close()
"""

CLIENT = r"""
import json, socket, sys, time
address, port, count, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
latencies, failures = [], 0
start = time.perf_counter()
while len(latencies) + failures < count and time.perf_counter() - start < limit:
    t0 = time.perf_counter()
    try:
        c = socket.create_connection((address, port), timeout=2)
    except OSError:
        failures += 1
        continue
    latencies.append(time.perf_counter() - t0)
    c.close()
print(json.dumps({"latencies": latencies, "failures": failures, "elapsed": time.perf_counter() - start}))
"""


def podman(*args, stdin=None, check=True, timeout=120):
    env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "lab" / "containers.conf"))}
    return subprocess.run(["podman", *args], input=stdin, env=env, capture_output=True, text=True, check=check, timeout=timeout)


def on(host, command, check=True, timeout=120):
    return podman("exec", f"{PREFIX}{host}", "sh", "-c", command, check=check, timeout=timeout)


def ephemeral_dir() -> Path:
    given = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if given:
        return Path(given)
    # The most recently converged checkout's directory: every clone of the repository has one of its own.
    found = [Path(p) for p in glob.glob(os.path.expanduser("~/.ansible/tmp/molecule.*.island")) if (Path(p) / "inventory").exists()]
    if not found:
        sys.exit("No molecule island lab: run `molecule converge -s island` first.")
    return max(found, key=lambda p: max((f.stat().st_mtime for f in (p / "inventory").iterdir()), default=0))


def exports(total: int) -> list[dict]:
    """The benchmark's own export plus fillers, so that beta's gateway holds `total` exports (whoami is one)."""
    result = [{"name": "bench", "protocol": "tcp", "port": BENCH_PORT, "vip": BENCH_VIP,
               "backends": [{"address": NODE, "port": BENCH_PORT}]}]
    for i in range(total - 2):
        result.append({"name": f"filler-{i}", "protocol": "tcp", "port": 10000 + i // len(FILLER_VIPS),
                       "vip": FILLER_VIPS[i % len(FILLER_VIPS)], "backends": [{"address": NODE, "port": 9}]})
    return result


def apply(ephemeral: Path, extra: list[dict] | None) -> float:
    """Run the scenario's gateways playbook (plan + gateways) with these extra exports; returns its wall time."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
           "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"), "MOLECULE_EPHEMERAL_DIRECTORY": str(ephemeral)}
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(ephemeral / "inventory"),
               str(REPO / "molecule" / "island" / "gateways.yml")]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"island_test_exports": extra or []}, handle)
    start = time.monotonic()
    try:
        proc = subprocess.run([*command, "-e", f"@{handle.name}"], env=env, capture_output=True, text=True, timeout=900, check=False)
    finally:
        os.unlink(handle.name)
    if proc.returncode:
        sys.exit(f"gateways playbook failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return time.monotonic() - start


def measure(count: int, limit: float) -> dict:
    out = podman("exec", "-i", f"{PREFIX}ext1", "python3", "-", BENCH_VIP, str(BENCH_PORT), str(count), str(limit),
                 stdin=CLIENT, timeout=limit + 30).stdout
    return json.loads(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs=2, default=[10, 10000], help="small and large export counts")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per size, alternating")
    parser.add_argument("--connections", type=int, default=1000, help="connections per round")
    parser.add_argument("--round-limit", type=float, default=20.0, help="seconds per round at most")
    args = parser.parse_args()
    ephemeral = ephemeral_dir()
    small, large = args.sizes

    on("beta-cp1", "systemctl stop bench-accept 2>/dev/null; systemctl reset-failed bench-accept 2>/dev/null; true", check=False)
    budget = 2 * args.rounds * (args.round_limit + 10) + 600
    podman("exec", "-i", f"{PREFIX}beta-cp1", "sh", "-c", f"cat > /tmp/bench-accept.py && systemd-run --unit=bench-accept "
           f"python3 /tmp/bench-accept.py {BENCH_PORT} {budget:.0f}", stdin=SERVER)
    files, loads, apply_time = {}, {}, {}
    try:
        for size in (large, small):
            apply_time[size] = apply(ephemeral, exports(size))
            files[size] = f"/tmp/bench-{size}.nft"
            on("beta-gw", f"cp {RULES} {files[size]}")
            names = on("beta-gw", "nft list map inet archipelago_gateway exports | grep -o 'comment \"[^\"]*\"' | sort -u | wc -l").stdout
            if int(names) != size:
                sys.exit(f"expected {size} exports in beta's map, found {names.strip()}")
            start = time.monotonic()
            on("beta-gw", f"nft -f {files[size]}")
            loads[size] = time.monotonic() - start
        results = {small: [], large: []}
        for _ in range(args.rounds):
            for size in (small, large):
                on("beta-gw", f"nft -f {files[size]}")
                measure(100, 5)  # warm-up: caches, ARP, conntrack
                results[size].append(measure(args.connections, args.round_limit))
    finally:
        restore = apply(ephemeral, None)
        on("beta-cp1", "systemctl stop bench-accept", check=False)
        on("beta-gw", "rm -f /tmp/bench-*.nft", check=False)

    def summary(size):
        rounds = results[size]
        rates = [len(r["latencies"]) / r["elapsed"] for r in rounds]
        latencies = sorted(x for r in rounds for x in r["latencies"])
        return {"rate": statistics.median(rates), "best": max(rates), "p50": latencies[len(latencies) // 2] * 1e3,
                "p99": latencies[int(len(latencies) * 0.99)] * 1e3, "connections": len(latencies),
                "failures": sum(r["failures"] for r in rounds)}

    s, big = summary(small), summary(large)
    # Rounds alternate small, large: each large round is compared with the small round just before it, and the
    # median of those paired ratios is the result (machine load drifts between rounds, far more than within a pair).
    def rate(r):
        return len(r["latencies"]) / r["elapsed"]

    pairs = [rate(b) / rate(a) for a, b in zip(results[small], results[large], strict=True)]
    ratio = statistics.median(pairs)
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
          f"{args.rounds} alternating rounds of {args.connections} connections per size")
    print("| exports | connections/s (median of rounds) | best round | connect p50 (ms) | p99 (ms) | connections | failures |"
          " rules load (nft -f, s) | playbook run (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, row in ((small, s), (large, big)):
        print(f"| {size:,} | {row['rate']:.0f} | {row['best']:.0f} | {row['p50']:.2f} | {row['p99']:.2f} | {row['connections']} |"
              f" {row['failures']} | {loads[size]:.2f} | {apply_time[size]:.0f} |")
    print(f"paired ratios {large:,} / {small:,} exports: {' '.join(f'{p:.2f}' for p in pairs)}")
    print(f"ratio of rates {large:,} / {small:,} exports (median of pairs): {ratio:.3f} (goal >= {GOAL}); "
          f"ratio of medians {big['rate'] / s['rate']:.3f}; restore run {restore:.0f} s")
    return 0 if ratio >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
