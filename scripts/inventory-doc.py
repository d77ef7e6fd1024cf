#!/usr/bin/env python3
"""Write (or, with --check, verify) the generated part of docs/inventory.md: one table per role, from the role's
meta/argument_specs.yml, the one source of each role variable's type, default and meaning (`ansible-doc -t role`
reads the same file)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "inventory.md"
BEGIN = "<!-- BEGIN role variables: written by scripts/inventory-doc.py from roles/*/meta/argument_specs.yml -->\n"
END = "<!-- END role variables -->\n"


def cell(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return "`" + text.replace("|", "\\|") + "`" if text != "" else '`""`'


def role_tables() -> str:
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
            kind = option.get("type", "str") + (f" of {option['elements']}" if option.get("elements") else "")
            if option.get("choices"):
                kind += ": " + ", ".join(str(c) for c in option["choices"])
            description = option.get("description", "")
            description = " ".join(description) if isinstance(description, list) else description
            description = description.replace("|", "\\|")
            out.append(f"| `{name}` | {kind} | {default} | {description} |\n")
    return "".join(out)


def main() -> int:
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    wanted = head + BEGIN + role_tables() + "\n" + END + tail
    if "--check" in sys.argv[1:]:
        if wanted != text:
            print(f"{DOC.relative_to(ROOT)} is out of date: run scripts/inventory-doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
