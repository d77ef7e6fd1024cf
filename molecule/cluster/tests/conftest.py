"""The verify step's playbook runs that only read start together when the session starts and run in the background
while the first tests ask the cluster: summary.yml without and with --limit (test_day2.py) and kubernetes.yml with an
inventory that puts a fresh host before the live first control plane (test_lifecycle_guards.py). One after the other
they took 185 s of the 399 s verify step at load 40 to 60. The test that changes the cluster (cp1's admin.conf moved
away) first waits for every one of them (ReadOnlyRuns.wait), so none of them sees that change."""

import os
import shutil
import sys
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
from scenario import run_playbook

SCENARIO = Path(__file__).resolve().parents[1]
SUMMARY_LIMITS = [None, "w2"]  # summary.yml on the whole inventory, and limited to a worker


def second_cluster_inventory(directory: Path) -> Path:
    """A copy of the scenario's inventory that lists a fresh host (ext1) before the live cp1 among alpha's control planes."""
    inventory = directory / "inventory"
    shutil.copytree(Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory", inventory)
    hosts_file = inventory / "ansible_inventory.yml"
    hosts = yaml.safe_load(hosts_file.read_text())
    groups = hosts["all"].get("children", hosts)  # molecule writes its groups at the top level
    for group in ("kube_control_plane", "alpha"):
        groups[group]["hosts"] = {"ext1": {}, **(groups[group].get("hosts") or {})}
    hosts_file.write_text(yaml.safe_dump(hosts, sort_keys=False))
    return inventory


class ReadOnlyRuns:
    """The background runs; each result is what scenario.run_playbook returns (or raises, when read)."""

    def __init__(self, directory: Path):
        self._pool = ThreadPoolExecutor(max_workers=len(SUMMARY_LIMITS) + 1)
        self.summaries: dict[str | None, Future] = {
            limit: self._pool.submit(run_playbook, SCENARIO / "summary.yml", limit=limit) for limit in SUMMARY_LIMITS}
        self.second_cluster: Future = self._pool.submit(run_playbook, SCENARIO / "kubernetes.yml",
                                                        inventory=second_cluster_inventory(directory))

    def wait(self) -> None:
        """Block until every background run has ended (their failures are reported by the tests that read them)."""
        wait([*self.summaries.values(), self.second_cluster])

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@pytest.fixture(scope="session", autouse=True)
def read_only_runs(tmp_path_factory):
    runs = ReadOnlyRuns(tmp_path_factory.mktemp("second-cluster"))
    yield runs
    runs.close()
