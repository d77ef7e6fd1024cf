"""Integration: site.yml's steps can be run one by one (a tag each, the plan always), and the example inventory for
real VMs plans as committed and connects as a VM inventory should (SSH, become, packages online)."""

import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import run_ansible

ROOT = Path(__file__).resolve().parents[2]
VMS = ROOT / "inventories" / "example-vms"
PLAN_DIR = ".archipelago"  # where plan.yml writes the lock, report and diagram, beside the inventory
GENERATED = ("network-plan.lock.yml", "network-plan.md", "network-plan.svg")
STEPS = {
    # The version guard runs with every step too: `--tags node` alone would otherwise swap a running node's binaries.
    "plan": ["Plan the network", "Hand each cluster its slice of the plan", "Refuse a Kubernetes version change outside upgrade.yml"],
    "node": ["Prepare the Kubernetes nodes"],
    "kubernetes": ["Initialise each cluster on its first control plane", "Join further control planes, one at a time",
                   "Join the workers", "Delete the bootstrap tokens the joins made"],
    "cni": ["Deploy the pod network"],
    "gateways": ["Build the island gateways"],
    "routers": ["Build the routers"],
}


def plays_with_tasks(tags: str) -> list[str]:
    """The plays site.yml runs with --tags TAGS that hold at least one task (ansible-playbook --list-tasks)."""
    result = run_ansible("ansible-playbook", "-i", str(VMS), str(ROOT / "site.yml"), "--list-tasks", "--tags", tags)
    assert result.returncode == 0, result.stdout + result.stderr
    plays, current = [], None
    for line in result.stdout.splitlines():
        play = re.match(r"\s+play #\d+ \([^)]*\): (.*?)\tTAGS:", line)
        if play:
            current = play.group(1)
        elif current and line.startswith(" " * 6) and "Validating arguments against arg spec" not in line:
            if current not in plays:
                plays.append(current)
    return plays


@pytest.mark.parametrize("step", sorted(STEPS))
def test_each_step_runs_alone_after_the_plan(step):
    plays = plays_with_tasks(step)
    for name in STEPS["plan"] + STEPS[step]:
        assert name in plays, f"--tags {step} does not run {name!r}: {plays}"
    others = [name for other, names in STEPS.items() if other not in ("plan", step) for name in names]
    assert not set(plays) & set(others), f"--tags {step} also runs {set(plays) & set(others)}"


def test_example_vms_plans_as_committed(tmp_path):
    inventory = tmp_path / "example-vms"
    shutil.copytree(VMS, inventory, ignore=shutil.ignore_patterns(PLAN_DIR))
    result = run_ansible("ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "plan.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    for name in GENERATED:
        committed = VMS / PLAN_DIR / name
        assert committed.read_text() == (inventory / PLAN_DIR / name).read_text(), f"regenerate {committed} with playbooks/plan.yml"


def test_example_vms_connects_over_ssh_with_become_and_online_packages():
    result = run_ansible("ansible-inventory", "-i", str(VMS), "--list")
    assert result.returncode == 0, result.stderr
    hostvars = json.loads(result.stdout)["_meta"]["hostvars"]
    assert sorted(hostvars) == ["prod-cp1", "prod-w1", "prod-w2"]
    for host, variables in hostvars.items():
        assert variables.get("ansible_connection", "ssh") == "ssh", host
        assert variables["ansible_user"] != "root" and variables["ansible_become"] is True, host
        assert variables["node_package_source"] == "online", host
        assert variables["ansible_host"] == variables["node_ips"][0], host
        assert not any(key.startswith("lab_") for key in variables), f"{host} has lab settings"
