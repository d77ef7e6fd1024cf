"""The router role's filters: static routes from Node objects, BGP peer groups and prefix filters, client routes."""

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "filter"))

from network_plan import plan_network
from router_bgp import router_bgp
from router_client_routes import router_client_routes
from router_static_routes import router_static_routes


def plan(model="flat", families=("ipv4",)):
    pools = {"pods": {"ipv4": ["10.40.0.0/16"], "ipv6": ["fd40::/48"]}, "services": {"ipv4": ["10.96.0.0/16"], "ipv6": ["fd96::/108"]}}
    if model == "island":
        pools["global"] = {"ipv4": ["100.64.0.0/16"]}
    return plan_network({"model": model, "ip_families": list(families),
                         "pools": {k: {f: v[f] for f in families if f in v} for k, v in pools.items()},
                         "defaults": {"nodes": 4, "max_pods_per_node": 110, "services": 256},
                         "clusters": {"alpha": {}, "beta": {}}})


def node(name, addresses, pod_cidrs):
    return {"metadata": {"name": name}, "spec": {"podCIDRs": pod_cidrs},
            "status": {"addresses": [{"type": "Hostname", "address": name}] + [{"type": "InternalIP", "address": a} for a in addresses]}}


def host(name, cluster, ips, asn=64601):
    return {"inventory_hostname": name, "cluster_name": cluster, "node_ips": ips, "bgp_asn": asn}


FLAT = plan()
ALPHA, BETA = (FLAT["clusters"][c]["pod_cidrs"][0] for c in ("alpha", "beta"))


def test_plan_gives_the_clusters_disjoint_ranges_the_tests_rely_on():
    assert ALPHA == "10.40.0.0/22" and BETA == "10.40.4.0/22"


def test_static_routes_follow_each_node_pod_range_and_sort():
    nodes = {"beta": [node("b1", ["10.0.2.11"], ["10.40.4.0/24"])],
             "alpha": [node("a2", ["10.0.1.12"], ["10.40.1.0/24"]), node("a1", ["10.0.1.11"], ["10.40.0.0/24"])]}
    assert router_static_routes(nodes, FLAT) == [{"cidr": "10.40.0.0/24", "via": "10.0.1.11"}, {"cidr": "10.40.1.0/24", "via": "10.0.1.12"},
                                                 {"cidr": "10.40.4.0/24", "via": "10.0.2.11"}]


def test_static_routes_from_the_plan_are_multipath_over_the_cluster_nodes():
    nodes = {"alpha": [node("a1", ["10.0.1.11"], []), node("a2", ["10.0.1.12"], [])]}
    assert router_static_routes(nodes, FLAT, source="plan") == [{"cidr": ALPHA, "via": "10.0.1.11"}, {"cidr": ALPHA, "via": "10.0.1.12"}]


def test_static_routes_dual_stack_pick_the_address_of_each_family():
    dual = plan(families=("ipv4", "ipv6"))
    v4, v6 = dual["clusters"]["alpha"]["pod_cidrs"]
    nodes = {"alpha": [node("a1", ["10.0.1.11", "fd00:1::11"], [v4.replace("/22", "/24"), v6.replace("/60", "/64")])]}
    routes = router_static_routes(nodes, dual)
    assert {"cidr": v6.replace("/60", "/64"), "via": "fd00:1::11"} in routes and {"cidr": "10.40.0.0/24", "via": "10.0.1.11"} in routes


def test_node_range_outside_its_cluster_is_refused_with_names():
    nodes = {"alpha": [node("a1", ["10.0.1.11"], ["10.40.4.0/24"])]}  # beta's range
    with pytest.raises(AnsibleFilterError, match=r"node 'a1' claims pod range 10.40.4.0/24, which is outside its cluster 'alpha'"):
        router_static_routes(nodes, FLAT)


def test_node_without_an_address_of_the_family_is_refused():
    dual = plan(families=("ipv4", "ipv6"))
    v6 = dual["clusters"]["alpha"]["pod_cidrs"][1].replace("/60", "/64")
    with pytest.raises(AnsibleFilterError, match=r"node 'a1' of cluster 'alpha' has no IPv6 address"):
        router_static_routes({"alpha": [node("a1", ["10.0.1.11"], [v6])]}, dual)


@pytest.mark.parametrize(("nodes", "the_plan", "message"), [
    ({"gamma": []}, FLAT, r"cluster 'gamma' is not in the plan \(alpha, beta\)"),
    ({"alpha": [node("a1", ["10.0.1.11"], ["10.40.0.0/24"])]}, plan("island"), r"planned in island mode"),
    ([], FLAT, r"give a mapping of cluster name to its Node objects"),
])
def test_static_routes_bad_input(nodes, the_plan, message):
    with pytest.raises(AnsibleFilterError, match=message):
        router_static_routes(nodes, the_plan)


