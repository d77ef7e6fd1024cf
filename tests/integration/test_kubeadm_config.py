"""The kubeadm configurations the roles render are accepted by the real kubeadm (strict decoding and validation).

The kubeadm binary comes from the offline artifacts (make artifacts). Without it the tests that need it skip and say
so, unless ARCHIPELAGO_REQUIRE_LAB=1 (make test, which builds the artifacts first): then they fail.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import run_ansible

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = yaml.safe_load((ROOT / "versions.yml").read_text())["kubernetes"]  # the one file that pins it
ARTIFACTS = Path(os.environ.get("ARCHIPELAGO_CACHE", "/var/cache/archipelago")) / "artifacts" / f"kubernetes-{KUBERNETES}"
KUBEADM = Path(os.environ.get("ARCHIPELAGO_KUBEADM", ARTIFACTS / "bin" / "kubeadm"))

REQUIRE_LAB = os.environ.get("ARCHIPELAGO_REQUIRE_LAB") == "1"


@pytest.fixture
def kubeadm() -> Path:
    """The real kubeadm; a skip without it, or a failure under ARCHIPELAGO_REQUIRE_LAB=1."""
    if not KUBEADM.is_file():
        message = f"no kubeadm at {KUBEADM}: run `make artifacts`"
        if REQUIRE_LAB:
            pytest.fail(f"{message} (ARCHIPELAGO_REQUIRE_LAB=1 turns this skip into a failure)")
        pytest.skip(message)
    return KUBEADM


def render(role: str, template: str, variables: dict, dest: Path) -> str:
    playbook = dest.with_suffix(".playbook.yml")
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars_files": [str(ROOT / "roles" / role / "defaults" / "main.yml")],
                    "tasks": [
                        {
                            "name": "Render",
                            "ansible.builtin.template": {"src": str(ROOT / "roles" / role / "templates" / template), "dest": str(dest)},
                            "vars": variables,
                        }
                    ],
                }
            ]
        )
    )
    result = run_ansible(
        "ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)
    )
    assert result.returncode == 0, result.stdout
    return dest.read_text()


def validate(kubeadm: Path, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(kubeadm), "config", "validate", "--config", str(path)], capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    ("pods", "services", "masks", "mode"),
    [
        (["10.32.0.0/16"], ["10.96.0.0/22"], [24], "iptables"),
        (["10.32.0.0/16", "fd10::/56"], ["10.96.0.0/20", "fd20::/116"], [24, 64], "nftables"),
        (["fd10::/56"], ["fd20::/116"], [64], "ipvs"),
    ],
)
def test_init_configuration_is_valid(kubeadm, tmp_path, pods, services, masks, mode):
    variables = {
        "kubeadm_control_plane_pod_subnets": pods,
        "kubeadm_control_plane_service_subnets": services,
        "kubeadm_control_plane_node_cidr_mask_sizes": masks,
        "kubeadm_control_plane_advertise_address": "10.210.1.11",
        "kubeadm_control_plane_node_ips": ["10.210.1.11"],
        "kubeadm_control_plane_kube_proxy_mode": mode,
        "kubeadm_control_plane_kubelet_extra_config": {"failSwapOn": False, "evictionHard": {"nodefs.available": "0%"}},
        "kubeadm_control_plane_kube_proxy_extra_config": {"conntrack": {"maxPerCore": 0}},
    }
    config = tmp_path / "init.yaml"
    text = render("kubeadm_control_plane", "kubeadm-init.yaml.j2", variables, config)
    result = validate(kubeadm, config)
    assert result.returncode == 0, result.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(text) if d}
    assert docs["ClusterConfiguration"]["networking"]["podSubnet"] == ",".join(pods)
    assert docs["KubeProxyConfiguration"]["mode"] == mode
    masks_args = {a["name"]: a["value"] for a in docs["ClusterConfiguration"]["controllerManager"]["extraArgs"]}
    assert sorted(masks_args.values()) == sorted(str(m) for m in masks)


def test_a_typo_in_extra_config_is_caught_by_kubeadm(kubeadm, tmp_path):
    config = tmp_path / "init.yaml"
    render(
        "kubeadm_control_plane",
        "kubeadm-init.yaml.j2",
        {
            "kubeadm_control_plane_pod_subnets": ["10.32.0.0/16"],
            "kubeadm_control_plane_service_subnets": ["10.96.0.0/22"],
            "kubeadm_control_plane_node_cidr_mask_sizes": [24],
            "kubeadm_control_plane_advertise_address": "10.210.1.11",
            "kubeadm_control_plane_kube_proxy_extra_config": {"conntrak": {"maxPerCore": 0}},
        },
        config,
    )
    result = validate(kubeadm, config)
    assert result.returncode != 0 and "conntrak" in result.stderr


@pytest.mark.parametrize("control_plane", [False, True])
def test_join_configuration_is_valid(kubeadm, tmp_path, control_plane):
    variables = {
        "kubeadm_node_join_command": {
            "stdout": "kubeadm join 10.210.1.11:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:" + "0" * 64
        },
        "kubeadm_node_upload_certs": {"stdout_lines": ["[upload-certs] Using certificate key:", "1" * 64]},
        "kubeadm_node_control_plane": control_plane,
        "kubeadm_node_advertise_address": "10.210.1.12",
        "kubeadm_node_node_ips": ["10.210.1.12"],
    }
    config = tmp_path / "join.yaml"
    text = render("kubeadm_node", "kubeadm-join.yaml.j2", variables, config)
    result = validate(kubeadm, config)
    assert result.returncode == 0, result.stderr
    join = yaml.safe_load(text)
    assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "10.210.1.11:6443"
    assert ("controlPlane" in join) == control_plane


def test_flannel_manifest_carries_the_plan(tmp_path):
    network = {
        "EnableIPv4": True,
        "EnableIPv6": True,
        "Network": "10.32.0.0/16",
        "SubnetLen": 24,
        "IPv6Network": "fd10::/56",
        "IPv6SubnetLen": 64,
    }
    text = render(
        "cni_flannel",
        "kube-flannel.yml.j2",
        {"cni_flannel_network": network, "cni_flannel_ip_masq": False, "cni_flannel_iface": "eth0", "cni_flannel_vxlan_mtu": 1400},
        tmp_path / "flannel.yml",
    )
    docs = {d["kind"]: d for d in yaml.safe_load_all(text) if d}
    net_conf = json.loads(docs["ConfigMap"]["data"]["net-conf.json"])
    assert {k: net_conf[k] for k in network} == network
    assert net_conf["Backend"] == {"Type": "vxlan", "VNI": 1, "Port": 8472, "DirectRouting": False, "MTU": 1400}
    args = docs["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--ip-masq=false" in args and "--iface=eth0" in args


def test_an_ipv6_only_plan_configures_a_cluster_kubeadm_accepts(kubeadm, tmp_path):
    """Issue 15's IPv6-only cluster, from the plan to kubeadm: the planner's ranges for an IPv6-only flat plan go into
    the init, join and flannel configurations exactly as playbooks/kubernetes.yml and cni.yml pass them, with IPv6
    node and API addresses, and kubeadm's own validation accepts the result."""
    from network_plan import plan_network

    plan = plan_network(
        {
            "model": "flat",
            "ip_families": ["ipv6"],
            "pools": {"pods": {"ipv6": ["fd48::/48"]}, "services": {"ipv6": ["fd97::/108"]}},
            "node_networks": ["fd00:219::/64"],
            "clusters": {"six": {"nodes": 4}},
        }
    )["clusters"]["six"]
    assert all(":" in cidr for cidr in plan["pod_cidrs"] + plan["service_cidrs"]), plan

    init = tmp_path / "init.yaml"
    init_text = render(
        "kubeadm_control_plane",
        "kubeadm-init.yaml.j2",
        {
            "kubeadm_control_plane_pod_subnets": plan["pod_cidrs"],
            "kubeadm_control_plane_service_subnets": plan["service_cidrs"],
            "kubeadm_control_plane_node_cidr_mask_sizes": plan["node_cidr_mask_sizes"],
            "kubeadm_control_plane_max_pods": plan["max_pods_per_node"],
            "kubeadm_control_plane_advertise_address": "fd00:219::11",
            "kubeadm_control_plane_node_ips": ["fd00:219::11"],
            "kubeadm_control_plane_endpoint": "[fd00:219::10]:6443",
            "kubeadm_control_plane_cluster_name": "six",
        },
        init,
    )
    result = validate(kubeadm, init)
    assert result.returncode == 0, result.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(init_text) if d}
    networking = docs["ClusterConfiguration"]["networking"]
    assert (networking["podSubnet"], networking["serviceSubnet"]) == (plan["pod_cidrs"][0], plan["service_cidrs"][0])
    assert docs["InitConfiguration"]["localAPIEndpoint"]["advertiseAddress"] == "fd00:219::11"
    assert docs["ClusterConfiguration"]["controlPlaneEndpoint"] == "[fd00:219::10]:6443"
    assert docs["KubeletConfiguration"]["maxPods"] == plan["max_pods_per_node"]

    join = tmp_path / "join.yaml"
    render(
        "kubeadm_node",
        "kubeadm-join.yaml.j2",
        {
            "kubeadm_node_join_command": {
                "stdout": "kubeadm join [fd00:219::10]:6443 --token abcdef.0123456789abcdef "
                "--discovery-token-ca-cert-hash sha256:" + "0" * 64
            },
            "kubeadm_node_upload_certs": {"stdout_lines": ["[upload-certs] Using certificate key:", "1" * 64]},
            "kubeadm_node_control_plane": True,
            "kubeadm_node_advertise_address": "fd00:219::12",
            "kubeadm_node_node_ips": ["fd00:219::12"],
        },
        join,
    )
    result = validate(kubeadm, join)
    assert result.returncode == 0, result.stderr

    flannel = render("cni_flannel", "kube-flannel.yml.j2", {"cni_flannel_network": plan["flannel"]}, tmp_path / "flannel.yml")
    net_conf = json.loads(next(d for d in yaml.safe_load_all(flannel) if d and d["kind"] == "ConfigMap")["data"]["net-conf.json"])
    assert (net_conf["EnableIPv4"], net_conf["EnableIPv6"], net_conf["IPv6Network"]) == (False, True, plan["pod_cidrs"][0])
