#!/usr/bin/env python3
"""How long the planner takes for 10, 100, 1,000 and 10,000 flat dual-stack clusters.

Run: .venv/bin/python benchmarks/plan_scale.py  (or `make bench`). Prints a Markdown table: the best of
--repeat runs per size, and the ratio to the size ten times smaller. Goal: 10,000 clusters in under 1 s, and
10x more clusters costing at most about 12x the time. Every run's plan is checked first: a fast plan that lost a
cluster, or gave one no range of a family or two clusters one address, is an error, not a result.
--sizes picks other sizes (tests/unit/test_plan_scale.py runs it small).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import netaddr

# The planner imports its shared helpers the collection way, through the checkout's collections/ directory.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "collections"))
from ansible_collections.archipelago.clusters.plugins.filter.network_plan import plan_network


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


class IncompletePlan(Exception):
    """The planner's result misses a cluster or a range the spec asked for."""


def check_plan(spec: dict, plan: dict) -> None:
    """Every cluster of the spec is in the plan, with one pod and one service range per family, and no two
    clusters share an address. Raises IncompletePlan naming what is missing."""
    missing = sorted(set(spec["clusters"]) - set(plan["clusters"]))
    extra = sorted(set(plan["clusters"]) - set(spec["clusters"]))
    if missing or extra:
        raise IncompletePlan(f"{len(missing)} planned clusters missing from the result (first: {missing[:3]}), "
                             f"{len(extra)} not asked for (first: {extra[:3]})")
    families = len(spec["ip_families"])
    spans = []
    for name, cluster in plan["clusters"].items():
        if len(cluster["pod_cidrs"]) != families or len(cluster["service_cidrs"]) != families:
            raise IncompletePlan(f"cluster {name} has pod ranges {cluster['pod_cidrs']} and service ranges "
                                 f"{cluster['service_cidrs']}: want one of each per family {spec['ip_families']}")
        for cidr in (*cluster["pod_cidrs"], *cluster["service_cidrs"]):
            network = netaddr.IPNetwork(cidr)
            spans.append((network.version, network.first, network.last, name))
    spans.sort()
    for (version, _, last, name), (next_version, first, _, other) in zip(spans, spans[1:], strict=False):
        if version == next_version and first <= last:
            raise IncompletePlan(f"the plan's ranges overlap: clusters {name} and {other} share addresses")


def best_time(spec: dict, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        plan = plan_network(spec)
        best = min(best, time.perf_counter() - start)
        check_plan(spec, plan)  # outside the timing
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000],
                        help="cluster counts, each ten times the one before (default: 10 100 1000 10000)")
    args = parser.parse_args(argv)
    sizes = tuple(args.sizes)
    try:
        times = {n: best_time(flat_spec(n), args.repeat) for n in sizes}
    except IncompletePlan as error:
        print(f"The planner's result is incomplete, so no time counts: {error}")
        return 2
    print(f"| clusters | best of {args.repeat} (s) | x time vs 10x fewer |")
    print("|---:|---:|---:|")
    for smaller, n in zip((None, *sizes), sizes, strict=False):
        ratio = f"{times[n] / times[smaller]:.1f}" if smaller else "-"
        print(f"| {n:,} | {times[n]:.4f} | {ratio} |")
    print(f"\nEvery planned cluster is in every result, with its ranges and no overlap: yes ({sum(sizes):,} clusters per round)")
    if 10000 not in times or 1000 not in times:
        print("\nThe time goal is for 1,000 and 10,000 clusters: not judged at these sizes.")
        return 0
    ok = times[10000] < 1.0 and times[10000] / times[1000] <= 13
    print(f"\n10,000 clusters under 1 s and <= ~12x per 10x: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
