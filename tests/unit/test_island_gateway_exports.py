"""The island_gateway role's address filter: egress, VIP assignment and stability, and every input error."""

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "filter"))

from island_gateway_exports import island_gateway_exports

GLOBAL = ["100.64.0.16/28"]
NODES = ["10.0.2.11", "10.0.2.12"]


def export(name, port=8080, vip=None, **target):
    item = {"name": name, "protocol": "tcp", "port": port, **(target or {"node_port": 30080})}
    return item if vip is None else {**item, "vip": vip}


def vips(result):
    return {e["name"]: e["vip"] for e in result["exports"]}


def test_egress_is_first_usable_and_vips_follow():
    result = island_gateway_exports([export("a"), export("b", 9090)], GLOBAL, nodes=NODES)
    assert result["egress"] == ["100.64.0.17"]
    assert vips(result) == {"a": "100.64.0.18", "b": "100.64.0.19"}
    assert result["lock"] == {"a": "100.64.0.18", "b": "100.64.0.19"}


def test_node_port_backends_are_every_node_round_robin():
    result = island_gateway_exports([export("a")], GLOBAL, nodes=NODES)
    assert result["buckets"] == 2
    assert [(e["bucket"], e["address"], e["target_port"]) for e in result["elements"]] == [
        (0, "10.0.2.11", 30080), (1, "10.0.2.12", 30080)]


def test_buckets_fit_every_backend_count():
    explicit = {"backends": [{"address": f"10.0.2.{i}", "port": 80} for i in (1, 2, 3)]}
    result = island_gateway_exports([export("a"), export("b", 81, **explicit)], GLOBAL, nodes=NODES)
    assert result["buckets"] == 6
    b = [e["address"] for e in result["elements"] if e["name"] == "b"]
    assert sorted(b) == ["10.0.2.1", "10.0.2.1", "10.0.2.2", "10.0.2.2", "10.0.2.3", "10.0.2.3"]


def test_adding_an_export_anywhere_never_moves_a_vip():
    first = island_gateway_exports([export("m"), export("z", 81)], GLOBAL, nodes=NODES)
    added = island_gateway_exports([export("a", 82), export("m"), export("z", 81)], GLOBAL, nodes=NODES, lock=first["lock"])
    assert {k: v for k, v in vips(added).items() if k != "a"} == vips(first)
    assert vips(added)["a"] not in vips(first).values()


def test_removed_export_frees_its_vip_and_others_stay():
    first = island_gateway_exports([export("a"), export("b", 81), export("c", 82)], GLOBAL, nodes=NODES)
    second = island_gateway_exports([export("a"), export("c", 82)], GLOBAL, nodes=NODES, lock=first["lock"])
    assert vips(second) == {"a": vips(first)["a"], "c": vips(first)["c"]}
    third = island_gateway_exports([export("a"), export("c", 82), export("d", 83)], GLOBAL, nodes=NODES, lock=second["lock"])
    assert vips(third)["d"] == vips(first)["b"]


def test_fixed_vip_is_kept_and_may_be_shared_across_ports():
    result = island_gateway_exports([export("a", vip="100.64.0.30"), export("b", 81, vip="100.64.0.30"), export("c", 82)],
                                    GLOBAL, nodes=NODES)
    assert vips(result) == {"a": "100.64.0.30", "b": "100.64.0.30", "c": "100.64.0.18"}
    assert result["lock"] == {"c": "100.64.0.18"}


LB_CIDRS = ["10.0.2.240/29"]


def test_load_balancer_target_is_one_backend_at_the_address_and_port():
    lb = {"load_balancer": {"address": "10.0.2.241", "port": 8080}}
    result = island_gateway_exports([export("a"), export("web", 80, **lb)], GLOBAL, nodes=NODES, load_balancer_cidrs=LB_CIDRS,
                                    internal_network="10.0.2.0/24")
    web = next(e for e in result["exports"] if e["name"] == "web")
    assert web["backends"] == [["10.0.2.241", 8080]]
    assert {(e["address"], e["target_port"]) for e in result["elements"] if e["name"] == "web"} == {("10.0.2.241", 8080)}
    assert vips(result) == {"a": "100.64.0.18", "web": "100.64.0.19"}


