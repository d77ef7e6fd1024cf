"""Integration: playbooks/plan.yml against the example inventories, and its failure before any other play."""

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from helpers import run_ansible

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("network-plan.lock.yml", "network-plan.md", "network-plan.svg")
PLAN_DIR = ".archipelago"  # where plan.yml writes them, beside the inventory


def copy_example(name: str, tmp_path: Path) -> Path:
    """A private copy of an example inventory, without the plan files committed beside it."""
    inventory = tmp_path / name
    shutil.copytree(ROOT / "inventories" / "examples" / name, inventory, ignore=shutil.ignore_patterns(PLAN_DIR))
    return inventory


def run_playbook(inventory: Path, playbook: Path) -> subprocess.CompletedProcess:
    return run_ansible("ansible-playbook", "-i", str(inventory), str(playbook))


def localhost_recap(output: str) -> dict:
    match = re.search(r"^localhost\s+:\s+(.*)$", output, re.MULTILINE)
    assert match, output
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


@pytest.fixture(params=["flat", "island"])
def example(request, tmp_path):
    return request.param, copy_example(request.param, tmp_path)


def test_plan_writes_lock_and_report_and_is_idempotent(example):
    model, inventory = example
    first = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert first.returncode == 0, first.stdout + first.stderr
    assert localhost_recap(first.stdout)["changed"] == 4  # the plan directory, lock, report, diagram

    spec = yaml.safe_load((inventory / "group_vars" / "all" / "network_plan.yml").read_text())["network_plan"]
    lock = yaml.safe_load((inventory / ".archipelago" / "network-plan.lock.yml").read_text())
    assert lock["model"] == model
    assert set(lock["clusters"]) == set(spec["clusters"])

    from network_plan import plan_network

    assert lock == plan_network(spec)  # the lock is exactly the planner's output

    report = (inventory / ".archipelago" / "network-plan.md").read_text()
    for name, cluster in lock["clusters"].items():
        row = next(line for line in report.splitlines() if line.startswith(f"| {name} |"))
        assert cluster["pod_cidrs"][0] in row and cluster["dns_service_ips"][0] in row

    svg = ET.fromstring((inventory / ".archipelago" / "network-plan.svg").read_text())
    titles = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    for cluster in lock["clusters"].values():
        assert any(t.startswith(cluster["service_cidrs"][0] + ":") for t in titles)

    second = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert second.returncode == 0, second.stdout
    assert localhost_recap(second.stdout)["changed"] == 0

    # The plan files committed beside the example are the ones the playbook writes (docs stay true).
    for name in GENERATED:
        committed = ROOT / "inventories" / "examples" / model / PLAN_DIR / name
        assert committed.read_text() == (inventory / PLAN_DIR / name).read_text(), f"regenerate {committed} with playbooks/plan.yml"


