"""Property tests: random pools and clusters never give overlaps, and what fits is found."""

import netaddr
from ansible.errors import AnsibleFilterError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from network_plan import plan_network

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def fragmented_pool(draw, base: str, count: int, smallest: int, largest: int):
    """Disjoint aligned blocks inside base, as a fragmented pool."""
    parent = netaddr.IPNetwork(base)
    blocks = []
    for _ in range(count):
        prefixlen = draw(st.integers(smallest, largest))
        subnets = 1 << (prefixlen - parent.prefixlen)
        index = draw(st.integers(0, subnets - 1))
        candidate = netaddr.IPNetwork((parent.first + index * (1 << (32 - prefixlen)), prefixlen))
        if all(not (candidate.first <= b.last and b.first <= candidate.last) for b in blocks):
            blocks.append(candidate)
    return [str(b) for b in blocks]


clusters = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True),
    st.fixed_dictionaries(
        {}, optional={"nodes": st.integers(1, 40), "max_pods_per_node": st.integers(1, 250), "services": st.integers(1, 3000)}
    ),
    min_size=1,
    max_size=8,
)


@st.composite
def plans(draw):
    model = draw(st.sampled_from(["flat", "island"]))
    families = draw(st.sampled_from([["ipv4"], ["ipv6"], ["ipv4", "ipv6"], ["ipv6", "ipv4"]]))
    pools = {
        "pods": {"ipv4": draw(fragmented_pool("10.0.0.0/8", 4, 12, 20)), "ipv6": ["fd10::/40"]},
        "services": {"ipv4": draw(fragmented_pool("172.16.0.0/12", 3, 14, 22)), "ipv6": ["fd20::/100"]},
        "global": {"ipv4": ["100.64.0.0/20"], "ipv6": ["fd30::/112"]},
    }
    node_networks = draw(fragmented_pool("10.0.0.0/8", 2, 16, 24))
    return {
        "model": model,
        "ip_families": families,
        "pools": pools,
        "node_networks": node_networks,
        "reserved": ["172.17.0.0/16"],
        "clusters": draw(clusters),
    }


def plan_or_none(spec, **kwargs):
    try:
        return plan_network(spec, **kwargs)
    except AnsibleFilterError as error:
        assert "does not fit" in str(error), str(error)  # random input only ever fails for lack of space
        return None


def all_ranges(plan):
    """Every distinct allocated range with its kind."""
    seen = set()
    for cluster in plan["clusters"].values():
        for kind in ("pod_cidrs", "service_cidrs", "global_cidrs"):
            for cidr in cluster[kind]:
                seen.add((kind, cidr))
    return [(kind, netaddr.IPNetwork(c)) for kind, c in sorted(seen)]


@SETTINGS
@given(plans())
def test_no_overlaps_everything_inside_its_pool_sizes_suffice(spec):
    plan = plan_or_none(spec)
    assume(plan is not None)
    ranges = all_ranges(plan)
    # No two distinct ranges share an address.
    assert netaddr.IPSet(n for _, n in ranges).size == sum(n.size for _, n in ranges)
    # Nothing touches a node network or a reserved range.
    forbidden = netaddr.IPSet(spec["node_networks"] + spec["reserved"])
    assert not (netaddr.IPSet(n for _, n in ranges) & forbidden)
    pools = {"pod_cidrs": "pods", "service_cidrs": "services", "global_cidrs": "global"}
    for kind, net in ranges:
        family = "ipv4" if net.version == 4 else "ipv6"
        assert any(net in netaddr.IPNetwork(b) for b in spec["pools"][pools[kind]][family])
    for name, cluster in plan["clusters"].items():
        sizes = {"nodes": 3, "max_pods_per_node": 110, "services": 1024, **spec["clusters"][name]}
        for pod, mask in zip(cluster["pod_cidrs"], cluster["node_cidr_mask_sizes"], strict=True):
            pod = netaddr.IPNetwork(pod)
            bits = 32 if pod.version == 4 else 128
            assert 1 << (bits - mask) >= 2 * sizes["max_pods_per_node"]
            assert 1 << (mask - pod.prefixlen) >= sizes["nodes"]
        for svc in cluster["service_cidrs"]:
            assert netaddr.IPNetwork(svc).size >= sizes["services"] + 2


