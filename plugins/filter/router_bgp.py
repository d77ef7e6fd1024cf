"""The router_bgp filter: a flat-mode router's BGP neighbors per cluster and the prefixes it takes from each."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.archipelago.clusters.plugins.plugin_utils.filters import netaddr, require_mapping_list, require_netaddr

DOCUMENTATION = r"""
name: router_bgp
author: Archipelago
version_added: "0.1.0"
short_description: BGP peer groups per cluster and family, with the prefixes the plan assigns to each
description:
  - One peer group per cluster and IP family, holding that cluster's nodes (each with its own AS number, so racks
    may differ) and the only prefixes the router accepts from them - the cluster's pod ranges in the plan and
    anything more specific, plus its service ranges with O(accept_services). A cluster that announces another
    cluster's range is ignored, not believed.
  - C(announce) lists, per family, the pod ranges of every cluster in the input (and anything more specific), the
    routes the router passes on to every neighbor, so each cluster learns the routes the others announce.
options:
  _input:
    description: The Kubernetes hosts' variables (C(hostvars[host])); the filter reads C(inventory_hostname),
      C(cluster_name), C(node_ips) (the node's addresses, one per family) and C(bgp_asn).
    type: list
    elements: dict
    required: true
  plan:
    description: The network plan (playbooks/plan.yml's archipelago_plan).
    type: dict
    required: true
  accept_services:
    description: Also accept the clusters' service ranges (Calico's serviceClusterIPs advertisement).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Peer with every node of the flat clusters
  ansible.builtin.set_fact:
    router_bgp: "{{ groups['kube_node'] | map('extract', hostvars) | list | archipelago.clusters.router_bgp(archipelago_plan) }}"
"""

RETURN = r"""
_value:
  description: C(peer_groups) (name, cluster, family, accept as C(prefix) and C(le), neighbors as name, address,
    asn) and C(announce) (family to C(prefix) and C(le)).
  type: dict
"""

ASN_MAX = 4294967295  # 4-byte AS numbers, RFC 6793


def _asn(host: Mapping) -> int:
    asn = host.get("bgp_asn")
    if isinstance(asn, bool) or not str(asn).isdigit() or not 1 <= int(asn) <= ASN_MAX:
        raise AnsibleFilterError(f"router_bgp: host {host.get('inventory_hostname')!r} has bgp_asn {asn!r}; give it a number from 1 to "
                                 f"{ASN_MAX} (private: 64512-65534 or 4200000000-4294967294), on the host, its rack or its cluster group.")
    return int(asn)


def _accepted(cidrs, version: int) -> list[dict]:
    nets = [n for n in map(netaddr.IPNetwork, cidrs) if n.version == version]
    width = 32 if version == 4 else 128
    return [{"prefix": str(n.cidr), "le": width if n.prefixlen < width else None} for n in nets]


def bgp(hosts: list[Mapping], plan: dict, accept_services: bool = False) -> dict:
    """Plain-data core of the filter: see DOCUMENTATION."""
    clusters = plan.get("clusters") or {}
    groups: dict[tuple[str, int], dict] = {}
    for host in hosts:
        name = host.get("cluster_name")
        cluster = clusters.get(name)
        if cluster is None:
            raise AnsibleFilterError(f"router_bgp: host {host.get('inventory_hostname')!r} is in cluster {name!r}, which is not in "
                                     f"the plan ({', '.join(clusters)}).")
        if cluster.get("model") != "flat":
            raise AnsibleFilterError(f"router_bgp: cluster {name!r} is planned in {cluster.get('model')} mode; pod ranges are routed "
                                     f"only in flat mode (network_plan.model: flat).")
        if not host.get("node_ips"):
            raise AnsibleFilterError(f"router_bgp: host {host.get('inventory_hostname')!r} has no node_ips; the router peers with the "
                                     f"node addresses, so set node_ips (one address per family of the cluster).")
        asn = _asn(host)
        for address in map(netaddr.IPAddress, host.get("node_ips")):
            family = f"ipv{address.version}"
            if family not in cluster.get("ip_families", []):
                continue
            accepted = list(cluster.get("pod_cidrs") or []) + (list(cluster.get("service_cidrs") or []) if accept_services else [])
            group = groups.setdefault((name, address.version), {
                "name": f"{name}-{family}", "cluster": name, "family": family, "neighbors": [],
                "accept": _accepted(accepted, address.version),
            })
            group["neighbors"].append({"name": host.get("inventory_hostname"), "address": str(address), "asn": asn})
    announce = {"ipv4": [], "ipv6": []}
    for name in sorted({h.get("cluster_name") for h in hosts}):
        for version in (4, 6):
            announce[f"ipv{version}"].extend(_accepted(clusters[name].get("pod_cidrs") or [], version))
    return {"peer_groups": [groups[k] for k in sorted(groups)], "announce": announce}


def router_bgp(hosts, plan, accept_services=False):
    """Jinja wrapper: checks the arguments, then calls bgp()."""
    require_netaddr("router_bgp")
    require_mapping_list("router_bgp", hosts, "the Kubernetes hosts' variables (hostvars)")
    if not isinstance(plan, dict):
        raise AnsibleFilterError(f"router_bgp: plan is {plan!r}; give the network plan (archipelago_plan).")
    return bgp(hosts, plan, bool(accept_services))


class FilterModule:
    def filters(self):
        return {"router_bgp": router_bgp}
