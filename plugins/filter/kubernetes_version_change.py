"""The kubernetes_version_change filter: what kind of change going from a node's running Kubernetes version to the
wanted one is (none, a patch or minor upgrade, or one Archipelago refuses: a downgrade or a skipped minor)."""

from __future__ import annotations

import re

from ansible_collections.archipelago.clusters.plugins.plugin_utils.filters import fail

DOCUMENTATION = r"""
name: kubernetes_version_change
author: Archipelago
version_added: "0.1.0"
short_description: Classify a change of Kubernetes version (none, patch, minor, downgrade, skip)
description:
  - Compares the version a node runs with the one the inventory asks for (C(kubernetes_version)), both written
    C(v<major>.<minor>.<patch>) (C(v1.30.2)).
  - C(none) when they are equal, C(patch) for a newer patch release of the same minor, C(minor) for the next minor
    (any patch), C(downgrade) for an older version, C(skip) for a jump of more than one minor (kubeadm upgrades one
    minor at a time), C(major) for another major version.
  - site.yml refuses every change but C(none) on a running node; playbooks/upgrade.yml does C(patch) and C(minor) and
    refuses the others.
options:
  _input:
    description: The version the node runs.
    type: str
    required: true
  wanted:
    description: The version asked for.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Refuse a downgrade
  ansible.builtin.assert:
    that: running | archipelago.clusters.kubernetes_version_change(kubernetes_version) in ['none', 'patch', 'minor']
"""

RETURN = r"""
_value:
  description: One of C(none), C(patch), C(minor), C(downgrade), C(skip), C(major).
  type: str
"""

_VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)")


def parse_version(value: object, what: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a version written v1.30.2; anything else is an error naming the value."""
    match = _VERSION.fullmatch(str(value).strip())
    if not match:
        fix = ("set kubernetes_version that way" if what.startswith("the wanted") else
               "the node's kubelet or kube-apiserver manifest names no release; repair its Kubernetes install")
        fail("kubernetes_version_change", f"{what} {value!r} is not a Kubernetes release written v<major>.<minor>.<patch> "
                                          f"(e.g. v1.30.2): {fix}.")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def version_change(running: str, wanted: str) -> str:
    """Plain-data core of the filter: see DOCUMENTATION."""
    old = parse_version(running, "the running version")
    new = parse_version(wanted, "the wanted version")
    if new == old:
        return "none"
    if new < old:
        return "downgrade"
    if new[0] != old[0]:
        return "major"
    if new[1] == old[1]:
        return "patch"
    return "minor" if new[1] == old[1] + 1 else "skip"


def kubernetes_version_change(running, wanted):
    """Jinja wrapper: see DOCUMENTATION."""
    return version_change(running, wanted)


class FilterModule:
    def filters(self):
        return {"kubernetes_version_change": kubernetes_version_change}
