"""The network_plan_hosts filter: check the inventory's hosts against the network plan before any host is touched."""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.archipelago.clusters.plugins.plugin_utils.filters import netaddr, require_netaddr

DOCUMENTATION = r"""
name: network_plan_hosts
author: Archipelago
version_added: "0.2.0"
short_description: Check the inventory's hosts against a network plan
description:
  - Fails, naming the hosts and the values, when
    a host is in the groups of two planned clusters;
    two Kubernetes hosts have the same node address;
    a node address lies inside a planned pod, service or global range (of any cluster, retained ones included);
    the plan is flat but the inventory has gateways;
    a cluster with several gateways lacks C(gateway_internal_vip) or C(gateway_transit_vip) (and, planned with IPv6,
    C(gateway_internal_vip6) or C(gateway_transit_vip6)), its gateways disagree on them, a lone gateway sets them, one
    is not of its family (the C(6) ones IPv6, the others IPv4), a cluster planned without IPv6 sets an IPv6 one, one
    lies inside a planned range, is a host's address or another virtual address, or (the internal one) lies outside
    the node networks;
    a cluster's C(api_vip) (its virtual API address) is not an IP address of one of the cluster's families, lies outside
    the node networks or on a node network's own network or broadcast address, lies inside a planned range, is a node's
    address or another cluster's VIP, differs between the cluster's hosts, or a control plane of the cluster has no node
    address in the VIP's family on the VIP's node network;
    a cluster has several control planes but neither C(api_vip) nor C(kubeadm_control_plane_endpoint).
  - A Kubernetes host (in C(kube_control_plane) or C(kube_node)) has the node addresses C(node_ips) when it sets them,
    else its C(ansible_host) when that is an IP address other than loopback (a tunnel or a port forward is not the
    node's address); else its address is learnt only from facts later and is not checked here.
options:
  _input:
    description: The output of the network_plan filter.
    type: dict
    required: true
  groups:
    description: The inventory's C(groups).
    type: dict
    required: true
  hostvars:
    description: >-
      The inventory's C(hostvars) (C(node_ips), C(ansible_host), C(gateway_cluster), C(gateway_internal_vip),
      C(gateway_transit_vip), C(api_vip) and C(kubeadm_control_plane_endpoint) are read).
    type: dict
    required: true
  node_networks:
    description: The plan's C(node_networks) (CIDRs), where a cluster's C(api_vip) must lie.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Check the hosts against the plan
  ansible.builtin.set_fact:
    node_addresses: "{{ plan | archipelago.clusters.network_plan_hosts(groups, hostvars, node_networks=network_plan.node_networks) }}"
"""

RETURN = r"""
_value:
  description: Each Kubernetes host's node addresses as checked (empty when they are learnt only from facts).
  type: dict
"""

FILTER = "network_plan_hosts"
KUBE_GROUPS = ("kube_control_plane", "kube_node")
KINDS = {"pods": "pod_cidrs", "services": "service_cidrs", "global": "global_cidrs", "load_balancers": "load_balancer_cidrs"}


def _fail(message: str) -> None:
    raise AnsibleFilterError(f"{FILTER}: {message}")


def _hosts(groups: Mapping, group: str) -> list:
    members = groups.get(group) or []
    if not isinstance(members, list):
        _fail(f"groups[{group!r}] must be a list of host names, got {members!r}")
    return members


