"""Unit tests: the lock is checked as strictly as a fresh plan, and clusters that left the inventory stay reserved."""

import copy

import netaddr
import pytest
import yaml
from ansible.errors import AnsibleFilterError
from network_plan import network_plan, plan_network
from test_network_plan import FLAT, ISLAND, spec

LOCK_FILE = "/inv/network-plan.lock.yml"


def plan_with(base, lock, **changes):
    return network_plan(spec(base, **changes), lock=lock, lock_file=LOCK_FILE)


def fail(pattern, base, lock, **changes):
    with pytest.raises(AnsibleFilterError, match=pattern) as caught:
        plan_with(base, lock, **changes)
    return str(caught.value)


# --------------------------------------------------------------------------------------------------------
# Overlaps inside the lock: what a bad merge of two branches that each added a cluster produces.


def test_flat_pod_range_copied_to_another_cluster_names_both_clusters_ranges_and_the_file():
    lock = plan_network(FLAT)
    alpha_pods = lock["clusters"]["alpha"]["pod_cidrs"][0]
    lock["clusters"]["beta"]["pod_cidrs"][0] = alpha_pods
    message = fail(r"overlaps", FLAT, lock)
    assert message.startswith(f"network_plan: lock file {LOCK_FILE}: cluster ")
    assert f"cluster alpha's pods range {alpha_pods}" in message and f"cluster beta's pods range {alpha_pods}" in message
    assert "a flat plan never gives two of them one address" in message


def test_flat_range_inside_another_clusters_range_of_another_kind():
    lock = plan_network(FLAT)
    # beta's IPv6 service range moved inside alpha's IPv6 pod range: per family, across kinds.
    alpha_pods6 = netaddr.IPNetwork(lock["clusters"]["alpha"]["pod_cidrs"][1])
    inside = str(netaddr.IPNetwork((alpha_pods6.first, 116)))
    lock["clusters"]["beta"]["service_cidrs"][1] = inside
    fail(rf"cluster beta's services range {inside} overlaps cluster alpha's pods range {alpha_pods6}", FLAT, lock)


def test_flat_ranges_of_different_families_never_collide():
    # Same numbers in different families are no overlap: the check is per family.
    plan_with(FLAT, plan_network(FLAT))


def test_island_global_range_copied_to_another_cluster():
    lock = plan_network(ISLAND)
    alpha_global = lock["clusters"]["alpha"]["global_cidrs"][0]
    lock["clusters"]["gamma"]["global_cidrs"] = [alpha_global]
    fail(
        rf"lock file {LOCK_FILE}: cluster gamma's global range {alpha_global} overlaps cluster alpha's global range {alpha_global};"
        r" an island plan never gives two of them one address",
        ISLAND,
        lock,
    )


def test_island_clusters_must_share_one_pod_range():
    lock = plan_network(ISLAND)
    shared = netaddr.IPNetwork(lock["clusters"]["alpha"]["pod_cidrs"][0])
    half = str(next(shared.subnet(shared.prefixlen + 1)))
    lock["clusters"]["beta"]["pod_cidrs"] = [half]
    fail(
        rf"island clusters share one pods range per family, but cluster alpha holds {shared} and cluster beta holds {half}",
        ISLAND,
        lock,
    )


def test_island_global_range_inside_the_shared_service_range():
    lock = plan_network(ISLAND)
    services = lock["clusters"]["alpha"]["service_cidrs"][0]
    inside = str(netaddr.IPNetwork((netaddr.IPNetwork(services).first, 28)))
    lock["clusters"]["beta"]["global_cidrs"] = [inside]
    fail(rf"cluster beta's global range {inside} overlaps the shared island services range {services}", ISLAND, lock)


def test_retained_cluster_range_copied_to_a_planned_cluster():
    first = plan_network(FLAT)
    without_alpha = plan_with(FLAT, first, clusters={"beta": {"nodes": 12}})
    assert "alpha" in without_alpha["retained_clusters"]
    without_alpha["clusters"]["beta"]["service_cidrs"] = list(first["clusters"]["alpha"]["service_cidrs"])
    fail(r"cluster beta's services range .* overlaps cluster alpha's services range", FLAT, without_alpha)


def test_retained_cluster_range_over_a_new_reserved_range():
    first = plan_network(FLAT)
    lock = plan_with(FLAT, first, clusters={"beta": {"nodes": 12}})
    alpha_pods = first["clusters"]["alpha"]["pod_cidrs"][0]
    fail(
        rf"cluster alpha's locked pods range {alpha_pods} \(lock file {LOCK_FILE}\) overlaps reserved\[0\] {alpha_pods}",
        FLAT,
        lock,
        clusters={"beta": {"nodes": 12}},
        reserved=[alpha_pods],
    )


