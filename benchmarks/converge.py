"""Re-run speed of site.yml on the default lab (two island clusters and their gateways, inventories/lab).

Runs, in this order, against the lab as it is (or freshly recreated with --fresh, which removes and re-creates the
lab's containers with playbooks/lab.yml, so the first converge starts from booted, empty hosts):

1. first:           site.yml from booted hosts (only meaningful with --fresh);
2. noop:            site.yml again; every host must report changed=0;
3. noop-podman:     site.yml again over the podman connection (-e lab_connection=podman); changed=0 again, so the
                    two connections are compared on the same work under the same load;
4. add-export:      site.yml with one export added to each gateway (the gateway rules change, nothing else may);
5. remove-export:   site.yml without it, back to the inventory as committed.

Each run uses the JSON callback: the per-host task counts (ok + changed + skipped + failed) and changed counts come
from its stats, and the slowest tasks from its task durations. Load averages are read before and after each run.
Exit status 1 when a goal is missed (first <= 300 s, noop <= 60 s) or a no-op run changed anything; 2 when a run
failed. Results go to stdout as JSON (and to --output).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
INVENTORY = REPO / "inventories" / "lab"
FIRST_GOAL, NOOP_GOAL = 300.0, 60.0
EXPORT = {"island_gateway_exports": [{"name": "bench", "protocol": "tcp", "port": 8080, "node_port": 30080}]}


def env() -> dict:
    return {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "lab" / "containers.conf")),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}


def seconds(start: str, end: str) -> float:
    parse = datetime.datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def run(name: str, playbook: str, extra: dict | None = None, top: int = 8) -> dict:
    command = [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), str(REPO / playbook)]
    if extra:
        command += ["-e", json.dumps(extra)]
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    proc = subprocess.run(command, env=env(), capture_output=True, text=True, cwd=REPO, check=False, timeout=3600)
    elapsed = time.monotonic() - started
    result = {"run": name, "seconds": round(elapsed, 1), "rc": proc.returncode,
              "load_before": round(load_before, 1), "load_after": round(os.getloadavg()[0], 1)}
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        result["error"] = (proc.stdout + proc.stderr)[-3000:]
        return result
    stats = report["stats"]
    result["tasks"] = {h: s["ok"] + s["changed"] + s["skipped"] + s["failures"] for h, s in sorted(stats.items())}
    result["changed"] = {h: s["changed"] for h, s in sorted(stats.items())}
    result["failed"] = {h: s["failures"] + s["unreachable"] for h, s in sorted(stats.items()) if s["failures"] + s["unreachable"]}
    durations = []
    for play in report["plays"]:
        for task in play["tasks"]:
            d = task["task"].get("duration", {})
            if d.get("start") and d.get("end"):
                durations.append((seconds(d["start"], d["end"]), task["task"]["name"]))
    durations.sort(reverse=True)
    result["task_seconds_total"] = round(sum(d for d, _ in durations), 1)
    result["slowest"] = [[round(d, 1), n] for d, n in durations[:top]]
    if proc.returncode:
        result["error"] = "\n".join(f"{h}: {t['task']['name']}: {r.get('msg')}" for p in report["plays"] for t in p["tasks"]
                                    for h, r in t["hosts"].items() if r.get("failed") or r.get("unreachable"))[-3000:]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="recreate the lab's containers first (first converge from booted hosts)")
    parser.add_argument("--output", type=Path, help="also write the JSON results here")
    args = parser.parse_args()

    results = []
    if args.fresh:
        for state in ("absent", "present"):
            results.append(run(f"lab-{state}", "playbooks/lab.yml", {"lab_state": state}))
            if results[-1]["rc"]:
                print(json.dumps(results, indent=1))
                return 2
    plan = [("first", None), ("noop", None), ("noop-podman", {"lab_connection": "podman"}),
            ("add-export", EXPORT), ("remove-export", None)]
    status = 0
    for name, extra in plan:
        result = run(name, "site.yml", extra)
        results.append(result)
        print(json.dumps(result), file=sys.stderr, flush=True)
        if result["rc"] or "tasks" not in result:
            status = 2
            break
        if name.startswith("noop") and any(result["changed"].values()):
            result["goal_missed"] = f"a no-op re-run changed something: {result['changed']}"
            status = max(status, 1)
        if name == "add-export" and not any(result["changed"].get(h) for h in ("alpha-gw", "beta-gw")):
            result["goal_missed"] = "adding an export changed no gateway"
            status = max(status, 1)
    timings = {r["run"]: r["seconds"] for r in results}
    if args.fresh and timings.get("first", 0) > FIRST_GOAL:
        status = max(status, 1)
    if timings.get("noop", 0) > NOOP_GOAL:
        status = max(status, 1)
    if "noop" in timings and "noop-podman" in timings:
        results.append({"run": "ratio", "noop_podman_over_ssh": round(timings["noop-podman"] / timings["noop"], 2)})
    text = json.dumps(results, indent=1)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