def _address(value, host: str, source: str):
    if not isinstance(value, str):
        _fail(f"host {host}: {source} {value!r} is not an IP address; write node_ips as a list of addresses, one per family")
    try:
        return netaddr.IPAddress(value, flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        _fail(f"host {host}: {source} {value!r} is not an IP address; write node_ips as a list of addresses, one per family")


def node_addresses(host: str, hostvars: Mapping) -> tuple[list, str]:
    """A Kubernetes host's node addresses and where they come from (node_ips, ansible_host, or nowhere yet)."""
    variables = hostvars.get(host) or {}
    node_ips = variables.get("node_ips")
    if node_ips is not None:
        if not isinstance(node_ips, list) or not node_ips:
            hint = f"; write it as a list: [{node_ips}]" if isinstance(node_ips, str) else ""
            _fail(f"host {host}: node_ips must be a non-empty list of addresses, one per family, got {node_ips!r}{hint}")
        addresses = [_address(value, host, f"node_ips[{i}]") for i, value in enumerate(node_ips)]
        if len({a.version for a in addresses}) != len(addresses):
            _fail(f"host {host}: node_ips {node_ips!r} holds two addresses of one family; give one per family")
        return addresses, "node_ips"
    ansible_host = variables.get("ansible_host")
    if isinstance(ansible_host, str):
        try:
            address = netaddr.IPAddress(ansible_host, flags=netaddr.INET_PTON)
        except (netaddr.AddrFormatError, ValueError):
            return [], ""
        if not address.is_loopback():
            return [address], "ansible_host"
    return [], ""


def _planned_ranges(plan: Mapping) -> dict:
    """Per IP version, sorted (first, last, label) of every planned range, island's shared ranges once."""
    owners: dict = {}
    clusters = {**(plan.get("retained_clusters") or {}), **plan["clusters"]}
    for name, cluster in sorted(clusters.items()):
        retained = " (retained in the lock)" if name not in plan["clusters"] else ""
        for kind, key in KINDS.items():
            for cidr in cluster.get(key) or []:
                owners.setdefault((str(cidr), kind), []).append(f"{name}{retained}")
    ranges: dict = {4: [], 6: []}
    for (cidr, kind), names in owners.items():
        net = netaddr.IPNetwork(cidr)
        label = (
            f"cluster {names[0]}'s {kind} range {net}" if len(names) == 1 else f"the island {kind} range {net} (shared by every cluster)"
        )
        ranges[net.version].append((net.first, net.last, label))
    for version in ranges:
        ranges[version].sort()
    return ranges


def _inside(ranges: dict, address) -> str | None:
    """The label of the planned range holding address (planned ranges never overlap, except island's shared ones,
    which are listed once)."""
    candidates = ranges[address.version]
    index = bisect.bisect_right(candidates, (int(address), float("inf"), "")) - 1
    if index >= 0 and candidates[index][0] <= int(address) <= candidates[index][1]:
        return candidates[index][2]
    return None


def _cluster_vip(name: str, groups: Mapping, hostvars: Mapping, kube_hosts: list) -> str | None:
    """A cluster's api_vip as its Kubernetes hosts have it (a group variable of the cluster); None when unset."""
    seen: dict = {}
    for host in _hosts(groups, name):
        if host not in kube_hosts:
            continue
        value = (hostvars.get(host) or {}).get("api_vip")
        key = None if value is None or value == "" else value if isinstance(value, str) else repr(value)
        seen.setdefault(key, []).append(host)
    if len(seen) > 1:
        described = "; ".join(f"{'(unset)' if value is None else value} on {', '.join(hosts)}" for value, hosts in seen.items())
        _fail(f"the hosts of cluster {name} disagree on api_vip ({described}); set api_vip once, on the cluster's group")
    return next(iter(seen), None)


def _lenient_addresses(host: str, hostvars: Mapping) -> list:
    """The addresses a host outside the clusters (gateway, router, external host) is known by; unparsable ones skipped."""
    variables = hostvars.get(host) or {}
    values = variables.get("node_ips") if isinstance(variables.get("node_ips"), list) else []
    found = []
    for value in [*values, variables.get("ansible_host")]:
        try:
            found.append(netaddr.IPAddress(value, flags=netaddr.INET_PTON))
        except (netaddr.AddrFormatError, ValueError, TypeError):
            continue
    return found


def _check_vip(name: str, vip_text: str, plan: Mapping, context: dict) -> None:
    """One cluster's VIP against its families, the node networks, the planned ranges and every node address."""
    try:
        vip = netaddr.IPAddress(vip_text, flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        _fail(f"cluster {name}: api_vip {vip_text!r} is not an IP address; give one free address of the control planes' node network")
    families = list(plan["clusters"][name].get("ip_families") or plan.get("ip_families") or [])
    if f"ipv{vip.version}" not in families:
        _fail(f"cluster {name}: api_vip {vip} is IPv{vip.version}, but the cluster's families are {families}; "
              "give an address of one of them")
    network = next((n for n in context["node_networks"] if vip in n), None)
    if network is None:
        known = ", ".join(str(n) for n in context["node_networks"]) or "none"
        _fail(
            f"cluster {name}: api_vip {vip} is outside every node network (network_plan.node_networks: {known}); the VIP "
            "moves between the control planes on their own network: give a free address of it"
        )
    if vip.version == 4 and network.prefixlen <= 30 and vip in (network.network, network.broadcast):
        which = "network" if vip == network.network else "broadcast"
        _fail(f"cluster {name}: api_vip {vip} is the {which} address of node network {network}; give a host address")
    label = _inside(context["ranges"], vip)
    if label:
        _fail(f"cluster {name}: api_vip {vip} is inside {label}; the VIP must lie outside every planned pod, service, global "
              "and LoadBalancer range")
    if vip in context["owners"]:
        host, source = context["owners"][vip]
        _fail(f"cluster {name}: api_vip {vip} is host {host}'s node address ({source}); the VIP must be an address no host has")
    for host in context["other_hosts"]:
        if vip in _lenient_addresses(host, context["hostvars"]):
            _fail(f"cluster {name}: api_vip {vip} is host {host}'s address (node_ips or ansible_host); "
                  "the VIP must be an address no host has")
    if vip in context["vips"]:
        _fail(f"clusters {context['vips'][vip]} and {name} have the same api_vip {vip}; every cluster needs its own")
    context["vips"][vip] = name
    for host in context["control_planes"][name]:
        addresses = [a for a in context["addresses"][host] if a.version == vip.version]
        if not addresses:
            _fail(
                f"cluster {name} has api_vip {vip}, so each of its control planes needs its IPv{vip.version} node address in "
                f"node_ips (or an address as ansible_host) for keepalived's peers: {host} has none"
            )
        if addresses[0] not in network:
            _fail(
                f"cluster {name}: api_vip {vip} is in node network {network}, but control plane {host}'s address {addresses[0]} "
                "is not; the VIP moves only between control planes on its own network"
            )


GATEWAY_VIPS = ("gateway_internal_vip", "gateway_transit_vip")
# A cluster planned with IPv6 that has several gateways also needs IPv6 virtual addresses (they move with the IPv4 ones).
GATEWAY_VIPS6 = ("gateway_internal_vip6", "gateway_transit_vip6")


def _check_gateway_vips(plan: Mapping, groups: Mapping, context: dict) -> None:
    """Each island cluster's gateway virtual addresses: required, and the same on every gateway, when the cluster has
    several gateways (the IPv6 ones too when the cluster's plan has IPv6); refused on a lone gateway; of their family
    (gateway_*_vip IPv4, gateway_*_vip6 IPv6), outside the planned ranges, no host's address, not shared."""
    hostvars = context["hostvars"]
    served: dict = {}
    for gateway in _hosts(groups, "gateways"):
        cluster = (hostvars.get(gateway) or {}).get("gateway_cluster")
        if isinstance(cluster, str) and cluster in plan["clusters"]:
            served.setdefault(cluster, []).append(gateway)
    for cluster, gateways in sorted(served.items()):
        families = list(plan["clusters"][cluster].get("ip_families") or plan.get("ip_families") or [])
        for key in GATEWAY_VIPS + GATEWAY_VIPS6:
            version = 6 if key in GATEWAY_VIPS6 else 4
            seen: dict = {}
            for gateway in gateways:
                value = (hostvars.get(gateway) or {}).get(key)
                seen.setdefault(None if value in (None, "") else str(value), []).append(gateway)
            if version == 6 and "ipv6" not in families:
                if next(iter(seen)) is not None or len(seen) > 1:
                    _fail(f"cluster {cluster} is planned without IPv6 (ip_families {families}), but its gateways set {key}: "
                          f"remove {key}, or add ipv6 to network_plan.ip_families")
                continue
            if len(gateways) == 1:
                if next(iter(seen)) is not None:
                    _fail(
                        f"gateway {gateways[0]} is cluster {cluster}'s only gateway but sets {key} {next(iter(seen))}; the "
                        "virtual addresses move between several gateways of one cluster: add a second gateway with "
                        "gateway_cluster " + cluster + ", or remove " + key
                    )
                continue
            if len(seen) > 1:
                described = "; ".join(f"{'(unset)' if value is None else value} on {', '.join(hosts)}" for value, hosts in seen.items())
                _fail(f"the gateways of cluster {cluster} disagree on {key} ({described}); "
                      "set it once, on the group of the cluster's gateways")
            value = next(iter(seen))
            if value is None:
                _fail(
                    f"cluster {cluster} has {len(gateways)} gateways ({', '.join(gateways)}) but no {key}: its nodes, peers and "
                    "external hosts reach whichever gateway is active through two virtual addresses per family. Set "
                    + ("gateway_internal_vip6 (a free IPv6 address of the gateways' internal network, a node network) and "
                       "gateway_transit_vip6 (a free IPv6 address of the transit network)" if version == 6 else
                       "gateway_internal_vip (a free address of the gateways' internal network, a node network) and "
                       "gateway_transit_vip (a free address of the transit network)")
                    + " on the group of the cluster's gateways"
                )
            try:
                vip = netaddr.IPAddress(value, flags=netaddr.INET_PTON)
            except (netaddr.AddrFormatError, ValueError, TypeError):
                _fail(f"cluster {cluster}: {key} {value!r} is not an IP address; give a free IPv{version} address")
            if vip.version != version:
                _fail(f"cluster {cluster}: {key} {vip} is IPv{vip.version}; {key} is the IPv{version} virtual address: "
                      f"give a free IPv{version} address"
                      + (" (the IPv6 ones are gateway_internal_vip6 and gateway_transit_vip6)" if version == 4 else ""))
            label = _inside(context["ranges"], vip)
            if label:
                _fail(f"cluster {cluster}: {key} {vip} is inside {label}; "
                      "give an address outside every planned pod, service and global range")
            internal = key in ("gateway_internal_vip", "gateway_internal_vip6")
            if internal and context["node_networks"] and not any(vip in n for n in context["node_networks"]):
                known = ", ".join(str(n) for n in context["node_networks"])
                _fail(
                    f"cluster {cluster}: {key} {vip} is outside every node network ({known}); it is the nodes' "
                    "next hop on their own network: give a free address of the gateways' internal network"
                )
            if vip in context["owners"]:
                _fail(f"cluster {cluster}: {key} {vip} is host {context['owners'][vip][0]}'s node address; give an address no host has")
            for host in context["other_hosts"]:
                if vip in _lenient_addresses(host, hostvars):
                    _fail(f"cluster {cluster}: {key} {vip} is host {host}'s address (node_ips or ansible_host); "
                          "give an address no host has")
            if vip in context["vips"]:
                _fail(f"cluster {cluster}: {key} {vip} is already {context['vips'][vip]}'s virtual address; "
                      "every virtual address is its own")
            context["vips"][vip] = f"cluster {cluster} ({key})"


def check_hosts(plan, groups, hostvars, node_networks=None) -> dict:
    """The filter's logic. Returns {host: [node addresses]} for every Kubernetes host."""
    require_netaddr("network_plan_hosts")
    if not isinstance(plan, Mapping) or not isinstance(plan.get("clusters"), Mapping) or plan.get("model") not in ("flat", "island"):
        _fail(f"expects the output of the network_plan filter, got {type(plan).__name__}")
    if not isinstance(groups, Mapping) or not isinstance(hostvars, Mapping):
        _fail("give the inventory's groups and hostvars: plan | archipelago.clusters.network_plan_hosts(groups, hostvars)")

    # One cluster per host: a host in two clusters' groups gets one cluster_name by group precedence, silently.
    members: dict = {}
    for name in sorted(plan["clusters"]):
        for host in _hosts(groups, name):
            members.setdefault(host, []).append(name)
    for host, clusters in members.items():
        if len(clusters) > 1:
            _fail(
                f"host {host} is in the groups of {len(clusters)} clusters ({', '.join(clusters)}); a host belongs to one "
                "cluster: remove it from all but one of these groups"
            )

    gateways = _hosts(groups, "gateways")
    if gateways and plan["model"] == "flat":
        _fail(
            f"the plan is flat, but the inventory has gateways ({', '.join(gateways)}); island gateways translate for "
            "clusters that share ranges, a flat plan routes every pod range directly (routers): remove the gateways, "
            "or plan model: island"
        )
    if node_networks is None:
        node_networks = []
    if not isinstance(node_networks, list):
        _fail(f"node_networks must be the plan's list of node networks, got {node_networks!r}")
    try:
        networks = [netaddr.IPNetwork(str(n)) for n in node_networks]
    except (netaddr.AddrFormatError, ValueError, TypeError):
        _fail(f"node_networks must be the plan's list of node networks (CIDRs), got {node_networks!r}")

    kube_hosts = list(dict.fromkeys(h for group in KUBE_GROUPS for h in _hosts(groups, group)))
    ranges = _planned_ranges(plan)
    owners: dict = {}
    result = {}
    parsed = {}
    for host in kube_hosts:
        addresses, source = node_addresses(host, hostvars)
        parsed[host] = addresses
        result[host] = [str(a) for a in addresses]
        for address in addresses:
            if address in owners:
                other, other_source = owners[address]
                _fail(
                    f"hosts {other} and {host} have the same node address {address} ({other_source} of {other}, {source} of "
                    f"{host}); every node needs its own address: set node_ips on each host to its real address"
                )
            owners[address] = (host, source)
            label = _inside(ranges, address)
            if label and "load_balancers" in label:
                _fail(
                    f"host {host}'s node address {address} ({source}) is inside {label}; MetalLB would hand a node's "
                    "address to a Service: shrink or move network_plan.pools.load_balancers to a part of the node "
                    "network that no host uses, and re-plan"
                )
            if label:
                _fail(
                    f"host {host}'s node address {address} ({source}) is inside {label}; a node address must lie outside "
                    "every planned pod, service and global range: put the node's network in network_plan.node_networks "
                    "(the plan keeps clear of it) and re-plan, or fix the address"
                )

    control_planes = {name: [h for h in _hosts(groups, "kube_control_plane") if h in _hosts(groups, name)] for name in plan["clusters"]}
    context = {"node_networks": networks, "ranges": ranges, "owners": owners, "vips": {}, "control_planes": control_planes,
               "addresses": parsed, "hostvars": hostvars,
               "other_hosts": [h for h in _hosts(groups, "all") if h not in parsed]}
    _check_gateway_vips(plan, groups, context)
    for name in sorted(plan["clusters"]):
        vip = _cluster_vip(name, groups, hostvars, kube_hosts)
        if vip is not None:
            _check_vip(name, vip, plan, context)
            continue
        several = control_planes[name]
        if len(several) > 1 and not any((hostvars.get(h) or {}).get("kubeadm_control_plane_endpoint") for h in several):
            _fail(
                f"cluster {name} has {len(several)} control planes ({', '.join(several)}) but no api_vip: further control planes "
                "join through one stable API address; set api_vip on the cluster's group to a free address of the control "
                "planes' node network (or kubeadm_control_plane_endpoint to a load balancer of your own)"
            )
    return result


def network_plan_hosts(plan, groups, hostvars, node_networks=None):
    """Jinja wrapper."""
    return check_hosts(plan, groups, hostvars, node_networks)


class FilterModule:
    """Archipelago's inventory checks against the network plan."""

    def filters(self):
        return {"network_plan_hosts": network_plan_hosts}
