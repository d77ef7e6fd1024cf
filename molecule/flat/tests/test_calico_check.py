"""The cni_calico role's check entry point against the live alpha cluster and Calico's real CRDs: every object of a
calico rendering of alpha's flat plan passes the API server's server-side dry run, nothing but the CRDs is applied,
deliberately wrong objects are refused by the same CRDs (so the check can fail), and the BGP side matches the FRR
router's neighbors built from the same inventory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from scenario import inventory_nodes

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(__file__).resolve().parents[1] / "calico-check.yml"
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
CALICO_DIR = "/etc/archipelago/calico"
DRY_RUN_TASK = "Dry-run every rendered object on the API server"


@pytest.fixture(scope="module")
def cp():
    return testinfra.get_host("podman://arch-mol-flat-alpha-cp1")


def check(*extra_vars: dict) -> tuple[subprocess.CompletedProcess, dict]:
    """Run molecule/flat/calico-check.yml against this scenario's inventory; return the process and the json
    callback's report."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
    }
    inventory = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"
    args = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(PLAYBOOK)]
    for extra in extra_vars:
        args += ["-e", json.dumps(extra)]
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    return result, json.loads(result.stdout)


def task_result(report: dict, name: str, host: str = "alpha-cp1") -> dict:
    for play in report["plays"]:
        for task in play["tasks"]:
            # a role's task is named "<role> : <task>"
            if task["task"]["name"].split(" : ")[-1] == name and host in task["hosts"]:
                return task["hosts"][host]
    raise AssertionError(f"task {name!r} did not run on {host}")


def failure(report: dict, host: str = "alpha-cp1") -> str:
    """The stderr and messages of every failed task (and failed loop item) on host."""
    out = []
    for play in report["plays"]:
        for task in play["tasks"]:
            result = task["hosts"].get(host, {})
            if result.get("failed"):
                for item in [result, *result.get("results", [])]:
                    if item.get("failed"):
                        out.append(f"{task['task']['name']}: {item.get('msg', '')} {item.get('stderr', '')}")
    return "\n".join(out)


@pytest.fixture(scope="module")
def good(cp):
    result, report = check()
    assert result.returncode == 0, failure(report) or result.stderr
    return report


def rendered_objects(cp) -> list[tuple[str, dict]]:
    objects = []
    for name in ("calico-resources.yaml", "calico-node.yaml", "node-as-numbers.yaml"):
        text = cp.file(f"{CALICO_DIR}/{name}").content_string
        objects += [(name, d) for d in yaml.safe_load_all(text) if d]
    return objects


def test_the_dry_run_accepts_every_rendered_object(cp, good):
    dry_run = task_result(good, DRY_RUN_TASK)
    accepted = "\n".join(item["stdout"] for item in dry_run["results"])
    objects = rendered_objects(cp)
    kinds = {d["kind"] for _, d in objects}
    assert {"IPPool", "BGPConfiguration", "BGPPeer", "Node", "DaemonSet", "ServiceAccount", "ClusterRole", "ConfigMap"} <= kinds
    for item in dry_run["results"]:
        assert item["rc"] == 0, item["stderr"]
    for _, obj in objects:
        # kubectl prints "<resource>[.<group>]/<name> serverside-applied (server dry run)" for each object
        name = obj["metadata"]["name"]
        lines = [line for line in accepted.splitlines() if line.split(" ")[0].endswith(f"/{name}") and "(server dry run)" in line]
        assert lines, f"{obj['kind']} {name} is not in the dry run's output:\n{accepted}"
    assert len(accepted.splitlines()) == len(objects)


def test_the_pools_are_the_plan(cp, good):
    lock = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "network-plan.lock.yml"
    plan = yaml.safe_load(lock.read_text())["clusters"]["alpha"]
    pools = [d for _, d in rendered_objects(cp) if d["kind"] == "IPPool"]
    assert [p["spec"]["cidr"] for p in pools] == [plan["calico"][f]["cidr"] for f in plan["ip_families"]]
    for pool in pools:
        assert pool["spec"]["ipipMode"] == pool["spec"]["vxlanMode"] == "Never"
        assert pool["spec"]["natOutgoing"] is False  # flat: pod IPs leave untranslated


