"""Integration: the node role refuses bad input with a clear message before it changes anything.

The role runs against localhost in check mode (nothing on this machine can change even if a check let bad input
through), and each case must fail at validation: failed=1, changed=0, and a message naming the bad value and a fix.
"""

import json
import re
import sys

import pytest
from helpers import run_ansible

PLAYBOOK = """
- name: Apply the node role to the controller, in check mode
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: node
"""


@pytest.mark.parametrize(
    ("extra_vars", "message"),
    [
        ({"node_package_source": "ftp"}, r"node_package_source must be one of: online, offline, got: ftp"),
        ({"node_cgroup_driver": "cgroupv3"}, r"node_cgroup_driver must be one of: systemd, cgroupfs, got: cgroupv3"),
        ({"node_ip_families": ["ipv5"]}, r"node_ip_families must be one or more of: ipv4, ipv6. Got no match for: ipv5"),
        (
            {"node_package_source": "offline", "node_artifacts_dir": "/nonexistent/artifacts"},
            r"node_artifacts_dir '/nonexistent/artifacts' on the controller does not exist\.\s+Build it with `make artifacts`",
        ),
    ],
)
def test_bad_input_fails_before_any_change(tmp_path, extra_vars, message):
    playbook = tmp_path / "node.yml"
    playbook.write_text(PLAYBOOK)
    result = run_ansible("ansible-playbook", "-i", "localhost,", "--check", "-e", json.dumps(extra_vars), str(playbook), timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert re.search(r"localhost\s+:\s+ok=\d+\s+changed=0\s+unreachable=0\s+failed=1", output), output
    assert re.search(message, output), output


def test_a_lab_host_refuses_an_online_package_source(tmp_path):
    """The lab marks its hosts with the local fact archipelago_lab: such a host has no way off the machine, so the
    node role refuses the online source before it rewrites containerd's configuration."""
    facts = tmp_path / "facts.d"
    facts.mkdir()
    (facts / "archipelago_lab.fact").write_text('{"lab": "molecule-flat", "offline": true}\n')
    playbook = tmp_path / "node.yml"
    playbook.write_text(f"""
- name: Apply the node role to a host marked as a lab host, in check mode
  hosts: localhost
  connection: local
  gather_facts: false
  pre_tasks:
    - name: Read the local facts from the test's directory
      ansible.builtin.setup:
        gather_subset: [min]
        fact_path: {facts}
  roles:
    - role: node
      node_package_source: online
""")
    # The setup module runs, so the controller's own Python runs it (discovery may find a broken shim).
    result = run_ansible("ansible-playbook", "-i", "localhost,", "--check", "-e", f"ansible_python_interpreter={sys.executable}",
                         str(playbook), timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert re.search(r"localhost\s+:\s+ok=\d+\s+changed=0\s+unreachable=0\s+failed=1", output), output
    refusal = r"localhost is a host of an air-gapped lab \(lab_name:\s+molecule-flat\), but node_package_source is 'online'"
    assert re.search(refusal, output), output