# --------------------------------------------------------------------------------------------------------
# Malformed locks: every one an error naming the file, never a raw exception; only no lock means a first plan.

GOOD_FLAT_LOCK = plan_network(FLAT)


def broken(edit):
    lock = copy.deepcopy(GOOD_FLAT_LOCK)
    edit(lock)
    return lock


@pytest.mark.parametrize(
    ("lock", "message"),
    [
        ("", rf"lock file {LOCK_FILE} exists but is empty; restore it from version control"),
        ("  \n", rf"lock file {LOCK_FILE} exists but is empty"),
        ("# only a comment\n", rf"lock file {LOCK_FILE} exists but holds nothing"),
        ("clusters: [unclosed\n", rf"lock file {LOCK_FILE} is not valid YAML \(while parsing a flow sequence"),
        ("<<<<<<< HEAD\nclusters: {}\n=======\n", rf"lock file {LOCK_FILE} is not valid YAML"),
        ("model: flat\nmodel: flat\n", rf"lock file {LOCK_FILE} is not valid YAML .*key 'model' appears twice"),
        ("- a\n- list\n", rf"lock file {LOCK_FILE} must hold the previous plan \(a mapping .*\), got list"),
        ("just text", rf"lock file {LOCK_FILE} must hold the previous plan .* got str"),
        ({}, rf"lock file {LOCK_FILE} is empty"),
        (broken(lambda lock: lock.pop("model")), rf"lock file {LOCK_FILE}: model None is not one of flat, island"),
        (broken(lambda lock: lock.update(ip_families="ipv4")), r"ip_families 'ipv4' must be a list of ipv4 and/or ipv6"),
        (broken(lambda lock: lock.update(clusters=None)), r"clusters must be a mapping of cluster name to its ranges, got None"),
        (broken(lambda lock: lock.update(clusters=["alpha"])), r"clusters must be a mapping of cluster name to its ranges"),
        (broken(lambda lock: lock.update(retained_clusters=[])), r"retained_clusters must be a mapping"),
        (broken(lambda lock: lock["clusters"].update(beta=None)), rf"lock file {LOCK_FILE}: clusters\.beta must be a mapping .* got None"),
        (broken(lambda lock: lock["clusters"].update({7: {}})), r"clusters: cluster name 7 must start with a lowercase letter"),
        (
            broken(lambda lock: lock["clusters"].update({"beta\n": lock["clusters"].pop("beta")})),
            r"clusters: cluster name 'beta\\n' must start with a lowercase letter",
        ),
        (
            broken(lambda lock: lock["clusters"]["beta"].pop("pod_cidrs")),
            r"clusters\.beta\.pod_cidrs must be a list of CIDRs, one per family, got None",
        ),
        (
            broken(lambda lock: lock["clusters"]["beta"].update(pod_cidrs=[])),
            r"clusters\.beta\.pod_cidrs must be a list of CIDRs, one per family, got \[\]",
        ),
        (
            broken(lambda lock: lock["clusters"]["beta"].update(pod_cidrs="10.65.0.0/20")),
            r"clusters\.beta\.pod_cidrs must be a list of CIDRs, one per family, got '10\.65\.0\.0/20'",
        ),
        (broken(lambda lock: lock["clusters"]["beta"].update(pod_cidrs=[None])), r"clusters\.beta\.pod_cidrs\[0\]: None is not a CIDR"),
        (broken(lambda lock: lock["clusters"]["beta"].update(global_cidrs=None)), r"clusters\.beta\.global_cidrs must be a list"),
        (
            broken(lambda lock: lock["clusters"]["beta"]["pod_cidrs"].append("10.200.0.0/20")),
            r"clusters\.beta\.pod_cidrs holds two ipv4 ranges, 10\.65\.0\.0/20 and 10\.200\.0\.0/20",
        ),
        (
            broken(lambda lock: lock.update(retained_clusters={"beta": lock["clusters"]["beta"]})),
            r"cluster beta is in both clusters and retained_clusters",
        ),
    ],
)
def test_malformed_lock_is_an_error_naming_the_file(lock, message):
    with pytest.raises(AnsibleFilterError, match=message) as caught:
        network_plan(FLAT, lock=lock, lock_file=LOCK_FILE)
    assert LOCK_FILE in str(caught.value)


