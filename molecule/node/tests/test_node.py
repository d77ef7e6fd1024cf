"""What the node role promises, checked inside the scenario's lab VM (testinfra, podman:// backend).

Converge installs Kubernetes only when the offline artifacts exist. Without them the Kubernetes tests skip and say
so, unless ARCHIPELAGO_REQUIRE_LAB=1 (make test, which builds the artifacts first): then they fail (conftest.py).
"""

from __future__ import annotations

import pytest

NEEDS_ARTIFACTS = pytest.mark.usefixtures("artifacts")

SYSCTL_FILE = "/etc/sysctl.d/90-archipelago-node.conf"
MODULES_FILE = "/etc/modules-load.d/archipelago-node.conf"


@pytest.mark.parametrize(
    "key",
    [
        "net.ipv4.ip_forward",
        "net.ipv6.conf.all.forwarding",
        "net.bridge.bridge-nf-call-iptables",
        "net.bridge.bridge-nf-call-ip6tables",
    ],
)
def test_sysctl_is_set_now_and_persistently(host, key):
    assert host.sysctl(key) == 1
    persistent = host.file(SYSCTL_FILE)
    assert persistent.mode == 0o644
    assert f"{key}=1" in persistent.content_string.replace(" ", "")


@pytest.mark.parametrize("module", ["overlay", "br_netfilter"])
def test_module_is_loaded_or_built_in(host, module):
    loaded = host.file(f"/sys/module/{module}").is_directory
    symbol = {"overlay": "CONFIG_OVERLAY_FS", "br_netfilter": "CONFIG_BRIDGE_NETFILTER"}[module]
    built_in = host.run(f"zcat /proc/config.gz | grep -qx '{symbol}=y'").rc == 0
    assert loaded or built_in
    assert module in host.file(MODULES_FILE).content_string.split()
    assert host.file(MODULES_FILE).mode == 0o644


def test_bridge_netfilter_is_active(host):
    # The functional proof that br_netfilter is there, built in or loaded.
    assert host.file("/proc/sys/net/bridge/bridge-nf-call-iptables").exists


def test_swap_is_off(host):
    assert host.check_output("swapon --show --noheadings") == ""
    active = [
        line
        for line in host.file("/etc/fstab").content_string.splitlines()
        if line.strip() and not line.lstrip().startswith("#") and " swap " in f" {line} "
    ]
    assert active == []


def test_containerd_runs_with_its_socket(host):
    service = host.service("containerd")
    assert service.is_running
    assert service.is_enabled
    assert host.file("/run/containerd/containerd.sock").is_socket


def test_containerd_config_is_for_kubeadm(host):
    config = host.file("/etc/containerd/config.toml")
    assert config.mode == 0o644
    assert "SystemdCgroup = true" in config.content_string
    # The configuration containerd actually runs with, not only the file.
    effective = host.check_output("containerd config dump")
    assert "SystemdCgroup = true" in effective
    assert 'sandbox_image = "registry.k8s.io/pause:3.10"' in effective
    assert 'bin_dir = "/opt/cni/bin"' in effective
    assert 'conf_dir = "/etc/cni/net.d"' in effective
    assert 'config_path = "/etc/containerd/certs.d"' in effective


@pytest.mark.parametrize("package", ["containerd", "runc", "conntrack", "iptables", "nftables", "socat"])
def test_package_is_installed(host, package):
    assert host.package(package).is_installed


@NEEDS_ARTIFACTS
@pytest.mark.parametrize("binary", ["kubeadm", "kubelet", "kubectl"])
def test_kubernetes_binary_is_installed(host, artifacts, binary):
    versions = (artifacts / "VERSIONS").read_text().splitlines()
    version = next(line.split("=", 1)[1] for line in versions if line.startswith("kubernetes="))
    assert host.file(f"/usr/local/bin/{binary}").mode == 0o755
    command = {"kubeadm": "version -o short", "kubelet": "--version", "kubectl": "version --client"}[binary]
    assert version in host.check_output(f"/usr/local/bin/{binary} {command}")


@NEEDS_ARTIFACTS
def test_kubelet_unit_is_enabled_with_kubeadm_drop_in(host):
    assert host.service("kubelet").is_enabled
    drop_in = host.file("/etc/systemd/system/kubelet.service.d/10-kubeadm.conf")
    assert drop_in.exists
    assert "/usr/local/bin/kubelet $KUBELET_KUBECONFIG_ARGS" in drop_in.content_string


@NEEDS_ARTIFACTS
def test_cni_plugins_are_installed(host):
    for plugin in ["bridge", "host-local", "loopback", "portmap"]:
        assert host.file(f"/opt/cni/bin/{plugin}").mode == 0o755


@NEEDS_ARTIFACTS
def test_images_are_imported(host, artifacts):
    wanted = [line.split()[0] for line in (artifacts / "images" / "images.txt").read_text().splitlines() if line.strip()]
    present = host.check_output("ctr --namespace k8s.io images list --quiet").splitlines()
    assert sorted(set(wanted) - set(present)) == []
