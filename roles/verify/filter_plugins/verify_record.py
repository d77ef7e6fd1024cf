"""The verify_record filter: one probe's registered result (a loop item of the verify role) to a report record;
with verify_line (a record as one line of the report) and verify_complete (a FAIL for each cluster without results)
in the same file, since they share the record's shape."""

from __future__ import annotations

import json

from ansible.errors import AnsibleFilterError
from ansible_collections.archipelago.clusters.plugins.plugin_utils.filters import netaddr, require_netaddr

DOCUMENTATION = r"""
name: verify_record
author: Archipelago
version_added: "0.1.0"
short_description: Turns one registered probe of the verify role into a PASS or FAIL line with its reason
description:
  - The input is one element of a looped C(command) result whose C(item) describes the probe, with the keys
    C(check), C(target), C(family), C(pair) (optional) and either C(expect) (the address or addresses the server must
    report as the client) or C(closed=true) (nothing may answer).
  - An open probe passes when the command succeeded and the last line of its output is one of the expected
    addresses (IPv6 brackets and IPv4-mapped prefixes are ignored). A closed probe passes when nothing answered.
options:
  _input:
    description: One element of a registered loop result.
    type: dict
    required: true
  cluster:
    description: The cluster the probe belongs to.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Record the probes
  ansible.builtin.set_fact:
    verify__results: "{{ verify__results + verify__probe.results | map('verify_record', 'alpha') | list }}"
"""

RETURN = r"""
_value:
  description: A mapping with C(cluster), C(pair), C(check), C(family), C(status) (PASS or FAIL) and C(reason).
  type: dict
"""


def _address(text: str):
    text = text.strip().strip("[]")
    if text.lower().startswith("::ffff:") and "." in text:
        text = text[7:]
    try:
        return netaddr.IPAddress(text)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return None


def _excerpt(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def verify_record(result: dict, cluster: str) -> dict:
    """Plain-data core of the filter: see DOCUMENTATION."""
    require_netaddr("verify_record")
    if not isinstance(result, dict) or not isinstance(result.get("item"), dict) or "check" not in result["item"]:
        raise AnsibleFilterError(f"verify_record: expected a registered loop result whose item has a check, got {result!r}")
    item = result["item"]
    record = {"cluster": cluster, "pair": item.get("pair", ""), "check": item["check"], "family": item.get("family", ""),
              "target": item.get("target", ""), "status": "FAIL", "reason": ""}
    output = (result.get("stdout") or "").strip()
    last = output.splitlines()[-1] if output else ""
    rc = result.get("rc")
    if item.get("fail_reason"):
        return {**record, "reason": item["fail_reason"]}
    if item.get("skip_reason"):
        return {**record, "status": "SKIP", "reason": item["skip_reason"]}
    if result.get("skipped"):
        return {**record, "reason": "the probe did not run"}
    if item.get("closed"):
        if rc == 0 and output:
            return {**record, "reason": f"{item['target']} answered ({_excerpt(last)}); nothing may answer there"}
        return {**record, "status": "PASS", "reason": f"{item['target']}: no answer, as expected"}
    expected = item.get("expect")
    expected = [expected] if isinstance(expected, str) else list(expected or [])
    if rc != 0 or not output:
        why = _excerpt(output or result.get("stderr") or result.get("msg") or "no output")
        return {**record, "reason": f"{item['target']}: no answer ({why})"}
    seen = _address(last)
    wanted = [a for a in (_address(e) for e in expected) if a is not None]
    if seen is not None and seen in wanted:
        return {**record, "status": "PASS", "reason": f"{item['target']} answered and saw the client as {seen}"}
    return {**record, "reason": f"{item['target']} saw the client as {_excerpt(last)}, expected {' or '.join(expected) or '(no address)'}"}


def _runnable(item: dict) -> bool:
    return not item.get("fail_reason") and not item.get("skip_reason")


def verify_argv(items: list, kubectl: list, namespace: str, probe: str, closed: str) -> list:
    """The command of each runnable probe: kubectl exec into its pod and container, or (an item with a host) a shell
    on that external host; the probe script gets the socat address as $1."""
    commands = []
    for item in items:
        if not _runnable(item):
            continue
        script = closed if item.get("closed") else probe
        if item.get("host"):
            commands.append(["sh", "-c", script, "sh", item["address"]])
        else:
            commands.append([*kubectl, "-n", namespace, "exec", item.get("pod", "client"), "-c", item.get("container", "client"), "--",
                             "sh", "-c", script, "sh",
                             item["address"]])
    return commands


def verify_records(items: list, outputs: list, cluster: str) -> list:
    """Each probe item with its output (the runnable ones, in order, from the batch runner) as a report record."""
    outputs = list(outputs or [])
    runnable = [i for i in items if _runnable(i)]
    if len(outputs) != len(runnable):
        raise AnsibleFilterError(f"verify_records: {len(runnable)} probes ran but {len(outputs)} outputs came back")
    results = iter(outputs)
    return [verify_record({**(next(results) if _runnable(i) else {"skipped": True}), "item": i}, cluster) for i in items]


def verify_external_records(results: list, items: list, cluster: str) -> list:
    """The external hosts' batches (a loop over the hosts, each result's item has the host's name) as records."""
    records = []
    for result in results:
        name = result["item"]["name"]
        mine = [i for i in items if i.get("host") == name]
        if result.get("failed") or result.get("rc") != 0:
            why = f"the probes on {name} did not run: {result.get('msg') or result.get('stderr') or 'no output'}"
            records += [verify_record({"skipped": True, "item": {**i, "fail_reason": why}}, cluster) for i in mine]
            continue
        records += verify_records(mine, json.loads(result["stdout"]), cluster)
    return records


def verify_line(record: dict) -> str:
    """One report line: status, cluster, check, pair, family, reason."""
    if not isinstance(record, dict) or "status" not in record:
        raise AnsibleFilterError(f"verify_line: expected a result of verify_record, got {record!r}")
    return (f"{record['status']:<4}  {record.get('cluster', ''):<12} {record.get('check', ''):<22} {record.get('pair', ''):<18} "
            f"{record.get('family', ''):<4}  {record.get('reason', '')}").rstrip()


def verify_complete(results: list, expected: list, check: str = "run") -> list:
    """The results, plus a FAIL for every expected cluster (or host) that gave none."""
    seen = {r.get("cluster") for r in results}
    missing = [{"cluster": name, "pair": "", "check": check, "family": "", "target": "", "status": "FAIL",
                "reason": "no results: the run on its host failed or did not start (see the failed task above)"}
               for name in expected if name not in seen]
    return list(results) + missing


class FilterModule:
    def filters(self):
        return {"verify_record": verify_record, "verify_records": verify_records, "verify_argv": verify_argv,
                "verify_external_records": verify_external_records,
                "verify_line": verify_line, "verify_complete": verify_complete}