def test_lock_keeps_clusters_when_one_is_added(example):
    _, inventory = example
    assert run_playbook(inventory, ROOT / "playbooks" / "plan.yml").returncode == 0
    before = yaml.safe_load((inventory / ".archipelago" / "network-plan.lock.yml").read_text())
    vars_file = inventory / "group_vars" / "all" / "network_plan.yml"
    data = yaml.safe_load(vars_file.read_text())
    data["network_plan"]["clusters"] = {"aaa": {"nodes": 4}, **data["network_plan"]["clusters"]}
    vars_file.write_text(yaml.safe_dump(data))
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    hosts["all"]["children"]["kube_control_plane"]["hosts"]["aaa-cp1"] = {}
    hosts["all"]["children"]["aaa"] = {"vars": {"cluster_name": "aaa"}, "hosts": {"aaa-cp1": None}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode == 0, result.stdout
    after = yaml.safe_load((inventory / ".archipelago" / "network-plan.lock.yml").read_text())
    for name, cluster in before["clusters"].items():
        assert after["clusters"][name] == cluster
    assert "aaa" in after["clusters"]


def run_site_expecting_failure(inventory: Path, tmp_path: Path) -> str:
    """Run plan.yml followed by a later play that leaves a marker; the plan must fail and the later play must not run.
    Returns the [ERROR] line (one line, as Ansible prints it), for the caller to check."""
    marker = tmp_path / "later-play-ran"
    site = tmp_path / "site.yml"
    site.write_text(
        f"- ansible.builtin.import_playbook: {ROOT}/playbooks/plan.yml\n"
        "- name: A later play\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        f"    - name: Leave a marker\n      ansible.builtin.file:\n        path: {marker}\n        state: touch\n        mode: '0644'\n"
        "      delegate_to: localhost\n      run_once: true\n"
    )
    lock = inventory / ".archipelago" / "network-plan.lock.yml"
    lock_before = lock.read_bytes() if lock.exists() else None
    result = run_playbook(inventory, site)
    assert result.returncode != 0, result.stdout[-3000:]
    assert not marker.exists()
    # Nothing is written either: the lock stays as it was (or absent).
    assert (lock.read_bytes() if lock.exists() else None) == lock_before
    errors = [line for line in result.stdout.splitlines() if line.startswith("[ERROR]: ")]
    assert errors, result.stdout[-3000:] + result.stderr[-3000:]
    return errors[0]


def edit_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_bad_plan_fails_before_any_other_play(tmp_path):
    inventory = copy_example("flat", tmp_path)
    vars_file = inventory / "group_vars" / "all" / "network_plan.yml"
    vars_file.write_text(vars_file.read_text().replace("10.32.0.0/12", "10.32.0.0/33"))
    error = run_site_expecting_failure(inventory, tmp_path)
    assert "network_plan: pools.pods.ipv4[0]: '10.32.0.0/33' is not a valid CIDR" in error
    assert not (inventory / ".archipelago" / "network-plan.lock.yml").exists()


# --------------------------------------------------------------------------------------------------------
# The lock: checked as strictly as a fresh plan, and only a missing lock means a first plan.


def planned_example(name: str, tmp_path: Path) -> Path:
    inventory = copy_example(name, tmp_path)
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    return inventory


def test_a_lock_giving_two_clusters_one_range_is_refused_naming_both_and_the_file(tmp_path):
    inventory = planned_example("flat", tmp_path)
    lock = inventory / ".archipelago" / "network-plan.lock.yml"
    lock.parent.mkdir(exist_ok=True)
    amber = yaml.safe_load(lock.read_text())["clusters"]["amber"]["pod_cidrs"][0]
    edit_yaml(lock, lambda data: data["clusters"]["birch"]["pod_cidrs"].__setitem__(0, amber))  # a bad merge
    error = run_site_expecting_failure(inventory, tmp_path)
    assert f"network_plan: lock file {lock}: cluster birch's pods range {amber} overlaps cluster amber's pods range {amber}" in error


def test_an_island_lock_giving_two_clusters_one_global_range_is_refused(tmp_path):
    inventory = planned_example("island", tmp_path)
    lock = inventory / ".archipelago" / "network-plan.lock.yml"
    lock.parent.mkdir(exist_ok=True)
    north = yaml.safe_load(lock.read_text())["clusters"]["north"]["global_cidrs"][0]
    edit_yaml(lock, lambda data: data["clusters"]["west"].__setitem__("global_cidrs", [north]))
    error = run_site_expecting_failure(inventory, tmp_path)
    assert f"lock file {lock}: cluster west's global range" in error and f"overlaps cluster north's global range {north}" in error


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "exists but is empty"),
        ("# nothing but a comment\n", "exists but holds nothing"),
        ("clusters: [unclosed\n", "is not valid YAML (while parsing a flow sequence"),
        ("- a list\n", "must hold the previous plan (a mapping with model, ip_families and clusters), got list"),
        ("model: flat\nip_families: [ipv4]\nclusters:\n  amber:\n", ": clusters.amber must be a mapping of its ranges, got None"),
    ],
)
def test_a_malformed_lock_file_is_named(tmp_path, text, message):
    inventory = copy_example("flat", tmp_path)
    lock = inventory / ".archipelago" / "network-plan.lock.yml"
    lock.parent.mkdir(exist_ok=True)
    lock.write_text(text)
    error = run_site_expecting_failure(inventory, tmp_path)
    assert f"network_plan: lock file {lock}" in error and message in error, error
    assert "Traceback" not in error and "Unknown error" not in error


