"""What the molecule scenarios' testinfra tests share: a bounded TCP probe, an echo server that reports the client
address it sees, a poll with a deadline, and a re-run of one of the scenario's playbooks with JSON output.
Imported from a scenario's tests/ through sys.path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def ask(address: str, port: int, timeout: int = 3) -> str:
    """A bounded TCP request with socat: prints what the server answers (its view of the client's address)."""
    return f"timeout {timeout + 3} socat -T{timeout} - TCP:{address}:{port},connect-timeout={timeout} </dev/null"


def echo_server(host, unit: str, port: int):
    """Generator for a module fixture: on a testinfra host, a transient systemd unit answers every TCP connection on
    port with the client address it sees (bounded to 10 minutes); yields the port, stops the unit afterwards."""
    host.run(f"systemctl stop {unit} 2>/dev/null; systemctl reset-failed {unit} 2>/dev/null")
    started = host.run(f"systemd-run --unit={unit} timeout 600 socat TCP-LISTEN:{port},fork,reuseaddr 'SYSTEM:echo $SOCAT_PEERADDR'")
    assert started.rc == 0, started.stderr
    time.sleep(1)
    yield port
    host.run(f"systemctl stop {unit}")


def wait_for(check, seconds: float) -> bool:
    """Poll check() once a second until it is true or the deadline passes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(1)
    return False


def run_playbook(playbook: Path, extra: dict | None = None, inventory: Path | None = None) -> tuple[int, dict, str]:
    """Run a playbook against the scenario's inventory (or another one) with JSON output. Returns the exit code, the names of the
    tasks that changed per host, and a text that starts with every failed task's message and goes on with the
    playbook's whole output."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
           "ANSIBLE_FILTER_PLUGINS": str(REPO / "filter_plugins"), "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
           "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}
    inventory = inventory or Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook)]
    if extra is not None:
        command += ["-e", json.dumps(extra)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return proc.returncode, {}, proc.stdout + proc.stderr
    changed, failures = {}, []
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if result.get("changed"):
                    changed.setdefault(host, []).append(task["task"]["name"])
                if result.get("failed") or result.get("unreachable"):
                    failures.append(f"{host}: {task['task']['name']}: {result.get('msg')}")
    return proc.returncode, changed, "\n".join(failures) + "\n" + proc.stdout + proc.stderr
