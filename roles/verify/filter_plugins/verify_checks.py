"""The verify role's check builders: what to probe from where, and the checks read from the cluster's state.

Several small filters in one file, unlike the one-filter-per-file rule of filter_plugins/: they share the pod
description of verify_pods, and a role's filter_plugins directory cannot import a sibling module (the shared
netaddr guard comes from the collection's plugins/plugin_utils, as for every filter).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.archipelago.clusters.plugins.plugin_utils.filters import netaddr, require_netaddr

DOCUMENTATION = r"""
name: verify_pods
author: Archipelago
version_added: "0.1.0"
short_description: The verify role's probe lists and static checks (verify_pods, verify_static, verify_*_probes)
description:
  - C(verify_pods) turns the test namespace's pod list into the client and the servers with their nodes and addresses.
  - C(verify_static) checks every node Ready, the node pod ranges and kubeadm's pod and service ranges against the plan.
  - C(verify_inside_probes), C(verify_outbound_probes) and C(verify_inbound_probes) list the probes of one cluster;
    each item has C(check), C(family), C(pair), C(target), C(address) (a socat address) and C(expect) or C(closed),
    or a C(skip_reason) or C(fail_reason) when the probe cannot be made.
options:
  _input:
    description: The pods' C(items) (verify_pods), or verify_pods' result (the probe lists).
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Note the pods
  ansible.builtin.set_fact:
    verify__pods: "{{ (pods.stdout | from_json)['items'] | verify_pods }}"
"""

RETURN = r"""
_value:
  description: See the description of each filter.
  type: raw
"""

FAMILY = {4: "ipv4", 6: "ipv6"}


def _family(address: str) -> str:
    return FAMILY[netaddr.IPAddress(address).version]


def socat_address(address: str, port: int, family: str) -> str:
    """A socat client address of the right family (IPv6 literals in brackets)."""
    if family == "ipv6":
        host = address if not _is_ip(address) else f"[{address}]"
        return f"TCP6:{host}:{port}"
    return f"TCP4:{address}:{port}"


def _is_ip(text: str) -> bool:
    try:
        netaddr.IPAddress(text)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return False
    return True


def _ready(pod: dict) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def verify_pods(items: list) -> dict:
    """The client pod and the servers (one per node): name, node, ready, addresses by family."""
    require_netaddr("verify_pods")
    if not isinstance(items, list):
        raise AnsibleFilterError(f"verify_pods: expected the list of pods (items of kubectl get pods -o json), got {items!r}")
    result = {"client": None, "servers": []}
    for pod in items:
        status = pod.get("status") or {}
        ips = {}
        for entry in status.get("podIPs") or ([{"ip": status["podIP"]}] if status.get("podIP") else []):
            ips.setdefault(_family(entry["ip"]), entry["ip"])
        described = {"name": pod["metadata"]["name"], "node": (pod.get("spec") or {}).get("nodeName", ""), "ready": _ready(pod),
                     "ips": ips, "phase": status.get("phase", "")}
        role = (pod["metadata"].get("labels") or {}).get("app.kubernetes.io/name")
        if role == "client":
            result["client"] = described
        elif role == "server":
            result["servers"].append(described)
    result["servers"].sort(key=lambda s: s["name"])
    return result


def _condition(node: dict, kind: str) -> str:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c.get("status", "Unknown")
    return "Unknown"


def _inside(cidr: str, ranges: list) -> bool:
    network = netaddr.IPNetwork(cidr)
    return any(network in netaddr.IPNetwork(r) for r in ranges)


def _record(cluster: str, check: str, ok: bool, reason: str, family: str = "") -> dict:
    return {"cluster": cluster, "pair": "", "check": check, "family": family, "target": "",
            "status": "PASS" if ok else "FAIL", "reason": reason}


def _flag(pod: dict, name: str) -> str | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for arg in (container.get("command") or []) + (container.get("args") or []):
            if arg.startswith(f"--{name}="):
                return arg.split("=", 1)[1]
    return None


def verify_static(state: list, plan: dict, cluster: str) -> list:
    """[nodes, kubeadm ClusterConfiguration, kube-apiserver pods, the wait result] against the cluster's plan."""
    require_netaddr("verify_static")
    if not isinstance(state, list) or len(state) != 4:
        raise AnsibleFilterError(f"verify_static: expected [nodes, kubeadm configuration, apiserver pods, wait result], got {state!r}")
    nodes, kubeadm, apiservers, waited = state
    kubeadm = kubeadm or {}
    records = []

    not_ready = [n["metadata"]["name"] for n in nodes if _condition(n, "Ready") != "True"]
    records.append(_record(cluster, "nodes-ready", bool(nodes) and not not_ready,
                           f"{len(nodes)} node(s), all Ready" if nodes and not not_ready
                           else f"not Ready: {', '.join(not_ready) or '(no nodes)'}"))

    pod_cidrs = plan.get("pod_cidrs") or []
    outside, missing = [], []
    for node in nodes:
        cidrs = (node.get("spec") or {}).get("podCIDRs") or []
        if not cidrs:
            missing.append(node["metadata"]["name"])
        outside += [f"{node['metadata']['name']} {c}" for c in cidrs if not _inside(c, pod_cidrs)]
    subnet = (kubeadm.get("networking") or {}).get("podSubnet", "")
    planned = ",".join(pod_cidrs)
    problems = ([f"kubeadm podSubnet {subnet or '(unset)'} is not the plan's {planned}"] if subnet != planned else [])
    problems += [f"outside {planned}: {', '.join(outside)}"] if outside else []
    problems += [f"no podCIDR: {', '.join(missing)}"] if missing else []
    records.append(_record(cluster, "pod-range", not problems,
                           "; ".join(problems) or f"podSubnet and every node's podCIDRs inside {planned}"))

    service = (kubeadm.get("networking") or {}).get("serviceSubnet", "")
    planned = ",".join(plan.get("service_cidrs") or [])
    problems = [f"kubeadm serviceSubnet {service or '(unset)'} is not the plan's {planned}"] if service != planned else []
    flags = {p["metadata"]["name"]: _flag(p, "service-cluster-ip-range") for p in apiservers}
    problems += [f"{name} has --service-cluster-ip-range={flag}" for name, flag in sorted(flags.items()) if flag != planned]
    problems += ["no kube-apiserver pod found"] if not flags else []
    records.append(_record(cluster, "service-range", not problems,
                           "; ".join(problems) or f"kubeadm and {len(flags)} kube-apiserver(s) use {planned}"))

    records.append(_record(cluster, "test-pods-ready", waited.get("rc") == 0,
                           "every test pod Ready" if waited.get("rc") == 0
                           else f"not all test pods Ready: {' '.join((waited.get('stderr') or waited.get('stdout') or '').split())[:200]}"))
    return records


