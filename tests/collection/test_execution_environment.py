"""execution-environment.yml (for AWX and Automation Platform) checked without ansible-builder, which this project does
not install: against the JSON schema of ansible-builder's v3 format that ansible-lint ships (ansible/schemas), and
against the files it names."""

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import ansiblelint
import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(ansiblelint.__file__).parent / "schemas"


def load(name: str):
    return yaml.safe_load((ROOT / name).read_text())


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.json").read_text())


def pins(name: str) -> dict:
    lines = [line.split("#")[0].strip() for line in (ROOT / name).read_text().splitlines()]
    return {(r := Requirement(line)).name: str(r.specifier) for line in lines if line}


def test_the_execution_environment_is_valid_v3():
    ee = load("execution-environment.yml")
    assert ee["version"] == 3
    jsonschema.validate(ee, schema("execution-environment"))


@pytest.mark.parametrize("mutate", [
    # The schema ansible-lint ships is lax (it allows unknown keys under dependencies); ansible-builder's check below is not.
    lambda ee: ee.update(version=2),
    lambda ee: ee["dependencies"].update(python=5),
    lambda ee: ee["dependencies"].update(ansible_core={"package": "ansible-core"}),
])
def test_the_schema_check_catches_a_broken_file(mutate):
    ee = copy.deepcopy(load("execution-environment.yml"))
    mutate(ee)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(ee, schema("execution-environment"))


def test_the_files_it_names_exist_and_parse():
    deps = load("execution-environment.yml")["dependencies"]
    jsonschema.validate(load(deps["galaxy"]), schema("requirements"))
    galaxy = {c["name"] for c in load(deps["galaxy"])["collections"]}
    assert set(load("galaxy.yml")["dependencies"]) <= galaxy
    assert pins(deps["python"])  # parses as pip requirements, and is not empty
    for line in (ROOT / deps["system"]).read_text().splitlines():
        assert line.startswith("#") or re.fullmatch(r"[a-z0-9.+-]+( \[[a-z:!0-9 -]+\])?", line), line


def test_its_pins_are_the_project_pins():
    ee = load("execution-environment.yml")
    project = pins("requirements.txt")
    core = Requirement(ee["dependencies"]["ansible_core"]["package_pip"])
    assert core.name == "ansible-core" and str(core.specifier) == project["ansible-core"]
    for name, specifier in pins(ee["dependencies"]["python"]).items():
        assert project.get(name) == specifier, name


def ansible_builder() -> str | None:
    beside = Path(sys.executable).with_name("ansible-builder")
    return str(beside) if beside.exists() else shutil.which("ansible-builder")


@pytest.mark.parametrize("broken", [False, True])
def test_ansible_builder_accepts_it_and_refuses_a_broken_copy(tmp_path, broken):
    """ansible-builder's own check (requirements.txt installs it): `create` validates the file and writes the build
    context (a Containerfile), building no image and reaching no network."""
    builder = ansible_builder()
    if builder is None:
        pytest.skip("ansible-builder is not installed in this virtualenv; `make setup` installs it from requirements.txt")
    for name in ("execution-environment.yml", "requirements.yml", "requirements-ee.txt", "bindep.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    if broken:
        text = (tmp_path / "execution-environment.yml").read_text()
        (tmp_path / "execution-environment.yml").write_text(text.replace("  python: requirements-ee.txt", "  pythn: requirements-ee.txt"))
    result = subprocess.run([builder, "create", "-f", "execution-environment.yml", "-c", "context"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False)
    if broken:
        assert result.returncode != 0 and "'pythn' was unexpected" in result.stdout + result.stderr
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        containerfile = (tmp_path / "context" / "Containerfile").read_text()
        assert 'EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile and "ansible-core==2.19.14" in containerfile
