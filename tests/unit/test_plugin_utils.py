"""The helpers every filter shares (plugins/plugin_utils/filters.py): one netaddr guard and one set of argument checks,
imported the collection way by each filter instead of copied into it."""

import importlib
import re
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.archipelago.clusters.plugins.plugin_utils import filters as shared

FILTER_DIR = Path(__file__).resolve().parents[2] / "plugins" / "filter"
NAMES = sorted(p.stem for p in FILTER_DIR.glob("*.py"))
# The filters that work on addresses (all but kubernetes_version_change): each takes netaddr from plugin_utils.
NETADDR_NAMES = [name for name in NAMES if "netaddr" in (FILTER_DIR / f"{name}.py").read_text()]


def _filter(name: str):
    module = importlib.import_module(f"ansible_collections.archipelago.clusters.plugins.filter.{name}")
    return module.FilterModule().filters()[name]


def test_every_filter_file_holds_one_filter_named_after_it():
    assert len(NAMES) == 10
    assert len(NETADDR_NAMES) == 9
    for name in NAMES:
        assert callable(_filter(name)), name


@pytest.mark.parametrize("name", NETADDR_NAMES)
def test_a_missing_netaddr_names_the_filter_and_the_fix(monkeypatch, name):
    monkeypatch.setattr(shared, "netaddr", None)
    function = _filter(name)
    arguments = [None] * (function.__code__.co_argcount - len(function.__defaults__ or ()))
    message = rf"^{name}: the netaddr Python library is required on the controller: pip install netaddr"
    with pytest.raises(AnsibleFilterError, match=message):
        function(*arguments)


@pytest.mark.parametrize("name", NAMES)
def test_no_filter_carries_its_own_netaddr_guard(name):
    text = (FILTER_DIR / f"{name}.py").read_text()
    assert not re.search(r"^\s*import netaddr", text, re.MULTILINE), f"{name}.py imports netaddr itself; use plugin_utils.filters"
    assert "from ansible_collections.archipelago.clusters.plugins.plugin_utils.filters import" in text


@pytest.mark.parametrize("value", [None, "alpha", {"a": 1}, [{"a": 1}, "b"]])
def test_a_list_of_hostvars_is_checked_with_the_offending_value(value):
    with pytest.raises(AnsibleFilterError, match=r"^router_bgp: the input is .*; give the hosts' variables, as a list\.$"):
        shared.require_mapping_list("router_bgp", value, "the hosts' variables")


def test_a_list_of_hostvars_passes_through():
    hosts = [{"inventory_hostname": "a"}]
    assert shared.require_mapping_list("router_bgp", hosts, "the hosts' variables") is hosts
