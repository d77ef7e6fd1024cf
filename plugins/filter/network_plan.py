"""The network_plan filter: carve pod, service and global ranges for many clusters."""

from __future__ import annotations

import gc
import heapq
import itertools
import re

import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.archipelago.clusters.plugins.plugin_utils.filters import netaddr, require_netaddr

DOCUMENTATION = r"""
name: network_plan
author: Archipelago
version_added: "0.1.0"
short_description: Plan non-overlapping pod, service and global ranges for many clusters
description:
  - Turns one description of free address space and of many clusters into per-cluster pod, service
    and (island mode) global ranges that never overlap each other, any node network, or any reserved range.
  - C(flat) gives every cluster unique pod and service ranges. C(island) gives every cluster the same pod and
    service ranges, sized for the largest cluster, and a unique global range for its gateway addresses.
  - Blocks are packed largest first, each into the smallest aligned free block that holds it, which succeeds
    whenever any packing of the power-of-two blocks exists.
  - With O(lock), every cluster already in the previous plan keeps its ranges exactly; new clusters fill what is left.
options:
  _input:
    description: The plan description (the C(network_plan) inventory variable).
    type: dict
    required: true
    suboptions:
      model:
        description: C(flat) or C(island).
        type: str
      ip_families:
        description: C([ipv4]), C([ipv6]) or both in either order; the first is the primary family.
        type: list
      pools:
        description:
          - Free address space per kind (C(pods), C(services), C(global), C(load_balancers)) and family, possibly fragmented.
          - C(load_balancers) is the part of a node network set aside for LoadBalancer Services (MetalLB L2 announces
            them on the node's link); it may lie inside C(node_networks), but not inside another pool or C(reserved).
        type: dict
      node_networks:
        description: Networks the nodes live on. Nothing is allocated over them.
        type: list
      reserved:
        description: Ranges taken elsewhere. Nothing is allocated over them.
        type: list
      defaults:
        description:
          - C(nodes), C(max_pods_per_node), C(services), C(global_addresses) and C(load_balancer_addresses) for clusters
            that do not set them. C(load_balancer_addresses) defaults to 0 (no LoadBalancer range).
        type: dict
      clusters:
        description: Cluster name to its sizes (the keys of C(defaults)).
        type: dict
      release:
        description:
          - Names of clusters in the lock that are gone and whose ranges go back to the pools. A cluster in the lock
            but not in C(clusters) and not named here keeps its ranges reserved (C(retained_clusters)).
          - A name here must be in the lock and must not be in C(clusters).
        type: list
  lock:
    description:
      - The previous output of this filter (a dict), or the text of the lock file holding it, or nothing (first plan).
      - Its clusters keep their ranges. It is checked as strictly as a fresh plan; an empty or malformed lock is an error.
    type: raw
  lock_file:
    description: The lock file's path, used only to name it in error messages.
    type: str
"""

EXAMPLES = r"""
- name: Plan three flat dual-stack clusters, keeping what an earlier run allocated
  ansible.builtin.set_fact:
    plan: "{{ network_plan | archipelago.clusters.network_plan(lock=previous_plan | default(None), lock_file='network-plan.lock.yml') }}"

# network_plan:
#   model: flat
#   ip_families: [ipv4, ipv6]
#   pools:
#     pods: {ipv4: [10.32.0.0/12], ipv6: ["fd10::/48"]}
#     services: {ipv4: [10.96.0.0/12], ipv6: ["fd20::/108"]}
#   node_networks: [192.168.10.0/24]
#   clusters:
#     alpha: {nodes: 200, services: 4000}
#     beta: {}
"""

RETURN = r"""
_value:
  description: The plan. Later roles read only this.
  type: dict
  contains:
    model: {description: The model planned for., type: str}
    ip_families: {description: The families, primary first., type: list}
    pools: {description: The pools as given, normalised, for reports., type: dict}
    exclusions: {description: Node networks and reserved ranges, normalised., type: list}
    routed_pod_cidrs:
      description: Flat mode, every cluster's pod ranges per family (what must not be masqueraded); empty in island mode.
      type: dict
    clusters:
      description: Per cluster, lists in ip_families order.
      type: dict
      contains:
        pod_cidrs: {description: Pod (cluster) ranges., type: list}
        service_cidrs: {description: Service ranges., type: list}
        node_cidr_mask_sizes: {description: Per-node pod range prefix lengths., type: list}
        api_service_ips: {description: The kubernetes Service IP, the first address of each service range., type: list}
        dns_service_ips: {description: The cluster DNS IP, the tenth address of each service range., type: list}
        global_cidrs: {description: Island mode, the cluster's unique gateway ranges; empty in flat mode., type: list}
        load_balancer_cidrs:
          description: The cluster's unique LoadBalancer address ranges (MetalLB's pool), from C(pools.load_balancers);
            empty when C(load_balancer_addresses) is 0.
          type: list
        masquerade_pod_egress: {description: Whether pod egress leaving the cluster is masqueraded (island only)., type: bool}
        flannel: {description: Flannel net-conf.json keys (Network, SubnetLen, IPv6Network, IPv6SubnetLen, EnableIPv4/6)., type: dict}
        calico: {description: Calico IPPool fields per family (cidr, blockSize, natOutgoing)., type: dict}
    retained_clusters:
      description: Clusters of the lock that are not in C(clusters) and not released, exactly as the lock held them;
        their ranges stay reserved. Later plays do not see them as clusters.
      type: dict
    released_clusters: {description: The clusters of the lock released by this plan (C(release))., type: list}
"""

