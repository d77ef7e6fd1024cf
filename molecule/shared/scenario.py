"""What the molecule scenarios' testinfra tests share: a bounded TCP probe, an echo server that reports the client
address it sees, a poll with a deadline, a re-run of one of the scenario's playbooks with JSON output, playbooks/verify.yml
with its JUnit outcomes, and the inventory's Kubernetes nodes of a cluster. Imported from a scenario's tests/ through sys.path."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
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


class PlaybookReportError(RuntimeError):
    """A playbook re-run gave no JSON report, so nothing can be said about what it changed."""


def ansible_env() -> dict:
    """The environment for Ansible commands against this repository's roles and filters."""
    return {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
            "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections")}


def inventory_path() -> Path:
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"


def run_playbook(playbook: Path, extra: dict | None = None, inventory: Path | None = None,
                 limit: str | None = None, timeout: int = 600) -> tuple[int, dict, str]:
    """Run a playbook against the scenario's inventory (or another one, limited to some hosts) with JSON output.
    Returns the exit code, the names of the tasks that changed per host, and a text that starts with every failed
    task's message and goes on with the playbook's whole output. Raises PlaybookReportError when the output is not the
    JSON report (a playbook that could not even start): "nothing changed" must never be read from a report that does
    not exist."""
    env = {**ansible_env(), "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}
    # No other callback either: one enabled for the scenario (ansible.posix.profile_tasks, say, in the provisioner's env,
    # which molecule hands the verifier too) prints to stdout and breaks the JSON report.
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory or inventory_path()), str(playbook)]
    if extra is not None:
        command += ["-e", json.dumps(extra)]
    if limit is not None:
        command += ["--limit", limit]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    try:
        report = json.loads(proc.stdout)
        plays = report["plays"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise PlaybookReportError(f"{playbook.name} (exit code {proc.returncode}) gave no JSON report ({error}): "
                                  f"{(proc.stdout + proc.stderr)[-3000:]}") from error
    changed, failures = {}, []
    for play in plays:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if result.get("changed"):
                    changed.setdefault(host, []).append(task["task"]["name"])
                if result.get("failed") or result.get("unreachable"):
                    failures.append(f"{host}: {task['task']['name']}: {result.get('msg')}")
    return proc.returncode, changed, "\n".join(failures) + "\n" + proc.stdout + proc.stderr


@functools.cache
def inventory_nodes(cluster: str) -> frozenset[str]:
    """The Kubernetes nodes of one cluster as the scenario's inventory has them: hosts in the cluster's group and in
    kube_control_plane or kube_node (ansible-inventory's view of the inventory molecule wrote). Node objects are
    named after their hosts. Fails when the cluster has no nodes, so a check against it cannot pass empty."""
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(inventory_path()), "--list"],
                          env=ansible_env(), capture_output=True, text=True, timeout=120, check=True)
    groups = json.loads(proc.stdout)

    def hosts(group: str) -> set[str]:
        return set(groups.get(group, {}).get("hosts", []))
    nodes = hosts(cluster) & (hosts("kube_control_plane") | hosts("kube_node"))
    if not nodes:
        raise AssertionError(f"the inventory has no Kubernetes nodes in cluster {cluster}: {sorted(groups)}")
    return frozenset(nodes)


def run_verify_playbook(ephemeral: Path, words: int = 1) -> dict:
    """Run playbooks/verify.yml (the users' checks) against the scenario and read its JUnit report: a mapping from
    (cluster, the first `words` words of the check's name, padded with "") to the set of outcomes (PASS, FAIL, SKIP)
    recorded under that key. Fails the calling test when the playbook fails."""
    report = ephemeral / "verify-check.xml"
    report.unlink(missing_ok=True)
    started = time.monotonic()
    rc, _, text = run_playbook(REPO / "playbooks" / "verify.yml")
    print(f"playbooks/verify.yml took {time.monotonic() - started:.0f} s")
    assert rc == 0, text[-4000:]
    status: dict = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        outcome = "FAIL" if case.find("failure") is not None else "SKIP" if case.find("skipped") is not None else "PASS"
        name = (case.get("name").split() + [""] * words)[:words]
        status.setdefault((case.get("classname"), *name), set()).add(outcome)
    return status
