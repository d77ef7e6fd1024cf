"""Unit tests for the network_plan_hosts filter: host-level consistency with the plan."""

import copy

import pytest
from ansible.errors import AnsibleFilterError
from network_plan import plan_network
from network_plan_hosts import FilterModule, network_plan_hosts
from test_network_plan import FLAT, ISLAND, spec

FLAT_PLAN = plan_network(FLAT)  # alpha pods 10.64.0.0/16, beta pods 10.65.0.0/20 (IPv4)
ISLAND_PLAN = plan_network(ISLAND)


def inventory(**extra_groups):
    groups = {
        "all": ["alpha-cp1", "alpha-w1", "beta-cp1"],
        "kube_control_plane": ["alpha-cp1", "beta-cp1"],
        "kube_node": ["alpha-w1"],
        "alpha": ["alpha-cp1", "alpha-w1"],
        "beta": ["beta-cp1"],
    }
    hostvars = {
        "alpha-cp1": {"node_ips": ["192.168.10.11", "fd00::11"]},
        "alpha-w1": {"ansible_host": "192.168.10.21"},
        "beta-cp1": {"ansible_host": "beta-cp1.example.org"},
    }
    groups.update(extra_groups)
    return groups, hostvars


def test_filter_is_registered():
    assert FilterModule().filters()["network_plan_hosts"] is network_plan_hosts


def test_a_consistent_inventory_passes_and_reports_node_addresses():
    groups, hostvars = inventory()
    assert network_plan_hosts(FLAT_PLAN, groups, hostvars) == {
        "alpha-cp1": ["192.168.10.11", "fd00::11"],
        "alpha-w1": ["192.168.10.21"],  # ansible_host, being an address
        "beta-cp1": [],  # a name: its address is learnt from facts later
    }


def test_loopback_ansible_host_is_not_a_node_address():
    groups, hostvars = inventory()
    hostvars["alpha-w1"]["ansible_host"] = "127.0.0.1"
    hostvars["beta-cp1"]["ansible_host"] = "127.0.0.1"  # port forwards: not two nodes with one address
    assert network_plan_hosts(FLAT_PLAN, groups, hostvars)["alpha-w1"] == []


def test_host_in_two_cluster_groups():
    groups, hostvars = inventory()
    groups["beta"] = ["beta-cp1", "alpha-w1"]
    with pytest.raises(
        AnsibleFilterError,
        match=r"network_plan_hosts: host alpha-w1 is in the groups of 2 clusters \(alpha, beta\); a host belongs to one cluster",
    ):
        network_plan_hosts(FLAT_PLAN, groups, hostvars)


def test_two_hosts_with_the_same_node_address():
    groups, hostvars = inventory()
    hostvars["beta-cp1"]["node_ips"] = ["192.168.10.21"]
    with pytest.raises(
        AnsibleFilterError,
        match=r"hosts beta-cp1 and alpha-w1 have the same node address 192\.168\.10\.21 \(node_ips of beta-cp1, ansible_host of alpha-w1\)",
    ):
        network_plan_hosts(FLAT_PLAN, groups, hostvars)


def test_same_address_written_differently_is_the_same_address():
    groups, hostvars = inventory()
    hostvars["alpha-cp1"]["node_ips"] = ["192.168.10.11", "fd00:0::11"]
    hostvars["beta-cp1"]["node_ips"] = ["fd00::0011"]
    with pytest.raises(AnsibleFilterError, match=r"hosts alpha-cp1 and beta-cp1 have the same node address fd00::11"):
        network_plan_hosts(FLAT_PLAN, groups, hostvars)