def _probe(check: str, family: str, target: str, address: str, **extra) -> dict:
    return {"check": check, "family": family, "target": target, "address": address, "pair": "", **extra}


def _server_on(pods: dict, node: str | None, other: bool = False) -> dict | None:
    for server in pods.get("servers") or []:
        if server["ready"] and ((server["node"] != node) if other else (server["node"] == node)):
            return server
    return None


def verify_inside_probes(pods: dict, families: list, port: int) -> list:
    """Containers of one pod over localhost, pods on one node, pods across nodes, a Service by name; per family."""
    require_netaddr("verify_inside_probes")
    client = pods.get("client")
    probes = []
    for family in families:
        loopback = "127.0.0.1" if family == "ipv4" else "::1"
        if client is None or not client["ready"] or family not in client["ips"]:
            why = "the client pod is not Ready or has no address of this family"
            probes += [_probe(c, family, "client", "", pod="client", container="client", fail_reason=why)
                       for c in ("pod-localhost", "pod-same-node", "pod-cross-node", "service-dns")]
            continue
        me = client["ips"][family]
        same = _server_on(pods, client["node"])
        across = _server_on(pods, client["node"], other=True)
        if same is None:
            probes.append(_probe("pod-localhost", family, "server sidecar", "", pod="", container="sidecar",
                                 fail_reason=f"no Ready server pod on {client['node']}"))
            probes.append(_probe("pod-same-node", family, "server", "", pod="client", container="client",
                                 fail_reason=f"no Ready server pod on {client['node']}"))
        else:
            probes.append(_probe("pod-localhost", family, f"{same['name']} sidecar to {loopback}",
                                 socat_address(loopback, port, family), pod=same["name"], container="sidecar", expect=loopback))
            probes.append(_probe("pod-same-node", family, f"client to {same['name']} ({same['ips'].get(family)}) on {same['node']}",
                                 socat_address(same["ips"].get(family, ""), port, family), pod="client", container="client", expect=me))
        if across is None:
            others = [s for s in pods["servers"] if s["node"] != client["node"]]
            reason = {"skip_reason": "the cluster has one node"} if not others else \
                {"fail_reason": f"no Ready server pod on another node ({', '.join(s['name'] + ' on ' + s['node'] for s in others)})"}
            probes.append(_probe("pod-cross-node", family, "server on another node", "", pod="client", container="client", **reason))
        else:
            probes.append(_probe("pod-cross-node", family, f"client to {across['name']} ({across['ips'].get(family)}) on {across['node']}",
                                 socat_address(across["ips"].get(family, ""), port, family), pod="client", container="client", expect=me))
        probes.append(_probe("service-dns", family, f"client to Service server:{port}", socat_address("server", port, family),
                             pod="client", container="client", expect=me))
    return probes


