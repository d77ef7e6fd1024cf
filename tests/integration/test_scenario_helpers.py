"""The molecule scenarios' shared helpers (molecule/shared/scenario.py), run against a local inventory: a playbook
re-run reports what changed and what failed, and raises when there is no report to read; the inventory's nodes of
a cluster are its control planes and workers, and a cluster without nodes is an error, not an empty set."""

import sys

import pytest
import yaml
from helpers import ROOT

sys.path.insert(0, str(ROOT / "molecule" / "shared"))

from scenario import PlaybookReportError, inventory_nodes, run_playbook

INVENTORY = """[kube_control_plane]
alpha-cp1
beta-cp1
[kube_node]
alpha-w1
[alpha]
alpha-cp1
alpha-w1
router
[beta]
beta-cp1
[routers]
router
[empty]
ext1
[all:vars]
ansible_connection=local
ansible_python_interpreter={python}
"""


@pytest.fixture
def ephemeral(tmp_path, monkeypatch):
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts").write_text(INVENTORY.format(python=sys.executable))
    monkeypatch.setenv("MOLECULE_EPHEMERAL_DIRECTORY", str(tmp_path))
    inventory_nodes.cache_clear()
    yield tmp_path
    inventory_nodes.cache_clear()


def playbook(tmp_path, tasks, name="play.yml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump([{"name": "Test", "hosts": "alpha-cp1", "gather_facts": False, "tasks": tasks}]))
    return path


def test_changed_tasks_are_reported_per_host(ephemeral):
    target = ephemeral / "written"
    rc, changed, text = run_playbook(playbook(ephemeral, [
        {"name": "Write a file", "ansible.builtin.copy": {"content": "x", "dest": str(target), "mode": "0644"}},
        {"name": "Read it", "ansible.builtin.command": f"cat {target}", "changed_when": False},
    ]))
    assert rc == 0, text
    assert changed == {"alpha-cp1": ["Write a file"]}


def test_a_failed_task_is_named_in_the_text_and_nothing_changed(ephemeral):
    rc, changed, text = run_playbook(playbook(ephemeral, [
        {"name": "Refuse", "ansible.builtin.fail": {"msg": "the value {{ wanted }} is wrong"}},
    ]), {"wanted": 42})
    assert rc != 0
    assert text.startswith("alpha-cp1: Refuse: the value 42 is wrong\n"), text[:500]
    assert changed == {}


def test_a_playbook_that_cannot_start_raises_instead_of_reporting_no_change(ephemeral):
    broken = ephemeral / "broken.yml"
    broken.write_text("- name: Broken\n  hosts: all\n  tasks: [\n")
    with pytest.raises(PlaybookReportError, match=r"broken.yml \(exit code [1-9]\d*\) gave no JSON report"):
        run_playbook(broken)


def test_inventory_nodes_are_the_cluster_control_planes_and_workers(ephemeral):
    assert inventory_nodes("alpha") == {"alpha-cp1", "alpha-w1"}  # not the router, which is in alpha's group
    assert inventory_nodes("beta") == {"beta-cp1"}
    with pytest.raises(AssertionError, match="no Kubernetes nodes in cluster empty"):
        inventory_nodes("empty")