def test_load_balancer_port_defaults_to_the_export_port():
    result = island_gateway_exports([export("web", 443, load_balancer={"address": "10.0.2.246"})], GLOBAL,
                                    load_balancer_cidrs=LB_CIDRS)
    assert result["exports"][0]["backends"] == [["10.0.2.246", 443]]


@pytest.mark.parametrize(
    ("target", "kwargs", "message"),
    [
        ({"address": "10.0.2.200", "port": 80}, {}, r"export web targets LoadBalancer address 10\.0\.2\.200, outside the "
         r"cluster's LoadBalancer ranges 10\.0\.2\.240/29 \(the plan's load_balancer_cidrs\)"),
        ({"address": "10.0.2.241"}, {"load_balancer_cidrs": []}, r"the cluster has no LoadBalancer range in the plan"),
        ({"address": "10.0.2.241"}, {"load_balancer_cidrs": ["fd00::/120"]}, r"the cluster has no LoadBalancer range in the plan"),
        ({"address": "10.0.2.241"}, {"internal_network": "10.0.3.0/24"}, r"outside the gateway's internal network 10\.0\.3\.0/24"),
        ({"address": "nope"}, {}, r"export web's load_balancer address is 'nope'"),
        ({"address": "10.0.2.241", "port": 70000}, {}, r"export web's load_balancer port is 70000"),
        ("10.0.2.241", {}, r"export web has load_balancer '10\.0\.2\.241'; give \{address:"),
        ({"address": "10.0.2.241"}, {"load_balancer_cidrs": ["not-a-net"]}, r"load_balancer_cidrs holds 'not-a-net'"),
    ],
)
def test_bad_load_balancer_target_names_the_value_and_the_fix(target, kwargs, message):
    kwargs = {"load_balancer_cidrs": LB_CIDRS, "internal_network": "10.0.2.0/24", **kwargs}
    with pytest.raises(AnsibleFilterError, match=message):
        island_gateway_exports([export("web", 80, load_balancer=target)], GLOBAL, **kwargs)


def test_two_targets_are_refused():
    both = {"node_port": 30080, "load_balancer": {"address": "10.0.2.241"}}
    with pytest.raises(AnsibleFilterError, match=r"exactly one target: node_port .* or load_balancer"):
        island_gateway_exports([{"name": "a", "protocol": "tcp", "port": 80, **both}], GLOBAL, nodes=NODES, load_balancer_cidrs=LB_CIDRS)


@pytest.mark.parametrize(
    ("exports", "kwargs", "message"),
    [
        ([export("a", vip="100.64.1.5")], {}, r"vip 100\.64\.1\.5, outside the cluster's global range 100\.64\.0\.16/28"),
        ([export("a", vip="100.64.0.17")], {}, r"vip 100\.64\.0\.17, which is an egress address"),
        ([export("a", vip="100.64.0.20"), export("b", vip="100.64.0.20")], {}, r"exports a and b both use 100\.64\.0\.20:8080/tcp"),
        ([export("a", node_port=8080)], {}, r"node_port 8080, outside the NodePort range 30000-32767"),
        ([export("a", node_port=32768)], {}, r"node_port 32768, outside the NodePort range"),
        ([export("a"), export("a", 81)], {}, r"two exports are named 'a'"),
        ([export("A")], {}, r"name 'A'; use a DNS label"),
        ([{"name": "a", "protocol": "sctp", "port": 1, "node_port": 30000}], {}, r"protocol 'sctp'"),
        ([{"name": "a", "port": 1}], {}, r"exactly one target"),
        ([export("a", port=0)], {}, r"port is 0"),
        ([export("a", backends=[{"address": "nope", "port": 1}])], {}, r"backend address is 'nope'"),
        ([export("a")], {"nodes": []}, r"no node addresses"),
        ([export(f"e{i}", 8000 + i) for i in range(14)], {}, r"export e13 gets no VIP: the global range 100\.64\.0\.16/28 is full"),
        ([export("a", vip="100.64.0.18"), export("b", 81)], {"lock": {"b": "100.64.0.18"}},
         r"export a asks for vip 100\.64\.0\.18, which export b"),
    ],
)
def test_bad_input_names_the_value_and_the_fix(exports, kwargs, message):
    kwargs = {"nodes": NODES, **kwargs}
    with pytest.raises(AnsibleFilterError, match=message):
        island_gateway_exports(exports, GLOBAL, **kwargs)