@pytest.mark.parametrize(
    ("address", "label"),
    [
        ("10.64.3.7", r"cluster alpha's pods range 10\.64\.0\.0/16"),
        ("10.65.0.1", r"cluster beta's pods range 10\.65\.0\.0/20"),
        ("10.96.0.10", r"cluster alpha's services range 10\.96\.0\.0/20"),
        ("10.64.0.0", r"cluster alpha's pods range 10\.64\.0\.0/16"),  # first address
        ("10.64.255.255", r"cluster alpha's pods range 10\.64\.0\.0/16"),  # last address
    ],
)
def test_node_address_inside_a_planned_range(address, label):
    groups, hostvars = inventory()
    hostvars["beta-cp1"]["node_ips"] = [address]
    with pytest.raises(AnsibleFilterError, match=rf"host beta-cp1's node address {address} \(node_ips\) is inside {label}; "):
        network_plan_hosts(FLAT_PLAN, groups, hostvars)


def test_node_address_just_outside_planned_ranges_passes():
    groups, hostvars = inventory()
    hostvars["beta-cp1"]["node_ips"] = ["10.63.255.255"]
    hostvars["alpha-w1"]["node_ips"] = ["10.65.16.0"]  # right after beta's /20
    network_plan_hosts(FLAT_PLAN, groups, hostvars)


def test_node_address_inside_an_ipv6_range():
    groups, hostvars = inventory()
    pods6 = FLAT_PLAN["clusters"]["beta"]["pod_cidrs"][1]
    inside = pods6.split("/")[0] + "5"
    hostvars["alpha-cp1"]["node_ips"] = ["192.168.10.11", inside]
    with pytest.raises(
        AnsibleFilterError, match=rf"host alpha-cp1's node address {inside} \(node_ips\) is inside cluster beta's pods range {pods6}"
    ):
        network_plan_hosts(FLAT_PLAN, groups, hostvars)


def test_node_address_inside_the_island_shared_range_and_a_global_range():
    groups, hostvars = inventory(gamma=[])
    shared = ISLAND_PLAN["clusters"]["alpha"]["pod_cidrs"][0]
    hostvars["alpha-w1"]["ansible_host"] = shared.split("/")[0].rsplit(".", 1)[0] + ".9"
    with pytest.raises(AnsibleFilterError, match=rf"\(ansible_host\) is inside the island pods range {shared} \(shared by every cluster\)"):
        network_plan_hosts(ISLAND_PLAN, groups, hostvars)
    gamma_global = ISLAND_PLAN["clusters"]["gamma"]["global_cidrs"][0]
    hostvars["alpha-w1"]["ansible_host"] = gamma_global.split("/")[0]
    with pytest.raises(AnsibleFilterError, match=rf"is inside cluster gamma's global range {gamma_global}"):
        network_plan_hosts(ISLAND_PLAN, groups, hostvars)


def test_node_address_inside_a_retained_clusters_range():
    without_alpha = plan_network(spec(FLAT, clusters={"beta": {"nodes": 12}}), lock=FLAT_PLAN)
    groups, hostvars = inventory()
    del groups["alpha"]
    groups["kube_control_plane"] = ["beta-cp1"]
    groups["kube_node"] = []
    hostvars["beta-cp1"]["node_ips"] = ["10.64.0.7"]
    with pytest.raises(AnsibleFilterError, match=r"is inside cluster alpha \(retained in the lock\)'s pods range 10\.64\.0\.0/16"):
        network_plan_hosts(without_alpha, groups, hostvars)


def test_gateways_in_a_flat_plan():
    groups, hostvars = inventory(gateways=["alpha-gw", "beta-gw"])
    with pytest.raises(
        AnsibleFilterError, match=r"the plan is flat, but the inventory has gateways \(alpha-gw, beta-gw\); island gateways translate"
    ):
        network_plan_hosts(FLAT_PLAN, groups, hostvars)


def dual_island():
    dual = copy.deepcopy(ISLAND)
    dual["ip_families"] = ["ipv4", "ipv6"]
    for kind, block in (("pods", "fd10::/48"), ("services", "fd20::/108"), ("global", "fd30::/112")):
        dual["pools"][kind]["ipv6"] = [block]
    return plan_network(dual)