def test_static_routes_unknown_source():
    with pytest.raises(AnsibleFilterError, match=r"source is 'bgp'; use nodes"):
        router_static_routes({}, FLAT, source="bgp")


def test_bgp_peer_groups_per_cluster_accept_only_planned_ranges():
    result = router_bgp([host("a1", "alpha", ["10.0.1.11"]), host("a2", "alpha", ["10.0.1.12"], asn=64602),
                         host("b1", "beta", ["10.0.2.11"], asn="64700")], FLAT)
    alpha, beta = result["peer_groups"]
    assert alpha["name"] == "alpha-ipv4" and alpha["accept"] == [{"prefix": ALPHA, "le": 32}]
    assert [(n["address"], n["asn"]) for n in alpha["neighbors"]] == [("10.0.1.11", 64601), ("10.0.1.12", 64602)]
    assert beta["accept"] == [{"prefix": BETA, "le": 32}] and beta["neighbors"][0]["asn"] == 64700
    assert result["announce"] == {"ipv4": [{"prefix": ALPHA, "le": 32}, {"prefix": BETA, "le": 32}], "ipv6": []}


def test_bgp_dual_stack_has_a_group_per_family_and_services_on_request():
    dual = plan(families=("ipv4", "ipv6"))
    result = router_bgp([host("a1", "alpha", ["10.0.1.11", "fd00:1::11"])], dual, accept_services=True)
    v4, v6 = result["peer_groups"]
    assert (v4["family"], v6["family"]) == ("ipv4", "ipv6")
    assert v6["neighbors"][0]["address"] == "fd00:1::11"
    assert [e["prefix"] for e in v4["accept"]] == [dual["clusters"]["alpha"]["pod_cidrs"][0], dual["clusters"]["alpha"]["service_cidrs"][0]]
    assert all(e["le"] == 128 for e in v6["accept"])


@pytest.mark.parametrize("asn", [0, -1, 4294967296, "abc", True, None])
def test_bgp_bad_as_number_names_the_host(asn):
    with pytest.raises(AnsibleFilterError, match=rf"host 'a1' has bgp_asn {asn!r}; give it a number from 1 to 4294967295"):
        router_bgp([host("a1", "alpha", ["10.0.1.11"], asn=asn)], FLAT)


def test_bgp_host_without_node_ips_is_refused():
    with pytest.raises(AnsibleFilterError, match=r"host 'a1' has no node_ips"):
        router_bgp([host("a1", "alpha", [])], FLAT)


def test_bgp_island_cluster_is_refused():
    with pytest.raises(AnsibleFilterError, match=r"cluster 'alpha' is planned in island mode"):
        router_bgp([host("a1", "alpha", ["10.0.1.11"])], plan("island"))


def test_client_routes_skip_the_own_cluster_and_add_networks():
    assert router_client_routes(["10.0.1.2"], FLAT, exclude="alpha", networks=["10.0.0.0/24"]) == [
        {"cidr": BETA, "via": "10.0.1.2"}, {"cidr": "10.0.0.0/24", "via": "10.0.1.2"}]
    assert [r["cidr"] for r in router_client_routes("10.0.0.2", FLAT)] == [ALPHA, BETA]


def test_client_routes_carry_the_other_flat_clusters_load_balancer_ranges():
    with_lb = plan_network({"model": "flat", "ip_families": ["ipv4"],
                            "pools": {"pods": {"ipv4": ["10.40.0.0/16"]}, "services": {"ipv4": ["10.96.0.0/16"]},
                                      "load_balancers": {"ipv4": ["10.0.1.240/28"]}},
                            "node_networks": ["10.0.1.0/24"],
                            "clusters": {"alpha": {"load_balancer_addresses": 8}, "beta": {}}})
    lb = with_lb["clusters"]["alpha"]["load_balancer_cidrs"][0]
    routes = router_client_routes(["10.0.0.2"], with_lb)
    assert {"cidr": lb, "via": "10.0.0.2"} in routes
    assert routes[-1] == {"cidr": lb, "via": "10.0.0.2"}  # after every pod range
    # alpha's own nodes have its LoadBalancer range on their link.
    assert lb not in [r["cidr"] for r in router_client_routes(["10.0.1.2"], with_lb, exclude="alpha")]


def test_client_routes_skip_island_clusters():
    assert router_client_routes(["10.0.1.2"], plan("island")) == []


def test_client_routes_need_a_next_hop_of_each_family():
    dual = plan(families=("ipv4", "ipv6"))
    with pytest.raises(AnsibleFilterError, match=r"needs an IPv6 next hop, but the router's addresses are \['10.0.1.2'\]"):
        router_client_routes(["10.0.1.2"], dual)
    with pytest.raises(AnsibleFilterError, match=r"two IPv4 next hops"):
        router_client_routes(["10.0.1.2", "10.0.1.3"], FLAT)
