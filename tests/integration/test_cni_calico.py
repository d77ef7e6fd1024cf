"""The cni_calico role renders what the plan says (IPv4, IPv6, dual stack; flat and island) and refuses bad input
with a message naming the value. Runs without the lab: the role's validation and templates on localhost. Calico
running for real (its objects applied on a live API server) is proven in molecule/flat/tests/test_flat.py."""

import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml
from helpers import run_ansible
from network_plan import network_plan

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "cni_calico"

POOLS = {
    "pods": {"ipv4": ["10.32.0.0/12"], "ipv6": ["fd10::/48"]},
    "services": {"ipv4": ["10.96.0.0/12"], "ipv6": ["fd20::/108"]},
    "global": {"ipv4": ["100.64.0.0/16"], "ipv6": ["fd30::/112"]},
}


def cluster_plan(model: str, families: list[str]) -> dict:
    """The plan of one cluster, from the real planner."""
    pools = {kind: {f: ranges[f] for f in families if f in ranges} for kind, ranges in POOLS.items()}
    if model == "flat":
        del pools["global"]
    spec = {
        "model": model,
        "ip_families": families,
        "pools": pools,
        "node_networks": ["192.168.10.0/24"],
        "defaults": {"nodes": 3, "max_pods_per_node": 110, "services": 1024},
        "clusters": {"alpha": {"nodes": 20}},
    }
    return network_plan(spec)["clusters"]["alpha"]


def role_vars(plan: dict, **extra) -> dict:
    return {
        "cni_calico_pools": plan["calico"],
        "cni_calico_ip_families": plan["ip_families"],
        "cni_calico_service_cidrs": plan["service_cidrs"],
        **extra,
    }


