"""Unit tests for the LoadBalancer address ranges of the network plan (pools.load_balancers, load_balancer_addresses)
and their checks against hosts."""

import copy

import netaddr
import pytest
import yaml
from ansible.errors import AnsibleFilterError
from network_plan import plan_network
from network_plan_hosts import network_plan_hosts

# Two flat clusters on one node network; the top /27 of it is set aside for LoadBalancer Services.
FLAT_LB = {
    "model": "flat",
    "ip_families": ["ipv4"],
    "pools": {
        "pods": {"ipv4": ["10.40.0.0/16"]},
        "services": {"ipv4": ["10.96.0.0/16"]},
        "load_balancers": {"ipv4": ["10.224.1.224/27"]},
    },
    "node_networks": ["10.224.1.0/24"],
    "reserved": ["10.224.0.0/24"],
    "clusters": {"alpha": {"load_balancer_addresses": 8}, "beta": {"load_balancer_addresses": 16}, "gamma": {}},
}


def lb_spec(**changes):
    out = copy.deepcopy(FLAT_LB)
    for key, value in changes.items():
        out[key] = value
    return out


def test_clusters_get_unique_ranges_of_their_size_from_the_pool_even_inside_a_node_network():
    plan = plan_network(FLAT_LB)
    alpha, beta, gamma = (plan["clusters"][n] for n in ("alpha", "beta", "gamma"))
    assert netaddr.IPNetwork(alpha["load_balancer_cidrs"][0]).size == 8
    assert netaddr.IPNetwork(beta["load_balancer_cidrs"][0]).size == 16
    assert gamma["load_balancer_cidrs"] == []
    assert gamma["load_balancer_addresses"] == 0
    pool = netaddr.IPNetwork("10.224.1.224/27")
    ranges = [netaddr.IPNetwork(c) for c in alpha["load_balancer_cidrs"] + beta["load_balancer_cidrs"]]
    assert all(r in pool for r in ranges)
    assert netaddr.IPSet(ranges).size == sum(r.size for r in ranges)


def test_a_count_that_is_not_a_power_of_two_rounds_up():
    plan = plan_network(lb_spec(clusters={"alpha": {"load_balancer_addresses": 5}}))
    assert plan["clusters"]["alpha"]["load_balancer_cidrs"][0].endswith("/29")


def test_no_cluster_asking_needs_no_pool():
    spec = lb_spec(clusters={"alpha": {}})
    del spec["pools"]["load_balancers"]
    assert plan_network(spec)["clusters"]["alpha"]["load_balancer_cidrs"] == []


def test_a_cluster_asking_without_a_pool_is_told_what_to_add():
    spec = lb_spec()
    del spec["pools"]["load_balancers"]
    with pytest.raises(AnsibleFilterError, match=r"cluster alpha: load_balancer_addresses 8 needs pools\.load_balancers\.ipv4"):
        plan_network(spec)


def test_the_pool_may_not_overlap_another_pool():
    spec = lb_spec()
    spec["pools"]["load_balancers"]["ipv4"] = ["10.40.0.0/24"]
    expected = r"pools\.pods\.ipv4 10\.40\.0\.0/16 overlaps pools\.load_balancers\.ipv4 10\.40\.0\.0/24; make them disjoint"
    with pytest.raises(AnsibleFilterError, match=expected):
        plan_network(spec)


def test_reserved_ranges_are_kept_out_of_the_pool():
    # The lower half of the pool is taken elsewhere: alpha's 8 and beta's 16 no longer fit, alpha's alone does.
    with pytest.raises(AnsibleFilterError, match=r"does not fit pools\.load_balancers\.ipv4"):
        plan_network(lb_spec(reserved=["10.224.1.224/28"]))
    plan = plan_network(lb_spec(reserved=["10.224.1.224/28"], clusters={"alpha": {"load_balancer_addresses": 8}}))
    for name in ("alpha",):
        for cidr in plan["clusters"][name]["load_balancer_cidrs"]:
            assert netaddr.IPNetwork(cidr) not in netaddr.IPNetwork("10.224.1.224/28")


def test_a_pool_too_small_says_how_much_is_missing():
    spec = lb_spec(clusters={"alpha": {"load_balancer_addresses": 64}})
    with pytest.raises(AnsibleFilterError, match=r"does not fit pools\.load_balancers\.ipv4: alpha needs a /26"):
        plan_network(spec)


@pytest.mark.parametrize("value", [-1, True, "8", 1.5])
def test_bad_counts_name_the_value(value):
    with pytest.raises(AnsibleFilterError, match=r"cluster alpha: load_balancer_addresses: .* must be a whole number of at least 0"):
        plan_network(lb_spec(clusters={"alpha": {"load_balancer_addresses": value}}))