def test_a_cluster_dropped_from_the_inventory_stays_reserved_until_released(tmp_path):
    inventory = planned_example("island", tmp_path)
    lock = inventory / ".archipelago" / "network-plan.lock.yml"
    lock.parent.mkdir(exist_ok=True)
    before = yaml.safe_load(lock.read_text())
    vars_file = inventory / "group_vars" / "all" / "network_plan.yml"
    hosts = inventory / "hosts.yml"

    def drop_west_add_east(data):
        data["all"]["children"]["east"] = {"vars": {"cluster_name": "east"}, "hosts": {"east-cp1": None}}
        data["all"]["children"]["kube_control_plane"]["hosts"]["east-cp1"] = None
        del data["all"]["children"]["west"]
        del data["all"]["children"]["kube_control_plane"]["hosts"]["west-cp1"]
        del data["all"]["children"]["kube_node"]["hosts"]["west-w1"]
        del data["all"]["children"]["gateways"]["hosts"]["west-gw"]

    edit_yaml(hosts, drop_west_add_east)
    # west leaves the plan (or its name gets a typo) and a new cluster arrives in the same run.
    edit_yaml(vars_file, lambda data: data["network_plan"]["clusters"].update({"east": {"nodes": 4}}))
    edit_yaml(vars_file, lambda data: data["network_plan"]["clusters"].pop("west"))
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    kept = yaml.safe_load(lock.read_text())
    assert kept["retained_clusters"] == {"west": before["clusters"]["west"]}
    assert kept["clusters"]["east"]["global_cidrs"] != before["clusters"]["west"]["global_cidrs"]
    report = (inventory / ".archipelago" / "network-plan.md").read_text()
    assert f"| west | {before['clusters']['west']['pod_cidrs'][0]} |" in report and "Kept reserved" in report
    svg = ET.fromstring((inventory / ".archipelago" / "network-plan.svg").read_text())
    titles = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert f"{before['clusters']['west']['global_cidrs'][0]}: west" in titles  # drawn as taken, not free

    edit_yaml(vars_file, lambda data: data["network_plan"].update({"release": ["west"]}))
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    released = yaml.safe_load(lock.read_text())
    assert released["retained_clusters"] == {} and released["released_clusters"] == ["west"]
    report = (inventory / ".archipelago" / "network-plan.md").read_text()
    assert "Released by this plan (`network_plan.release`), their ranges back in the pools: west." in report
    assert "Kept reserved" not in report

    # Named again, west is unknown: an error, so a typo in release never passes silently.
    error = run_site_expecting_failure(inventory, tmp_path)
    assert f"network_plan: release names cluster west, which lock file {lock} does not hold (already released, or a typo?)" in error


# --------------------------------------------------------------------------------------------------------
# Host-level consistency: refused in the plan play, before any other play.


def test_a_host_in_two_cluster_groups_is_refused(tmp_path):
    inventory = copy_example("flat", tmp_path)
    edit_yaml(inventory / "hosts.yml", lambda data: data["all"]["children"]["cedar"]["hosts"].update({"birch-w2": None}))
    error = run_site_expecting_failure(inventory, tmp_path)
    assert "network_plan_hosts: host birch-w2 is in the groups of 2 clusters (birch, cedar); a host belongs to one cluster" in error


def test_two_hosts_with_one_node_address_are_refused(tmp_path):
    inventory = copy_example("flat", tmp_path)
    (inventory / "host_vars").mkdir()
    (inventory / "host_vars" / "amber-w1.yml").write_text("node_ips: [192.168.10.21, 'fd00:10::21']\n")
    (inventory / "host_vars" / "cedar-w1.yml").write_text("node_ips: [192.168.10.21]\n")
    error = run_site_expecting_failure(inventory, tmp_path)
    assert "hosts amber-w1 and cedar-w1 have the same node address 192.168.10.21 (node_ips of amber-w1, node_ips of cedar-w1)" in error


