"""Integration: playbooks/reset.yml destroys only the clusters it is told to, and nothing without being told.

The inventory's hosts are podman containers that do not exist: a play that reached one would report it unreachable.
So the recap shows exactly which hosts reset.yml tried to touch, and no real host is ever at risk."""

import re
from pathlib import Path

import pytest
from helpers import run_ansible

ROOT = Path(__file__).resolve().parents[2]

INVENTORY = """
all:
  vars:
    ansible_connection: containers.podman.podman
  children:
    kube_control_plane:
      hosts: {a-cp1: {ansible_host: archipelago-test-absent-a-cp1}, b-cp1: {ansible_host: archipelago-test-absent-b-cp1}}
    kube_node:
      hosts: {a-w1: {ansible_host: archipelago-test-absent-a-w1}, b-w1: {ansible_host: archipelago-test-absent-b-w1}}
    alpha:
      vars: {cluster_name: alpha}
      hosts: {a-cp1: {}, a-w1: {}}
    beta:
      vars: {cluster_name: beta, cni: calico}
      hosts: {b-cp1: {}, b-w1: {}}
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(INVENTORY)
    return path


def recap_hosts(output: str) -> set:
    return set(re.findall(r"^(\S+)\s+:\s+ok=", output, re.MULTILINE))


def reset(inventory: Path, *extra: str):
    return run_ansible("ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "reset.yml"), *extra)


@pytest.mark.parametrize("extra", [(), ("-e", "reset_clusters="), ("-e", '{"reset_clusters": []}')], ids=["unset", "empty", "empty-list"])
def test_reset_refuses_without_clusters_and_touches_no_host(inventory, extra):
    result = reset(inventory, *extra)
    assert result.returncode != 0
    assert "needs to be told which: -e reset_clusters=" in result.stdout
    assert "Clusters of this inventory: alpha, beta" in result.stdout
    assert recap_hosts(result.stdout) == {"localhost"}, result.stdout


def test_reset_refuses_an_unknown_cluster(inventory):
    result = reset(inventory, "-e", "reset_clusters=alpha,gamma")
    assert result.returncode != 0
    assert "Not clusters of this inventory: gamma" in result.stdout
    assert recap_hosts(result.stdout) == {"localhost"}, result.stdout


@pytest.mark.parametrize(
    ("clusters", "touched"), [("alpha", {"a-cp1", "a-w1"}), ("beta", {"b-cp1", "b-w1"}), ("alpha,beta", {"a-cp1", "a-w1", "b-cp1", "b-w1"})]
)
def test_reset_touches_only_the_named_clusters(inventory, clusters, touched):
    result = reset(inventory, "-e", f"reset_clusters={clusters}")
    assert recap_hosts(result.stdout) == {"localhost"} | touched, result.stdout
    for host in touched:
        assert re.search(rf"^{re.escape(host)}\s+:.*unreachable=1", result.stdout, re.MULTILINE), result.stdout
