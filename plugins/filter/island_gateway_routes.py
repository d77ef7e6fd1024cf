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
  - For every cluster in the input mapping, one route per IPv4 global range of that cluster in O(plan), via the
    mapped next hop; then one route per network of O(networks), via O(networks_via).
options:
  _input:
    description: Cluster name to next hop (an IPv4 address).
    type: dict
    required: true
  plan:
    description: The network plan (playbooks/plan.yml's archipelago_plan); its C(clusters) give the global ranges.
    type: dict
    required: true
  networks:
    description: Further IPv4 networks to route.
    type: list
  networks_via:
    description: Next hop of O(networks).
    type: str
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


def routes(vias: dict, plan: dict, networks=(), networks_via: str | None = None) -> list[dict]:
    """Plain-data core of the filter: see DOCUMENTATION."""
    clusters = plan.get("clusters") or {}
    result = []
    for name, via in vias.items():
        if name not in clusters:
            raise AnsibleFilterError(f"island_gateway_routes: cluster {name!r} is not in the plan ({', '.join(clusters)}); "
                                     f"set gateway_cluster to a cluster of network_plan.clusters.")
        for cidr in clusters[name].get("global_cidrs") or []:
            if netaddr.IPNetwork(cidr).version == 4:
                result.append({"cidr": str(cidr), "via": str(via)})
    if networks and not networks_via:
        raise AnsibleFilterError(f"island_gateway_routes: networks {list(networks)} need a next hop; give networks_via.")
    result.extend({"cidr": str(n), "via": str(networks_via)} for n in networks or [])
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