def test_island_gateway_for_a_dual_stack_cluster_is_served():
    """The gateway translates both families (NAT66): a lone gateway of a dual-stack cluster needs nothing more."""
    groups, hostvars = inventory(gateways=["alpha-gw"], gamma=[])
    hostvars["alpha-gw"] = {"gateway_cluster": "alpha"}
    network_plan_hosts(ISLAND_PLAN, groups, hostvars)
    network_plan_hosts(dual_island(), groups, hostvars)


@pytest.mark.parametrize(
    ("node_ips", "message"),
    [
        (
            "192.168.10.30",
            r"host beta-cp1: node_ips must be a non-empty list of addresses, one per family, got '192\.168\.10\.30'; write it as a list",
        ),
        ([], r"node_ips must be a non-empty list of addresses, one per family, got \[\]"),
        (["192.168.10.300"], r"host beta-cp1: node_ips\[0\] '192\.168\.10\.300' is not an IP address"),
        (["192.168.10.0/24"], r"node_ips\[0\] '192\.168\.10\.0/24' is not an IP address"),
        (["10"], r"node_ips\[0\] '10' is not an IP address"),
        ([None], r"node_ips\[0\] None is not an IP address"),
        (["192.168.10.30", "192.168.10.31"], r"holds two addresses of one family"),
    ],
)
def test_bad_node_ips(node_ips, message):
    groups, hostvars = inventory()
    hostvars["beta-cp1"]["node_ips"] = node_ips
    with pytest.raises(AnsibleFilterError, match=message):
        network_plan_hosts(FLAT_PLAN, groups, hostvars)


def test_bad_arguments():
    groups, hostvars = inventory()
    with pytest.raises(AnsibleFilterError, match=r"expects the output of the network_plan filter, got str"):
        network_plan_hosts("flat", groups, hostvars)
    with pytest.raises(AnsibleFilterError, match=r"give the inventory's groups and hostvars"):
        network_plan_hosts(FLAT_PLAN, [], hostvars)
    with pytest.raises(AnsibleFilterError, match=r"groups\['alpha'\] must be a list of host names, got 'alpha-cp1'"):
        network_plan_hosts(FLAT_PLAN, {**groups, "alpha": "alpha-cp1"}, hostvars)


# api_vip: a cluster's virtual API address, checked like any other address before any host is touched.
NODE_NETWORKS = ["192.168.10.0/24"]  # FLAT's node network


def ha_inventory(vip="192.168.10.5"):
    """alpha with three control planes (node_ips on the node network) and a worker; beta with one control plane."""
    groups, hostvars = inventory()
    groups["kube_control_plane"] = ["alpha-cp1", "alpha-cp2", "alpha-cp3", "beta-cp1"]
    groups["alpha"] = ["alpha-cp1", "alpha-cp2", "alpha-cp3", "alpha-w1"]
    groups["all"] = [*groups["alpha"], "beta-cp1", "ext1"]
    hostvars.update({"alpha-cp2": {"node_ips": ["192.168.10.12"]}, "alpha-cp3": {"node_ips": ["192.168.10.13"]},
                     "ext1": {"node_ips": ["192.168.10.100"]}})
    for host in groups["alpha"]:
        hostvars[host]["api_vip"] = vip
    return groups, hostvars


def test_a_vip_on_the_node_network_passes():
    groups, hostvars = ha_inventory()
    assert network_plan_hosts(FLAT_PLAN, groups, hostvars, NODE_NETWORKS)["alpha-cp2"] == ["192.168.10.12"]


def test_several_control_planes_without_a_vip_are_refused():
    groups, hostvars = ha_inventory()
    for host in groups["alpha"]:
        del hostvars[host]["api_vip"]
    with pytest.raises(AnsibleFilterError, match=r"cluster alpha has 3 control planes \(alpha-cp1, alpha-cp2, alpha-cp3\) but no api_vip"):
        network_plan_hosts(FLAT_PLAN, groups, hostvars, NODE_NETWORKS)
    for host in groups["alpha"]:  # a load balancer of the user's own is the other way
        hostvars[host]["kubeadm_control_plane_endpoint"] = "lb.example.org:6443"
    network_plan_hosts(FLAT_PLAN, groups, hostvars, NODE_NETWORKS)


