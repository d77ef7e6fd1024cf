"""Kill a converge at a task the caller names, as an operator's Ctrl-C or a lost controller would.

Runs `ansible-playbook -i INVENTORY [--limit HOSTS] PLAYBOOK`, reads its output, and the moment the header of the named task appears
(the task has started, the ones before it have finished on every host) kills the whole process group with SIGKILL,
so no handler, `always:` or cleanup of Ansible's runs. Exits 0 only when the playbook was killed at that task;
a playbook that ended before reaching it (or failed) exits 1, so the point of interruption is never left to luck.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inventory", action="append", required=True)
    parser.add_argument("--at", required=True, help="task name as the header prints it, e.g. 'kubeadm_node : Write the join configuration'")
    parser.add_argument("--limit", help="passed to ansible-playbook --limit")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds before giving up (the run is killed either way)")
    parser.add_argument("playbook")
    args = parser.parse_args()

    marker = f"TASK [{args.at}]"
    command = [str(Path(sys.executable).with_name("ansible-playbook"))]
    for inventory in args.inventory:
        command += ["-i", inventory]
    if args.limit:
        command += ["--limit", args.limit]
    command.append(args.playbook)
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    deadline = time.monotonic() + args.timeout
    killed = False
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="")
        if line.startswith(marker):
            os.killpg(process.pid, signal.SIGKILL)
            killed = True
            break
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            print(f"interrupt: {args.timeout} s passed before {marker!r}", file=sys.stderr)
            break
    process.wait()
    if not killed:
        print(f"interrupt: the playbook ended (rc {process.returncode}) without reaching {marker!r}", file=sys.stderr)
        return 1
    print(f"interrupt: killed the run at {marker!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
