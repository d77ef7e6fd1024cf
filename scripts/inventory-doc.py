#!/usr/bin/env python3
"""Write (or, with --check, verify) the generated parts of docs/inventory.md: the inventory variables' table, from
playbooks/vars/inventory_spec.yml (the argument spec the plan play checks every host against), and one table per
role, from the role's meta/argument_specs.yml, the one source of each role variable's type, default and meaning
(`ansible-doc -t role` reads the same file). A role variable site.yml sets itself (playbooks/vars/site_sets.yml) says
so in its row, with what the inventory sets instead."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "inventory.md"
BEGIN = "<!-- BEGIN role variables: written by scripts/inventory-doc.py from roles/*/meta/argument_specs.yml -->\n"
END = "<!-- END role variables -->\n"
INVENTORY_SPEC = ROOT / "playbooks" / "vars" / "inventory_spec.yml"
INVENTORY_BEGIN = "<!-- BEGIN inventory variables: written by scripts/inventory-doc.py from playbooks/vars/inventory_spec.yml -->\n"
INVENTORY_END = "<!-- END inventory variables -->\n"
SITE_SETS = ROOT / "playbooks" / "vars" / "site_sets.yml"


def cell(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return "`" + text.replace("|", "\\|") + "`" if text != "" else '`""`'


def kind_of(option: dict) -> str:
    kind = option.get("type", "str") + (f" of {option['elements']}" if option.get("elements") else "")
    if option.get("choices"):
        kind += ": " + ", ".join(str(c) for c in option["choices"])
    return kind


def inventory_table() -> str:
    spec = yaml.safe_load(INVENTORY_SPEC.read_text())["archipelago_inventory_spec"]
    out = ["\n| variable | where | type | default | meaning |\n|---|---|---|---|---|\n"]
    for name, option in spec.items():
        cells = [option["where"], kind_of(option), option["default_text"], option["description"]]
        out.append(f"| `{name}` | " + " | ".join(c.replace("|", "\\|") for c in cells) + " |\n")
    return "".join(out)


def replace_between(text: str, begin: str, end: str, body: str) -> str:
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + body + "\n" + end + tail


def role_tables() -> str:
    site_sets = yaml.safe_load(SITE_SETS.read_text())["site_sets"]
    out = []
    for spec_file in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        role = spec_file.parent.parent.name
        options: dict = {}
        for spec in yaml.safe_load(spec_file.read_text())["argument_specs"].values():
            for name, option in (spec.get("options") or {}).items():
                options.setdefault(name, option)
        readme = f"[roles/{role}/README.md](../roles/{role}/README.md)"
        out.append(f"\n### {role}\n\n`ansible-doc -t role archipelago.clusters.{role}`; {readme}\n\n")
        out.append("| variable | type | default | meaning |\n|---|---|---|---|\n")
        for name, option in options.items():
            default = "(required)" if option.get("required") else cell(option["default"]) if "default" in option else "(none)"
            kind = kind_of(option)
            description = option.get("description", "")
            description = " ".join(description) if isinstance(description, list) else description
            if name in site_sets:
                description += f" **site.yml sets it** (refused in an inventory); set instead: {site_sets[name]}."
            description = description.replace("|", "\\|")
            out.append(f"| `{name}` | {kind} | {default} | {description} |\n")
    return "".join(out)


def main() -> int:
    text = DOC.read_text()
    wanted = replace_between(text, INVENTORY_BEGIN, INVENTORY_END, inventory_table())
    wanted = replace_between(wanted, BEGIN, END, role_tables())
    if "--check" in sys.argv[1:]:
        if wanted != text:
            print(f"{DOC.relative_to(ROOT)} is out of date: run scripts/inventory-doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