def test_a_node_address_inside_a_planned_range_is_refused(tmp_path):
    inventory = copy_example("island", tmp_path)
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("south-cp1: {ansible_host: 192.168.120.11}", "south-cp1: {ansible_host: 10.96.0.7}"))
    error = run_site_expecting_failure(inventory, tmp_path)
    assert (
        "network_plan_hosts: host south-cp1's node address 10.96.0.7 (ansible_host) is inside the island services range "
        "10.96.0.0/22 (shared by every cluster)" in error
    )


def test_gateways_in_a_flat_plan_are_refused(tmp_path):
    inventory = copy_example("flat", tmp_path)
    edit_yaml(
        inventory / "hosts.yml",
        lambda data: data["all"]["children"].update({"gateways": {"hosts": {"amber-gw": {"gateway_cluster": "amber"}}}}),
    )
    error = run_site_expecting_failure(inventory, tmp_path)
    assert "network_plan_hosts: the plan is flat, but the inventory has gateways (amber-gw)" in error


def test_an_ipv6_virtual_address_on_a_lone_gateway_of_a_dual_stack_cluster_is_refused(tmp_path):
    """The gateway serves IPv6 (NAT66), so a dual-stack island plan with gateways passes the host checks; a lone gateway
    that sets an IPv6 virtual address (only several gateways of one cluster share them) is refused, naming it."""
    inventory = copy_example("island", tmp_path)

    def dual_stack(data):
        plan = data["network_plan"]
        plan["ip_families"] = ["ipv4", "ipv6"]
        for kind, block in (("pods", "fd10::/48"), ("services", "fd20::/108"), ("global", "fd30::/112")):
            plan["pools"][kind]["ipv6"] = [block]

    edit_yaml(inventory / "group_vars" / "all" / "network_plan.yml", dual_stack)
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("north-gw: {ansible_host: 192.168.110.1, gateway_cluster: north}",
                                               "north-gw: {ansible_host: 192.168.110.1, gateway_cluster: north, "
                                               "gateway_transit_vip6: 'fd00:110::10'}"))
    error = run_site_expecting_failure(inventory, tmp_path)
    assert (
        "network_plan_hosts: gateway north-gw is cluster north's only gateway but sets gateway_transit_vip6 fd00:110::10" in error
    ), error[-3000:]


# --------------------------------------------------------------------------------------------------------
# The initialising control plane: the first of the cluster in inventory order, on every run.


def test_each_cluster_initialises_from_its_first_control_plane_in_inventory_order(tmp_path):
    inventory = copy_example("island", tmp_path)
    # Five north control planes, listed in an order that is neither sorted nor reverse sorted, and listed in yet
    # another order in the cluster's own group: the kube_control_plane order decides.
    order = ["north-cp4", "north-cp2", "north-cp5", "north-cp1", "north-cp3"]

    def many_control_planes(data):
        children = data["all"]["children"]
        others = {h: v for h, v in children["kube_control_plane"]["hosts"].items() if not h.startswith("north")}
        children["kube_control_plane"]["hosts"] = {**{h: None for h in order}, **others}
        children["north"]["hosts"] = {h: None for h in sorted(order)} | {"north-w[1:2]": None}
        # Several control planes need one stable API address: a load balancer of the user's own here (api_vip would
        # need each control plane's node address).
        children["north"]["vars"]["kubeadm_control_plane_endpoint"] = "north-api.example.org:6443"

    edit_yaml(inventory / "hosts.yml", many_control_planes)
    out = tmp_path / "init-hosts.json"
    site = tmp_path / "site.yml"
    site.write_text(
        f"- ansible.builtin.import_playbook: {ROOT}/playbooks/plan.yml\n"
        "- name: Record what plan.yml decided\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: Write the init hosts\n      ansible.builtin.copy:\n"
        "        content: \"{{ {'clusters': archipelago_init_hosts,"
        " 'hosts': dict(kube | zip(kube | map('extract', hostvars, 'cluster_init_host')))} | to_json }}\"\n"
        f"        dest: {out}\n        mode: '0644'\n"
        "      vars:\n        kube: \"{{ groups['kube_control_plane'] + groups['kube_node'] }}\"\n"
    )
    result = run_playbook(inventory, site)
    assert result.returncode == 0, result.stdout[-3000:]
    recorded = json.loads(out.read_text())
    assert recorded["clusters"] == {"north": "north-cp4", "south": "south-cp1", "west": "west-cp1"}
    for host, init in recorded["hosts"].items():
        assert init == recorded["clusters"][host.split("-")[0]], (host, init)


