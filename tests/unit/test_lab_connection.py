"""Every lab connects one way: the default lab's inventory and molecule's base config (merged into every scenario)
carry the same connection block, and no scenario overrides it.

A scenario that set its own ansible_connection, or a base config that drifted from the lab inventory, would let one
lab run over SSH and another over podman exec without anyone noticing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
LAB_CONNECTION = REPO / "inventories" / "lab" / "group_vars" / "all" / "connection.yml"
MOLECULE_BASE = REPO / ".config" / "molecule" / "config.yml"
SCENARIOS = sorted(REPO.glob("molecule/*/molecule.yml"))
CONNECTION_KEYS = {"lab_connection", "lab_state_dir"}


def lab_block() -> dict:
    return yaml.safe_load(LAB_CONNECTION.read_text())


def test_lab_inventory_connects_over_ssh_with_pipelining_and_controlpersist():
    block = lab_block()
    assert block["lab_connection"] == "ssh"
    assert "'ssh' if lab_connection == 'ssh'" in block["ansible_connection"]
    assert block["ansible_ssh_pipelining"] is True
    assert "ControlPersist=" in block["ansible_ssh_args"]
    assert block["ansible_control_path_dir"].startswith("{{ lab_state_dir }}/")
    assert block["ansible_ssh_common_args"] == "-F {{ lab_state_dir }}/ssh_config"
    # Host keys are checked against the lab's own known_hosts, never switched off.
    assert not any("host_key_checking" in key for key in block)


def test_molecule_base_config_is_the_lab_inventory_block():
    base = yaml.safe_load(MOLECULE_BASE.read_text())
    assert base["provisioner"]["inventory"]["group_vars"]["all"] == lab_block()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.parent.name for s in SCENARIOS])
def test_no_scenario_overrides_the_connection(scenario: Path):
    config = yaml.safe_load(scenario.read_text())
    inventory = config.get("provisioner", {}).get("inventory", {})
    overridden = []
    for level in ("group_vars", "host_vars"):
        for name, variables in (inventory.get(level) or {}).items():
            for key in variables or {}:
                if key in lab_block() or key in CONNECTION_KEYS or key.startswith(("ansible_ssh", "ansible_control")):
                    overridden.append(f"{level}/{name}: {key}")
    assert not overridden, f"{scenario} sets connection variables of its own: {overridden}; they belong in {MOLECULE_BASE}"


def test_there_are_scenarios():
    assert len(SCENARIOS) >= 4


def test_molecule_gathers_facts_as_the_repository_does():
    base = yaml.safe_load(MOLECULE_BASE.read_text())
    cfg = (REPO / "ansible.cfg").read_text()
    assert "gathering = smart" in cfg
    assert base["provisioner"]["config_options"]["defaults"]["gathering"] == "smart"
