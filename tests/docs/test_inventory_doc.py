"""docs/inventory.md is the one reference for inventory variables: every variable an inventory of this repository
sets, every inventory variable a playbook reads, and every role variable (its generated part, kept current from the
argument specs by scripts/inventory-doc.py) is on it."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "inventory.md").read_text()
DOCUMENTED = set(re.findall(r"`([a-z][a-z0-9_]*)`", DOC))
# Names the playbooks compute themselves (facts and play variables), not set by users.
INTERNAL = re.compile(
    r"^(archipelago_.*|cluster_plan|cluster_init_host|plan_.*|routers_.*|gateways_.*|etcd_target_.*"
    r"|verify_island_targets|model|ip_families|global_cidrs|isreg|egress|inventory_hostname|first|item)$"
)


def inventory_variables() -> dict:
    """Variable names set in the repository's inventories and molecule inventories, with where each is set."""
    found: dict = {}

    def groups(data, source):
        for body in (data or {}).values():
            if isinstance(body, dict):
                for name in body.get("vars") or {}:
                    found.setdefault(name, source)
                for host in (body.get("hosts") or {}).values():
                    for name in host or {}:
                        found.setdefault(name, source)
                groups(body.get("children"), source)

    for path in sorted((ROOT / "inventories").rglob("*.yml")):
        if ".archipelago" in path.parts:
            continue
        data = yaml.safe_load(path.read_text())
        if "group_vars" in path.parts or "host_vars" in path.parts:
            for name in data or {}:
                found.setdefault(name, str(path.relative_to(ROOT)))
        else:
            groups(data, str(path.relative_to(ROOT)))
    for path in sorted(ROOT.glob("molecule/*/molecule.yml")):
        inventory = (yaml.safe_load(path.read_text()).get("provisioner") or {}).get("inventory") or {}
        for kind in ("group_vars", "host_vars"):
            for values in (inventory.get(kind) or {}).values():
                for name in values or {}:
                    found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def playbook_variables() -> dict:
    """Unprefixed variables the playbooks read from the inventory: `name | default(...)` and `hostvars[...].name`."""
    found: dict = {}
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        text = path.read_text()
        for name in re.findall(r"\b([a-z][a-z0-9_]*) *\| *default\(", text) + re.findall(r"hostvars\[[^\]]+\]\.([a-z][a-z0-9_]*)", text):
            if not INTERNAL.match(name):
                found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def test_the_generated_role_tables_are_current():
    script = ROOT / "scripts" / "inventory-doc.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_every_variable_the_inventories_set_is_documented():
    found = inventory_variables()
    assert len(found) > 30
    missing = {name: source for name, source in found.items() if name not in DOCUMENTED}
    assert missing == {}, "add these to docs/inventory.md"


def test_every_variable_the_playbooks_read_is_documented():
    found = playbook_variables()
    assert {"network_plan_dir", "cluster_name", "cni", "gateway_cluster", "router_clusters"} <= set(found)
    missing = {name: source for name, source in found.items() if name not in DOCUMENTED}
    assert missing == {}, "add these to docs/inventory.md"
