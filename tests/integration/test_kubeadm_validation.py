"""Integration: the kubeadm roles refuse bad input before they change anything.

Each role runs against localhost in check mode (nothing on this machine can change even if a check let bad input
through) and must fail at validation: failed=1, changed=0, and a message naming the bad value."""

import json
import re

import pytest
from helpers import run_ansible

PLAYBOOK = """
- name: Apply the kubeadm_node role to the controller, in check mode
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: kubeadm_node
      vars:
        kubeadm_node_control_plane_host: cp1
"""


@pytest.mark.parametrize("ttl", ["0", "0s", "0h0m0s", "forever", "15", "-5m"])
def test_a_join_token_that_never_expires_or_is_malformed_is_refused(tmp_path, ttl):
    playbook = tmp_path / "join.yml"
    playbook.write_text(PLAYBOOK)
    extra = json.dumps({"kubeadm_node_token_ttl": ttl})
    result = run_ansible("ansible-playbook", "-i", "localhost,cp1,", "--check", "-e", extra, str(playbook), timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert re.search(r"localhost\s+:\s+ok=\d+\s+changed=0\s+unreachable=0\s+failed=1", output), output
    assert f"kubeadm_node_token_ttl {ttl} must be a positive duration" in output, output


def test_a_positive_token_lifetime_passes_validation(tmp_path):
    playbook = tmp_path / "join.yml"
    playbook.write_text(PLAYBOOK)
    extra = json.dumps({"kubeadm_node_token_ttl": "1h30m"})
    result = run_ansible(
        "ansible-playbook",
        "-i",
        "localhost,cp1,",
        "--check",
        "-e",
        extra,
        "--start-at-task",
        "Check the join token's lifetime",
        str(playbook),
    )
    output = result.stdout + result.stderr
    assert "Check the join token's lifetime" in output, output
    assert "must be a positive duration" not in output, output
