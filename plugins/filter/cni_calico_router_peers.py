"""The cni_calico_router_peers filter: a cluster's Calico BGPPeers, from the same router variables the router role uses."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.archipelago.clusters.plugins.plugin_utils.filters import netaddr, require_mapping_list, require_netaddr

DOCUMENTATION = r"""
name: cni_calico_router_peers
author: Archipelago
version_added: "0.1.0"
short_description: Calico BGP peers for one cluster, from the inventory's BGP routers
description:
  - One peer per router in BGP mode (C(router_mode=bgp)) that serves the cluster (C(router_clusters) lists it, or is
    unset), at the router's C(router_bgp_address), else its C(router_id), with its C(router_asn) (default 64512).
  - The router role builds its side of the same sessions from the same variables, so the two ends cannot disagree.
  - A router may set C(router_bgp_node_selector) (a Calico selector) to peer with one rack only; default all().
options:
  _input:
    description: The routers' variables (C(hostvars[router])), as a list.
    type: list
    elements: dict
    required: true
  cluster:
    description: The cluster the peers are for.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Peer calico-node with the racks' routers
  ansible.builtin.set_fact:
    peers: "{{ groups['routers'] | map('extract', hostvars) | list | archipelago.clusters.cni_calico_router_peers('alpha') }}"
"""

RETURN = r"""
_value:
  description: A list of C(name), C(peer_ip), C(as_number), C(node_selector), the format of C(cni_calico_bgp_peers).
  type: list
"""


def router_peers(routers: list[Mapping], cluster: str) -> list[dict]:
    """Plain-data core of the filter: see DOCUMENTATION."""
    peers = []
    for router in routers:
        if router.get("router_mode") != "bgp":
            continue
        clusters = router.get("router_clusters")
        if clusters is not None and cluster not in clusters:
            continue
        name = router.get("inventory_hostname")
        address = router.get("router_bgp_address") or router.get("router_id")
        if not address or not netaddr.valid_ipv4(str(address)) and not netaddr.valid_ipv6(str(address)):
            raise AnsibleFilterError(f"cni_calico_router_peers: BGP router {name!r} has no usable address ({address!r}); set router_id "
                                     f"(or router_bgp_address) on it: calico-node peers with that address.")
        peers.append({"name": f"router-{name}", "peer_ip": str(address), "as_number": int(router.get("router_asn", 64512)),
                      "node_selector": router.get("router_bgp_node_selector", "all()"),
                      # The flat router sits on the nodes' networks: with the node-to-node mesh, a node also announces
                      # the blocks it learned from its peers, and with its own address as next hop the router would
                      # forward through it (and, at an equal AS path, spread flows over both, which the forwarding
                      # node's conntrack drops as INVALID). The owner's own address keeps the path direct.
                      "keep_original_next_hop": True})
    return peers


def cni_calico_router_peers(routers, cluster):
    """Jinja wrapper: checks the arguments, then calls router_peers()."""
    require_netaddr("cni_calico_router_peers")
    require_mapping_list("cni_calico_router_peers", routers, "the routers' variables (hostvars)")
    return router_peers(routers, str(cluster))


class FilterModule:
    def filters(self):
        return {"cni_calico_router_peers": cni_calico_router_peers}