FILTER = "network_plan"
FAMILIES = {"ipv4": 4, "ipv6": 6}
BITS = {"ipv4": 32, "ipv6": 128}
MODELS = ("flat", "island")
POOL_KINDS = ("pods", "services", "global", "load_balancers")
CLUSTER_KEYS = ("nodes", "max_pods_per_node", "services", "global_addresses", "load_balancer_addresses")
BUILTIN_DEFAULTS = {"nodes": 3, "max_pods_per_node": 110, "services": 1024, "global_addresses": 16, "load_balancer_addresses": 0}
# Sizes that may be 0: a cluster without LoadBalancer addresses gets no load_balancers range.
ZERO_ALLOWED = ("load_balancer_addresses",)
CLUSTER_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")  # used with fullmatch: "$" would accept a trailing newline
PLAN_KEYS = ("model", "ip_families", "pools", "node_networks", "reserved", "defaults", "clusters", "release")
LOCK_FIELDS = {"pods": "pod_cidrs", "services": "service_cidrs", "global": "global_cidrs", "load_balancers": "load_balancer_cidrs"}
# Kinds a cluster may hold none of (an older lock has no load_balancer_cidrs at all).
OPTIONAL_KINDS = ("global", "load_balancers")
# Kinds whose ranges every cluster holds alone, in both models (island mode shares only pods and services).
SHARED_IN_ISLAND = ("pods", "services")

# kube-apiserver rejects a service range with more than 20 host bits: /12 for IPv4, /108 for IPv6
# (validateMaxCIDRRange in cmd/kube-apiserver/app/options/validation.go).
SERVICE_MAX_HOST_BITS = 20
# The service range must hold the API IP (index 1) and the DNS IP kubeadm derives (index 10), so at least 16
# addresses; Kubernetes itself wants at least 8.
SERVICE_MIN_HOST_BITS = 4
DNS_INDEX = 10
# kube-controller-manager's node IPAM refuses a node mask more than 16 bits longer than the cluster mask
# (clusterSubnetMaxDiff in pkg/controller/nodeipam/ipam/cidrset).
NODE_MASK_MAX_DIFF = 16
# IPv6 nodes get a /64 each, as kube-controller-manager's --node-cidr-mask-size-ipv6 default does.
IPV6_NODE_MASK = 64
# Calico IPPool blockSize bounds (docs.tigera.io, Calico IPPool reference).
CALICO_BLOCK_BOUNDS = {"ipv4": (20, 32), "ipv6": (116, 128)}


def _fail(message: str) -> None:
    raise AnsibleFilterError(f"{FILTER}: {message}")


def _host_bits(count: int) -> int:
    """Smallest h with 2**h >= count."""
    return max(0, (count - 1).bit_length())


def _family_of(net) -> str:
    return "ipv4" if net.version == 4 else "ipv6"


def _parse_cidr(value, where: str, family: str | None = None):
    """Parse a strict CIDR: no host bits, right family."""
    if not isinstance(value, str) or "/" not in value:
        _fail(f"{where}: {value!r} is not a CIDR; write it as address/prefix, e.g. 10.32.0.0/12")
    try:
        net = netaddr.IPNetwork(value)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        _fail(f"{where}: {value!r} is not a valid CIDR")
    if net.ip != net.network:
        _fail(f"{where}: {value} has host bits set; did you mean {net.cidr}?")
    if family is not None and _family_of(net) != family:
        _fail(f"{where}: {value} is an {_family_of(net)} range listed under {family}; move it under {_family_of(net)}")
    return net.cidr


