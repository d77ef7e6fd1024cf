"""Ingress and the Gateway API on alpha, from the external host: Traefik (role traefik) behind a LoadBalancer Service
whose address MetalLB gives from the plan's pool. An Ingress and a Gateway with HTTPRoutes each route two host names
to two different backends, which name themselves in every answer; a host name nothing claims gets Traefik's 404.

This file runs after test_flat.py and before test_node_join.py and test_outside.py (pytest's file order), so alpha
has all its nodes running. Every request is bounded (curl's --max-time inside `timeout`) and aims only at this
scenario's lab addresses.
"""

import ipaddress
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenario import wait_for
from test_flat import IMAGE, REPO, kubectl, lab_host

EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", ""))
VERSIONS = yaml.safe_load((REPO / "versions.yml").read_text())
TRAEFIK_NS = "traefik"                       # the role's defaults
NS = "archipelago-ingress"
BACKENDS = ("red", "blue")
# Each backend answers every request with its own name, its pod's name and the Host header it received.
SERVER = """
import http.server, os
class Whoami(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"backend={os.environ['BACKEND']} pod={os.environ['POD']} host={self.headers.get('Host')}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("", 8080), Whoami).serve_forever()
"""


@pytest.fixture(scope="module")
def plan():
    return yaml.safe_load((EPHEMERAL / "network-plan.lock.yml").read_text())["clusters"]


@pytest.fixture(scope="module")
def address():
    """The address of Traefik's LoadBalancer Service."""
    service = json.loads(kubectl("alpha", f"-n {TRAEFIK_NS} get service traefik -o json"))
    ips = [i["ip"] for i in service["status"].get("loadBalancer", {}).get("ingress", []) if "ip" in i]
    assert len(ips) == 1, service["status"]
    return ips[0]


def get(address, host):
    """(HTTP status, body) of GET http://<address>/ with the given Host header, from the external host."""
    result = lab_host("ext1").run(f"timeout 15 curl -sS --max-time 8 -H 'Host: {host}' -w '\\n%{{http_code}}' http://{address}/")
    if result.rc != 0:
        return None, result.stderr
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body


