"""Helpers shared by the tests (tests/ is on sys.path through conftest.py)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_ansible(tool: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run one of the venv's Ansible commands (ansible-playbook, ansible-doc) from the repository root, with the
    repository's ansible.cfg and roles, uncoloured, and return the finished process without checking it."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_NOCOLOR": "1"}
    command = [str(Path(sys.executable).with_name(tool)), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
