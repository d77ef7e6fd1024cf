"""One source for versions: versions.yml. The artifacts build and the roles read it; no code or configuration file
repeats a pinned version, and what each reader resolves equals the file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, run_ansible

VERSIONS = yaml.safe_load((ROOT / "versions.yml").read_text())
CODE = ("*.yml", "*.yaml", "*.j2", "*.py", "*.sh", "*.cfg", "*.toml", "*.in", "Containerfile*", "Makefile")


def tracked(*patterns: str) -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z", "--", *patterns], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / n for n in names.split("\0") if n and (ROOT / n).is_file() and not (ROOT / n).is_symlink()]


def test_versions_file_holds_every_component():
    assert set(VERSIONS) == {"kubernetes", "etcd", "coredns", "pause", "flannel", "flannel_cni_plugin", "cni_plugins", "calico",
                             "metallb", "traefik", "gateway_api"}
    assert all(isinstance(v, str) and v for v in VERSIONS.values())


@pytest.mark.parametrize("name", ["kubernetes", "etcd", "flannel", "calico", "cni_plugins", "flannel_cni_plugin", "coredns", "metallb",
                                  "traefik", "gateway_api"])
def test_no_code_or_configuration_file_repeats_a_version(name):
    version = VERSIONS[name]
    bare = version.removeprefix("v")
    found = [f"{p.relative_to(ROOT)}: {line.strip()}" for p in tracked(*CODE) if p.name != "versions.yml" and "/.archipelago/" not in str(p)
             for line in p.read_text(errors="replace").splitlines()
             if not line.lstrip().startswith("#")  # comments may record what was measured with which version
             and (version in line or f":{bare}" in line or f'"{bare}"' in line)]
    assert found == [], f"{name} {version} is written outside versions.yml: {found}"


def test_role_readmes_state_no_pinned_version():
    pinned = [v for v in VERSIONS.values() if v.startswith("v")]
    found = [(str(p.relative_to(ROOT)), v) for p in tracked("roles/*/README.md") for line in p.read_text().splitlines()
             if line.startswith("| `") for v in pinned if v in line]
    assert found == []


def test_the_artifacts_build_reads_versions_yml():
    result = subprocess.run([str(ROOT / "scripts" / "build-artifacts.sh"), "--print-versions"], capture_output=True, text=True,
                            timeout=60, check=False, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    stamp = dict(line.split("=", 1) for line in result.stdout.splitlines())
    # Calico, MetalLB and Traefik have stamps of their own (scripts/artifacts/calico-*.sh, metallb.sh, traefik.sh).
    assert stamp == {k: v for k, v in VERSIONS.items() if k not in ("calico", "metallb", "traefik", "gateway_api")}


def test_the_artifacts_build_stops_when_a_version_is_missing(tmp_path):
    broken = tmp_path / "versions.yml"
    broken.write_text("".join(f"{k}: {v}\n" for k, v in VERSIONS.items() if k != "etcd"))
    result = subprocess.run([str(ROOT / "scripts" / "build-artifacts.sh"), "--print-versions"], capture_output=True, text=True,
                            timeout=60, check=False, env={"PATH": "/usr/bin:/bin", "ARCHIPELAGO_VERSIONS_FILE": str(broken)})
    assert result.returncode != 0
    assert f'{broken} has no line "etcd: <version>"' in result.stderr


RESOLVE = """\
- name: Resolve the roles' version defaults as the roles do
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Read the roles' defaults
      ansible.builtin.include_vars:
        file: "{{ item }}/defaults/main.yml"
      loop: "{{ roles }}"
    - name: Write the resolved versions
      ansible.builtin.copy:
        content: "{{ dict(names | zip(names | map('extract', vars))) | to_json }}"
        dest: "{{ playbook_dir }}/resolved.json"
        mode: "0644"
      vars:
        role_path: "{{ roles_dir }}/node"  # as inside a role; every role sits at the same depth
        names: [node_kubernetes_version, node_sandbox_image, node_artifacts_dir, kubeadm_control_plane_kubernetes_version,
                cni_flannel_image, cni_calico_node_image, cni_calico_crds_dir, metallb_artifacts_dir,
                traefik_artifacts_dir, traefik_image]
"""


def test_the_roles_defaults_resolve_to_versions_yml(tmp_path):
    playbook = tmp_path / "resolve.yml"
    playbook.write_text(RESOLVE)
    roles = [str(ROOT / "roles" / r) for r in ("node", "kubeadm_control_plane", "cni_flannel", "cni_calico", "metallb", "traefik")]
    extra = json.dumps({"roles": roles, "roles_dir": str(ROOT / "roles"), "ansible_python_interpreter": sys.executable})
    result = run_ansible("ansible-playbook", "-i", "localhost,", str(playbook), "-e", extra)
    assert result.returncode == 0, result.stdout + result.stderr
    resolved = json.loads((tmp_path / "resolved.json").read_text())
    assert resolved["node_kubernetes_version"] == VERSIONS["kubernetes"].removeprefix("v")
    assert resolved["kubeadm_control_plane_kubernetes_version"] == VERSIONS["kubernetes"]
    assert resolved["node_sandbox_image"] == f"registry.k8s.io/pause:{VERSIONS['pause']}"
    assert resolved["node_artifacts_dir"].endswith(f"/artifacts/kubernetes-{VERSIONS['kubernetes']}")
    assert resolved["cni_flannel_image"] == f"ghcr.io/flannel-io/flannel:{VERSIONS['flannel']}"
    assert resolved["cni_calico_node_image"] == f"docker.io/calico/node:{VERSIONS['calico']}"
    assert resolved["cni_calico_crds_dir"].endswith(f"/artifacts/calico-{VERSIONS['calico']}/crds")
    assert resolved["metallb_artifacts_dir"].endswith(f"/artifacts/metallb-{VERSIONS['metallb']}")
    assert resolved["traefik_artifacts_dir"].endswith(f"/artifacts/traefik-{VERSIONS['traefik']}")
    assert resolved["traefik_image"] == f"docker.io/library/traefik:{VERSIONS['traefik']}"