def test_no_ipv4_global_range_is_an_error():
    with pytest.raises(AnsibleFilterError, match=r"hold no IPv4 range"):
        island_gateway_exports([], ["fd00:64::/124"])


DUAL = ["100.64.0.16/28", "fd64::10/124"]
NODES6 = ["10.0.2.11", "fd00:2::11", "10.0.2.12", "fd00:2::12"]


def test_ipv6_family_takes_the_ipv6_range_and_the_ipv6_node_addresses():
    result = island_gateway_exports([export("a")], DUAL, nodes=NODES6, family=6)
    assert result["egress"] == ["fd64::11"]
    assert vips(result) == {"a": "fd64::12"}
    assert [(e["address"], e["target_port"]) for e in result["elements"]] == [("fd00:2::11", 30080), ("fd00:2::12", 30080)]
    ipv4 = island_gateway_exports([export("a")], DUAL, nodes=NODES6)
    assert ipv4["egress"] == ["100.64.0.17"] and [e["address"] for e in ipv4["elements"]] == ["10.0.2.11", "10.0.2.12"]


def test_an_export_is_served_only_in_the_families_of_its_targets():
    exports = [export("v4", backends=[{"address": "10.0.2.21", "port": 80}]),
               export("both", 81, backends=[{"address": "10.0.2.21", "port": 80}, {"address": "fd00:2::21", "port": 80}]),
               {**export("lb", 82, load_balancer={"address": "10.0.2.241"})}]
    result = island_gateway_exports(exports, DUAL, family=6, load_balancer_cidrs=["10.0.2.240/29", "fd00:2::f0/124"])
    assert vips(result) == {"both": "fd64::12"}
    assert [e["address"] for e in result["elements"]] == ["fd00:2::21"]


def test_fixed_vip6_is_kept_and_locked_ipv6_vips_stay():
    first = island_gateway_exports([export("a"), {**export("b", 81), "vip6": "fd64::1e"}], DUAL, nodes=NODES6, family=6)
    assert vips(first) == {"a": "fd64::12", "b": "fd64::1e"}
    again = island_gateway_exports([export("z"), export("a")], DUAL, nodes=NODES6, family=6, lock=first["lock"])
    assert vips(again) == {"z": "fd64::13", "a": "fd64::12"}


def test_a_huge_ipv6_global_range_is_not_enumerated():
    result = island_gateway_exports([export("a")], ["fd64::/64"], nodes=NODES6, family=6)
    assert result["egress"] == ["fd64::1"] and vips(result) == {"a": "fd64::2"}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({**export("a"), "vip6": "fd64:ffff::1"}, r"export a has vip6 fd64:ffff::1, outside the cluster's global range fd64::10/124"),
        ({**export("a"), "vip6": "100.64.0.20"}, r"export a's vip6 is 100\.64\.0\.20, which is not an IPv6 address"),
        ({**export("a"), "vip": "fd64::12"}, r"export a's vip is fd64::12, which is not an IPv4 address"),
        ({**export("a"), "vip6": "fd64::11"}, r"export a has vip6 fd64::11, which is an egress address"),
        ({**export("a", backends=[{"address": "10.0.2.21", "port": 80}]), "vip6": "fd64::13"},
         r"export a has vip6 fd64::13, but no IPv6 target"),
    ],
)
def test_bad_ipv6_export_names_the_value_and_the_fix(item, message):
    with pytest.raises(AnsibleFilterError, match=message):
        island_gateway_exports([item], DUAL, nodes=NODES6, family=6)


def test_no_ipv6_global_range_is_an_error_in_the_ipv6_family():
    with pytest.raises(AnsibleFilterError, match=r"hold no IPv6 range"):
        island_gateway_exports([], ["100.64.0.16/28"], family=6)
    with pytest.raises(AnsibleFilterError, match=r"family is 5; give 4 or 6"):
        island_gateway_exports([], DUAL, family=5)
