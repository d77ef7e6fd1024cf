"""The kubeadm_control_plane role refuses kube-proxy's ipvs mode where the kernel has no IPVS, before any change.

The lab kernel has no IP_VS (docs/lab.md), so molecule/node/ipvs.yml (the whole role, ipvs mode, every other setting
valid) must stop at the role's validation with its message, change nothing on the node, and write no kubeadm
configuration. Needs Kubernetes installed by converge (the offline artifacts), as a real run would.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from scenario import run_playbook

SCENARIO = Path(__file__).resolve().parents[1]
CONFIG = "/etc/kubernetes/archipelago-kubeadm.yaml"
# Everything kubeadm init and the role would write or start.
WATCHED = "/etc/kubernetes /var/lib/kubelet /var/lib/etcd /etc/systemd/system/kubelet.service.d /etc/cni/net.d"
REFUSAL = ("kubeadm_control_plane_kube_proxy_mode is ipvs, but node1's kernel has no ip_vs module loaded or built in "
           "(/sys/module/ip_vs is missing)")


def snapshot(host) -> str:
    """Path, mode, owner and checksum of every file under WATCHED (missing directories count as empty)."""
    result = host.run(f"find {WATCHED} -xdev \\( -type f -o -type l -o -type d \\) -printf '%p %m %u %y\\n' 2>/dev/null | sort; "
                      f"find {WATCHED} -xdev -type f -exec sha256sum {{}} + 2>/dev/null | sort")
    return result.stdout


@pytest.mark.usefixtures("artifacts")
def test_ipvs_mode_is_refused_on_a_kernel_without_ipvs_and_nothing_changes(host):
    assert not host.file("/sys/module/ip_vs").exists, "this kernel has IPVS: the refusal cannot be shown here"
    assert host.file("/usr/local/bin/kubeadm").exists, "converge installed no kubeadm"
    before = snapshot(host)
    assert "/etc/cni/net.d 755 root d" in before, before  # the watch sees what is there
    rc, changed, text = run_playbook(SCENARIO / "ipvs.yml")
    assert rc != 0, text[-3000:]
    # The first failure is the role's refusal, with its message.
    assert text.startswith(f"node1: kubeadm_control_plane : Refuse ipvs mode on a kernel without IPVS: {REFUSAL}"), text[:2000]
    assert changed == {}, changed
    assert snapshot(host) == before
    assert not host.file(CONFIG).exists
    assert not host.service("kubelet").is_running