@pytest.mark.parametrize(
    ("vip", "message"),
    [
        ("192.168.10.300", r"cluster alpha: api_vip '192\.168\.10\.300' is not an IP address"),
        ("192.168.20.5",
         r"cluster alpha: api_vip 192\.168\.20\.5 is outside every node network \(network_plan\.node_networks: 192\.168\.10\.0/24\)"),
        ("192.168.10.0", r"cluster alpha: api_vip 192\.168\.10\.0 is the network address of node network 192\.168\.10\.0/24"),
        ("192.168.10.255", r"cluster alpha: api_vip 192\.168\.10\.255 is the broadcast address of node network 192\.168\.10\.0/24"),
        ("192.168.10.12", r"cluster alpha: api_vip 192\.168\.10\.12 is host alpha-cp2's node address \(node_ips\)"),
        ("192.168.10.21", r"cluster alpha: api_vip 192\.168\.10\.21 is host alpha-w1's node address \(ansible_host\)"),
        ("192.168.10.100", r"cluster alpha: api_vip 192\.168\.10\.100 is host ext1's address"),
    ],
)
def test_a_bad_vip_is_refused(vip, message):
    groups, hostvars = ha_inventory(vip)
    with pytest.raises(AnsibleFilterError, match=message):
        network_plan_hosts(FLAT_PLAN, groups, hostvars, NODE_NETWORKS)


def test_a_vip_of_a_family_the_cluster_lacks_is_refused():
    groups, hostvars = ha_inventory("fd00::5")  # the island plan is IPv4 only
    with pytest.raises(AnsibleFilterError, match=r"cluster alpha: api_vip fd00::5 is IPv6, but the cluster's families are \['ipv4'\]"):
        network_plan_hosts(ISLAND_PLAN, groups, hostvars, ["192.168.10.0/24", "fd00::/64"])


def test_a_vip_inside_a_planned_range_is_refused():
    groups, hostvars = ha_inventory("10.96.0.50")
    message = r"cluster alpha: api_vip 10\.96\.0\.50 is inside cluster alpha's services range 10\.96\.0\.0/20"
    with pytest.raises(AnsibleFilterError, match=message):
        # A node network over the service range: the VIP passes the node network check and meets the range check.
        network_plan_hosts(FLAT_PLAN, groups, hostvars, [*NODE_NETWORKS, "10.96.0.0/24"])


def test_two_clusters_with_one_vip_are_refused():
    groups, hostvars = ha_inventory()
    hostvars["beta-cp1"]["api_vip"] = "192.168.10.5"
    hostvars["beta-cp1"]["node_ips"] = ["192.168.10.31"]
    message = r"clusters alpha and beta have the same api_vip 192\.168\.10\.5; every cluster needs its own"
    with pytest.raises(AnsibleFilterError, match=message):
        network_plan_hosts(FLAT_PLAN, groups, hostvars, NODE_NETWORKS)


def test_hosts_of_a_cluster_that_disagree_on_the_vip_are_refused():
    groups, hostvars = ha_inventory()
    hostvars["alpha-cp3"]["api_vip"] = "192.168.10.6"
    del hostvars["alpha-w1"]["api_vip"]
    with pytest.raises(
        AnsibleFilterError,
        match=r"the hosts of cluster alpha disagree on api_vip \(192\.168\.10\.5 on alpha-cp1, alpha-cp2; 192\.168\.10\.6 on alpha-cp3; "
              r"\(unset\) on alpha-w1\); set api_vip once, on the cluster's group",
    ):
        network_plan_hosts(FLAT_PLAN, groups, hostvars, NODE_NETWORKS)


