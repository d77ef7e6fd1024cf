"""What a converge refuses to do to a live cluster: initialise a member that lost its admin.conf (or reset it), or
initialise a second cluster beside an initialised control plane. Each case runs the plan and kubeadm steps of
site.yml (molecule/cluster/kubernetes.yml) against the live cluster and checks that nothing changed."""

import sys
from pathlib import Path

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from scenario import run_playbook

PLAYBOOK = Path(__file__).resolve().parents[1] / "kubernetes.yml"
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
MEMBER_STATE = ["/var/lib/etcd/member", "/etc/kubernetes/manifests/kube-apiserver.yaml", "/etc/kubernetes/kubelet.conf"]


@pytest.fixture(scope="module")
def cp():
    return testinfra.get_host("podman://arch-mol-cluster-cp1")


@pytest.fixture(scope="module")
def ext():
    return testinfra.get_host("podman://arch-mol-cluster-ext1")


def managed_changes(changed: dict) -> dict:
    return {host: tasks for host, tasks in changed.items() if host != "localhost"}


def test_a_member_that_lost_admin_conf_is_neither_initialised_nor_reset(cp, read_only_runs):
    read_only_runs.wait()  # the runs in the background must not see admin.conf moved away
    etcd_before = cp.run("ls /var/lib/etcd/member/snap").stdout
    assert cp.run("mv /etc/kubernetes/admin.conf /etc/kubernetes/admin.conf.test-moved").rc == 0
    try:
        rc, changed, output = run_playbook(PLAYBOOK)
        assert rc != 0, output
        assert "cp1 holds cluster state" in output, output
        assert managed_changes(changed) == {}, changed
        for path in MEMBER_STATE:
            assert cp.file(path).exists, f"{path} is gone: the converge reset a live member"
        assert cp.run("ls /var/lib/etcd/member/snap").stdout == etcd_before
        ready = cp.run("kubectl --kubeconfig /etc/kubernetes/admin.conf.test-moved get --raw /readyz")
        assert ready.stdout == "ok", ready.stderr
    finally:
        cp.run("mv /etc/kubernetes/admin.conf.test-moved /etc/kubernetes/admin.conf")
    assert cp.run(f"{KUBECTL} get --raw /readyz").stdout == "ok"


def test_a_second_cluster_is_never_initialised_beside_a_live_control_plane(cp, ext, read_only_runs):
    """An inventory that lists a fresh host (ext1) before the live cp1 among alpha's control planes (conftest.py's
    second_cluster_inventory), run in the background since the session started."""
    rc, changed, output = read_only_runs.second_cluster.result()
    assert rc != 0, output
    assert "ext1 would run `kubeadm init` for cluster alpha" in output, output
    assert "cp1: /etc/kubernetes/admin.conf" in output, output
    assert managed_changes(changed) == {}, changed
    assert not ext.file("/etc/kubernetes/admin.conf").exists
    assert not ext.file("/etc/kubernetes/archipelago-kubeadm.yaml").exists
    assert cp.run(f"{KUBECTL} get --raw /readyz").stdout == "ok"
