"""What every Archipelago filter shares: the netaddr guard and the argument checks.

Filters import this module the collection way
(``ansible_collections.archipelago.clusters.plugins.plugin_utils.filters``); from a checkout that name resolves through
the repository's ``collections/`` directory (see ansible.cfg), once installed through the collections path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

from ansible.errors import AnsibleFilterError

try:
    import netaddr
except ImportError:  # reported when a filter is called, not when Ansible loads the plugins
    netaddr = None


def fail(filter_name: str, message: str) -> NoReturn:
    """Raise the error every filter raises: the filter's name, then what is wrong and how to fix it."""
    raise AnsibleFilterError(f"{filter_name}: {message}")


def require_netaddr(filter_name: str) -> None:
    """Stop with a clear message when the controller has no netaddr (checked at call time, not at load time)."""
    if netaddr is None:
        fail(filter_name, "the netaddr Python library is required on the controller: pip install netaddr")


def require_mapping_list(filter_name: str, value, what: str) -> list:
    """Check that a filter's input is a list of mappings (hostvars of some hosts) and return it."""
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        fail(filter_name, f"the input is {value!r}; give {what}, as a list.")
    return value
