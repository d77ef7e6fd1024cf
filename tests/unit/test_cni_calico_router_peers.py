"""The cni_calico role's router peers filter: Calico's end of the sessions the router role configures."""

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "filter"))

from cni_calico_router_peers import cni_calico_router_peers


def router(name, **variables):
    return {"inventory_hostname": name, **variables}


def test_peers_are_the_bgp_routers_serving_the_cluster():
    routers = [router("r1", router_mode="bgp", router_id="10.0.1.3", router_asn=64512),
               router("r2", router_mode="bgp", router_id="10.0.2.3", router_asn=65000, router_clusters=["beta"]),
               router("r3", router_mode="static", router_id="10.0.1.2"),
               router("r4", router_mode="bgp", router_id="10.0.1.4", router_bgp_address="fd00:1::4", router_clusters=["alpha"],
                      router_bgp_node_selector="rack == 'r4'")]
    assert cni_calico_router_peers(routers, "alpha") == [
        {"name": "router-r1", "peer_ip": "10.0.1.3", "as_number": 64512, "node_selector": "all()",
         "keep_original_next_hop": True},
        {"name": "router-r4", "peer_ip": "fd00:1::4", "as_number": 64512, "node_selector": "rack == 'r4'",
         "keep_original_next_hop": True}]
    assert [p["name"] for p in cni_calico_router_peers(routers, "beta")] == ["router-r1", "router-r2"]


@pytest.mark.parametrize("address", [None, "", "10.0.1.300", "router.example"])
def test_a_bgp_router_without_a_usable_address_is_refused_by_name(address):
    with pytest.raises(AnsibleFilterError, match=r"BGP router 'r1' has no usable address .*set router_id"):
        cni_calico_router_peers([router("r1", router_mode="bgp", router_id=address)], "alpha")


def test_bad_input():
    with pytest.raises(AnsibleFilterError, match=r"give the routers' variables"):
        cni_calico_router_peers({"r1": {}}, "alpha")
