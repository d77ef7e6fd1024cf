#!/usr/bin/env python3
"""How long the planner takes for 10, 100, 1,000 and 10,000 flat dual-stack clusters.

Run: .venv/bin/python benchmarks/plan_scale.py  (or `make bench`). Prints a Markdown table: the best of
--repeat runs per size, and the ratio to the size ten times smaller. Goal: 10,000 clusters in under 1 s, and
10x more clusters costing at most about 12x the time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "filter_plugins"))
from network_plan import plan_network


def flat_spec(count: int) -> dict:
    """count dual-stack clusters of mixed sizes (1 to 8 nodes, 20 to 250 services)."""
    return {
        "model": "flat",
        "ip_families": ["ipv4", "ipv6"],
        "pools": {
            "pods": {"ipv4": ["10.0.0.0/8"], "ipv6": ["fd10::/32"]},
            "services": {"ipv4": ["100.64.0.0/10", "172.16.0.0/12"], "ipv6": ["fd20::/64"]},
        },
        "node_networks": ["192.168.0.0/16"],
        "reserved": ["10.255.0.0/16"],
        "clusters": {f"c{i:05d}": {"nodes": 1 << (i % 4), "services": 20 + (i * 37) % 230} for i in range(count)},
    }


def best_time(spec: dict, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        plan_network(spec)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = (10, 100, 1000, 10000)
    times = {n: best_time(flat_spec(n), args.repeat) for n in sizes}
    print(f"| clusters | best of {args.repeat} (s) | x time vs 10x fewer |")
    print("|---:|---:|---:|")
    for smaller, n in zip((None, *sizes), sizes, strict=False):
        ratio = f"{times[n] / times[smaller]:.1f}" if smaller else "-"
        print(f"| {n:,} | {times[n]:.4f} | {ratio} |")
    ok = times[10000] < 1.0 and times[10000] / times[1000] <= 13
    print(f"\n10,000 clusters under 1 s and <= ~12x per 10x: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
