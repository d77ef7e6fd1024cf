"""The island_gateway_routes filter: routes to clusters' global ranges (and other networks) via their gateways."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.archipelago.clusters.plugins.plugin_utils.filters import netaddr, require_netaddr

DOCUMENTATION = r"""
name: island_gateway_routes
author: Archipelago
version_added: "0.1.0"
short_description: Routes to clusters' global ranges, and to other networks, via the given next hops
description:
  - For every cluster in the input mapping, one route per global range of that cluster in O(plan), via the mapped
    next hop of the range's family (a cluster maps to one next hop or to a list, one per family; a range of a family
    with no next hop is not routed); then one route per network of O(networks), via the O(networks_via) of its family.
options:
  _input:
    description: Cluster name to next hop, or to a list of next hops (at most one per family).
    type: dict
    required: true
  plan:
    description: The network plan (playbooks/plan.yml's archipelago_plan); its C(clusters) give the global ranges.
    type: dict
    required: true
  networks:
    description: Further networks to route (IPv4 or IPv6).
    type: list
  networks_via:
    description: Next hop of O(networks), or a list of next hops (at most one per family).
    type: raw
"""

EXAMPLES = r"""
- name: Route the other clusters through this cluster's gateway
  ansible.builtin.set_fact:
    routes: >-
      {{ {'beta': '10.210.1.2'} | archipelago.clusters.island_gateway_routes(archipelago_plan,
         networks=['10.210.0.0/24'], networks_via='10.210.1.2') }}
"""

RETURN = r"""
_value:
  description: A list of C(cidr) and C(via), the format of the island_gateway role's C(island_gateway_routes).
  type: list
"""


def _vias(value, what: str) -> dict:
    """Family to next hop, from one address or a list of them."""
    values = value if isinstance(value, (list, tuple)) else [value]
    result = {}
    for item in values:
        try:
            address = netaddr.IPAddress(str(item), flags=netaddr.INET_PTON)
        except (netaddr.AddrFormatError, ValueError, TypeError):
            raise AnsibleFilterError(f"island_gateway_routes: {what} has next hop {item!r}, which is not an IP address; "
                                     "give an address, or a list of one per family.") from None
        if address.version in result:
            raise AnsibleFilterError(f"island_gateway_routes: {what} has two IPv{address.version} next hops "
                                     f"({result[address.version]}, {address}); give one per family.")
        result[address.version] = str(address)
    return result


def routes(vias: dict, plan: dict, networks=(), networks_via=None) -> list[dict]:
    """Plain-data core of the filter: see DOCUMENTATION."""
    clusters = plan.get("clusters") or {}
    result = []
    for name, via in vias.items():
        if name not in clusters:
            raise AnsibleFilterError(f"island_gateway_routes: cluster {name!r} is not in the plan ({', '.join(clusters)}); "
                                     f"set gateway_cluster to a cluster of network_plan.clusters.")
        by_family = _vias(via, f"cluster {name}")
        for cidr in clusters[name].get("global_cidrs") or []:
            version = netaddr.IPNetwork(cidr).version
            if version in by_family:
                result.append({"cidr": str(cidr), "via": by_family[version]})
    if networks and not networks_via:
        raise AnsibleFilterError(f"island_gateway_routes: networks {list(networks)} need a next hop; give networks_via.")
    by_family = _vias(networks_via, "networks_via") if networks else {}
    for network in networks or []:
        version = netaddr.IPNetwork(str(network)).version
        if version not in by_family:
            raise AnsibleFilterError(f"island_gateway_routes: network {network} is IPv{version}, but networks_via "
                                     f"({networks_via}) has no IPv{version} next hop; add one.")
        result.append({"cidr": str(network), "via": by_family[version]})
    return result


def island_gateway_routes(vias, plan, networks=None, networks_via=None):
    """Jinja wrapper: checks the arguments, then calls routes()."""
    require_netaddr("island_gateway_routes")
    if not isinstance(vias, dict):
        raise AnsibleFilterError(f"island_gateway_routes: the input is {vias!r}; give a mapping of cluster name to next hop.")
    if not isinstance(plan, dict):
        raise AnsibleFilterError(f"island_gateway_routes: plan is {plan!r}; give the network plan (archipelago_plan).")
    return routes(vias, plan, networks or [], networks_via)


class FilterModule:
    def filters(self):
        return {"island_gateway_routes": island_gateway_routes}