def test_only_the_crds_are_applied(cp, good):
    crds = json.loads(cp.check_output(f"{KUBECTL} get crd -o json"))["items"]
    names = {c["metadata"]["name"] for c in crds}
    assert {"ippools.crd.projectcalico.org", "bgpconfigurations.crd.projectcalico.org", "bgppeers.crd.projectcalico.org"} <= names
    for resource in ("ippools", "bgpconfigurations", "bgppeers"):
        assert json.loads(cp.check_output(f"{KUBECTL} get {resource}.crd.projectcalico.org -o json"))["items"] == []
    assert cp.run(f"{KUBECTL} -n kube-system get daemonset calico-node").rc != 0
    nodes = json.loads(cp.check_output(f"{KUBECTL} get nodes -o json"))["items"]
    assert {n["metadata"]["name"] for n in nodes} == inventory_nodes("alpha")
    for node in nodes:
        assert "projectcalico.org/ASNumber" not in node["metadata"].get("annotations", {})


def test_a_second_check_changes_nothing(good):
    result, report = check()
    assert result.returncode == 0, failure(report)
    changed = [(t["task"]["name"]) for p in report["plays"] for t in p["tasks"] if t["hosts"].get("alpha-cp1", {}).get("changed")]
    assert changed == []


def test_the_check_fails_on_a_wrong_pool(good):
    result, report = check({"cni_calico_ippool_extra_spec": {"ipipMod": "Never"}, "cni_calico_dir": "/etc/archipelago/calico-wrong"})
    assert result.returncode != 0
    message = failure(report)
    assert DRY_RUN_TASK in message
    assert ".spec.ipipMod: field not declared in schema" in message, message


WRONG_POOL = """apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: archipelago-wrong
spec:
  cidr: 10.32.0.0/16
  natOutgoing: true
  nodeSelector: all()
"""


def dry_run(cp, text: str):
    path = "/root/tests/calico-wrong.yaml"
    cp.run(f"mkdir -p /root/tests && cat > {path} <<'EOF'\n{text}EOF")
    return cp.run(f"{KUBECTL} apply --server-side --dry-run=server --validate=strict -f {path}")


@pytest.mark.parametrize(
    ("extra", "refusal"),
    [('  disableBGPExport: "no"\n', ".spec.disableBGPExport: expected boolean"),
     ("  allowedUses: Workload\n", ".spec.allowedUses: expected list")],
    ids=["string-for-boolean", "string-for-list"],
)
def test_the_crds_refuse_wrong_types(cp, good, extra, refusal):
    result = dry_run(cp, WRONG_POOL + extra)
    assert result.rc != 0 and refusal in result.stderr, result.stderr


def test_the_crds_type_the_fields(cp, good):
    accepted = dry_run(cp, WRONG_POOL + "  blockSize: 26\n  ipipMode: Never\n")
    assert accepted.rc == 0, accepted.stderr
    wrong_type = dry_run(cp, WRONG_POOL + '  blockSize: "26"\n  ipipMode: Never\n')
    assert wrong_type.rc != 0
    assert ".spec.blockSize: expected numeric" in wrong_type.stderr, wrong_type.stderr
    missing = dry_run(cp, WRONG_POOL.replace("  cidr: 10.32.0.0/16\n", ""))
    assert missing.rc != 0
    assert "spec.cidr: Required value" in missing.stderr, missing.stderr


def test_the_crds_do_not_enumerate_modes(cp, good):
    """What the CRDs cannot catch: Calico's schema has no enum for ipipMode, so a value typo passes the dry run.
    This is why the role never takes ipipMode/vxlanMode from input. If this test fails, Calico's CRDs now refuse
    it: good news, drop this test."""
    typo = dry_run(cp, WRONG_POOL + "  blockSize: 26\n  ipipMode: Sometimes-typo\n")
    assert typo.rc == 0, typo.stderr


def test_calico_peers_are_the_bgp_router_and_node_as_numbers_its_neighbors(cp, good):
    """Both ends of each session from one inventory: calico's BGPPeer is router-bgp (its router_id and AS), and each
    node's AS annotation is the remote-as router-bgp's FRR expects from that node."""
    objects = [d for _, d in rendered_objects(cp)]
    peers = [d["spec"] for d in objects if d["kind"] == "BGPPeer"]
    assert [(p["peerIP"], p["asNumber"]) for p in peers] == [("10.224.1.3", 64512)], peers
    node_as = {d["metadata"]["name"]: d["metadata"]["annotations"]["projectcalico.org/ASNumber"] for d in objects if d["kind"] == "Node"}
    assert node_as == {"alpha-cp1": "64601", "alpha-w1": "64602"}, node_as
    frr = testinfra.get_host("podman://arch-mol-flat-router-bgp").check_output("vtysh -c 'show running-config'")
    assert "router bgp 64512" in frr and "bgp router-id 10.224.1.3" in frr
    for address, asn in (("10.224.1.11", node_as["alpha-cp1"]), ("10.224.1.12", node_as["alpha-w1"])):
        assert f"neighbor {address} remote-as {asn}" in frr, (address, asn)
