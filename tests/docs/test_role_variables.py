"""Every role documents each of its variables three times, and the three must agree: defaults/main.yml (the value),
meta/argument_specs.yml (the type and check, and what `ansible-doc -t role` shows) and the README's Role Variables
table. A name in one but not the others, or a default the spec states differently, fails here."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))


def defaults(role: str) -> dict:
    path = ROOT / "roles" / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def spec_options(role: str) -> dict:
    """Every option of every entry point; an option named by several entry points must be specified alike."""
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options: dict = {}
    for entry, spec in specs.items():
        for name, option in (spec.get("options") or {}).items():
            if name in options:
                assert options[name].get("default") == option.get("default"), f"{role}: {name} has two defaults ({entry})"
            options.setdefault(name, option)
    return options


def readme_variables(role: str) -> set:
    """The names in the first column of the README's Role Variables tables (up to the next level-2 heading)."""
    path = ROOT / "roles" / role / "README.md"
    assert path.exists(), f"roles/{role} has no README.md"
    match = re.search(r"^## Role Variables\n(.*?)(?=^## |\Z)", path.read_text(), re.MULTILINE | re.DOTALL)
    assert match, f"roles/{role}/README.md has no '## Role Variables' section"
    return set(re.findall(r"^\| `([a-z][a-z0-9_]*)` \|", match.group(1), re.MULTILINE))


def test_every_role_is_checked():
    assert len(ROLES) >= 9


@pytest.mark.parametrize("role", ROLES)
def test_defaults_spec_and_readme_name_the_same_variables(role):
    in_defaults, in_spec, in_readme = set(defaults(role)), set(spec_options(role)), readme_variables(role)
    assert in_defaults - in_spec == set(), f"roles/{role}: in defaults/main.yml but not in meta/argument_specs.yml"
    required = {name for name, option in spec_options(role).items() if option.get("required")}
    assert in_spec - in_defaults - required == set(), f"roles/{role}: optional in the argument spec but not in defaults/main.yml"
    assert in_spec - in_readme == set(), f"roles/{role}: in meta/argument_specs.yml but not in README.md's Role Variables"
    assert in_readme - in_spec == set(), f"roles/{role}: in README.md's Role Variables but not in meta/argument_specs.yml"


@pytest.mark.parametrize("role", ROLES)
def test_the_spec_states_the_defaults_of_defaults_main(role):
    values = defaults(role)
    differ = {name: (option["default"], values[name]) for name, option in spec_options(role).items()
              if "default" in option and name in values and option["default"] != values[name]}
    assert differ == {}, f"roles/{role}: argument spec default != defaults/main.yml"