def test_host_outside_planned_clusters_is_refused(tmp_path):
    inventory = copy_example("island", tmp_path)
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("gateway_cluster: west", "gateway_cluster: east"))
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode != 0
    assert "Gateway west-gw has gateway_cluster east, which is not a cluster of network_plan.clusters" in result.stdout


def test_unknown_cni_is_refused_by_its_argument_spec(tmp_path):
    inventory = copy_example("flat", tmp_path)
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("vars: {cluster_name: birch}", "vars: {cluster_name: birch, cni: cilium}"))
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode != 0
    assert re.search(r"value of cni must be one of: flannel, calico, got: cilium", result.stdout), result.stdout[-2000:]
    assert not (inventory / ".archipelago" / "network-plan.lock.yml").exists()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("bgp_asn", "sixty-four", r"argument 'bgp_asn' is of type str found in 'birch-cp1'\. and we were unable to convert to int"),
        ("calico_node_to_node_mesh", "sometimes",
         r"argument 'calico_node_to_node_mesh' is of type str found in 'birch-cp1'\. and we were unable to convert to bool"),
        ("fetch_kubeconfig", "maybe",
         r"argument 'fetch_kubeconfig' is of type str found in 'birch-cp1'\. and we were unable to convert to bool"),
        ("router_static_source", "bgp", r"value of router_static_source must be one of: nodes, plan, got: bgp found in birch-cp1"),
        ("calico_bgp_peers", "router1",
         r"Elements value for option 'calico_bgp_peers' found in 'birch-cp1' is of type str and we were unable to convert to dict"),
    ],
)
def test_every_inventory_variable_is_checked_against_the_one_spec_before_the_plan_is_written(tmp_path, variable, value, message):
    """playbooks/vars/inventory_spec.yml, checked for every host by the plan play: a value of the wrong type or out of
    its choices stops the run, naming the variable and the host, before the lock is written."""
    inventory = copy_example("flat", tmp_path)
    (inventory / "host_vars").mkdir(exist_ok=True)
    (inventory / "host_vars" / "birch-cp1.yml").write_text(yaml.safe_dump({variable: value}))
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode != 0
    assert re.search(message, result.stdout), result.stdout[-2000:]
    assert re.search(r"failed: \[localhost\] \(item=birch-cp1\)", result.stdout), result.stdout[-2000:]
    assert not (inventory / ".archipelago" / "network-plan.lock.yml").exists()


def test_the_inventory_spec_documents_each_variable():
    spec = yaml.safe_load((ROOT / "playbooks" / "vars" / "inventory_spec.yml").read_text())["archipelago_inventory_spec"]
    assert len(spec) >= 15
    for name, option in spec.items():
        assert {"type", "where", "default_text", "description"} <= set(option), name


def test_a_cluster_with_two_cnis_is_refused(tmp_path):
    inventory = copy_example("flat", tmp_path)
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("vars: {cluster_name: birch}", "vars: {cluster_name: birch, cni: calico}"))
    (inventory / "host_vars").mkdir(exist_ok=True)
    (inventory / "host_vars" / "birch-cp1.yml").write_text("cni: flannel\n")
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode != 0
    assert "Cluster birch mixes CNIs" in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "plugins" / "filter").glob("*.py")))
def test_filters_are_documented_for_ansible_doc(name):
    """From the checkout, by full name (tests/collection checks the same for the installed collection)."""
    result = run_ansible("ansible-doc", "-t", "filter", f"archipelago.clusters.{name}")
    assert result.returncode == 0, result.stderr
    assert f"FILTER archipelago.clusters.{name}" in result.stdout and "WARNING" not in result.stderr