def test_a_control_plane_without_an_address_on_the_vips_network_is_refused():
    groups, hostvars = ha_inventory()
    hostvars["alpha-cp3"] = {"ansible_host": "alpha-cp3.example.org", "api_vip": "192.168.10.5"}
    message = r"each of its control planes needs its IPv4 node address in node_ips .*: alpha-cp3 has none"
    with pytest.raises(AnsibleFilterError, match=message):
        network_plan_hosts(FLAT_PLAN, groups, hostvars, NODE_NETWORKS)
    hostvars["alpha-cp3"]["node_ips"] = ["192.168.11.13"]
    message = r"192\.168\.10\.5 is in node network 192\.168\.10\.0/24, but control plane alpha-cp3's address 192\.168\.11\.13 is not"
    with pytest.raises(AnsibleFilterError, match=message):
        network_plan_hosts(FLAT_PLAN, groups, hostvars, [*NODE_NETWORKS, "192.168.11.0/24"])


def test_bad_node_networks_argument():
    groups, hostvars = ha_inventory()
    with pytest.raises(AnsibleFilterError, match=r"node_networks must be the plan's list of node networks"):
        network_plan_hosts(FLAT_PLAN, groups, hostvars, "192.168.10.0/24")


def two_gateways(**alpha_vips):
    """alpha served by two gateways with the given virtual addresses (on both), beta by one."""
    groups, hostvars = inventory(gateways=["alpha-gw", "alpha-gw2", "beta-gw"], gamma=[])
    groups["all"] = [*groups["all"], *groups["gateways"]]
    for gateway in ("alpha-gw", "alpha-gw2"):
        hostvars[gateway] = {"gateway_cluster": "alpha", **alpha_vips}
    hostvars["beta-gw"] = {"gateway_cluster": "beta", "ansible_host": "192.168.11.2"}
    return groups, hostvars


NETWORKS = ISLAND["node_networks"]


def test_a_cluster_with_two_gateways_and_its_virtual_addresses_passes():
    groups, hostvars = two_gateways(gateway_internal_vip="192.168.10.5", gateway_transit_vip="172.16.0.10")
    network_plan_hosts(ISLAND_PLAN, groups, hostvars, node_networks=NETWORKS)


@pytest.mark.parametrize(
    ("vips", "message"),
    [
        ({"gateway_transit_vip": "172.16.0.10"}, r"cluster alpha has 2 gateways \(alpha-gw, alpha-gw2\) but no gateway_internal_vip"),
        ({"gateway_internal_vip": "192.168.10.5"}, r"cluster alpha has 2 gateways \(alpha-gw, alpha-gw2\) but no gateway_transit_vip"),
        ({"gateway_internal_vip": "192.168.10.5", "gateway_transit_vip": "fd00::10"},
         r"gateway_transit_vip fd00::10 is IPv6; gateway_transit_vip is the IPv4 virtual address"),
        ({"gateway_internal_vip": "192.168.10.5", "gateway_transit_vip": "172.16.0.10", "gateway_transit_vip6": "fd00:1::10"},
         r"cluster alpha is planned without IPv6 \(ip_families \['ipv4'\]\), but its gateways set gateway_transit_vip6"),
        ({"gateway_internal_vip": "gw", "gateway_transit_vip": "172.16.0.10"}, r"gateway_internal_vip 'gw' is not an IP address"),
        ({"gateway_internal_vip": "10.0.0.5", "gateway_transit_vip": "172.16.0.10"},
         r"gateway_internal_vip 10.0.0.5 is outside every node network"),
        ({"gateway_internal_vip": "192.168.10.5", "gateway_transit_vip": "100.64.0.1"},
         r"gateway_transit_vip 100.64.0.1 is inside cluster \w+'s global"),
        ({"gateway_internal_vip": "192.168.10.11", "gateway_transit_vip": "172.16.0.10"},
         r"192.168.10.11 is host alpha-cp1's node address"),
        ({"gateway_internal_vip": "192.168.11.2", "gateway_transit_vip": "172.16.0.10"}, r"192.168.11.2 is host beta-gw's address"),
        ({"gateway_internal_vip": "192.168.10.5", "gateway_transit_vip": "192.168.10.5"},
         r"gateway_transit_vip 192.168.10.5 is already cluster alpha"),
    ],
)
def test_bad_gateway_virtual_addresses_are_refused(vips, message):
    groups, hostvars = two_gateways(**vips)
    with pytest.raises(AnsibleFilterError, match=message):
        network_plan_hosts(ISLAND_PLAN, groups, hostvars, node_networks=NETWORKS)