def _positive_int(value, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(f"{where}: {value!r} must be a whole number of at least {minimum}")
    return value


def _size(key: str, value, where: str) -> int:
    return _positive_int(value, where, 0 if key in ZERO_ALLOWED else 1)


def _names(values) -> str:
    """Keys of any type, sorted and joined for a message (sorted() alone fails on mixed types)."""
    return ", ".join(sorted(v if isinstance(v, str) else repr(v) for v in values))


def _cidr_list(value, where: str) -> list:
    """A list of CIDRs: a string or a mapping is refused, not walked one character or key at a time."""
    if value is None:
        return []
    if not isinstance(value, list):
        hint = f"; write it as a list: [{value}]" if isinstance(value, str) else ""
        _fail(f"{where} must be a list of CIDRs, got {type(value).__name__} {value!r}{hint}")
    return value


def _cluster_name(name, where: str) -> str:
    if not isinstance(name, str) or not CLUSTER_NAME.fullmatch(name):
        _fail(f"{where}: cluster name {name!r} must start with a lowercase letter and hold only a-z, 0-9, _ and - (at most 63)")
    return name


# --------------------------------------------------------------------------------------------------------
# Input validation: everything is checked before anything is allocated.


def _normalise(spec) -> dict:
    if not isinstance(spec, dict):
        _fail(f"the plan must be a dict, got {type(spec).__name__}")
    unknown = set(spec) - set(PLAN_KEYS)
    if unknown:
        _fail(f"unknown key(s) {_names(unknown)} in the plan; known keys: {', '.join(PLAN_KEYS)}")

    model = spec.get("model")
    if not isinstance(model, str) or model not in MODELS:
        _fail(f"unknown model {model!r}; use one of: {', '.join(MODELS)}")

    families = spec.get("ip_families", ["ipv4"])
    if (
        not isinstance(families, list)
        or not 1 <= len(families) <= 2
        or any(not isinstance(f, str) or f not in FAMILIES for f in families)
        or len(set(families)) != len(families)
    ):
        _fail(f"ip_families {families!r} must be [ipv4], [ipv6], or both in either order (the first is primary)")

    pools = spec.get("pools")
    if not isinstance(pools, dict):
        _fail("pools must be a dict with pods and services (and global in island mode)")
    unknown = set(pools) - set(POOL_KINDS)
    if unknown:
        _fail(f"unknown pool kind(s) {_names(unknown)}; use {', '.join(POOL_KINDS)}")
    needed_kinds = ["pods", "services"] + (["global"] if model == "island" else [])
    norm_pools = {}
    for kind in POOL_KINDS:
        per_family = pools.get(kind)
        if per_family is None:
            per_family = {}
        if not isinstance(per_family, dict):
            _fail(f"pools.{kind} must map families to lists of CIDRs, e.g. {{ipv4: [10.32.0.0/12]}}, got {per_family!r}")
        norm_pools[kind] = {}
        for family, cidrs in per_family.items():
            if not isinstance(family, str) or family not in FAMILIES:
                _fail(f"pools.{kind}: unknown family {family!r}; use ipv4 or ipv6")
            cidrs = _cidr_list(cidrs, f"pools.{kind}.{family}")
            norm_pools[kind][family] = [_parse_cidr(c, f"pools.{kind}.{family}[{i}]", family) for i, c in enumerate(cidrs)]
        if kind in needed_kinds:
            for family in families:
                if not norm_pools[kind].get(family):
                    _fail(f"pools.{kind} has no {family} block, but ip_families includes {family}; add pools.{kind}.{family}")

    node_networks = [_parse_cidr(c, f"node_networks[{i}]") for i, c in enumerate(_cidr_list(spec.get("node_networks"), "node_networks"))]
    reserved = [_parse_cidr(c, f"reserved[{i}]") for i, c in enumerate(_cidr_list(spec.get("reserved"), "reserved"))]

    # Pools must not overlap each other: a block listed twice, or as both pods and services, is ambiguous.
    labelled = [(f"pools.{k}.{f}", n) for k in POOL_KINDS for f in norm_pools[k] for n in norm_pools[k][f]]
    _check_disjoint(labelled, "overlaps")
    # Node IPs are unique across clusters, so node networks must not overlap each other.
    _check_disjoint([(f"node_networks[{i}]", n) for i, n in enumerate(node_networks)], "overlaps")

    defaults = dict(BUILTIN_DEFAULTS)
    user_defaults = spec.get("defaults")
    if user_defaults is None:
        user_defaults = {}
    if not isinstance(user_defaults, dict):
        _fail(f"defaults must be a dict, got {user_defaults!r}")
    _check_cluster_keys(user_defaults, "defaults")
    for key, value in user_defaults.items():
        defaults[key] = _size(key, value, f"defaults.{key}")

    clusters = spec.get("clusters")
    if not isinstance(clusters, dict) or not clusters:
        _fail("clusters must be a non-empty dict of cluster name to sizes")
    for name in clusters:
        _cluster_name(name, "clusters")
    norm_clusters = {}
    for name in sorted(clusters):
        sizes = clusters[name]
        if sizes is None:
            sizes = {}
        if not isinstance(sizes, dict):
            _fail(f"cluster {name}: sizes must be a dict, got {sizes!r}")
        _check_cluster_keys(sizes, f"cluster {name}")
        norm_clusters[name] = {k: _size(k, sizes.get(k, defaults[k]), f"cluster {name}: {k}") for k in CLUSTER_KEYS}
        if norm_clusters[name]["load_balancer_addresses"]:
            for family in families:
                if not norm_pools["load_balancers"].get(family):
                    _fail(
                        f"cluster {name}: load_balancer_addresses {norm_clusters[name]['load_balancer_addresses']} needs "
                        f"pools.load_balancers.{family} (ip_families includes {family}); add a block of the node network "
                        "set aside for LoadBalancer addresses there, or set load_balancer_addresses to 0"
                    )

    release = spec.get("release")
    if release is None:
        release = []
    if not isinstance(release, list):
        _fail(f"release must be a list of cluster names, got {type(release).__name__} {release!r}")
    for name in release:
        _cluster_name(name, "release")
        if name in norm_clusters:
            _fail(
                f"release names cluster {name}, which is still in clusters; release only a cluster that is gone "
                f"(remove it from clusters), or remove {name} from release to keep it"
            )
    if len(set(release)) != len(release):
        _fail(f"release {release!r} names a cluster twice")

    return {
        "model": model,
        "ip_families": list(families),
        "pools": norm_pools,
        "node_networks": node_networks,
        "reserved": reserved,
        "clusters": norm_clusters,
        "release": sorted(release),
    }


def _check_cluster_keys(sizes: dict, where: str) -> None:
    unknown = set(sizes) - set(CLUSTER_KEYS)
    if unknown:
        _fail(f"{where}: unknown key(s) {_names(unknown)}; known keys: {', '.join(CLUSTER_KEYS)}")


def _check_disjoint(labelled: list, verb: str) -> None:
    """Fail on the first pair of overlapping networks: inside, equal or containing, in either direction."""
    ordered = sorted(labelled, key=lambda item: (item[1].version, item[1].first, -item[1].last))
    for (name_a, a), (name_b, b) in itertools.pairwise(ordered):
        if a.version == b.version and b.first <= a.last:
            _fail(f"{name_a} {a} {verb} {name_b} {b}; make them disjoint")


# --------------------------------------------------------------------------------------------------------
# Sizing: what each cluster needs, in prefix lengths.


def _node_mask(family: str, max_pods: int) -> int:
    """Each node range holds at least twice max_pods addresses (110 pods -> /24); IPv6 nodes get a /64."""
    needed = BITS[family] - _host_bits(2 * max_pods)
    return min(needed, IPV6_NODE_MASK) if family == "ipv6" else needed


def _calico_block_size(family: str, sizes: dict) -> int:
    """A Calico block per node that holds twice max_pods addresses, within Calico's bounds."""
    low, high = CALICO_BLOCK_BOUNDS[family]
    return min(max(BITS[family] - _host_bits(2 * sizes["max_pods_per_node"]), low), high)


def _requirements(name: str, sizes: dict, family: str) -> dict:
    bits = BITS[family]
    node_mask = _node_mask(family, sizes["max_pods_per_node"])
    if node_mask < 1:
        _fail(f"cluster {name}: max_pods_per_node {sizes['max_pods_per_node']} cannot fit an {family} node range")
    node_bits = _host_bits(sizes["nodes"])
    if node_bits > NODE_MASK_MAX_DIFF:
        _fail(
            f"cluster {name}: {sizes['nodes']} nodes need the node mask /{node_mask} to be {node_bits} bits longer than "
            f"the pod range mask; Kubernetes allows at most {NODE_MASK_MAX_DIFF} ({1 << NODE_MASK_MAX_DIFF} nodes)"
        )
    service_bits = max(SERVICE_MIN_HOST_BITS, _host_bits(sizes["services"] + 2))
    if service_bits > SERVICE_MAX_HOST_BITS:
        _fail(
            f"cluster {name}: {sizes['services']} services need an {family} service range of /{bits - service_bits}; "
            f"Kubernetes allows at most /{bits - SERVICE_MAX_HOST_BITS} ({1 << SERVICE_MAX_HOST_BITS} addresses)"
        )
    pods = node_mask - node_bits
    if pods < 0:
        _fail(
            f"cluster {name}: {sizes['nodes']} nodes of /{node_mask} (max_pods_per_node {sizes['max_pods_per_node']}) need "
            f"more than the whole {family} address space; lower nodes or max_pods_per_node"
        )
    global_bits = _host_bits(sizes["global_addresses"])
    if global_bits > bits:
        _fail(
            f"cluster {name}: global_addresses {sizes['global_addresses']} is more than the whole {family} address space "
            f"({1 << bits} addresses); lower global_addresses"
        )
    lb_count = sizes["load_balancer_addresses"]
    load_balancers = None
    if lb_count:
        lb_bits = _host_bits(lb_count)
        if lb_bits > bits:
            _fail(
                f"cluster {name}: load_balancer_addresses {lb_count} is more than the whole {family} address space; "
                "lower load_balancer_addresses"
            )
        load_balancers = bits - lb_bits
    return {
        "node_mask": node_mask,
        "pods": pods,
        "services": bits - service_bits,
        "global": bits - global_bits,
        "load_balancers": load_balancers,
    }


# --------------------------------------------------------------------------------------------------------
# Allocation: aligned power-of-two blocks, largest first, each into the smallest free block that holds it.


class FreeSpace:
    """The free space of one pool as aligned blocks, bucketed by prefix length (a buddy allocator)."""

    def __init__(self, family: str, free_set) -> None:
        self.bits = BITS[family]
        self.buckets: list[list[int]] = [[] for _ in range(self.bits + 1)]
        for cidr in free_set.iter_cidrs():
            self.buckets[cidr.prefixlen].append(cidr.first)
        for bucket in self.buckets:
            heapq.heapify(bucket)

    def take(self, prefixlen: int) -> int | None:
        """Allocate a /prefixlen; return its first address as an int, or None when nothing holds it."""
        for q in range(prefixlen, -1, -1):
            bucket = self.buckets[q]
            if bucket:
                start = heapq.heappop(bucket)
                for r in range(q + 1, prefixlen + 1):  # the upper halves split off stay free
                    heapq.heappush(self.buckets[r], start + (1 << (self.bits - r)))
                return start
        return None

    def free_addresses(self) -> int:
        return sum(len(b) << (self.bits - q) for q, b in enumerate(self.buckets))

    def largest(self) -> int | None:
        return next((q for q, b in enumerate(self.buckets) if b), None)


def _allocate(pool_name: str, family: str, free: FreeSpace, requests: list) -> dict:
    """requests: (prefixlen, key) pairs. Returns key -> first address. Fails saying how much is missing."""
    bits = BITS[family]
    placed = {}
    ordered = sorted(requests)  # largest blocks (shortest prefixes) first, then by name: deterministic
    for index, (prefixlen, key) in enumerate(ordered):
        start = free.take(prefixlen)
        if start is None:
            needed = sum(1 << (bits - p) for p, _ in ordered[index:])
            available = free.free_addresses()
            largest = free.largest()
            largest_text = f"/{largest}" if largest is not None else "nothing"
            _fail(
                f"the plan does not fit {pool_name}: {key} needs a /{prefixlen} but the largest free block is {largest_text}; "
                f"{len(ordered) - index} range(s) still need {needed} addresses and {available} are free, so at least "
                f"{max(needed - available, 1 << (bits - prefixlen))} more addresses are missing; add a block to {pool_name}"
            )
        placed[key] = start
    return placed


def _ip(family: str, value: int) -> str:
    """Format an address; netaddr's strategy functions skip building an object per address."""
    strategy = netaddr.strategy.ipv4 if family == "ipv4" else netaddr.strategy.ipv6
    return strategy.int_to_str(value)


def _cidr(family: str, start: int, prefixlen: int) -> str:
    return f"{_ip(family, start)}/{prefixlen}"


# --------------------------------------------------------------------------------------------------------
# The lock: ranges of clusters planned before are kept exactly.


class _LockLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice (a bad merge can leave one; PyYAML would keep the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice (a bad merge?)", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _load_lock(lock, where: str):
    """The lock as a dict: parsed from its text when given as a string; empty, unparsable or wrong shape is an error."""
    fix = "restore it from version control, or move it away to plan from scratch on purpose (renumbering destroys live clusters)"
    if isinstance(lock, str):
        if not lock.strip():
            _fail(f"{where} exists but is empty; {fix}")
        try:
            lock = yaml.load(str(lock), Loader=_LockLoader)
        except yaml.YAMLError as error:
            _fail(f"{where} is not valid YAML ({' '.join(str(error).split())}); {fix}")
        if lock is None:
            _fail(f"{where} exists but holds nothing; {fix}")
    if not isinstance(lock, dict):
        _fail(f"{where} must hold the previous plan (a mapping with model, ip_families and clusters), got {type(lock).__name__}; {fix}")
    if not lock:
        _fail(f"{where} is empty; {fix}")
    return lock


def _lock_entries(lock: dict, where: str) -> dict:
    """Every cluster the lock holds (planned or retained) -> {kind: {family: IPNetwork}}, after checking its shape."""
    fix = "restore the lock from version control"
    if lock.get("model") not in MODELS:
        _fail(f"{where}: model {lock.get('model')!r} is not one of {', '.join(MODELS)}; {fix}")
    families = lock.get("ip_families")
    if not isinstance(families, list) or not families or any(not isinstance(f, str) or f not in FAMILIES for f in families):
        _fail(f"{where}: ip_families {families!r} must be a list of ipv4 and/or ipv6; {fix}")
    entries: dict = {}
    for section in ("clusters", "retained_clusters"):
        clusters = lock.get(section)
        if clusters is None and section == "retained_clusters":
            continue  # written by versions before retained clusters existed
        if not isinstance(clusters, dict):
            _fail(f"{where}: {section} must be a mapping of cluster name to its ranges, got {clusters!r}; {fix}")
        for name, cluster in clusters.items():
            _cluster_name(name, f"{where}: {section}")
            if name in entries:
                _fail(f"{where}: cluster {name} is in both clusters and retained_clusters; {fix}")
            if not isinstance(cluster, dict):
                _fail(f"{where}: {section}.{name} must be a mapping of its ranges, got {cluster!r}; {fix}")
            entries[name] = {}
            for kind, key in LOCK_FIELDS.items():
                values = cluster.get(key, [] if kind in OPTIONAL_KINDS else None)
                if not isinstance(values, list) or (kind not in OPTIONAL_KINDS and not values):
                    _fail(f"{where}: {section}.{name}.{key} must be a list of CIDRs, one per family, got {values!r}; {fix}")
                per_family = entries[name].setdefault(kind, {})
                for i, value in enumerate(values):
                    net = _parse_cidr(value, f"{where}: {section}.{name}.{key}[{i}]")
                    family = _family_of(net)
                    if family in per_family:
                        _fail(f"{where}: {section}.{name}.{key} holds two {family} ranges, {per_family[family]} and {net}; {fix}")
                    per_family[family] = net
    return entries


def _check_lock_overlaps(model: str, entries: dict, where: str) -> None:
    """The lock's ranges follow the model's rules, as a fresh plan's do: in flat mode no two ranges share an address;
    in island mode every cluster holds the one shared pod range and the one shared service range per family, and no
    two global ranges (or a global and a shared range) share an address."""
    labelled = []
    shared: dict = {}
    for name in sorted(entries):
        for kind in POOL_KINDS:
            for family, net in sorted(entries[name].get(kind, {}).items()):
                if model == "island" and kind in SHARED_IN_ISLAND:
                    first = shared.setdefault((kind, family), (name, net))
                    if first[1] != net:
                        _fail(
                            f"{where}: island clusters share one {kind} range per family, but cluster {first[0]} holds "
                            f"{first[1]} and cluster {name} holds {net}; restore the lock from version control"
                        )
                else:
                    labelled.append((f"cluster {name}'s {kind} range", net))
    labelled += [(f"the shared island {kind} range", net) for (kind, _), (_, net) in shared.items()]
    ordered = sorted(labelled, key=lambda item: (item[1].version, item[1].first, -item[1].last, item[0]))
    for (name_a, a), (name_b, b) in itertools.pairwise(ordered):
        if a.version == b.version and b.first <= a.last:
            _fail(
                f"{where}: {name_b} {b} overlaps {name_a} {a}; {'an island' if model == 'island' else 'a flat'} plan never gives "
                "two of them one address "
                "(a bad merge of the lock?); restore the lock from version control, or release the cluster that is gone "
                "(network_plan.release)"
            )


def _read_lock(lock, lock_file, plan: dict) -> tuple[dict, dict, list]:
    """Returns ({(kind, family, cluster): IPNetwork} for every cluster the lock holds, the retained clusters' lock
    entries, the released names), after checking the lock as strictly as a fresh plan."""
    where = f"lock file {lock_file}" if lock_file else "the lock"
    if lock is None:
        if plan["release"]:
            _fail(f"release names {', '.join(plan['release'])}, but there is no lock (a first plan); remove release")
        return {}, {}, []
    lock = _load_lock(lock, where)
    entries = _lock_entries(lock, where)
    if lock["model"] != plan["model"]:
        _fail(
            f"the lock was planned for model {lock['model']!r}, the plan asks for {plan['model']!r}; changing the model "
            f"renumbers every live cluster; move the lock file away to start a new plan on purpose ({where})"
        )
    if lock["ip_families"][0] != plan["ip_families"][0]:
        _fail(
            f"the lock's primary family is {lock['ip_families'][0]}, the plan's is {plan['ip_families'][0]}; a live cluster "
            f"cannot change its primary family ({where})"
        )
    for name in plan["release"]:
        if name not in entries:
            _fail(
                f"release names cluster {name}, which {where} does not hold (already released, or a typo?); "
                f"the lock holds: {', '.join(sorted(entries))}; remove {name} from release"
            )
    for name in plan["release"]:
        del entries[name]
    _check_lock_overlaps(plan["model"], entries, where)
    old = {**(lock.get("retained_clusters") or {}), **lock["clusters"]}
    retained = {name: old[name] for name in sorted(entries) if name not in plan["clusters"]}
    locked = {
        (kind, family, name): net
        for name, kinds in entries.items()
        for kind, per_family in kinds.items()
        for family, net in per_family.items()
    }
    return locked, retained, plan["release"]


def _exclusions_for(kind: str, exclusions: list) -> list:
    """What a kind's ranges must stay out of: LoadBalancer addresses live on a node network (L2 announcement needs
    them there), so only the reserved ranges bind them; every other kind stays out of the node networks too."""
    if kind == "load_balancers":
        return [(label, net) for label, net in exclusions if label.startswith("reserved")]
    return exclusions


def _check_locked(plan: dict, locked: dict, needs: dict, exclusions: list, lock_file) -> None:
    where = f"lock file {lock_file}" if lock_file else "the lock"
    for (kind, family, name), net in sorted(locked.items(), key=lambda i: i[0]):
        if family not in plan["ip_families"]:
            continue
        # Against the pool as one set: the planner carves from adjacent blocks as one space, so a range may span two.
        pool = netaddr.IPSet(plan["pools"][kind].get(family, []))
        if net not in pool:
            _fail(
                f"cluster {name}'s locked {kind} range {net} ({where}) is no longer inside pools.{kind}.{family}; put the "
                "block back in the pool (renumbering a live cluster destroys it), or, if the cluster is gone, remove it "
                "from clusters and name it in network_plan.release"
            )
        for label, excluded in _exclusions_for(kind, exclusions):
            if excluded.version == net.version and excluded.first <= net.last and net.first <= excluded.last:
                _fail(f"cluster {name}'s locked {kind} range {net} ({where}) overlaps {label} {excluded}; move {label} elsewhere")
        if name not in needs:
            continue  # retained: no sizes to outgrow
        need = needs[name][family][kind]
        if need is None:
            continue  # a cluster that no longer asks for LoadBalancer addresses keeps its locked range until released
        if net.prefixlen > need:
            _fail(
                f"cluster {name} has outgrown its locked {kind} range {net}: its sizes now need a /{need}; lower its sizes, "
                "or renumber it on purpose by removing it from the lock (renumbering destroys a live cluster)"
            )


# --------------------------------------------------------------------------------------------------------
# The plan.


def plan_network(spec, lock=None, lock_file=None) -> dict:
    """The filter's logic: plain data in, plain data out."""
    require_netaddr("network_plan")
    # Planning allocates many small objects and frees none of them until it returns; pausing the cyclic garbage
    # collector meanwhile keeps 10,000 clusters linear (benchmarks/README.md).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _plan(spec, lock, lock_file)
    finally:
        if collecting:
            gc.enable()


def _plan(spec, lock, lock_file) -> dict:
    plan = _normalise(spec)
    families, model = plan["ip_families"], plan["model"]
    needs = {name: {f: _requirements(name, sizes, f) for f in families} for name, sizes in plan["clusters"].items()}
    exclusions = [(f"node_networks[{i}]", n) for i, n in enumerate(plan["node_networks"])]
    exclusions += [(f"reserved[{i}]", n) for i, n in enumerate(plan["reserved"])]
    locked, retained, released = _read_lock(lock, lock_file, plan)
    _check_locked(plan, locked, needs, exclusions, lock_file)

    allocated: dict = {}  # (kind, family, cluster) -> (first address, prefixlen)
    kinds = ("pods", "services", "global", "load_balancers") if model == "island" else ("pods", "services", "load_balancers")
    for kind in kinds:
        for family in families:
            # Retained clusters' ranges are taken too: nothing is handed out over them.
            taken = {name: net for (k, f, name), net in locked.items() if k == kind and f == family}
            wanted = {name: needs[name][family][kind] for name in plan["clusters"] if needs[name][family][kind] is not None}
            # A locked range of a cluster that asks for none now is kept (see _check_locked).
            wanted.update({name: net.prefixlen for name, net in taken.items() if name in plan["clusters"] and name not in wanted})
            if not wanted:
                continue
            # One set difference: removing 10,000 locked ranges one at a time took seconds.
            blocked = [n for _, n in _exclusions_for(kind, exclusions)] + list(taken.values())
            free_set = netaddr.IPSet(plan["pools"][kind].get(family, [])) - netaddr.IPSet(blocked)
            free = FreeSpace(family, free_set)
            pool_name = f"pools.{kind}.{family}"
            if model == "island" and kind in SHARED_IN_ISLAND:
                block = _shared_block(pool_name, kind, family, free, wanted, taken)
                allocated.update({(kind, family, name): block for name in wanted})
            else:
                starts = _allocate(pool_name, family, free, [(p, name) for name, p in wanted.items() if name not in taken])
                for name, prefixlen in wanted.items():
                    net = taken.get(name)
                    allocated[(kind, family, name)] = (net.first, net.prefixlen) if net else (starts[name], prefixlen)
    result = _render(plan, needs, allocated)
    result["retained_clusters"] = retained
    result["released_clusters"] = released
    return result


def _shared_block(pool_name: str, kind: str, family: str, free: FreeSpace, wanted: dict, taken: dict) -> tuple[int, int]:
    """Island mode: one range every cluster reuses, sized for the largest, or the one the lock already holds (the
    lock's check has made sure its clusters hold one and the same)."""
    if not taken:
        need = min(wanted.values())
        return _allocate(pool_name, family, free, [(need, "the shared island range")])["the shared island range"], need
    shared = next(iter(taken.values()))
    for name, prefixlen in wanted.items():
        if prefixlen < shared.prefixlen:
            _fail(
                f"cluster {name} has outgrown the locked shared island {kind} range {shared}: it needs "
                f"a /{prefixlen}; lower its sizes or start a new plan on purpose"
            )
    return shared.first, shared.prefixlen


def _render(plan: dict, needs: dict, allocated: dict) -> dict:
    families, model = plan["ip_families"], plan["model"]
    island = model == "island"
    clusters = {}
    routed: dict = {f: [] for f in families} if not island else {}
    for name, sizes in plan["clusters"].items():
        pod_cidrs, service_cidrs, global_cidrs, api_ips, dns_ips, masks = [], [], [], [], [], []
        load_balancer_cidrs = []
        flannel = {"EnableIPv4": "ipv4" in families, "EnableIPv6": "ipv6" in families}
        calico = {}
        for family in families:
            pod = _cidr(family, *allocated[("pods", family, name)])
            svc_first, svc_prefixlen = allocated[("services", family, name)]
            svc = _cidr(family, svc_first, svc_prefixlen)
            node_mask = needs[name][family]["node_mask"]
            pod_cidrs.append(pod)
            service_cidrs.append(svc)
            masks.append(node_mask)
            api_ips.append(_ip(family, svc_first + 1))
            dns_ips.append(_ip(family, svc_first + DNS_INDEX))
            if ("load_balancers", family, name) in allocated:
                load_balancer_cidrs.append(_cidr(family, *allocated[("load_balancers", family, name)]))
            if island:
                global_cidrs.append(_cidr(family, *allocated[("global", family, name)]))
            else:
                routed[family].append(pod)
            calico[family] = {"cidr": pod, "blockSize": _calico_block_size(family, sizes), "natOutgoing": island}
            if family == "ipv4":
                flannel.update({"Network": pod, "SubnetLen": node_mask})
            else:
                flannel.update({"IPv6Network": pod, "IPv6SubnetLen": node_mask})
        clusters[name] = {
            "name": name,
            "model": model,
            "ip_families": list(families),
            "nodes": sizes["nodes"],
            "max_pods_per_node": sizes["max_pods_per_node"],
            "services": sizes["services"],
            "pod_cidrs": pod_cidrs,
            "service_cidrs": service_cidrs,
            "node_cidr_mask_sizes": masks,
            "api_service_ips": api_ips,
            "dns_service_ips": dns_ips,
            "global_cidrs": global_cidrs,
            "load_balancer_addresses": sizes["load_balancer_addresses"],
            "load_balancer_cidrs": load_balancer_cidrs,
            "masquerade_pod_egress": island,
            "flannel": flannel,
            "calico": calico,
        }
    return {
        "model": model,
        "ip_families": list(families),
        "pools": {k: {f: [str(n) for n in v] for f, v in fams.items()} for k, fams in plan["pools"].items()},
        "exclusions": [str(n) for n in plan["node_networks"] + plan["reserved"]],
        "routed_pod_cidrs": routed,
        "clusters": clusters,
    }


def network_plan(spec, lock=None, lock_file=None):
    """Jinja wrapper: checks the arguments, then plans."""
    if lock_file is not None and not isinstance(lock_file, str):
        _fail(f"lock_file must be the lock file's path (a string), got {type(lock_file).__name__}")
    if lock is not None and not isinstance(lock, (dict, str)):
        _fail(f"lock must be the previous plan (a dict or its YAML text) or nothing, got {type(lock).__name__}")
    return plan_network(spec, lock, lock_file)


class FilterModule:
    """Archipelago's network planner."""

    def filters(self):
        return {"network_plan": network_plan}