def test_a_lock_left_beside_the_inventory_by_an_older_release_stops_the_plan_with_the_move(tmp_path):
    """Planning without the previous lock would move every cluster: a lock where older releases wrote it is an error
    that names it and the move, before anything is written."""
    inventory = copy_example("flat", tmp_path)
    shutil.copy(ROOT / "inventories" / "examples" / "flat" / PLAN_DIR / "network-plan.lock.yml", inventory / "network-plan.lock.yml")
    error = run_site_expecting_failure(inventory, tmp_path)
    assert f"{inventory}/network-plan.lock.yml holds the previous plan, but plans now live in {inventory}/.archipelago" in error, error
    assert f"git mv {inventory}/network-plan.* {inventory}/.archipelago/" in error
    assert not (inventory / PLAN_DIR).exists()


def test_the_plan_files_are_never_read_as_inventory(tmp_path):
    """With this repository's ansible.cfg (tests/collection checks the same without it): after plan.yml has written the
    lock, report and diagram, the inventory holds the same hosts, groups and variables, and Ansible warns about nothing."""
    inventory = copy_example("island", tmp_path)
    before = run_ansible("ansible-inventory", "-i", str(inventory), "--list")
    assert before.returncode == 0 and "WARNING" not in before.stderr, before.stderr
    assert run_playbook(inventory, ROOT / "playbooks" / "plan.yml").returncode == 0
    assert len(list((inventory / PLAN_DIR).glob("network-plan*"))) == 3
    after = run_ansible("ansible-inventory", "-i", str(inventory), "--list")
    assert after.returncode == 0 and "WARNING" not in after.stderr, after.stderr
    assert json.loads(after.stdout) == json.loads(before.stdout)


# --------------------------------------------------------------------------------------------------------
# --limit: the plan play must run on the controller whatever the limit, or no later play has a plan.


@pytest.mark.parametrize("limit", ["north-w2", "north-w2,south-w1"])
def test_the_plan_reaches_the_limited_hosts(tmp_path, limit):
    inventory = copy_example("island", tmp_path)
    out = tmp_path / "limited"
    site = tmp_path / "site.yml"
    site.write_text(
        f"- ansible.builtin.import_playbook: {ROOT}/playbooks/plan.yml\n"
        "- name: Record what each limited host was handed\n  hosts: kube_node\n  gather_facts: false\n  tasks:\n"
        "    - name: Write this host's slice\n      ansible.builtin.copy:\n"
        "        content: \"{{ {'init': cluster_init_host, 'pods': cluster_plan.pod_cidrs} | to_json }}\"\n"
        f"        dest: {out}-{{{{ inventory_hostname }}}}.json\n        mode: '0644'\n"
        "      delegate_to: localhost\n"
    )
    result = run_ansible("ansible-playbook", "-i", str(inventory), str(site), "--limit", limit)
    assert result.returncode == 0, result.stdout[-3000:]
    lock = yaml.safe_load((inventory / PLAN_DIR / "network-plan.lock.yml").read_text())
    written = sorted(p.name for p in tmp_path.glob("limited-*.json"))
    assert written == sorted(f"limited-{host}.json" for host in limit.split(","))  # the limit held for the later play
    for host in limit.split(","):
        cluster = host.split("-")[0]
        recorded = json.loads((tmp_path / f"limited-{host}.json").read_text())
        assert recorded == {"init": f"{cluster}-cp1", "pods": lock["clusters"][cluster]["pod_cidrs"]}


def test_a_cluster_with_two_kubernetes_versions_is_refused(tmp_path):
    inventory = copy_example("flat", tmp_path)
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("vars: {cluster_name: birch}", "vars: {cluster_name: birch, kubernetes_version: v1.30.4}"))
    (inventory / "host_vars").mkdir(exist_ok=True)
    (inventory / "host_vars" / "birch-cp1.yml").write_text("kubernetes_version: v1.30.5\n")
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode != 0
    assert "Cluster birch has kubernetes_version v1.30.5, v1.30.4; set one version per cluster" in " ".join(result.stdout.split()), \
        result.stdout[-2000:]
    assert not (inventory / ".archipelago" / "network-plan.lock.yml").exists()


def test_a_kubernetes_version_without_its_v_is_refused(tmp_path):
    inventory = copy_example("flat", tmp_path)
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("vars: {cluster_name: birch}", "vars: {cluster_name: birch, kubernetes_version: 1.30.4}"))
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode != 0
    assert "Cluster birch has kubernetes_version 1.30.4; set one version per cluster, on the cluster's group, written like v1.30.2" \
        in " ".join(result.stdout.split()), result.stdout[-2000:]