def verify_outbound_probes(pods: dict, cluster: str, plan: dict, peers=(), island=None, external=(), port=8080, external_port=9000) -> list:
    """From the client pod: flat, every peer's server pod by IP (source kept); island, every peer's export VIP (the
    peer sees this cluster's egress address) and every external host (it sees the egress address too)."""
    require_netaddr("verify_outbound_probes")
    me = plan["clusters"][cluster]
    client = pods.get("client") or {"ready": False, "ips": {}}
    island = island or {}
    probes = []
    for peer_pods, peer in peers:
        pair = f"{cluster}->{peer}"
        if me["model"] == "flat":
            for family in [f for f in me["ip_families"] if f in plan["clusters"][peer]["ip_families"]]:
                server = _server_on(peer_pods or {}, None, other=True)
                if server is None or family not in client["ips"]:
                    why = f"no Ready server pod in {peer}" if server is None else "the client pod has no address of this family"
                    probes.append(_probe("cross-cluster-pod", family, peer, "", pair=pair, fail_reason=why))
                    continue
                probes.append(_probe("cross-cluster-pod", family, f"{server['name']} in {peer} ({server['ips'].get(family)})",
                                     socat_address(server["ips"].get(family, ""), port, family), pair=pair, expect=client["ips"][family]))
        else:
            target = island.get(peer) or {}
            if not target.get("vip"):
                probes.append(_probe("cross-cluster-export", "ipv4", peer, "", pair=pair,
                                     skip_reason=target.get("why", f"no gateway export for the checks in {peer}")))
                continue
            probes.append(_probe("cross-cluster-export", "ipv4", f"{peer}'s VIP {target['vip']}:{target['export']['port']}",
                                 socat_address(target["vip"], target["export"]["port"], "ipv4"), pair=pair,
                                 expect=(island.get(cluster) or {}).get("egress", "(no egress address)")))
    if me["model"] == "island":
        for host in external:
            address = next((a for a in host.get("addresses", []) if _family(a) == "ipv4"), None)
            pair = f"{cluster}->{host['name']}"
            if address is None:
                probes.append(_probe("egress-external", "ipv4", host["name"], "", pair=pair,
                                     fail_reason=f"{host['name']} has no IPv4 address"))
                continue
            probes.append(_probe("egress-external", "ipv4", f"{host['name']} ({address}:{external_port})",
                                 socat_address(address, external_port, "ipv4"), pair=pair,
                                 expect=(island.get(cluster) or {}).get("egress", "(no egress address)")))
    if client is None or not client.get("ready"):
        probes = [{**p, "fail_reason": "the client pod is not Ready"} if "skip_reason" not in p else p for p in probes]
    return probes


def verify_inbound_probes(pods: dict, cluster: str, plan: dict, island=None, external=(), port=8080, closed_ports=()) -> list:
    """From each external host: flat, a server pod by IP (it sees the host's own address); island, the export's VIP
    (likewise), and nothing else answering on the VIP or the egress address."""
    require_netaddr("verify_inbound_probes")
    me = plan["clusters"][cluster]
    gateway = (island or {}).get(cluster) or {}
    probes = []
    for host in external:
        pair = f"{host['name']}->{cluster}"
        base = {"pair": pair, "host": host["name"]}
        if me["model"] == "flat":
            server = _server_on(pods, None, other=True)
            for family in [f for f in me["ip_families"] if any(_family(a) == f for a in host.get("addresses", []))]:
                if server is None or family not in server["ips"]:
                    probes.append(_probe("external-to-pod", family, "server", "", fail_reason="no Ready server pod", **base))
                    continue
                probes.append(_probe("external-to-pod", family, f"{server['name']} ({server['ips'][family]})",
                                     socat_address(server["ips"][family], port, family), expect=host["addresses"], **base))
            continue
        if not gateway.get("vip"):
            why = gateway.get("why", f"no gateway export for the checks in {cluster}")
            probes.append(_probe("ingress-vip", "ipv4", cluster, "", skip_reason=why, **base))
            probes.append(_probe("gateway-closed", "ipv4", cluster, "", skip_reason=why, **base))
            continue
        vip, export = gateway["vip"], gateway["export"]
        probes.append(_probe("ingress-vip", "ipv4", f"VIP {vip}:{export['port']}", socat_address(vip, export["port"], "ipv4"),
                             expect=host["addresses"], **base))
        closed = [(vip, p) for p in closed_ports if p != export["port"]]
        closed += [(vip, export["node_port"])] if export["node_port"] != export["port"] else []
        closed += [(gateway["egress"], export["port"])] if gateway.get("egress") else []
        probes += [_probe("gateway-closed", "ipv4", f"{a}:{p}", socat_address(a, p, "ipv4"), closed=True, **base) for a, p in closed]
    return probes


class FilterModule:
    def filters(self):
        return {"verify_pods": verify_pods, "verify_static": verify_static, "verify_inside_probes": verify_inside_probes,
                "verify_outbound_probes": verify_outbound_probes, "verify_inbound_probes": verify_inbound_probes}
