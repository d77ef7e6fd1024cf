"""The collection archipelago.clusters as a user gets it: built with ansible-galaxy, installed into an empty collections
path, and used from a directory outside this repository, with an ansible.cfg that is not this repository's."""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FILTERS = sorted(p.stem for p in (ROOT / "plugins" / "filter").glob("*.py"))
ROLES = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))


def run(tool: str, *args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def consumer(tmp_path_factory) -> dict:
    """Build the collection, install the tarball into an empty collections path, and return what a consumer has:
    a working directory outside the repository, an ansible.cfg of its own, and an environment naming only those."""
    home = tmp_path_factory.mktemp("consumer")
    (home / "ansible.cfg").write_text("[defaults]\ninterpreter_python = auto_silent\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update({"ANSIBLE_CONFIG": str(home / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(home / "collections"),
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(home / "tmp"), "HOME": str(home),
                "ANSIBLE_PYTHON_INTERPRETER": sys.executable})
    built = run("ansible-galaxy", "collection", "build", str(ROOT), "--output-path", str(home / "dist"), cwd=home, env=env)
    assert built.returncode == 0, built.stdout + built.stderr
    tarball = next((home / "dist").glob("archipelago-clusters-*.tar.gz"))
    # Galaxy is not reachable here: the dependencies (ansible.utils, ansible.posix) come from the `ansible` package.
    installed = run("ansible-galaxy", "collection", "install", str(tarball), "--no-deps", "-p", str(home / "collections"),
                    cwd=home, env=env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return {"home": home, "env": env, "tarball": tarball, "root": home / "collections" / "ansible_collections" / "archipelago" / "clusters"}


def test_the_tarball_holds_the_collection_and_no_caches_or_lab_state(consumer):
    with tarfile.open(consumer["tarball"]) as tar:
        names = tar.getnames()
    for wanted in ("MANIFEST.json", "versions.yml", "meta/runtime.yml", "playbooks/site.yml", "plugins/plugin_utils/filters.py",
                   *(f"plugins/filter/{name}.py" for name in FILTERS), *(f"roles/{role}/meta/argument_specs.yml" for role in ROLES)):
        assert wanted in names
    unwanted_parts = r"\.venv|\.git|\.cache|\.pytest_cache|\.ruff_cache|\.hypothesis|__pycache__|collections|molecule"
    unwanted = [n for n in names if re.search(rf"(^|/)({unwanted_parts})(/|$)|\.pyc$|^inventories/lab/.*network-plan", n)]
    assert unwanted == []
    assert sum(tar_member.size for tar_member in tarfile.open(consumer["tarball"]).getmembers()) < 5_000_000


def test_ansible_doc_documents_every_filter_and_role_of_the_installed_collection(consumer):
    for kind, names in (("filter", FILTERS), ("role", ROLES), ("lookup", ["version"])):
        fqcns = [f"archipelago.clusters.{n}" for n in names]
        result = run("ansible-doc", "-t", kind, "--json", *fqcns, cwd=consumer["home"], env=consumer["env"])
        assert result.returncode == 0, result.stdout + result.stderr
        assert "[WARNING]" not in result.stderr and "[ERROR]" not in result.stderr, result.stderr
        docs = json.loads(result.stdout)
        assert sorted(docs) == sorted(fqcns)
        for name, doc in docs.items():
            if kind in ("filter", "lookup"):
                assert doc["doc"]["short_description"] and doc["examples"] and doc["return"], name
                assert doc["doc"]["filename"].startswith(str(consumer["root"])), doc["doc"]["filename"]
            else:
                assert doc["path"].startswith(str(consumer["root"])), doc["path"]
                assert doc["entry_points"]["main"]["options"] or doc["entry_points"]["main"]["short_description"], name


CONSUMER_PLAY = """\
- name: Plan a network with the installed collection only
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    spec:
      model: flat
      ip_families: [ipv4]
      pools: {pods: {ipv4: [10.40.0.0/16]}, services: {ipv4: [10.96.0.0/16]}}
      node_networks: [192.168.10.0/24]
      defaults: {nodes: 4, max_pods_per_node: 110, services: 1024}
      clusters: {alpha: {}, beta: {}}
  tasks:
    - name: Plan
      ansible.builtin.set_fact:
        plan: "{{ spec | archipelago.clusters.network_plan }}"
    - name: Write what was planned
      ansible.builtin.copy:
        content: "{{ plan | to_nice_json }}"
        dest: "{{ playbook_dir }}/plan.json"
        mode: "0644"
"""


def test_a_playbook_outside_the_repository_plans_with_the_installed_filter(consumer):
    home = consumer["home"]
    (home / "play.yml").write_text(CONSUMER_PLAY)
    result = run("ansible-playbook", "-i", "localhost,", "play.yml", cwd=home, env=consumer["env"])
    assert result.returncode == 0, result.stdout + result.stderr
    plan = json.loads((home / "plan.json").read_text())
    assert set(plan["clusters"]) == {"alpha", "beta"}
    alpha, beta = plan["clusters"]["alpha"], plan["clusters"]["beta"]
    assert alpha["pod_cidrs"] and beta["pod_cidrs"] and alpha["pod_cidrs"] != beta["pod_cidrs"]
    assert all(c.startswith("10.40.") for c in alpha["pod_cidrs"] + beta["pod_cidrs"])


def test_a_bad_spec_fails_with_the_installed_filter_named(consumer):
    home = consumer["home"]
    (home / "bad.yml").write_text(CONSUMER_PLAY.replace("model: flat", "model: round").replace("plan.json", "bad.json"))
    result = run("ansible-playbook", "-i", "localhost,", "bad.yml", cwd=home, env=consumer["env"])
    assert result.returncode != 0
    assert "network_plan:" in result.stdout + result.stderr and "round" in result.stdout + result.stderr
    assert not (home / "bad.json").exists()


def consumer_inventory(home: Path) -> Path:
    """The flat example inventory, copied out of the repository without its plan files."""
    inventory = home / "inventory"
    if not inventory.exists():
        shutil.copytree(ROOT / "inventories" / "examples" / "flat", inventory,
                        ignore=shutil.ignore_patterns(".archipelago", "network-plan.*"))
    return inventory


def test_the_collection_site_playbook_resolves_its_plays_and_roles(consumer):
    home = consumer["home"]
    result = run("ansible-playbook", "-i", str(consumer_inventory(home)), "archipelago.clusters.site", "--syntax-check",
                 cwd=home, env=consumer["env"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"playbook: {consumer['root']}/playbooks/site.yml" in result.stdout  # the installed copy, not this checkout


def test_the_collection_plan_playbook_runs_and_its_outputs_are_no_inventory(consumer):
    """The installed plan playbook writes the lock, report and diagram for a consumer's inventory directory; a re-read of
    that inventory with the consumer's (not this repository's) configuration sees the same hosts and groups, and no
    warning about the plan's files."""
    home, env = consumer["home"], consumer["env"]
    inventory = consumer_inventory(home)
    before = run("ansible-inventory", "-i", str(inventory), "--list", cwd=home, env=env)
    assert before.returncode == 0 and before.stderr == "", before.stderr
    result = run("ansible-playbook", "-i", str(inventory), "archipelago.clusters.plan", cwd=home, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    after = run("ansible-inventory", "-i", str(inventory), "--list", cwd=home, env=env)
    assert after.returncode == 0 and after.stderr == "", after.stderr
    assert json.loads(after.stdout) == json.loads(before.stdout)
    written = sorted(p.relative_to(inventory).as_posix() for p in inventory.rglob("network-plan*"))
    assert written == [".archipelago/network-plan.lock.yml", ".archipelago/network-plan.md", ".archipelago/network-plan.svg"]
    lock = yaml.safe_load((inventory / ".archipelago" / "network-plan.lock.yml").read_text())
    assert set(lock["clusters"]) == {"amber", "birch", "cedar"}