@pytest.fixture(scope="module")
def backends():
    """Two backends, red and blue, each a Deployment behind a ClusterIP Service on port 80."""
    items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}]
    for name in BACKENDS:
        labels = {"app": f"ingress-{name}"}
        container = {"name": "whoami", "image": IMAGE, "imagePullPolicy": "Never", "command": ["python3", "-c", SERVER],
                     "env": [{"name": "BACKEND", "value": name},
                             {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                     "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2}}
        items += [
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
             "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                 "terminationGracePeriodSeconds": 1, "containers": [container]}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
             "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}},
        ]
    kubectl("alpha", "apply -f -", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    for name in BACKENDS:
        kubectl("alpha", f"-n {NS} rollout status deployment/{name} --timeout=180s")
    return BACKENDS


def test_traefik_runs_with_its_classes_the_gateway_api_crds_and_an_address_from_the_plan(plan, address):
    kubectl("alpha", f"-n {TRAEFIK_NS} rollout status deployment/traefik --timeout=180s")
    deployment = json.loads(kubectl("alpha", f"-n {TRAEFIK_NS} get deployment traefik -o json"))
    assert deployment["status"].get("readyReplicas") == deployment["spec"]["replicas"] == 2, deployment["status"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(plan["alpha"]["load_balancer_cidrs"][0])
    ingress_class = json.loads(kubectl("alpha", "get ingressclass traefik -o json"))
    assert ingress_class["spec"]["controller"] == "traefik.io/ingress-controller"
    gateway_class = json.loads(kubectl("alpha", "get gatewayclass traefik -o json"))
    assert gateway_class["spec"]["controllerName"] == "traefik.io/gateway-controller"
    # Traefik accepts the class it serves: its controller runs and reads the CRDs.
    accepted = [c for c in gateway_class["status"]["conditions"] if c["type"] == "Accepted"]
    assert accepted and accepted[0]["status"] == "True", gateway_class["status"]
    crds = json.loads(kubectl("alpha", "get crds -o json"))["items"]
    gateway_crds = {c["metadata"]["name"]: c["metadata"]["annotations"] for c in crds
                    if c["spec"]["group"] == "gateway.networking.k8s.io"}
    assert {"gatewayclasses.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io",
            "httproutes.gateway.networking.k8s.io", "referencegrants.gateway.networking.k8s.io"} <= set(gateway_crds)
    assert {a["gateway.networking.k8s.io/bundle-version"] for a in gateway_crds.values()} == {VERSIONS["gateway_api"]}
    assert {a["gateway.networking.k8s.io/channel"] for a in gateway_crds.values()} == {"standard"}
    # beta does not turn Traefik on.
    assert "namespace/traefik" not in kubectl("beta", "get namespaces -o name").split()


def routed(address, host, backend):
    status, body = get(address, host)
    return status == 200 and f"backend={backend} " in body and f"host={host}\n" in body + "\n"


def test_an_ingress_routes_two_host_names_to_two_backends_from_the_external_host(address, backends):
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "colours", "namespace": NS},
               "spec": {"ingressClassName": "traefik", "rules": [
                   {"host": f"{name}.ingress.test", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                       "service": {"name": name, "port": {"number": 80}}}}]}} for name in backends]}}
    kubectl("alpha", "apply -f -", stdin=json.dumps(ingress))

    def published():
        status = json.loads(kubectl("alpha", f"-n {NS} get ingress colours -o json")).get("status", {})
        return [i.get("ip") for i in status.get("loadBalancer", {}).get("ingress", [])]

    # Traefik copies its Service's address into the status of the Ingresses it serves.
    assert wait_for(lambda: published() == [address], 60), published()
    for name in backends:
        assert wait_for(lambda name=name: routed(address, f"{name}.ingress.test", name), 60), \
            get(address, f"{name}.ingress.test")


def test_a_gateway_and_httproutes_route_two_host_names_to_two_backends_from_the_external_host(address, backends):
    gateway = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "colours", "namespace": NS},
               "spec": {"gatewayClassName": "traefik", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}}
    routes = [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": name, "namespace": NS},
               "spec": {"parentRefs": [{"name": "colours"}], "hostnames": [f"{name}.gateway.test"],
                        "rules": [{"backendRefs": [{"name": name, "port": 80}]}]}} for name in backends]
    kubectl("alpha", "apply -f -", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [gateway, *routes]}))

    def gateway_status():
        return json.loads(kubectl("alpha", f"-n {NS} get gateway colours -o json")).get("status", {})

    def programmed():
        status = gateway_status()
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        return conditions.get("Programmed") == "True" and [a["value"] for a in status.get("addresses", [])] == [address]

    assert wait_for(programmed, 60), gateway_status()
    def route_accepted(name):
        """Every parent of the route (the Gateway's listener) accepted it and resolved its backend."""
        parents = json.loads(kubectl("alpha", f"-n {NS} get httproute {name} -o json")).get("status", {}).get("parents", [])
        conditions = [c for p in parents for c in p.get("conditions", []) if c["type"] in ("Accepted", "ResolvedRefs")]
        return len(conditions) == 2 * len(parents) > 0 and all(c["status"] == "True" for c in conditions)

    for name in backends:
        assert wait_for(lambda name=name: route_accepted(name), 60), kubectl("alpha", f"-n {NS} get httproute {name} -o yaml")
        assert wait_for(lambda name=name: routed(address, f"{name}.gateway.test", name), 60), \
            get(address, f"{name}.gateway.test")


def test_a_host_name_nothing_claims_gets_404(address, backends):
    status, body = get(address, "nobody.ingress.test")
    assert status == 404, (status, body)
    # The claimed names still answer, each from its own backend, on the same address.
    assert routed(address, "red.ingress.test", "red") and routed(address, "blue.gateway.test", "blue")
