"""Integration: the day-2 playbooks refuse bad arguments on the controller, naming the value and the fix, before any
host is touched (the example inventory's hosts do not exist, so a run that went on would fail unreachable instead)."""

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import run_ansible

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def inventory(tmp_path):
    copy = tmp_path / "island"
    shutil.copytree(ROOT / "inventories" / "examples" / "island", copy)
    return copy


def refused(inventory: Path, playbook: str, *extra: str) -> str:
    args = [arg for value in extra for arg in ("-e", value)]
    result = run_ansible("ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / playbook), *args)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "UNREACHABLE" not in result.stdout, result.stdout[-3000:]  # stopped before connecting to any host
    return " ".join(result.stdout.split())


@pytest.mark.parametrize("playbook", ["etcd-backup.yml", "etcd-restore.yml"])
def test_etcd_playbooks_need_a_cluster_of_the_inventory(inventory, tmp_path, playbook):
    snapshot = tmp_path / "alpha.db"
    snapshot.write_bytes(b"not a snapshot")
    output = refused(inventory, playbook, f"snapshot={snapshot}")
    assert (f"{playbook} needs the cluster whose etcd it works on: -e cluster=<name>"
            " (clusters of this inventory: north, south, west)") in output
    output = refused(inventory, playbook, "cluster=east", f"snapshot={snapshot}")
    assert "(got east, which is not one; clusters of this inventory: north, south, west)" in output


def test_etcd_backup_needs_etcdctl_on_the_controller(inventory):
    output = refused(inventory, "etcd-backup.yml", "cluster=north", "etcd_etcdctl=/nonexistent/etcdctl")
    assert "/nonexistent/etcdctl is not an executable file: install Debian's etcd-client" in output


def test_etcd_restore_needs_a_snapshot_file(inventory, tmp_path):
    output = refused(inventory, "etcd-restore.yml", "cluster=north")
    assert ("etcd-restore.yml needs the snapshot to restore, a file on the controller written by etcd-backup.yml:"
            " -e snapshot=<path>.") in output
    output = refused(inventory, "etcd-restore.yml", "cluster=north", f"snapshot={tmp_path / 'missing.db'}")
    assert f"({tmp_path / 'missing.db'} is not a file)" in output


@pytest.mark.parametrize("path", ["inventories/mine/alpha.kubeconfig", "inventories/mine/etcd-backups/alpha-1.db"])
def test_credentials_written_beside_an_inventory_are_ignored_by_git(path):
    check = subprocess.run(["git", "check-ignore", "--quiet", path], cwd=ROOT, check=False)
    assert check.returncode == 0, f"{path} is not ignored by .gitignore"


def test_remove_node_needs_nodes_of_the_inventory(inventory):
    output = refused(inventory, "remove-node.yml")
    assert "remove-node.yml removes the nodes it is told: -e remove_nodes=<host>[,<host>...]. Nodes of this inventory: north-cp1," in output
    output = refused(inventory, "remove-node.yml", "remove_nodes=north-w1,east-w1")
    assert "(not Kubernetes nodes of this inventory: east-w1)" in output


def test_remove_node_refuses_a_clusters_last_control_plane(inventory):
    output = refused(inventory, "remove-node.yml", "remove_nodes=north-w2,north-cp1")
    assert ("remove-node.yml refuses to remove north-cp1: it is every control plane of cluster north, which would be left"
            " without an API or etcd. Keep at least one, or destroy the whole cluster with playbooks/reset.yml"
            " -e reset_clusters=north.") in output


def test_upgrade_needs_a_cluster_of_the_inventory(inventory):
    output = refused(inventory, "upgrade.yml")
    assert ("upgrade.yml needs the cluster to upgrade: -e cluster=<name> (clusters of this inventory: north, south, west),"
            " and the version in kubernetes_version.") in output
    output = refused(inventory, "upgrade.yml", "cluster=east")
    assert "(got east, which is not one; clusters of this inventory: north, south, west)" in output