def _role_variables_set_by(playbook: Path, roles: set[str]) -> set[str]:
    """Every role variable a playbook sets in a play's or a task's `vars:`."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "vars" and isinstance(value, dict):
                    found.update(v for v in value if any(v.startswith(role + "_") for role in roles))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(playbook.read_text()))
    return found


def test_every_role_variable_a_site_step_sets_is_listed_for_the_refusal():
    """plan.yml refuses in the inventory what site.yml sets itself (play variables win over the inventory's, so the
    inventory's value would be ignored silently); the list it reads must hold every variable a step sets."""
    roles = {path.name for path in (ROOT / "roles").iterdir() if path.is_dir()}
    site = yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text())
    steps = [ROOT / "playbooks" / entry["ansible.builtin.import_playbook"] for entry in site]
    set_by_steps = set().union(*(_role_variables_set_by(step, roles) for step in steps))
    lists = yaml.safe_load((ROOT / "playbooks" / "vars" / "site_sets.yml").read_text())
    listed, honoured = set(lists["site_sets"]), set(lists["site_honours"])
    assert set_by_steps, "no step sets a role variable: the walk is broken"
    assert not listed & honoured, "a variable is both refused and honoured"
    assert set_by_steps - listed - honoured == set(), "set by a site.yml step but missing from playbooks/vars/site_sets.yml"
    assert (listed | honoured) - set_by_steps == set(), "listed in playbooks/vars/site_sets.yml but set by no site.yml step"


@pytest.mark.parametrize(("variable", "instead"), [
    ("kubeadm_control_plane_pod_subnets: [10.0.0.0/16]", "kubeadm_control_plane_pod_subnets: network_plan (the cluster's pod ranges"),
    ("cni_flannel_ip_masq: true", "cni_flannel_ip_masq: network_plan.model"),
    # kubernetes_version is the one name of a cluster's version: the fix carries the value given, with its v.
    ("node_kubernetes_version: 1.30.4", "node_kubernetes_version: kubernetes_version: v1.30.4, on the cluster's group"),
    ("kubeadm_control_plane_kubernetes_version: v1.30.4",
     "kubeadm_control_plane_kubernetes_version: kubernetes_version: v1.30.4, on the cluster's group"),
])
def test_a_role_variable_site_sets_itself_is_refused_in_the_inventory_naming_what_to_set(tmp_path, variable, instead):
    inventory = copy_example("flat", tmp_path)
    (inventory / "host_vars").mkdir(exist_ok=True)
    (inventory / "host_vars" / "birch-cp1.yml").write_text(variable + "\n")
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode != 0
    output = " ".join(result.stdout.split())
    assert f"birch-cp1 sets {variable.split(':')[0]} in the inventory, but site.yml sets it itself" in output, result.stdout[-2000:]
    assert instead in output, result.stdout[-2000:]
    assert not (inventory / PLAN_DIR / "network-plan.lock.yml").exists()


@pytest.mark.parametrize("metallb", [False, True])
def test_traefik_without_metallb_or_load_balancer_addresses_is_refused(tmp_path, metallb):
    """Traefik's Service is of type LoadBalancer: a cluster that turns Traefik on without MetalLB, or without planned
    LoadBalancer addresses (the example plans none), is refused by the plan play, naming the cluster and the fix."""
    inventory = copy_example("flat", tmp_path)
    hosts = inventory / "hosts.yml"
    extra = ", metallb_enabled: true" if metallb else ""
    birch = f"vars: {{cluster_name: birch, traefik_enabled: true{extra}}}"
    hosts.write_text(hosts.read_text().replace("vars: {cluster_name: birch}", birch))
    result = run_playbook(inventory, ROOT / "playbooks" / "plan.yml")
    assert result.returncode != 0
    assert "Cluster birch sets traefik_enabled: true" in result.stdout, result.stdout[-2000:]
    assert "network_plan.clusters.birch.load_balancer_addresses" in result.stdout, result.stdout[-2000:]