@SETTINGS
@given(plans())
def test_deterministic(spec):
    first = plan_or_none(spec)
    assume(first is not None)
    assert plan_network(spec) == first


@SETTINGS
@given(plans(), st.from_regex(r"z[a-z0-9]{0,6}", fullmatch=True), st.integers(1, 40))
def test_lock_is_stable_when_a_cluster_is_added(spec, new_name, nodes):
    assume(new_name not in spec["clusters"])
    first = plan_or_none(spec)
    assume(first is not None)
    grown = {**spec, "clusters": {**spec["clusters"], new_name: {"nodes": nodes}}}
    try:
        second = plan_network(grown, lock=first)
    except AnsibleFilterError as error:
        # Only the new cluster may fail to fit, or (island) outgrow the shared range.
        assert "does not fit" in str(error) or f"cluster {new_name} has outgrown" in str(error), str(error)
        return
    for name in spec["clusters"]:
        assert second["clusters"][name] == first["clusters"][name]
    ranges = all_ranges(second)
    assert netaddr.IPSet(n for _, n in ranges).size == sum(n.size for _, n in ranges)


@SETTINGS
@given(st.lists(st.integers(18, 26), min_size=1, max_size=12), st.data())
def test_packing_succeeds_whenever_the_blocks_fit(prefixes, data):
    """Power-of-two blocks fit aligned free space iff, for every size s, the free s-slots suffice for blocks >= s.

    The pool is built so that a packing exists: every block is first placed (largest first) by a brute-force
    construction, and the pool is exactly those places, split into pieces. The planner must then find a packing.
    """
    prefixes.sort()
    cursor, pool = netaddr.IPNetwork("10.0.0.0/8").first, []
    for prefixlen in prefixes:  # lay the blocks out end to end, aligned
        size = 1 << (32 - prefixlen)
        cursor = (cursor + size - 1) // size * size
        pool.append(netaddr.IPNetwork((cursor, prefixlen)))
        cursor += size
    # Shuffle the pool's order and merge it into as few CIDRs as netaddr finds: the planner sees other fragments.
    pool = [str(c) for c in netaddr.IPSet(data.draw(st.permutations(pool))).iter_cidrs()]
    spec = {
        "model": "flat",
        "ip_families": ["ipv4"],
        "pools": {"pods": {"ipv4": pool}, "services": {"ipv4": ["172.16.0.0/12"]}},
        "defaults": {"max_pods_per_node": 8, "services": 1},  # /28 per node
        "clusters": {f"c{i:02d}": {"nodes": 1 << (28 - p)} for i, p in enumerate(prefixes)},
    }
    plan = plan_network(spec)
    got = sorted(netaddr.IPNetwork(c["pod_cidrs"][0]).prefixlen for c in plan["clusters"].values())
    assert got == prefixes
    used = netaddr.IPSet(c["pod_cidrs"][0] for c in plan["clusters"].values())
    assert used == netaddr.IPSet(pool)  # a tight fit: every address of the pool is used


@SETTINGS
@given(plans(), st.data(), st.from_regex(r"z[a-z0-9]{0,6}", fullmatch=True), st.integers(1, 40))
def test_a_dropped_cluster_stays_reserved_and_is_never_handed_out(spec, data, new_name, nodes):
    assume(new_name not in spec["clusters"] and len(spec["clusters"]) > 1)
    first = plan_or_none(spec)
    assume(first is not None)
    dropped = data.draw(st.sampled_from(sorted(spec["clusters"])))
    remaining = {name: sizes for name, sizes in spec["clusters"].items() if name != dropped}
    try:
        second = plan_network({**spec, "clusters": {**remaining, new_name: {"nodes": nodes}}}, lock=first)
    except AnsibleFilterError as error:
        assert "does not fit" in str(error) or f"cluster {new_name} has outgrown" in str(error), str(error)
        return
    assert second["retained_clusters"] == {dropped: first["clusters"][dropped]}
    old = first["clusters"][dropped]
    new = second["clusters"][new_name]
    unique = ("global_cidrs",) if spec["model"] == "island" else ("pod_cidrs", "service_cidrs")
    held = netaddr.IPSet(c for key in unique for c in old[key])
    assert not held & netaddr.IPSet(c for key in unique for c in new[key])
