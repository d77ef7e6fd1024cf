"""The verify role documents each setting once in spirit: its defaults, its argument spec and its README agree."""

from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "verify"


def test_defaults_argument_specs_and_readme_agree():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    documented = {}
    for entry in specs.values():
        for name, option in (entry.get("options") or {}).items():
            if "default" in option:
                assert documented.setdefault(name, option["default"]) == option["default"], name
    readme = (ROLE / "README.md").read_text()
    for name, value in defaults.items():
        assert documented.get(name) == value, f"{name}: defaults {value!r}, argument spec {documented.get(name)!r}"
        assert f"| `{name}` |" in readme, f"{name} is not in the README's table"
