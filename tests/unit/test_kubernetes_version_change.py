"""The kubernetes_version_change filter: which version changes site.yml and upgrade.yml accept."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.archipelago.clusters.plugins.filter.kubernetes_version_change import kubernetes_version_change


@pytest.mark.parametrize(
    ("running", "wanted", "change"),
    [
        ("v1.33.13", "v1.33.13", "none"),
        ("v1.33.12", "v1.33.13", "patch"),
        ("v1.33.2", "v1.33.10", "patch"),  # numeric, not string, order
        ("v1.32.13", "v1.33.0", "minor"),
        ("v1.32.1", "v1.33.13", "minor"),
        ("v1.33.13", "v1.33.12", "downgrade"),
        ("v1.33.0", "v1.32.13", "downgrade"),
        ("v1.31.5", "v1.33.13", "skip"),
        ("v1.33.13", "v2.0.0", "major"),
        (" v1.33.13\n", "v1.33.13", "none"),
    ],
)
def test_change(running, wanted, change):
    assert kubernetes_version_change(running, wanted) == change


@pytest.mark.parametrize(("running", "wanted", "named"), [("1.33.13", "v1.33.13", "running"), ("v1.33.13", "v1.33", "wanted"),
                                                        ("v1.33.13", None, "wanted"), ("unknown", "v1.33.13", "running")])
def test_malformed_versions_name_the_value(running, wanted, named):
    with pytest.raises(AnsibleFilterError, match=rf"the {named} version .* v<major>\.<minor>\.<patch>"):
        kubernetes_version_change(running, wanted)