def test_the_gateways_of_a_cluster_must_agree_on_the_virtual_addresses():
    groups, hostvars = two_gateways(gateway_internal_vip="192.168.10.5", gateway_transit_vip="172.16.0.10")
    hostvars["alpha-gw2"]["gateway_internal_vip"] = "192.168.10.6"
    message = r"the gateways of cluster alpha disagree on gateway_internal_vip \(192.168.10.5 on alpha-gw; 192.168.10.6 on alpha-gw2\)"
    with pytest.raises(AnsibleFilterError, match=message):
        network_plan_hosts(ISLAND_PLAN, groups, hostvars, node_networks=NETWORKS)


def test_a_lone_gateway_may_not_set_virtual_addresses():
    groups, hostvars = two_gateways(gateway_internal_vip="192.168.10.5", gateway_transit_vip="172.16.0.10")
    hostvars["beta-gw"]["gateway_transit_vip"] = "172.16.0.20"
    message = r"gateway beta-gw is cluster beta's only gateway but sets gateway_transit_vip 172.16.0.20"
    with pytest.raises(AnsibleFilterError, match=message):
        network_plan_hosts(ISLAND_PLAN, groups, hostvars, node_networks=NETWORKS)


DUAL_VIPS = {"gateway_internal_vip": "192.168.10.5", "gateway_transit_vip": "172.16.0.10"}


def test_a_dual_stack_cluster_with_two_gateways_and_its_ipv6_virtual_addresses_passes():
    groups, hostvars = two_gateways(**DUAL_VIPS, gateway_internal_vip6="fd00::5", gateway_transit_vip6="fd00:1::10")
    network_plan_hosts(dual_island(), groups, hostvars, node_networks=[*NETWORKS, "fd00::/64"])


@pytest.mark.parametrize(
    ("vips", "message"),
    [
        ({"gateway_transit_vip6": "fd00:1::10"}, r"cluster alpha has 2 gateways \(alpha-gw, alpha-gw2\) but no gateway_internal_vip6"),
        ({"gateway_internal_vip6": "fd00::5"}, r"cluster alpha has 2 gateways \(alpha-gw, alpha-gw2\) but no gateway_transit_vip6"),
        ({"gateway_internal_vip6": "fd00::5", "gateway_transit_vip6": "172.16.0.11"},
         r"gateway_transit_vip6 172.16.0.11 is IPv4; gateway_transit_vip6 is the IPv6 virtual address"),
        ({"gateway_internal_vip6": "fd00::11", "gateway_transit_vip6": "fd00:1::10"}, r"fd00::11 is host alpha-cp1's node address"),
        ({"gateway_internal_vip6": "fd00::5", "gateway_transit_vip6": "fd30::3"}, r"gateway_transit_vip6 fd30::3 is inside cluster"),
    ],
)
def test_bad_ipv6_gateway_virtual_addresses_are_refused(vips, message):
    groups, hostvars = two_gateways(**DUAL_VIPS, **vips)
    with pytest.raises(AnsibleFilterError, match=message):
        network_plan_hosts(dual_island(), groups, hostvars, node_networks=[*NETWORKS, "fd00::/64"])
