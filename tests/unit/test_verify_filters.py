"""The verify role's filters: probe records, probe lists, the static checks and the diagnose judgement."""

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "roles" / "verify" / "filter_plugins"))

from verify_checks import verify_inbound_probes, verify_inside_probes, verify_outbound_probes, verify_pods, verify_static
from verify_diagnose import verify_diagnose
from verify_record import verify_complete, verify_line, verify_record

PLAN = {"clusters": {
    "alpha": {"model": "island", "ip_families": ["ipv4"], "pod_cidrs": ["10.32.0.0/16"], "service_cidrs": ["10.96.0.0/22"],
              "global_cidrs": ["100.64.0.0/28"]},
    "beta": {"model": "island", "ip_families": ["ipv4"], "pod_cidrs": ["10.32.0.0/16"], "service_cidrs": ["10.96.0.0/22"],
             "global_cidrs": ["100.64.0.16/28"]},
}}
ISLAND = {"alpha": {"vip": "100.64.0.2", "egress": "100.64.0.1", "export": {"name": "whoami", "port": 8080, "node_port": 30080}},
          "beta": {"vip": "100.64.0.18", "egress": "100.64.0.17", "export": {"name": "whoami", "port": 8080, "node_port": 30080}}}


def pod(name, role, node, ips, ready=True):
    return {"metadata": {"name": name, "labels": {"app.kubernetes.io/name": role}}, "spec": {"nodeName": node},
            "status": {"podIPs": [{"ip": i} for i in ips], "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def probe(check, rc, stdout, **item):
    return {"item": {"check": check, "target": "t", "family": "ipv4", **item}, "rc": rc, "stdout": stdout, "stderr": ""}


def test_record_passes_only_on_the_expected_address():
    assert verify_record(probe("x", 0, "10.32.0.5", expect="10.32.0.5"), "alpha")["status"] == "PASS"
    failed = verify_record(probe("x", 0, "10.223.1.11", expect="10.32.0.5"), "alpha")
    assert failed["status"] == "FAIL" and "saw the client as 10.223.1.11, expected 10.32.0.5" in failed["reason"]
    assert verify_record(probe("x", 1, "Connection timed out", expect="10.32.0.5"), "alpha")["status"] == "FAIL"
    assert verify_record(probe("x", 0, "[fd10::5]", expect=["10.0.0.1", "fd10::5"]), "alpha")["status"] == "PASS"
    assert verify_record(probe("x", 0, "::ffff:10.0.0.1", expect="10.0.0.1"), "alpha")["status"] == "PASS"


def test_record_closed_probe_fails_when_something_answers():
    assert verify_record(probe("c", 1, "", closed=True), "alpha")["status"] == "PASS"
    answered = verify_record(probe("c", 0, "10.223.0.100", closed=True), "alpha")
    assert answered["status"] == "FAIL" and "nothing may answer" in answered["reason"]


def test_record_fail_and_skip_reasons_win_over_the_result():
    assert verify_record({"item": {"check": "x", "fail_reason": "no pod"}, "skipped": True}, "a")["status"] == "FAIL"
    assert verify_record({"item": {"check": "x", "skip_reason": "one node"}, "skipped": True}, "a")["status"] == "SKIP"
    with pytest.raises(AnsibleFilterError, match="verify_record: expected a registered loop result"):
        verify_record({"rc": 0}, "a")


def test_complete_adds_a_fail_per_silent_cluster_and_lines_read():
    results = verify_complete([{"cluster": "alpha", "check": "x", "status": "PASS", "reason": "ok"}], ["alpha", "beta"])
    assert [r["cluster"] for r in results if r["status"] == "FAIL"] == ["beta"]
    assert verify_line(results[1]).startswith("FAIL  beta")


def test_inside_probes_cover_four_patterns_and_skip_cross_node_on_one_node():
    pods = verify_pods([pod("client", "client", "n1", ["10.32.0.9"]), pod("server-a", "server", "n1", ["10.32.0.5"])])
    probes = {p["check"]: p for p in verify_inside_probes(pods, ["ipv4"], 8080)}
    assert set(probes) == {"pod-localhost", "pod-same-node", "pod-cross-node", "service-dns"}
    assert probes["pod-localhost"]["address"] == "TCP4:127.0.0.1:8080" and probes["pod-localhost"]["container"] == "sidecar"
    assert probes["pod-same-node"]["address"] == "TCP4:10.32.0.5:8080" and probes["pod-same-node"]["expect"] == "10.32.0.9"
    assert probes["pod-cross-node"]["skip_reason"] == "the cluster has one node"
    assert probes["service-dns"]["address"] == "TCP4:server:8080"


def test_inside_probes_fail_a_not_ready_server_on_another_node_and_go_ipv6():
    pods = verify_pods([pod("client", "client", "n1", ["10.32.0.9", "fd10::9"]), pod("s1", "server", "n1", ["10.32.0.5", "fd10::5"]),
                        pod("s2", "server", "n2", ["10.32.1.5", "fd10:1::5"], ready=False)])
    probes = {(p["check"], p["family"]): p for p in verify_inside_probes(pods, ["ipv4", "ipv6"], 8080)}
    assert "no Ready server pod on another node" in probes[("pod-cross-node", "ipv4")]["fail_reason"]
    assert probes[("pod-same-node", "ipv6")]["address"] == "TCP6:[fd10::5]:8080"
    assert probes[("pod-localhost", "ipv6")]["expect"] == "::1"


def test_outbound_and_inbound_island_probes():
    pods = verify_pods([pod("client", "client", "n1", ["10.32.0.9"]), pod("s1", "server", "n1", ["10.32.0.5"])])
    ext = [{"name": "ext1", "addresses": ["10.223.0.100"]}]
    out = verify_outbound_probes(pods, "alpha", PLAN, peers=[(pods, "beta")], island=ISLAND, external=ext,
                                 port=8080, external_port=9000)
    assert [(p["check"], p["address"], p["expect"]) for p in out] == [
        ("cross-cluster-export", "TCP4:100.64.0.18:8080", "100.64.0.1"), ("egress-external", "TCP4:10.223.0.100:9000", "100.64.0.1")]
    inbound = verify_inbound_probes(pods, "alpha", PLAN, island=ISLAND, external=ext, port=8080, closed_ports=[22, 6443])
    assert inbound[0]["check"] == "ingress-vip" and inbound[0]["expect"] == ["10.223.0.100"]
    assert inbound[0]["host"] == "ext1"
    closed = sorted(p["target"] for p in inbound if p.get("closed"))
    assert closed == ["100.64.0.1:8080", "100.64.0.2:22", "100.64.0.2:30080", "100.64.0.2:6443"]
    no_export = verify_inbound_probes(pods, "alpha", PLAN, island={"alpha": {"why": "no export"}}, external=ext)
    assert {p["skip_reason"] for p in no_export} == {"no export"}


def test_outbound_flat_keeps_the_source():
    flat = {"clusters": {n: {**c, "model": "flat"} for n, c in PLAN["clusters"].items()}}
    mine = verify_pods([pod("client", "client", "n1", ["10.32.0.9"]), pod("s1", "server", "n1", ["10.32.0.5"])])
    theirs = verify_pods([pod("client", "client", "m1", ["10.40.0.9"]), pod("s1", "server", "m1", ["10.40.0.5"])])
    out = verify_outbound_probes(mine, "alpha", flat, peers=[(theirs, "beta")])
    assert [(p["check"], p["address"], p["expect"], p["pair"]) for p in out] == [
        ("cross-cluster-pod", "TCP4:10.40.0.5:8080", "10.32.0.9", "alpha->beta")]


def node(name, cidrs, ready="True"):
    return {"metadata": {"name": name}, "spec": {"podCIDRs": cidrs}, "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def apiserver(flag):
    command = ["kube-apiserver", f"--service-cluster-ip-range={flag}"]
    return {"metadata": {"name": "kube-apiserver-cp1"}, "spec": {"containers": [{"command": command}]}}


def test_static_checks_pass_and_fail_with_the_offending_value():
    kubeadm = {"networking": {"podSubnet": "10.32.0.0/16", "serviceSubnet": "10.96.0.0/22"}}
    state = [[node("n1", ["10.32.0.0/24"])], kubeadm, [apiserver("10.96.0.0/22")], {"rc": 0}]
    ok = verify_static(state, PLAN["clusters"]["alpha"], "alpha")
    assert [r["status"] for r in ok] == ["PASS"] * 4
    bad = {r["check"]: r for r in verify_static([[node("n1", ["10.33.0.0/24"], "False")], kubeadm, [apiserver("10.96.0.0/12")],
                                                 {"rc": 1, "stderr": "timed out"}], PLAN["clusters"]["alpha"], "alpha")}
    assert bad["nodes-ready"]["reason"] == "not Ready: n1"
    assert "n1 10.33.0.0/24" in bad["pod-range"]["reason"]
    assert "--service-cluster-ip-range=10.96.0.0/12" in bad["service-range"]["reason"]
    assert bad["test-pods-ready"]["status"] == "FAIL"


STATE = {
    "routes": [{"dst": "10.32.0.0/24", "dev": "cni0"}, {"dst": "10.223.1.0/24", "dev": "eth0"},
               {"dst": "100.64.0.16/28", "gateway": "10.223.1.2", "dev": "eth0"}],
    "routes6": [],
    "links": [{"ifname": "eth0", "mtu": 1500}, {"ifname": "flannel.1", "mtu": 1450,
                                                "linkinfo": {"info_kind": "vxlan", "info_data": {"link": "eth0", "local": "10.223.1.11"}}}],
    "sysctl": {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"},
}


def statuses(records):
    return {r["check"]: r["status"] for r in records}


def test_diagnose_a_healthy_node():
    assert set(statuses(verify_diagnose(STATE, PLAN, host="alpha-cp1", cluster="alpha")).values()) == {"PASS"}
    link_local = {**STATE, "routes6": [{"dst": "fe80::/64", "dev": "eth0"}, {"dst": "fe80::/64", "dev": "flannel.1"}]}
    assert statuses(verify_diagnose(link_local, PLAN, host="alpha-cp1", cluster="alpha"))["routes overlap"] == "PASS"


def test_diagnose_finds_each_breakage():
    broken = {**STATE, "sysctl": {"net.ipv4.ip_forward": "0"},
              "links": [{"ifname": "eth0", "mtu": 1400}, STATE["links"][1]],
              "routes": [{"dst": "10.0.0.0/8", "gateway": "10.223.1.1", "dev": "eth0"},
                         {"dst": "10.32.5.0/24", "gateway": "10.223.1.9", "dev": "eth0"}, {"dst": "10.96.0.0/24", "dev": "eth0"}]}
    records = {r["check"]: r for r in verify_diagnose(broken, PLAN, host="alpha-cp1", cluster="alpha")}
    assert records["sysctl net.ipv4.ip_forward"]["reason"] == "is 0; it must be 1"
    assert "missing" in records["sysctl net.bridge.bridge-nf-call-iptables"]["reason"]
    assert "set the overlay MTU to 1350" in records["mtu flannel.1"]["reason"]
    overlap = records["routes overlap"]["reason"]
    assert "covers the pod range 10.32.0.0/16" in overlap and "not the CNI's" in overlap and "service range" in overlap
    assert records["routes missing"]["reason"] == "no route to 100.64.0.16/28 (beta's global range)"


def test_diagnose_gateway_rules_and_bgp():
    gw = {**STATE, "gateway": {"stamp": "same", "rules": "same"}}
    assert statuses(verify_diagnose(gw, PLAN, host="alpha-gw", cluster="alpha", kind="gateway"))["gateway rules"] == "PASS"
    edited = {**gw, "gateway": {"stamp": "same", "rules": "< chain forward"}}
    records = {r["check"]: r for r in verify_diagnose(edited, PLAN, host="g", cluster="alpha", kind="gateway")}
    assert "differs from the rules file" in records["gateway rules"]["reason"]
    stale = {**gw, "gateway": {"stamp": "differs", "rules": "same"}}
    assert statuses(verify_diagnose(stale, PLAN, host="g", cluster="alpha", kind="gateway"))["gateway rules"] == "FAIL"
    router = {**STATE, "bgp": {"ipv4Unicast": {"peers": {"10.0.0.1": {"state": "Active"}, "10.0.0.2": {"state": "Established"}}}}}
    records = {r["check"]: r for r in verify_diagnose(router, PLAN, host="r1", kind="router")}
    assert records["bgp sessions"]["reason"] == "not Established: 10.0.0.1 (ipv4Unicast): Active"
    with pytest.raises(AnsibleFilterError, match="cluster 'gamma', which is not in the plan"):
        verify_diagnose(STATE, PLAN, host="x", cluster="gamma")
