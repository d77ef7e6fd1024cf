"""The version lookup: a version pinned in versions.yml at the top of the collection, the one file that pins them."""

from __future__ import annotations

from pathlib import Path

import yaml
from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: version
author: Archipelago
version_added: "0.1.0"
short_description: A version pinned in the collection's versions.yml
description:
  - Returns the versions of the named components from versions.yml at the top of the collection, the file
    scripts/build-artifacts.sh builds the offline artifacts from. The roles' defaults read their versions with it, so
    the roles and the artifacts cannot disagree.
  - It reads the file beside this plugin, not a path relative to a role or playbook, so a role's defaults resolve the
    same inside the role, after an include_role with public, and from an installed collection.
options:
  _terms:
    description: Component names, for example kubernetes, etcd, coredns, pause, flannel, flannel_cni_plugin, cni_plugins, calico.
    required: true
"""

EXAMPLES = r"""
- name: Show the pinned Kubernetes version
  ansible.builtin.debug:
    msg: "{{ lookup('archipelago.clusters.version', 'kubernetes') }}"
"""

RETURN = r"""
_raw:
  description: The versions, in the order of the names given.
  type: list
  elements: str
"""

VERSIONS_FILE = Path(__file__).resolve().parents[2] / "versions.yml"


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        versions = yaml.safe_load(VERSIONS_FILE.read_text())
        missing = [str(term) for term in terms if term not in versions]
        if missing:
            raise AnsibleLookupError(f"archipelago.clusters.version: {', '.join(missing)} is not in {VERSIONS_FILE}; "
                                     f"it pins {', '.join(versions)}")
        return [str(versions[term]) for term in terms]