def run_cases(tmp_path: Path, cases: dict[str, dict]) -> dict:
    """Run the role's validation, then render its three templates, for every case at once: each case is a host of
    its own (connection local) with the case's variables as host vars, rendering into tmp_path/<case>. Returns
    {case: {"failed": message or None, "docs": {file name: [objects]}}}."""
    inventory = {
        "all": {
            "hosts": {
                name: {**variables, "ansible_connection": "local", "ansible_python_interpreter": sys.executable}
                for name, variables in cases.items()
            }
        }
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    render_tasks = [
        {
            "name": f"Render {name}",
            "ansible.builtin.template": {
                "src": str(ROLE / "templates" / f"{name}.j2"),
                "dest": f"{tmp_path}/{{{{ inventory_hostname }}}}/{name}",
                "mode": "0644",
            },
        }
        for name in FILES
    ]
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "all",
                    "gather_facts": False,
                    "tasks": [
                        # public: the role's defaults stay visible to the render tasks, below the cases' host vars
                        {
                            "name": "Validate",
                            "ansible.builtin.include_role": {"name": "cni_calico", "tasks_from": "validate", "public": True},
                        },
                        {
                            "name": "Create the case directory",
                            "ansible.builtin.file": {
                                "path": f"{tmp_path}/{{{{ inventory_hostname }}}}",
                                "state": "directory",
                                "mode": "0755",
                            },
                        },
                        *render_tasks,
                    ],
                }
            ]
        )
    )
    os.environ["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    try:
        result = run_ansible("ansible-playbook", "-i", str(tmp_path / "inventory.json"), str(playbook))
    finally:
        del os.environ["ANSIBLE_STDOUT_CALLBACK"]
    report = json.loads(result.stdout)
    out = {}
    for name in cases:
        failed = None
        for play in report["plays"]:
            for task in play["tasks"]:
                host = task["hosts"].get(name, {})
                if host.get("failed"):  # a loop's message is in its failed item
                    items = [r for r in host.get("results", []) if r.get("failed")]
                    failed = (items[0] if items else host).get("msg", json.dumps(host))
        docs = {}
        if failed is None:
            docs = {f: [d for d in yaml.safe_load_all((tmp_path / name / f).read_text()) if d] for f in FILES}
        out[name] = {"failed": failed, "docs": docs}
    return out


FILES = ("calico-resources.yaml", "calico-node.yaml", "node-as-numbers.yaml")


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


CASES = [(model, families) for model in ("flat", "island") for families in (["ipv4"], ["ipv6"], ["ipv4", "ipv6"])]


PEERS = {
    "cni_calico_as_number": 4200000000,
    "cni_calico_node_to_node_mesh": False,
    "cni_calico_advertise_service_cluster_ips": True,
    "cni_calico_bgp_peers": [
        {"name": "rack1-tor", "peer_ip": "10.0.1.1", "as_number": 65001, "node_selector": "rack == 'r1'"},
        {"name": "rack2-tor-v6", "peer_ip": "fd00::2:1", "as_number": 65002},
    ],
    "cni_calico_node_as_numbers": {"w2": 65102, "w1": 65101},
}

BAD = [
    ("no calico section", {"cni_calico_pools": {}}, "must be the plan's calico section"),
    ("unknown family", {"cni_calico_ip_families": ["ipv5"]}, "family ipv5"),
    ("family without pool", {"cni_calico_ip_families": ["ipv4", "ipv6"]}, 'family ipv6 with pool "\\(none\\)"'),
    (
        "blockSize string",
        {"cni_calico_pools": {"ipv4": {"cidr": "10.32.0.0/16", "blockSize": "big", "natOutgoing": True}}},
        '"blockSize": "big"',
    ),
    (
        "blockSize too small",
        {"cni_calico_pools": {"ipv4": {"cidr": "10.32.0.0/16", "blockSize": 12, "natOutgoing": True}}},
        '"blockSize": 12',
    ),
    ("cluster AS zero", {"cni_calico_as_number": 0}, "cni_calico_as_number is 0"),
    ("cluster AS too large", {"cni_calico_as_number": 4294967296}, "cni_calico_as_number is 4294967296"),
    ("node AS", {"cni_calico_node_as_numbers": {"w1": "65001x"}}, 'node w1 has AS number "65001x"'),
    ("peer IP", {"cni_calico_bgp_peers": [{"name": "tor", "peer_ip": "10.0.1.0/24", "as_number": 65001}]}, '"peer_ip": "10.0.1.0/24"'),
    (
        "peer IP garbage",
        {"cni_calico_bgp_peers": [{"name": "tor", "peer_ip": "10.0.1.300", "as_number": 65001}]},
        '"peer_ip": "10.0.1.300"',
    ),
    ("peer AS", {"cni_calico_bgp_peers": [{"name": "tor", "peer_ip": "10.0.1.1", "as_number": 4294967296}]}, '"as_number": 4294967296'),
    ("owned pool field", {"cni_calico_ippool_extra_spec": {"ipipMode": "Always"}}, "without the fields the role owns"),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every case of this module in one ansible-playbook run (one host per case)."""
    cases = {f"{m}-{'+'.join(f)}": role_vars(cluster_plan(m, f)) for m, f in CASES}
    cases["peers"] = role_vars(cluster_plan("flat", ["ipv4", "ipv6"]), **PEERS)
    cases["extra"] = role_vars(cluster_plan("island", ["ipv4"]), cni_calico_ippool_extra_spec={"disableBGPExport": True})
    for case, change, _ in BAD:
        cases[case.replace(" ", "-")] = {**role_vars(cluster_plan("island", ["ipv4"])), **change}
    return run_cases(tmp_path_factory.mktemp("calico"), cases)


def rendered(results: dict, case: str) -> dict[str, list[dict]]:
    assert results[case]["failed"] is None, results[case]["failed"]
    return results[case]["docs"]


@pytest.mark.parametrize(("model", "families"), CASES, ids=[f"{m}-{'+'.join(f)}" for m, f in CASES])
def test_pools_follow_the_plan(results, model, families):
    plan = cluster_plan(model, families)
    docs = rendered(results, f"{model}-{'+'.join(families)}")
    pools = by_kind(docs["calico-resources.yaml"], "IPPool")
    assert [p["metadata"]["name"] for p in pools] == [f"archipelago-{f}" for f in families]
    for family, pool in zip(families, pools, strict=True):
        assert pool["apiVersion"] == "crd.projectcalico.org/v1"
        assert pool["spec"] == {
            "cidr": plan["calico"][family]["cidr"],
            "blockSize": plan["calico"][family]["blockSize"],
            "ipipMode": "Never",
            "vxlanMode": "Never",
            "natOutgoing": model == "island",
            "nodeSelector": "all()",
        }
        assert isinstance(pool["spec"]["blockSize"], int)
    assert {p["spec"]["blockSize"] for p in pools} <= {24, 120}

    config = by_kind(docs["calico-resources.yaml"], "BGPConfiguration")
    assert config == [
        {
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "BGPConfiguration",
            "metadata": {"name": "default"},
            "spec": {"asNumber": 64512, "nodeToNodeMeshEnabled": True, "logSeverityScreen": "Info"},
        }
    ]
    assert by_kind(docs["calico-resources.yaml"], "BGPPeer") == []
    assert docs["node-as-numbers.yaml"] == []

    # calico-node: BIRD, no encapsulation, no default pools, the node's InternalIP, the families of the plan.
    daemonset = by_kind(docs["calico-node.yaml"], "DaemonSet")[0]
    env = {e["name"]: e.get("value") for e in daemonset["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CALICO_NETWORKING_BACKEND"] == "bird"
    assert env["CALICO_IPV4POOL_IPIP"] == env["CALICO_IPV4POOL_VXLAN"] == env["CALICO_IPV6POOL_VXLAN"] == "Never"
    assert env["NO_DEFAULT_POOLS"] == "true"
    assert env["IP_AUTODETECTION_METHOD"] == env["IP6_AUTODETECTION_METHOD"] == "kubernetes-internal-ip"
    assert env["IP"] == ("autodetect" if "ipv4" in families else "none")
    assert env["IP6"] == ("autodetect" if "ipv6" in families else "none")
    assert env["FELIX_IPV6SUPPORT"] == str("ipv6" in families).lower()
    config_map = by_kind(docs["calico-node.yaml"], "ConfigMap")[0]
    cni = json.loads(config_map["data"]["cni_network_config"].replace("__CNI_MTU__", "0"))
    calico = cni["plugins"][0]
    assert calico["type"] == "calico"
    assert calico["ipam"] == {
        "type": "calico-ipam",
        "assign_ipv4": str("ipv4" in families).lower(),
        "assign_ipv6": str("ipv6" in families).lower(),
    }
    assert calico["mtu"] == 0  # the placeholder is a bare number once install-cni fills it in
    assert {d["kind"] for d in docs["calico-node.yaml"]} == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "DaemonSet",
    }


def test_bgp_peers_node_as_numbers_and_service_advertisement(results):
    plan = cluster_plan("flat", ["ipv4", "ipv6"])
    docs = rendered(results, "peers")
    config = by_kind(docs["calico-resources.yaml"], "BGPConfiguration")[0]["spec"]
    assert config["asNumber"] == 4200000000
    assert config["nodeToNodeMeshEnabled"] is False
    assert config["serviceClusterIPs"] == [{"cidr": c} for c in plan["service_cidrs"]]
    peers = {p["metadata"]["name"]: p["spec"] for p in by_kind(docs["calico-resources.yaml"], "BGPPeer")}
    assert peers == {
        "rack1-tor": {"peerIP": "10.0.1.1", "asNumber": 65001, "nodeSelector": "rack == 'r1'"},
        "rack2-tor-v6": {"peerIP": "fd00::2:1", "asNumber": 65002, "nodeSelector": "all()"},
    }
    nodes = docs["node-as-numbers.yaml"]
    assert [(n["kind"], n["metadata"]["name"], n["metadata"]["annotations"]) for n in nodes] == [
        ("Node", "w1", {"projectcalico.org/ASNumber": "65101"}),
        ("Node", "w2", {"projectcalico.org/ASNumber": "65102"}),
    ]


def test_extra_pool_fields_are_merged(results):
    docs = rendered(results, "extra")
    pool = by_kind(docs["calico-resources.yaml"], "IPPool")[0]["spec"]
    assert pool["disableBGPExport"] is True
    assert pool["ipipMode"] == "Never"


@pytest.mark.parametrize(("case", "change", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_with_the_value(results, case, change, message):
    failed = results[case.replace(" ", "-")]["failed"]
    assert failed is not None, f"{case}: accepted"
    assert failed.startswith("cni_calico: "), failed
    assert re.search(message, failed), failed
