"""The island_gateway_exports filter: a gateway's egress addresses, VIPs and DNAT backends, checked."""

from __future__ import annotations

import math
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.archipelago.clusters.plugins.plugin_utils.filters import netaddr, require_netaddr

DOCUMENTATION = r"""
name: island_gateway_exports
author: Archipelago
version_added: "0.1.0"
short_description: Assign a gateway's egress addresses and export VIPs from its cluster's global range
description:
  - One call serves one IP family, O(family). The cluster's global ranges, node addresses, backends and
    LoadBalancer ranges of that family are used, the others ignored. An export is served on a family when it has a
    target of that family (node addresses of that family for a C(node_port), backends or a C(load_balancer) address of
    that family); its fixed VIP is C(vip) for IPv4 and C(vip6) for IPv6.
  - Egress addresses are the first O(egress_count) usable addresses of the cluster's global range (usable means
    not the range's first or last address).
  - Every export gets a VIP. A fixed C(vip) is used as given (several exports may share one VIP on different
    ports). An export listed in O(lock) keeps its locked VIP. Every other export takes the lowest free usable
    address, in list order. So adding an export, anywhere in the list, never moves an existing export's VIP.
  - Backends are the cluster's nodes at the export's C(node_port), the export's explicit C(backends), or one
    LoadBalancer address of the cluster (C(load_balancer), C(address) and C(port)), which must lie in the cluster's
    planned LoadBalancer ranges O(load_balancer_cidrs), and in O(internal_network) when that is given (the gateway
    reaches it on its node link, where MetalLB's L2 speaker answers for it). They are spread over O(buckets) slots
    (the least common multiple of the backend counts, at most 64, else the largest count) so that
    C(numgen inc mod buckets) picks them round-robin.
  - Every error names the offending value and the fix, and is raised before any rule is written.
options:
  _input:
    description: The exports, each C(name), C(protocol) (tcp, udp), C(port), and one target, C(node_port), C(backends)
      (a list of C(address) and C(port)) or C(load_balancer) (C(address), and C(port), by default the export's port),
      with an optional fixed C(vip) (IPv4) and C(vip6) (IPv6).
    type: list
    required: true
  global_cidrs:
    description: The cluster's global ranges (the plan's C(global_cidrs)); only the ranges of O(family) are used.
    type: list
    required: true
  nodes:
    description: Addresses of the cluster's nodes, the backends of exports with a C(node_port).
    type: list
  egress_count:
    description: How many egress addresses to reserve.
    type: int
    default: 1
  lock:
    description: Export name to VIP, as returned in C(lock) by an earlier call.
    type: dict
  nodeport_range:
    description: Lowest and highest NodePort.
    type: list
    default: [30000, 32767]
  load_balancer_cidrs:
    description: The cluster's LoadBalancer ranges (the plan's C(load_balancer_cidrs)); a C(load_balancer) target
      must lie in one of them. Empty (the default) refuses every C(load_balancer) target.
    type: list
    default: []
  internal_network:
    description: The network of the gateway's internal interface (of O(family)); when given, a C(load_balancer) target
      of that family must lie in it.
    type: str
  family:
    description: The IP family served, 4 or 6.
    type: int
    default: 4
"""

EXAMPLES = r"""
- name: Assign the gateway's addresses
  ansible.builtin.set_fact:
    gateway: "{{ exports | archipelago.clusters.island_gateway_exports(['100.64.0.16/28'], nodes=['10.0.2.11'], lock=previous) }}"

# A LoadBalancer Service's address (MetalLB) behind a global VIP:
# exports: [{name: web, protocol: tcp, port: 80, load_balancer: {address: 10.0.2.240, port: 80}}]
- name: Assign the gateway's addresses, LoadBalancer targets checked against the plan
  ansible.builtin.set_fact:
    gateway: >-
      {{ exports | archipelago.clusters.island_gateway_exports(['100.64.0.16/28'], load_balancer_cidrs=['10.0.2.240/29'],
                                                               internal_network='10.0.2.0/24') }}
"""

RETURN = r"""
_value:
  description: C(egress) (addresses), C(exports) (each with its C(vip) and C(backends); only the exports served on
    O(family)), C(buckets), C(elements) (rows of the DNAT map) and C(lock) (export name to VIP, for the next call).
  type: dict
"""

NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
PROTOCOLS = ("tcp", "udp")
TARGETS = ("node_port", "backends", "load_balancer")
MAX_BUCKETS = 64


def _fail(message: str) -> None:
    raise AnsibleFilterError(f"island_gateway_exports: {message}")


def _port(value, what: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if not 1 <= port <= 65535:
        _fail(f"{what} is {value!r}; a port is a number from 1 to 65535.")
    return port


def _address(value, what: str, version: int | None = None) -> netaddr.IPAddress:
    try:
        address = netaddr.IPAddress(str(value), flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        _fail(f"{what} is {value!r}, which is not an IP address.")
    if version is not None and address.version != version:
        _fail(f"{what} is {value}, which is not an IPv{version} address. Use an IPv{version} address"
              + (" (an export's IPv6 VIP is vip6, its IPv4 VIP is vip)." if "vip" in what else "."))
    return address


def _load_balancer(name: str, target, port: int, load_balancers: list, internal, family: int) -> tuple[str, int] | None:
    """A load_balancer target: one address of the cluster's planned LoadBalancer ranges, on the gateway's link.
    None when the address is of the other family (the export is not served on this one)."""
    if not isinstance(target, dict) or "address" not in target:
        _fail(f"export {name} has load_balancer {target!r}; give {{address: <a LoadBalancer address of the cluster>, "
              "port: <the Service's port, by default the export's port>}.")
    parsed = _address(target["address"], f"export {name}'s load_balancer address")
    target_port = _port(target.get("port", port), f"export {name}'s load_balancer port")
    if parsed.version != family:
        return None
    address = str(parsed)
    if not load_balancers:
        _fail(f"export {name} targets LoadBalancer address {address}, but the cluster has no LoadBalancer range in the "
              "plan. Give it one with network_plan.clusters.<cluster>.load_balancer_addresses (and a block of its node "
              "network in network_plan.pools.load_balancers), or target a node_port or backends instead.")
    if parsed not in netaddr.IPSet(load_balancers):
        _fail(f"export {name} targets LoadBalancer address {address}, outside the cluster's LoadBalancer ranges "
              f"{', '.join(map(str, load_balancers))} (the plan's load_balancer_cidrs). Use an address of those ranges, "
              "and pin it on the Service with the metallb.io/loadBalancerIPs annotation.")
    if internal is not None and internal.version == family and parsed not in internal:
        _fail(f"export {name} targets LoadBalancer address {address}, outside the gateway's internal network {internal}: "
              "the gateway reaches a LoadBalancer address on its node link, where MetalLB announces it. Put the cluster's "
              "pools.load_balancers block in its node network.")
    return address, target_port


def _buckets(counts: list[int]) -> int:
    lcm = 1
    for count in counts:
        lcm = math.lcm(lcm, count)
    return lcm if lcm <= MAX_BUCKETS else max(counts)


def _usable(ranges):
    """The usable addresses of the ranges, in order, lazily (an IPv6 range may be huge)."""
    for r in ranges:
        if r.size > 2:
            for index in range(1, r.size - 1):
                yield str(r[index])
        else:
            yield from (str(a) for a in r)


def assign(exports, global_cidrs, nodes=(), egress_count=1, lock=None, nodeport_range=(30000, 32767),
           load_balancer_cidrs=(), internal_network=None, family=4) -> dict:
    """Plain-data core of the filter: see DOCUMENTATION."""
    if family not in (4, 6):
        _fail(f"family is {family!r}; give 4 or 6.")
    ranges = [netaddr.IPNetwork(str(c)) for c in global_cidrs or []]
    ranges = [r for r in ranges if r.version == family]
    if not ranges:
        _fail(f"the cluster's global ranges {list(global_cidrs or [])} hold no IPv{family} range; "
              f"the plan gives island clusters one per family (pools.global.ipv{family}).")
    usable_count = sum(r.size - 2 if r.size > 2 else r.size for r in ranges)
    egress_count = int(egress_count)
    if not 1 <= egress_count < usable_count:
        _fail(f"egress_count is {egress_count}; it must be at least 1 and leave room for VIPs in {', '.join(map(str, ranges))} "
              f"({usable_count} usable addresses). Lower it, or raise the cluster's global_addresses in the plan.")
    first = _usable(ranges)
    egress = [next(first) for _ in range(egress_count)]
    in_range = netaddr.IPSet(ranges)
    low, high = (int(p) for p in nodeport_range)
    nodes = [_address(n, "a node address") for n in nodes or []]
    nodes = [str(n) for n in nodes if n.version == family]
    load_balancers = []
    for cidr in load_balancer_cidrs or []:
        try:
            network = netaddr.IPNetwork(str(cidr))
        except (netaddr.AddrFormatError, ValueError, TypeError):
            _fail(f"load_balancer_cidrs holds {cidr!r}, which is not a network; hand over the plan's load_balancer_cidrs.")
        if network.version == family:
            load_balancers.append(network)
    internal = None
    if internal_network not in (None, ""):
        try:
            internal = netaddr.IPNetwork(str(internal_network))
        except (netaddr.AddrFormatError, ValueError, TypeError):
            _fail(f"internal_network is {internal_network!r}, which is not a network; give the internal interface's CIDR.")
    vip_key = "vip" if family == 4 else "vip6"

    checked = []
    names = set()
    for index, export in enumerate(exports or []):
        if not isinstance(export, dict):
            _fail(f"export #{index + 1} is {export!r}; each export is a mapping with name, protocol, port and node_port or backends.")
        name = str(export.get("name", ""))
        if not NAME.match(name):
            _fail(f"export #{index + 1} has name {name!r}; use a DNS label (lowercase letters, digits, '-'), unique per cluster.")
        if name in names:
            _fail(f"two exports are named {name!r}; export names are unique per cluster. Rename one.")
        names.add(name)
        protocol = str(export.get("protocol", "tcp")).lower()
        if protocol not in PROTOCOLS:
            _fail(f"export {name} has protocol {protocol!r}; the choices are tcp and udp.")
        port = _port(export.get("port"), f"export {name}'s port")
        if sum(1 for key in TARGETS if key in export) != 1:
            _fail(f"export {name} needs exactly one target: node_port (a Service's NodePort, on every node), "
                  "backends (a list of address and port) or load_balancer (a LoadBalancer Service's address and port).")
        for key, version in (("vip", 4), ("vip6", 6)):
            if export.get(key) not in (None, ""):
                _address(export[key], f"export {name}'s {key}", version)
        if "load_balancer" in export:
            target = _load_balancer(name, export["load_balancer"], port, load_balancers, internal, family)
            backends = [target] if target else []
        elif "node_port" in export:
            node_port = export["node_port"]
            try:
                in_nodeport_range = low <= int(node_port) <= high
            except (TypeError, ValueError):
                in_nodeport_range = False
            if not in_nodeport_range:
                _fail(f"export {name} targets node_port {node_port!r}, outside the NodePort range {low}-{high}. "
                      "Use the Service's nodePort (kubectl get service -o jsonpath='{.spec.ports[*].nodePort}'), "
                      "or list explicit backends.")
            if not nodes and family == 4:
                _fail(f"export {name} targets node_port {node_port}, but the cluster has no node addresses; "
                      "hand them over as island_gateway_nodes.")
            backends = [(n, int(node_port)) for n in nodes]
        else:
            given = export["backends"]
            if not isinstance(given, list) or not given:
                _fail(f"export {name} has backends {given!r}; give a non-empty list of {{address: ..., port: ...}}.")
            backends = []
            for backend in given:
                if not isinstance(backend, dict):
                    _fail(f"export {name} has backend {backend!r}; each backend is {{address: ..., port: ...}}.")
                address = _address(backend.get("address"), f"export {name}'s backend address")
                backend_port = _port(backend.get("port"), f"export {name}'s backend port")
                if address.version == family:
                    backends.append((str(address), backend_port))
        vip = export.get(vip_key)
        if not backends:
            if vip not in (None, ""):
                _fail(f"export {name} has {vip_key} {vip}, but no IPv{family} target: no node address, backend or "
                      f"load_balancer address of IPv{family}. Give it an IPv{family} target, or remove {vip_key}.")
            continue  # not served on this family
        if vip not in (None, ""):
            vip = str(_address(vip, f"export {name}'s {vip_key}", family))
            if vip not in in_range:
                _fail(f"export {name} has {vip_key} {vip}, outside the cluster's global range "
                      f"{', '.join(map(str, ranges))}. Pick a {vip_key} inside it, or leave {vip_key} unset to get one assigned.")
            if vip in egress:
                _fail(f"export {name} has {vip_key} {vip}, which is an egress address of the cluster ({', '.join(egress)}). "
                      f"Pick another address of {', '.join(map(str, ranges))}, or leave {vip_key} unset.")
        else:
            vip = None
        checked.append({"name": name, "protocol": protocol, "port": port, "vip": vip, "fixed": vip is not None, "backends": backends})

    fixed = {e["vip"]: e["name"] for e in checked if e["fixed"]}
    taken = set(egress) | set(fixed)
    lock = {str(k): str(v) for k, v in (lock or {}).items()}
    # Locked exports keep their VIP first, whatever their place in the list, so new exports never move them.
    for export in checked:
        locked = lock.get(export["name"])
        if export["fixed"] or locked is None or netaddr.IPAddress(locked).version != family or locked not in in_range \
                or locked in egress:
            continue
        if locked in fixed:
            _fail(f"export {fixed[locked]} asks for {vip_key} {locked}, which export {export['name']} already holds (locked). "
                  f"Pick another {vip_key} for {fixed[locked]}, or leave it unset.")
        export["vip"] = locked
        taken.add(locked)
    free = (a for a in _usable(ranges) if a not in taken)
    for export in checked:
        if export["vip"] is None:
            export["vip"] = next(free, None)
            if export["vip"] is None:
                _fail(f"export {export['name']} gets no VIP: the global range {', '.join(map(str, ranges))} is full "
                      f"({usable_count} usable addresses, {egress_count} for egress). "
                      "Share a fixed vip across ports, or raise global_addresses in the plan.")

    seen = {}
    for export in checked:
        key = (export["vip"], export["protocol"], export["port"])
        if key in seen:
            shown = export["vip"] if family == 4 else f"[{export['vip']}]"
            _fail(f"exports {seen[key]} and {export['name']} both use {shown}:{export['port']}/{export['protocol']}. "
                  f"Give one of them another port or {vip_key}.")
        seen[key] = export["name"]

    buckets = _buckets([len(e["backends"]) for e in checked]) if checked else 1
    elements = [
        {"name": e["name"], "vip": e["vip"], "protocol": e["protocol"], "port": e["port"], "bucket": b,
         "address": e["backends"][b % len(e["backends"])][0], "target_port": e["backends"][b % len(e["backends"])][1]}
        for e in checked for b in range(buckets)
    ]
    return {
        "egress": egress,
        "exports": [{k: v for k, v in e.items() if k != "fixed"} | {"backends": [list(b) for b in e["backends"]]} for e in checked],
        "buckets": buckets,
        "elements": elements,
        "lock": {e["name"]: e["vip"] for e in checked if not e["fixed"]},
    }


def island_gateway_exports(exports, global_cidrs, nodes=None, egress_count=1, lock=None, nodeport_range=None,
                           load_balancer_cidrs=None, internal_network=None, family=4):
    """Jinja wrapper: checks the arguments, then calls assign()."""
    require_netaddr("island_gateway_exports")
    if exports is None:
        exports = []
    if not isinstance(exports, list):
        raise AnsibleFilterError(f"island_gateway_exports: the exports are {exports!r}; give a list of exports.")
    if lock is not None and not isinstance(lock, dict):
        raise AnsibleFilterError(f"island_gateway_exports: lock is {lock!r}; give the mapping of export name to VIP, or nothing.")
    if load_balancer_cidrs is not None and (isinstance(load_balancer_cidrs, (str, dict)) or not hasattr(load_balancer_cidrs, "__iter__")):
        raise AnsibleFilterError(f"island_gateway_exports: load_balancer_cidrs is {load_balancer_cidrs!r}; give a list of CIDRs "
                                 "(the plan's load_balancer_cidrs), or nothing.")
    try:
        family = int(family)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"island_gateway_exports: family is {family!r}; give 4 or 6.") from None
    return assign(exports, global_cidrs, nodes or [], egress_count, lock, nodeport_range or (30000, 32767),
                  load_balancer_cidrs or [], internal_network, family)


class FilterModule:
    def filters(self):
        return {"island_gateway_exports": island_gateway_exports}
