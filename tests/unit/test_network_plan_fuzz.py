"""Fuzz: malformed plans and locks thrown at the filter give AnsibleFilterError (a sentence), never another exception."""

import copy

import yaml
from ansible.errors import AnsibleFilterError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from network_plan import network_plan, plan_network
from test_network_plan import FLAT, ISLAND

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values a hand-edited or merged file can hold: the right types in the wrong places, and near-misses.
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**64, 2**128 + 1, 10**40]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            "flat",
            "island",
            "ipv4",
            "ipv6",
            "alpha",
            "alpha\n",
            "Alpha",
            "10.0.0.0/8",
            "10.0.0.1/8",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0",
            "fd00::/8",
            "::/0",
            "0.0.0.0/0",
            "10.0.0.0/8\n",
            "1/2/3",
            "/",
            "not a cidr",
            "\x00",
        ]
    ),
    st.text(max_size=12),
)
keys = st.one_of(
    st.sampled_from(["model", "pods", "ipv4", "ipv6", "alpha", "beta", "nodes", "clusters", "pod_cidrs"]),
    st.text(max_size=6),
    st.integers(-3, 3),
)
garbage = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=12)


def paths(value, prefix=()):
    """Every path into a nested structure of dicts and lists."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, (*prefix, index))


@st.composite
def mutated(draw, base):
    """A copy of base with one to three subtrees replaced, deleted, or given an extra key."""
    value = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(paths(value))))
        if not path:
            value = draw(garbage)
            continue
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(keys)] = draw(garbage)
        else:
            parent[path[-1]] = draw(garbage)
        if not isinstance(value, (dict, list)):
            break
    return value


def only_filter_errors(call):
    try:
        call()
    except AnsibleFilterError as error:
        message = str(error)
        assert message.startswith("network_plan: "), message
        assert "Traceback" not in message and "Unknown error" not in message


@SETTINGS
@given(st.sampled_from([FLAT, ISLAND]).flatmap(mutated))
def test_malformed_plans_give_only_filter_errors(spec):
    only_filter_errors(lambda: plan_network(spec))


@SETTINGS
@given(st.data())
def test_malformed_locks_give_only_filter_errors(data):
    base = data.draw(st.sampled_from([FLAT, ISLAND]))
    lock = plan_network(base)
    if data.draw(st.booleans()):
        lock = data.draw(mutated(lock))
    else:  # aim at one cluster's entry, where most of the lock's structure is
        name = data.draw(st.sampled_from(sorted(lock["clusters"])))
        lock["clusters"][name] = data.draw(mutated(lock["clusters"][name]))
    only_filter_errors(lambda: network_plan(base, lock=lock, lock_file="/inv/network-plan.lock.yml"))


@SETTINGS
@given(st.data())
def test_malformed_lock_texts_give_only_filter_errors(data):
    base = data.draw(st.sampled_from([FLAT, ISLAND]))
    text = yaml.safe_dump(plan_network(base))
    # Cut, duplicate or splice lines, as an interrupted write or a bad merge does.
    lines = text.splitlines(keepends=True)
    start = data.draw(st.integers(0, len(lines)))
    end = data.draw(st.integers(start, len(lines)))
    insert = data.draw(st.sampled_from(["", "<<<<<<< HEAD\n", "=======\n", ">>>>>>> branch\n", "  - 10.0.0.0/8\n", "\t\n", "{\n"]))
    text = "".join(lines[:start] + [insert] + lines[end:] + lines[start:end] * data.draw(st.integers(0, 2)))
    only_filter_errors(lambda: network_plan(base, lock=text, lock_file="/inv/network-plan.lock.yml"))


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(["alpha-cp1", "alpha-w1", "beta-cp1", "alpha-gw"]),
        st.dictionaries(st.sampled_from(["node_ips", "ansible_host", "gateway_cluster"]), garbage, max_size=3),
        max_size=4,
    ),
    st.sampled_from([FLAT, ISLAND]),
)
def test_malformed_host_variables_give_only_filter_errors(hostvars, base):
    from network_plan_hosts import network_plan_hosts

    groups = {
        "kube_control_plane": ["alpha-cp1", "beta-cp1"],
        "kube_node": ["alpha-w1"],
        "alpha": ["alpha-cp1", "alpha-w1"],
        "beta": ["beta-cp1"],
        "gateways": ["alpha-gw"],
    }
    try:
        network_plan_hosts(plan_network(base), groups, hostvars)
    except AnsibleFilterError as error:
        assert str(error).startswith("network_plan_hosts: "), str(error)