def test_lock_without_a_file_name_is_called_the_lock():
    with pytest.raises(AnsibleFilterError, match=r"network_plan: the lock exists but is empty"):
        network_plan(FLAT, lock="")


def test_lock_written_before_retained_clusters_existed_is_read():
    old = copy.deepcopy(GOOD_FLAT_LOCK)
    del old["retained_clusters"], old["released_clusters"]
    assert plan_with(FLAT, yaml.safe_dump(old)) == GOOD_FLAT_LOCK


# --------------------------------------------------------------------------------------------------------
# A cluster that left the inventory keeps its ranges until it is released by name.


def tight_flat(release=None, **clusters):
    """IPv4 only, a pod pool of exactly two /24s (8 pods per node: a /28 per node, 16 nodes per /24)."""
    extra = {"release": release} if release is not None else {}
    return spec(
        FLAT,
        ip_families=["ipv4"],
        pools={"pods": {"ipv4": ["10.0.0.0/23"]}, "services": {"ipv4": ["10.96.0.0/16"]}},
        node_networks=[],
        reserved=[],
        defaults={"max_pods_per_node": 8},
        clusters=clusters,
        **extra,
    )


def test_a_dropped_cluster_is_not_handed_to_a_new_one_in_the_same_run():
    first = plan_network(tight_flat(alpha={"nodes": 16}, beta={"nodes": 16}))
    # alpha vanished from the inventory (or its name has a typo) and a new cluster arrives: alpha's /24 stays taken.
    with pytest.raises(AnsibleFilterError, match=r"the plan does not fit pools\.pods\.ipv4: gamma needs a /24"):
        network_plan(tight_flat(beta={"nodes": 16}, gamma={"nodes": 16}), lock=first, lock_file=LOCK_FILE)
    kept = network_plan(tight_flat(beta={"nodes": 16}), lock=first, lock_file=LOCK_FILE)
    assert kept["retained_clusters"] == {"alpha": first["clusters"]["alpha"]}
    assert kept["released_clusters"] == []
    # The retained cluster stays in the next lock, and comes back with its exact ranges when it returns.
    back = network_plan(tight_flat(alpha={"nodes": 16}, beta={"nodes": 16}), lock=yaml.safe_dump(kept), lock_file=LOCK_FILE)
    assert back["clusters"] == first["clusters"] and back["retained_clusters"] == {}


def test_a_released_cluster_gives_its_ranges_back():
    first = plan_network(tight_flat(alpha={"nodes": 16}, beta={"nodes": 16}))
    second = network_plan(tight_flat(beta={"nodes": 16}, gamma={"nodes": 16}, release=["alpha"]), lock=first, lock_file=LOCK_FILE)
    assert second["released_clusters"] == ["alpha"] and second["retained_clusters"] == {}
    assert second["clusters"]["gamma"]["pod_cidrs"] == first["clusters"]["alpha"]["pod_cidrs"]
    assert second["clusters"]["beta"] == first["clusters"]["beta"]


def test_island_retained_cluster_keeps_its_global_range():
    first = plan_network(ISLAND)
    kept = plan_with(ISLAND, first, clusters={"beta": {"nodes": 2}, "delta": {}})
    assert kept["retained_clusters"].keys() == {"alpha", "gamma"}
    held = netaddr.IPSet(first["clusters"]["alpha"]["global_cidrs"] + first["clusters"]["gamma"]["global_cidrs"])
    assert not held & netaddr.IPSet(kept["clusters"]["delta"]["global_cidrs"])


@pytest.mark.parametrize(
    ("release", "clusters", "message"),
    [
        (["alhpa"], {"beta": {}}, r"release names cluster alhpa, which lock file /inv/network-plan\.lock\.yml does not hold .*alpha, beta"),
        (["beta"], {"beta": {}}, r"release names cluster beta, which is still in clusters"),
        (["alpha", "alpha"], {"beta": {}}, r"release \['alpha', 'alpha'\] names a cluster twice"),
        ("alpha", {"beta": {}}, r"release must be a list of cluster names, got str 'alpha'"),
        ([3], {"beta": {}}, r"release: cluster name 3 must start with a lowercase letter"),
    ],
)
def test_bad_release(release, clusters, message):
    fail(message, FLAT, plan_network(FLAT), clusters=clusters, release=release)


def test_release_without_a_lock_is_an_error():
    with pytest.raises(AnsibleFilterError, match=r"release names alpha, but there is no lock \(a first plan\); remove release"):
        plan_network(spec(FLAT, clusters={"beta": {}}, release=["alpha"]))
