"""Integration: playbooks/plan.yml against the example inventories, and its failure before any other play."""

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from helpers import run_ansible

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("network-plan.lock.yml", "network-plan.md", "network-plan.svg")


def copy_example(name: str, tmp_path: Path) -> Path:
    """A private copy of an example inventory, without the plan files committed beside it."""
    inventory = tmp_path / name
    shutil.copytree(ROOT / "inventories" / "examples" / name, inventory, ignore=shutil.ignore_patterns(*GENERATED))
    return inventory


def run_playbook(inventory: Path, playbook: Path) -> subprocess.CompletedProcess:
    return run_ansible("ansible-playbook", "-i", str(inventory), str(playbook))


def localhost_recap(output: str) -> dict:
    match = re.search(r"^localhost\s+:\s+(.*)$", output, re.MULTILINE)
    assert match, output
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


@pytest.fixture(params=["flat", "island"])
def example(request, tmp_path):
    return request.param, copy_example(request.param, tmp_path)


def test_plan_writes_lock_and_report_and_is_idempotent(example):
    model, inventory = example
    first = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert first.returncode == 0, first.stdout + first.stderr
    assert localhost_recap(first.stdout)["changed"] == 3  # lock, report, diagram

    spec = yaml.safe_load((inventory / "group_vars" / "all" / "network_plan.yml").read_text())["network_plan"]
    lock = yaml.safe_load((inventory / "network-plan.lock.yml").read_text())
    assert lock["model"] == model
    assert set(lock["clusters"]) == set(spec["clusters"])

    from network_plan import plan_network

    assert lock == plan_network(spec)  # the lock is exactly the planner's output

    report = (inventory / "network-plan.md").read_text()
    for name, cluster in lock["clusters"].items():
        row = next(line for line in report.splitlines() if line.startswith(f"| {name} |"))
        assert cluster["pod_cidrs"][0] in row and cluster["dns_service_ips"][0] in row

    svg = ET.fromstring((inventory / "network-plan.svg").read_text())
    titles = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    for cluster in lock["clusters"].values():
        assert any(t.startswith(cluster["service_cidrs"][0] + ":") for t in titles)

    second = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert second.returncode == 0, second.stdout
    assert localhost_recap(second.stdout)["changed"] == 0

    # The plan files committed beside the example are the ones the playbook writes (docs stay true).
    for name in GENERATED:
        committed = ROOT / "inventories" / "examples" / model / name
        assert committed.read_text() == (inventory / name).read_text(), f"regenerate {committed} with playbooks/plan.yml"


def test_lock_keeps_clusters_when_one_is_added(example):
    _, inventory = example
    assert run_playbook(inventory, ROOT / "playbooks" / "plan.yml").returncode == 0
    before = yaml.safe_load((inventory / "network-plan.lock.yml").read_text())
    vars_file = inventory / "group_vars" / "all" / "network_plan.yml"
    data = yaml.safe_load(vars_file.read_text())
    data["network_plan"]["clusters"] = {"aaa": {"nodes": 4}, **data["network_plan"]["clusters"]}
    vars_file.write_text(yaml.safe_dump(data))
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    hosts["all"]["children"]["kube_control_plane"]["hosts"]["aaa-cp1"] = {}
    hosts["all"]["children"]["aaa"] = {"vars": {"cluster_name": "aaa"}, "hosts": {"aaa-cp1": None}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode == 0, result.stdout
    after = yaml.safe_load((inventory / "network-plan.lock.yml").read_text())
    for name, cluster in before["clusters"].items():
        assert after["clusters"][name] == cluster
    assert "aaa" in after["clusters"]


def test_bad_plan_fails_before_any_other_play(tmp_path):
    inventory = copy_example("flat", tmp_path)
    vars_file = inventory / "group_vars" / "all" / "network_plan.yml"
    vars_file.write_text(vars_file.read_text().replace("10.32.0.0/12", "10.32.0.0/33"))
    marker = tmp_path / "later-play-ran"
    site = tmp_path / "site.yml"
    site.write_text(
        f"- ansible.builtin.import_playbook: {ROOT}/playbooks/plan.yml\n"
        "- name: A later play\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - name: Leave a marker\n      ansible.builtin.file:\n        path: {marker}\n        state: touch\n        mode: '0644'\n"
    )
    result = run_playbook(inventory, site)
    assert result.returncode != 0
    assert "network_plan: pools.pods.ipv4[0]: '10.32.0.0/33' is not a valid CIDR" in result.stdout
    assert not marker.exists()
    assert not (inventory / "network-plan.lock.yml").exists()


def test_host_outside_planned_clusters_is_refused(tmp_path):
    inventory = copy_example("island", tmp_path)
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("gateway_cluster: west", "gateway_cluster: east"))
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode != 0
    assert "Gateway west-gw has gateway_cluster east, which is not a cluster of network_plan.clusters" in result.stdout


def test_unknown_cni_is_refused_by_its_argument_spec(tmp_path):
    inventory = copy_example("flat", tmp_path)
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("vars: {cluster_name: birch}", "vars: {cluster_name: birch, cni: cilium}"))
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode != 0
    assert re.search(r"value of cni must be one of: flannel, calico, got: cilium", result.stdout), result.stdout[-2000:]
    assert not (inventory / "network-plan.lock.yml").exists()


def test_a_cluster_with_two_cnis_is_refused(tmp_path):
    inventory = copy_example("flat", tmp_path)
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("vars: {cluster_name: birch}", "vars: {cluster_name: birch, cni: calico}"))
    (inventory / "host_vars").mkdir(exist_ok=True)
    (inventory / "host_vars" / "birch-cp1.yml").write_text("cni: flannel\n")
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode != 0
    assert "Cluster birch mixes CNIs" in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize("name", ["network_plan", "network_plan_svg"])
def test_filters_are_documented_for_ansible_doc(name):
    result = run_ansible("ansible-doc", "-t", "filter", name)
    assert result.returncode == 0, result.stderr
    assert f"FILTER {name}" in result.stdout and "WARNING" not in result.stderr
