"""The island_gateway_routes filter: each global range via the next hop of its family, further networks likewise."""

import pytest
from ansible.errors import AnsibleFilterError
from island_gateway_routes import island_gateway_routes

PLAN = {"clusters": {"alpha": {"global_cidrs": ["100.64.0.0/28", "fd64::/124"]},
                     "beta": {"global_cidrs": ["100.64.0.16/28", "fd64::10/124"]}}}


def test_one_next_hop_routes_the_ranges_of_its_family_only():
    assert island_gateway_routes({"beta": "10.0.0.12"}, PLAN) == [{"cidr": "100.64.0.16/28", "via": "10.0.0.12"}]


def test_a_next_hop_per_family_routes_each_range_via_its_own():
    assert island_gateway_routes({"beta": ["10.0.0.12", "fd00::12"]}, PLAN,
                                 networks=["10.0.0.0/24", "fd00::/64"], networks_via=["10.0.1.2", "fd00:1::2"]) == [
        {"cidr": "100.64.0.16/28", "via": "10.0.0.12"}, {"cidr": "fd64::10/124", "via": "fd00::12"},
        {"cidr": "10.0.0.0/24", "via": "10.0.1.2"}, {"cidr": "fd00::/64", "via": "fd00:1::2"}]


@pytest.mark.parametrize(
    ("vias", "kwargs", "message"),
    [
        ({"gamma": "10.0.0.12"}, {}, r"cluster 'gamma' is not in the plan"),
        ({"beta": ["10.0.0.12", "10.0.0.13"]}, {}, r"cluster beta has two IPv4 next hops \(10\.0\.0\.12, 10\.0\.0\.13\)"),
        ({"beta": "gw"}, {}, r"cluster beta has next hop 'gw', which is not an IP address"),
        ({}, {"networks": ["fd00::/64"], "networks_via": "10.0.1.2"},
         r"network fd00::/64 is IPv6, but networks_via \(10\.0\.1\.2\) has no IPv6"),
        ({}, {"networks": ["10.0.0.0/24"]}, r"need a next hop; give networks_via"),
    ],
)
def test_bad_input_names_the_value_and_the_fix(vias, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message):
        island_gateway_routes(vias, PLAN, **kwargs)
