"""From a checkout, as molecule runs it: molecule writes an ansible.cfg of its own and each scenario points
ANSIBLE_COLLECTIONS_PATH at the checkout's collections/ (the link back to this repository) and ANSIBLE_ROLES_PATH at
roles/. The filters then resolve by their full names, from the working tree itself (not from an installed copy)."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

PLAY = """\
- name: Use a filter of the checkout by its full name
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Plan
      ansible.builtin.copy:
        content: "{{ spec | archipelago.clusters.network_plan | to_nice_yaml }}"
        dest: "{{ playbook_dir }}/plan.yml"
        mode: "0644"
      vars:
        spec:
          model: island
          ip_families: [ipv4]
          pools: {pods: {ipv4: [10.40.0.0/16]}, services: {ipv4: [10.96.0.0/16]}, global: {ipv4: [100.64.0.0/24]}}
          defaults: {nodes: 4, max_pods_per_node: 110, services: 1024}
          clusters: {alpha: {}}
"""


def test_molecule_s_environment_finds_the_checkout_s_filters(tmp_path):
    (tmp_path / "ansible.cfg").write_text("[defaults]\nforks = 5\n")  # as molecule's: nothing of this repository
    (tmp_path / "play.yml").write_text(PLAY)
    molecule = yaml.safe_load((ROOT / "molecule" / "island" / "molecule.yml").read_text())["provisioner"]["env"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({k: v.replace("${MOLECULE_PROJECT_DIRECTORY}", str(ROOT)) for k, v in molecule.items()})
    env.update({"ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"), "ANSIBLE_PYTHON_INTERPRETER": sys.executable, "ANSIBLE_NOCOLOR": "1"})
    result = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "play.yml", "-v"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    plan = yaml.safe_load((tmp_path / "plan.yml").read_text())
    assert plan["model"] == "island" and plan["clusters"]["alpha"]["global_cidrs"][0].startswith("100.64.0.")


def test_every_scenario_that_runs_the_roles_can_find_the_collection():
    """The roles' defaults use archipelago.clusters.version, so every scenario with the roles needs the collection too:
    the checkout's link, or (the node scenario, a consumer's view) the tarball its prepare step installs."""
    for path in sorted(ROOT.glob("molecule/*/molecule.yml")):
        env = yaml.safe_load(path.read_text())["provisioner"].get("env") or {}
        if "ANSIBLE_ROLES_PATH" not in env:
            continue
        collections = env.get("ANSIBLE_COLLECTIONS_PATH")
        if collections == "${MOLECULE_EPHEMERAL_DIRECTORY}/collections":
            prepare = (path.parent / "prepare.yml").read_text()
            assert "ansible-galaxy, collection, build" in prepare and "ansible-galaxy, collection, install" in prepare, path
        else:
            assert collections == "${MOLECULE_PROJECT_DIRECTORY}/collections", path
