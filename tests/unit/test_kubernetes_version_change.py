"""The kubernetes_version_change filter: which version changes site.yml and upgrade.yml accept."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.archipelago.clusters.plugins.filter.kubernetes_version_change import kubernetes_version_change


@pytest.mark.parametrize(
    ("running", "wanted", "change"),
    [
        ("v1.30.5", "v1.30.5", "none"),
        ("v1.30.4", "v1.30.5", "patch"),
        ("v1.30.2", "v1.30.10", "patch"),  # numeric, not string, order
        ("v1.29.13", "v1.30.0", "minor"),
        ("v1.29.1", "v1.30.5", "minor"),
        ("v1.30.5", "v1.30.4", "downgrade"),
        ("v1.30.0", "v1.29.13", "downgrade"),
        ("v1.28.5", "v1.30.5", "skip"),
        ("v1.30.5", "v2.0.0", "major"),
        (" v1.30.5\n", "v1.30.5", "none"),
    ],
)
def test_change(running, wanted, change):
    assert kubernetes_version_change(running, wanted) == change


@pytest.mark.parametrize(("running", "wanted", "named"), [("1.30.5", "v1.30.5", "running"), ("v1.30.5", "v1.30", "wanted"),
                                                        ("v1.30.5", None, "wanted"), ("unknown", "v1.30.5", "running")])
def test_malformed_versions_name_the_value(running, wanted, named):
    with pytest.raises(AnsibleFilterError, match=rf"the {named} version .* v<major>\.<minor>\.<patch>"):
        kubernetes_version_change(running, wanted)
