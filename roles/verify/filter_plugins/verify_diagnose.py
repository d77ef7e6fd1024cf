"""The verify_diagnose filter: what commonly breaks the plan's networks, judged from one host's read-only state."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.archipelago.clusters.plugins.plugin_utils.filters import netaddr, require_netaddr

DOCUMENTATION = r"""
name: verify_diagnose
author: Archipelago
version_added: "0.1.0"
short_description: Judges one host's routes, MTUs, sysctls, gateway rules and BGP sessions against the plan
description:
  - The input is what the verify role's diagnose entry point reads on a host (C(ip -j route), C(ip -j -6 route),
    C(ip -d -j link), sysctls, and when present a gateway's rules state and FRR's C(show bgp summary json)).
  - Nodes, the sysctls a node needs (IPv4 forwarding, bridge-nf-call for the cluster's families); a VXLAN overlay whose MTU
    leaves no room for the encapsulation on its underlying interface; routes that overlap the cluster's pod or
    service ranges without being the CNI's, or the same destination twice; a missing route to another cluster's
    global range (island) or pod range (flat).
  - Gateways, forwarding on, the loaded rules equal to the rules file and the file the one the unit last loaded,
    routes to the peers' global ranges. Routers, forwarding, routes to every cluster's pod ranges, BGP sessions.
options:
  _input:
    description: The host's state, as the diagnose entry point gathers it.
    type: dict
    required: true
  plan:
    description: The whole network plan (playbooks/plan.yml's archipelago_plan).
    type: dict
    required: true
  host:
    description: The host's inventory name (the first column of the report).
    type: str
    required: true
  cluster:
    description: The host's cluster (cluster_name, or a gateway's gateway_cluster); empty for a router.
    type: str
  kind:
    description: node, gateway or router.
    type: str
    choices: [node, gateway, router]
"""

EXAMPLES = r"""
- name: Judge this host
  ansible.builtin.set_fact:
    verify__results: "{{ state.stdout | from_json | verify_diagnose(archipelago_plan, host=inventory_hostname, cluster='alpha') }}"
"""

RETURN = r"""
_value:
  description: Report records (cluster is the host's name), PASS, FAIL or SKIP with the reason.
  type: list
"""

CNI_DEVICES = ("flannel.1", "flannel-v6.1", "cni0", "vxlan.calico", "vxlan-v6.calico", "tunl0")
VXLAN_OVERHEAD = {4: 50, 6: 70}


def _rec(host: str, check: str, status: str, reason: str, family: str = "") -> dict:
    return {"cluster": host, "pair": "", "check": check, "family": family, "target": "", "status": status, "reason": reason}


def _network(dst: str):
    if dst == "default":
        return None
    try:
        return netaddr.IPNetwork(dst)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return None


def _describe(route: dict) -> str:
    via = f" via {route['gateway']}" if route.get("gateway") else ""
    return f"{route.get('dst')}{via} dev {route.get('dev', '?')}"


def _is_cni(route: dict) -> bool:
    dev = route.get("dev", "")
    return route.get("type") in ("blackhole", "unreachable") or dev in CNI_DEVICES or dev.startswith(("cali", "veth"))


def _routes(state: dict) -> list:
    """IPv4 and IPv6 routes of the main table, each tagged with its family."""
    tagged = [{**r, "_v": 4} for r in state.get("routes") or []] + [{**r, "_v": 6} for r in state.get("routes6") or []]
    kept = [r for r in tagged if r.get("type", "unicast") in ("unicast", "blackhole", "unreachable")]
    # Link-local routes (fe80::/64 on every interface, 169.254/16) are per interface by design: never an overlap.
    return [r for r in kept if (_network(r.get("dst", "")) is None or not _network(r.get("dst", "")).ip.is_link_local())]


def _covered(routes: list, cidr: str) -> str | None:
    target = netaddr.IPNetwork(cidr)
    for route in routes:
        network = _network(route.get("dst", ""))
        if network is not None and network.version == target.version and target in network and route.get("type", "unicast") == "unicast":
            return _describe(route)
    for route in routes:
        if route.get("dst") == "default" and route.get("type", "unicast") == "unicast" and route["_v"] == target.version:
            return f"the default route ({_describe(route)})"
    return None


def _sysctls(host: str, state: dict, keys: list) -> list:
    values = state.get("sysctl") or {}
    records = []
    for key in keys:
        value = values.get(key, "")
        if value == "1":
            records.append(_rec(host, f"sysctl {key}", "PASS", "1"))
        elif value == "":
            hint = " (br_netfilter not loaded?)" if "bridge" in key else ""
            records.append(_rec(host, f"sysctl {key}", "FAIL", f"missing{hint}; it must be 1"))
        else:
            records.append(_rec(host, f"sysctl {key}", "FAIL", f"is {value}; it must be 1"))
    return records


def _mtu(host: str, state: dict) -> list:
    links = {link.get("ifname"): link for link in state.get("links") or []}
    records = []
    for name, link in sorted(links.items()):
        info = (link.get("linkinfo") or {})
        if info.get("info_kind") != "vxlan":
            continue
        data = info.get("info_data") or {}
        under = links.get(data.get("link"))
        if under is None:
            records.append(_rec(host, f"mtu {name}", "SKIP", "the VXLAN device names no underlying interface"))
            continue
        version = 6 if data.get("local6") or ":" in str(data.get("local", "")) else 4
        room = int(under.get("mtu", 0)) - VXLAN_OVERHEAD[version]
        mtu = int(link.get("mtu", 0))
        if mtu > room:
            records.append(_rec(host, f"mtu {name}", "FAIL",
                                f"{name} has MTU {mtu} but {under['ifname']} ({under.get('mtu')}) leaves {room} after the VXLAN "
                                f"header ({VXLAN_OVERHEAD[version]} bytes): large packets between nodes are dropped; "
                                f"set the overlay MTU to {room}"))
        else:
            records.append(_rec(host, f"mtu {name}", "PASS", f"{mtu} fits in {under['ifname']}'s {under.get('mtu')} with the VXLAN header"))
    return records or [_rec(host, "mtu overlay", "SKIP", "no VXLAN overlay device on this host")]


def _overlaps(host: str, routes: list, me: dict) -> dict:
    pods = [netaddr.IPNetwork(c) for c in me.get("pod_cidrs") or []]
    services = [netaddr.IPNetwork(c) for c in me.get("service_cidrs") or []]
    problems = []
    seen = {}
    for route in routes:
        network = _network(route.get("dst", ""))
        if network is None:
            continue
        key = str(network)
        if key in seen:
            problems.append(f"{network} twice ({seen[key]}; {_describe(route)})")
        seen[key] = _describe(route)
        for pod in pods:
            if pod.version != network.version:
                continue
            if pod in network and network != pod:
                problems.append(f"{_describe(route)} covers the pod range {pod}")
            elif network in pod and not _is_cni(route):
                problems.append(f"{_describe(route)} lies in the pod range {pod} but is not the CNI's")
        for service in services:
            if service.version == network.version and (network in service or service in network):
                problems.append(f"{_describe(route)} overlaps the service range {service}, which is never routed")
    if problems:
        return _rec(host, "routes overlap", "FAIL", "; ".join(problems))
    return _rec(host, "routes overlap", "PASS", "no route overlaps the cluster's pod or service ranges but the CNI's")


def _missing(host: str, routes: list, wanted: dict) -> dict:
    missing = [f"{cidr} ({why})" for cidr, why in wanted.items() if _covered(routes, cidr) is None]
    if missing:
        return _rec(host, "routes missing", "FAIL", "no route to " + ", ".join(missing))
    return _rec(host, "routes missing", "PASS", f"a route to each of {', '.join(wanted) or '(nothing to route)'}")


def _bgp(host: str, state: dict) -> list:
    if "bgp" not in state:
        return []
    peers = {}
    for family, summary in (state.get("bgp") or {}).items():
        for address, peer in ((summary or {}).get("peers") or {}).items():
            peers[f"{address} ({family})"] = peer.get("state", "unknown")
    if not peers:
        return [_rec(host, "bgp sessions", "SKIP", "FRR has no BGP neighbours")]
    down = [f"{p}: {s}" for p, s in sorted(peers.items()) if s != "Established"]
    if down:
        return [_rec(host, "bgp sessions", "FAIL", "not Established: " + ", ".join(down))]
    return [_rec(host, "bgp sessions", "PASS", f"{len(peers)} session(s) Established")]


def verify_diagnose(state: dict, plan: dict, host: str, cluster: str = "", kind: str = "node") -> list:
    """Plain-data core of the filter: see DOCUMENTATION."""
    require_netaddr("verify_diagnose")
    if not isinstance(state, dict) or "routes" not in state:
        raise AnsibleFilterError(f"verify_diagnose: expected the host state read by the verify role's diagnose, got {state!r}"[:300])
    if kind not in ("node", "gateway", "router"):
        raise AnsibleFilterError(f"verify_diagnose: kind must be node, gateway or router, got {kind!r}")
    clusters = (plan or {}).get("clusters") or {}
    if kind != "router" and cluster not in clusters:
        raise AnsibleFilterError(f"verify_diagnose: host {host} belongs to cluster {cluster!r}, which is not in the plan "
                                 f"({', '.join(clusters)})")
    routes = _routes(state)
    records = []
    if kind == "node":
        me = clusters[cluster]
        families = me.get("ip_families") or ["ipv4"]
        keys = (["net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"] if "ipv4" in families else [])
        keys += (["net.ipv6.conf.all.forwarding", "net.bridge.bridge-nf-call-ip6tables"] if "ipv6" in families else [])
        records += _sysctls(host, state, keys)
        records += _mtu(host, state)
        records.append(_overlaps(host, routes, me))
        others = {n: c for n, c in clusters.items() if n != cluster}
        if me.get("model") == "island":
            wanted = {cidr: f"{n}'s global range" for n, c in others.items() for cidr in c.get("global_cidrs") or []}
        else:
            wanted = {cidr: f"{n}'s pods" for n, c in others.items() for cidr in c.get("pod_cidrs") or []}
        records.append(_missing(host, routes, wanted))
    elif kind == "gateway":
        records += _sysctls(host, state, ["net.ipv4.ip_forward"])
        gateway = state.get("gateway")
        if gateway is None:
            records.append(_rec(host, "gateway rules", "FAIL", "no rules file: the island_gateway role has not run here"))
        elif gateway.get("stamp") != "same":
            records.append(_rec(host, "gateway rules", "FAIL", "the rules file is not the one the unit last loaded (a run stopped before "
                                                                "its reload, or the file was edited): run playbooks/gateways.yml"))
        elif gateway.get("rules") != "same":
            diff = " ".join(str(gateway.get("rules")).split())[:300]
            records.append(_rec(host, "gateway rules", "FAIL",
                                f"the loaded table differs from the rules file (changed by hand?): {diff}; reload archipelago-gateway"))
        else:
            records.append(_rec(host, "gateway rules", "PASS", "the loaded table is the rules file, the one the unit last loaded"))
        wanted = {cidr: f"{n}'s global range" for n, c in clusters.items() if n != cluster for cidr in c.get("global_cidrs") or []}
        records.append(_missing(host, routes, wanted))
    else:
        records += _sysctls(host, state, ["net.ipv4.ip_forward"])
        wanted = {cidr: f"{n}'s pods" for n, c in clusters.items() for cidr in c.get("pod_cidrs") or []}
        records.append(_missing(host, routes, wanted))
    records += _bgp(host, state)
    return records


class FilterModule:
    def filters(self):
        return {"verify_diagnose": verify_diagnose}
