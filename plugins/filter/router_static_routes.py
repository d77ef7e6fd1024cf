"""The router_static_routes filter: a flat-mode router's routes to each cluster's pod ranges, via the nodes."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.archipelago.clusters.plugins.plugin_utils.filters import netaddr, require_netaddr

DOCUMENTATION = r"""
name: router_static_routes
author: Archipelago
version_added: "0.1.0"
short_description: Static routes to each cluster's pod ranges via its nodes, checked against the plan
description:
  - With O(source=nodes), one route per pod range of every node (a Node object's C(spec.podCIDRs), as Flannel and
    the Kubernetes node IPAM allocate them) via that node's InternalIP of the same family.
  - With O(source=plan), one route per pod range of every cluster in O(plan), via all of its nodes' addresses of
    that family (a multipath route), for CNIs that hand out pod addresses in blocks of their own (Calico IPAM).
  - Every node pod range must lie inside its cluster's pod ranges in the plan, so a misconfigured node cannot
    draw another cluster's traffic.
options:
  _input:
    description: Cluster name to that cluster's Node objects (C(kubectl get nodes -o json)'s C(items)).
    type: dict
    required: true
  plan:
    description: The network plan (playbooks/plan.yml's archipelago_plan).
    type: dict
    required: true
  source:
    description: Where the routes come from.
    type: str
    choices: [nodes, plan]
    default: nodes
"""

EXAMPLES = r"""
- name: Route every node's pod range via the node
  ansible.builtin.set_fact:
    router_static_routes: "{{ {'alpha': alpha_nodes_json['items']} | archipelago.clusters.router_static_routes(archipelago_plan) }}"
"""

RETURN = r"""
_value:
  description: A list of C(cidr) and C(via), sorted; one cidr with several C(via) is a multipath route.
  type: list
"""


def _family_address(node: dict, version: int) -> str:
    for address in node.get("addresses") or []:
        if netaddr.IPAddress(address).version == version:
            return str(address)
    raise AnsibleFilterError(f"router_static_routes: node {node.get('name')!r} of cluster {node.get('cluster')!r} has no IPv{version} "
                             f"address among {node.get('addresses')}, but it has an IPv{version} pod range; give the node an "
                             f"IPv{version} InternalIP (kubelet --node-ip, the role variable node_ips).")


def _check_inside(node: dict, cidr: netaddr.IPNetwork, cluster: dict) -> None:
    ranges = [netaddr.IPNetwork(c) for c in cluster.get("pod_cidrs") or []]
    if not any(cidr in r for r in ranges):
        raise AnsibleFilterError(f"router_static_routes: node {node.get('name')!r} claims pod range {cidr}, which is outside its cluster "
                                 f"{node.get('cluster')!r}'s pod ranges {[str(r) for r in ranges]}. No route was installed; fix the "
                                 f"cluster's --cluster-cidr or the node's cluster_name.")


def _node(cluster: str, obj: dict) -> dict:
    """The parts of a Node object the routes need."""
    addresses = (obj.get("status") or {}).get("addresses") or []
    return {"name": (obj.get("metadata") or {}).get("name"), "cluster": cluster,
            "addresses": [a["address"] for a in addresses if a.get("type") == "InternalIP"],
            "pod_cidrs": (obj.get("spec") or {}).get("podCIDRs") or []}


def static_routes(nodes_by_cluster: dict, plan: dict, source: str = "nodes") -> list[dict]:
    """Plain-data core of the filter: see DOCUMENTATION."""
    clusters = plan.get("clusters") or {}
    routes = set()
    for name, objects in nodes_by_cluster.items():
        cluster = clusters.get(name)
        if cluster is None:
            raise AnsibleFilterError(f"router_static_routes: cluster {name!r} is not in the plan ({', '.join(clusters)}).")
        if cluster.get("model") != "flat":
            raise AnsibleFilterError(f"router_static_routes: cluster {name!r} is planned in {cluster.get('model')} mode; "
                                     f"pod ranges are routed only in flat mode (network_plan.model: flat).")
        for node in (_node(name, obj) for obj in objects):
            cidrs = node["pod_cidrs"] if source == "nodes" else cluster.get("pod_cidrs") or []
            for cidr in map(netaddr.IPNetwork, cidrs):
                _check_inside(node, cidr, cluster)
                routes.add((cidr.version, cidr.value, cidr.prefixlen, str(cidr.cidr), _family_address(node, cidr.version)))
    return [{"cidr": cidr, "via": via} for *_, cidr, via in sorted(routes)]


def router_static_routes(nodes, plan, source="nodes"):
    """Jinja wrapper: checks the arguments, then calls static_routes()."""
    require_netaddr("router_static_routes")
    if source not in ("nodes", "plan"):
        raise AnsibleFilterError(f"router_static_routes: source is {source!r}; use nodes (Node objects' podCIDRs) or plan.")
    if not isinstance(nodes, dict) or not all(isinstance(objs, list) for objs in nodes.values()):
        raise AnsibleFilterError(f"router_static_routes: the input is {nodes!r}; give a mapping of cluster name to its Node objects.")
    if not isinstance(plan, dict):
        raise AnsibleFilterError(f"router_static_routes: plan is {plan!r}; give the network plan (archipelago_plan).")
    return static_routes(nodes, plan, source)


class FilterModule:
    def filters(self):
        return {"router_static_routes": router_static_routes}