def test_dual_stack_needs_a_pool_per_family():
    spec = lb_spec(ip_families=["ipv4", "ipv6"])
    spec["pools"]["pods"]["ipv6"] = ["fd10::/48"]
    spec["pools"]["services"]["ipv6"] = ["fd20::/108"]
    with pytest.raises(AnsibleFilterError, match=r"needs pools\.load_balancers\.ipv6"):
        plan_network(spec)
    spec["pools"]["load_balancers"]["ipv6"] = ["fd00:224:1::ff00/120"]
    spec["node_networks"].append("fd00:224:1::/64")
    alpha = plan_network(spec)["clusters"]["alpha"]
    assert [netaddr.IPNetwork(c).version for c in alpha["load_balancer_cidrs"]] == [4, 6]


def test_island_clusters_get_unique_ranges_too():
    spec = lb_spec(model="island")
    spec["pools"]["global"] = {"ipv4": ["100.64.0.0/24"]}
    plan = plan_network(spec)
    assert plan["clusters"]["alpha"]["pod_cidrs"] == plan["clusters"]["beta"]["pod_cidrs"]
    assert plan["clusters"]["alpha"]["load_balancer_cidrs"] != plan["clusters"]["beta"]["load_balancer_cidrs"]


def test_the_lock_keeps_ranges_and_an_older_lock_without_them_still_loads():
    first = plan_network(FLAT_LB)
    spec = lb_spec()
    spec["clusters"]["delta"] = {"load_balancer_addresses": 4}
    again = plan_network(spec, lock=yaml.safe_dump(first))
    for name in ("alpha", "beta"):
        assert again["clusters"][name]["load_balancer_cidrs"] == first["clusters"][name]["load_balancer_cidrs"]
    assert again["clusters"]["delta"]["load_balancer_cidrs"]
    # A lock written before LoadBalancer ranges existed has no load_balancer_cidrs: its clusters get new ones.
    old = copy.deepcopy(first)
    for cluster in old["clusters"].values():
        del cluster["load_balancer_cidrs"]
    assert plan_network(FLAT_LB, lock=old)["clusters"]["alpha"]["load_balancer_cidrs"]


def test_a_locked_range_is_kept_when_the_cluster_asks_for_none_any_more():
    first = plan_network(FLAT_LB)
    spec = lb_spec()
    spec["clusters"]["alpha"] = {}
    again = plan_network(spec, lock=first)
    assert again["clusters"]["alpha"]["load_balancer_cidrs"] == first["clusters"]["alpha"]["load_balancer_cidrs"]


def test_an_outgrown_locked_range_is_an_error():
    first = plan_network(FLAT_LB)
    spec = lb_spec()
    spec["clusters"]["alpha"] = {"load_balancer_addresses": 9}
    with pytest.raises(AnsibleFilterError, match=r"cluster alpha has outgrown its locked load_balancers range"):
        plan_network(spec, lock=first)


def test_two_clusters_holding_one_locked_range_is_an_error():
    first = plan_network(FLAT_LB)
    broken = copy.deepcopy(first)
    broken["clusters"]["beta"]["load_balancer_cidrs"] = first["clusters"]["alpha"]["load_balancer_cidrs"]
    with pytest.raises(AnsibleFilterError, match=r"load_balancers range .* overlaps cluster alpha's load_balancers range"):
        plan_network(FLAT_LB, lock=broken, lock_file="network-plan.lock.yml")


def test_a_locked_range_under_a_new_reserved_range_is_an_error():
    first = plan_network(FLAT_LB)
    taken = first["clusters"]["alpha"]["load_balancer_cidrs"][0]
    with pytest.raises(AnsibleFilterError, match=rf"cluster alpha's locked load_balancers range {taken}.*overlaps reserved"):
        plan_network(lb_spec(reserved=["10.224.0.0/24", taken]), lock=first)


def test_a_node_address_inside_a_load_balancer_range_is_refused():
    plan = plan_network(FLAT_LB)
    taken = netaddr.IPNetwork(plan["clusters"]["alpha"]["load_balancer_cidrs"][0])
    groups = {"all": ["alpha-cp1"], "kube_control_plane": ["alpha-cp1"], "alpha": ["alpha-cp1"]}
    assert network_plan_hosts(plan, groups, {"alpha-cp1": {"node_ips": ["10.224.1.11"]}})
    with pytest.raises(AnsibleFilterError, match=rf"host alpha-cp1's node address {taken[1]} .* is inside cluster alpha's "
                       r"load_balancers range .*pools\.load_balancers"):
        network_plan_hosts(plan, groups, {"alpha-cp1": {"node_ips": [str(taken[1])]}})


def test_the_diagram_draws_each_load_balancer_range_in_its_pool_without_the_node_network_over_it():
    from network_plan_svg import plan_svg

    plan = plan_network(FLAT_LB)
    svg = plan_svg(plan)
    assert "load_balancers ipv4 10.224.1.224/27" in svg
    assert f"<title>{plan['clusters']['alpha']['load_balancer_cidrs'][0]}: alpha</title>" in svg
    assert "<title>10.224.1.0/24: excluded</title>" not in svg
