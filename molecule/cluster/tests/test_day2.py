"""Day-2 access to the live cluster: the admin kubeconfig on the controller and site.yml's closing summary."""

import os
import stat
from pathlib import Path

import pytest
import testinfra
import yaml

API = "https://10.220.0.10:6443"  # the cluster's api_vip: keepalived keeps it on a control plane whose API server answers


@pytest.fixture(scope="module")
def cp():
    return testinfra.get_host("podman://arch-mol-cluster-cp1")


def kubeconfig_path() -> Path:
    """Where site.yml writes alpha's kubeconfig: network_plan_dir, which this scenario sets to molecule's directory."""
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "alpha.kubeconfig"


def test_the_admin_kubeconfig_is_on_the_controller_private_and_names_the_api(cp):
    path = kubeconfig_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
    assert path.read_text() == cp.file("/etc/kubernetes/admin.conf").content_string
    config = yaml.safe_load(path.read_text())
    assert [c["cluster"]["server"] for c in config["clusters"]] == [API]
    assert config["current-context"] == "kubernetes-admin@alpha"


@pytest.mark.parametrize("limit", [None, "w2"])  # conftest.py's SUMMARY_LIMITS
def test_the_summary_names_the_endpoint_kubeconfig_ready_nodes_and_ranges(limit, read_only_runs):
    """summary.yml (molecule/cluster/summary.yml), run in the background since the session started (conftest.py)."""
    plan = yaml.safe_load((kubeconfig_path().parent / "network-plan.lock.yml").read_text())["clusters"]["alpha"]
    rc, changed, output = read_only_runs.summaries[limit].result()
    assert rc == 0, output
    assert {host: tasks for host, tasks in changed.items()} == {}, changed
    for line in (f"API endpoint: {API}", f"Kubeconfig:   {kubeconfig_path()}", "Nodes Ready:  5/5",
                 f"Pods:         {plan['pod_cidrs'][0]}", f"Services:     {plan['service_cidrs'][0]}",
                 f"Global:       {plan['global_cidrs'][0]}"):
        assert line in output, f"{line!r} missing from the summary: {output[-3000:]}"
