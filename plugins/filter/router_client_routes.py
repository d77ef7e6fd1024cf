"""The router_client_routes filter: a host's routes to the flat clusters' pod ranges via its router."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.archipelago.clusters.plugins.plugin_utils.filters import netaddr, require_netaddr

DOCUMENTATION = r"""
name: router_client_routes
author: Archipelago
version_added: "0.1.0"
short_description: Routes to the flat clusters' pod and LoadBalancer ranges, and to other networks, via a router
description:
  - One route per pod range of every flat cluster in O(plan) except O(exclude), then one per LoadBalancer range
    (C(load_balancer_cidrs)) of those clusters, then one per network of O(networks), each via the address of its
    family in the input (the router's address on this host's network). The router reaches a LoadBalancer range on
    the cluster's node network, where MetalLB answers for it.
options:
  _input:
    description: The router's addresses on this host's network, at most one per family.
    type: list
    elements: str
    required: true
  plan:
    description: The network plan (playbooks/plan.yml's archipelago_plan).
    type: dict
    required: true
  exclude:
    description: The host's own cluster, whose pod ranges it reaches without the router.
    type: str
  networks:
    description: Further networks to route via the router (external hosts, other node networks).
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Route the other clusters' pod ranges via the rack's router
  ansible.builtin.set_fact:
    routes: >-
      {{ ['10.224.1.1'] | archipelago.clusters.router_client_routes(archipelago_plan, exclude='alpha',
         networks=['10.224.3.0/24']) }}
"""

RETURN = r"""
_value:
  description: A list of C(cidr) and C(via), the format of the static_routes role's C(static_routes_list).
  type: list
"""


def client_routes(next_hops: list, plan: dict, exclude: str | None = None, networks=()) -> list[dict]:
    """Plain-data core of the filter: see DOCUMENTATION."""
    vias = {}
    for hop in map(netaddr.IPAddress, next_hops):
        if hop.version in vias:
            raise AnsibleFilterError(f"router_client_routes: two IPv{hop.version} next hops ({vias[hop.version]}, {hop}); "
                                     f"give one per family.")
        vias[hop.version] = str(hop)
    clusters = sorted((plan.get("clusters") or {}).items())
    served = [cluster for name, cluster in clusters if name != exclude and cluster.get("model") == "flat"]
    cidrs = [c for cluster in served for c in cluster.get("pod_cidrs") or []]
    cidrs += [c for cluster in served for c in cluster.get("load_balancer_cidrs") or []]
    result = []
    for cidr in map(netaddr.IPNetwork, [*cidrs, *networks]):
        if cidr.version not in vias:
            raise AnsibleFilterError(f"router_client_routes: {cidr} needs an IPv{cidr.version} next hop, but the router's addresses are "
                                     f"{list(next_hops)}; add the router's IPv{cidr.version} address to router_next_hop.")
        result.append({"cidr": str(cidr.cidr), "via": vias[cidr.version]})
    return result


def router_client_routes(next_hops, plan, exclude=None, networks=None):
    """Jinja wrapper: checks the arguments, then calls client_routes()."""
    require_netaddr("router_client_routes")
    if isinstance(next_hops, str):
        next_hops = [next_hops]
    if not isinstance(next_hops, list):
        raise AnsibleFilterError(f"router_client_routes: the input is {next_hops!r}; give the router's addresses (one per family).")
    if not isinstance(plan, dict):
        raise AnsibleFilterError(f"router_client_routes: plan is {plan!r}; give the network plan (archipelago_plan).")
    return client_routes(next_hops, plan, exclude, networks or [])


class FilterModule:
    def filters(self):
        return {"router_client_routes": router_client_routes}
