"""The network_plan_svg filter: draw each pool's address space and what the plan took from it."""

from __future__ import annotations

import hashlib
from html import escape

from ansible.errors import AnsibleFilterError
from ansible_collections.archipelago.clusters.plugins.plugin_utils.filters import netaddr, require_netaddr

DOCUMENTATION = r"""
name: network_plan_svg
author: Archipelago
version_added: "0.1.0"
short_description: Draw a network plan's pools as an SVG diagram
description:
  - One bar per block of every pool (pods, services, global, load_balancers; per family). Each allocated range is drawn at its place
    in the block, coloured per cluster; node networks and reserved ranges inside a block are grey.
  - Island mode's shared pod and service ranges are labelled as shared by all clusters.
options:
  _input:
    description: The output of the network_plan filter.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Write the plan's diagram
  ansible.builtin.copy:
    content: "{{ plan | archipelago.clusters.network_plan_svg }}"
    dest: network-plan.svg
    mode: "0644"
"""

RETURN = r"""
_value:
  description: An SVG document.
  type: str
"""

FILTER = "network_plan_svg"
WIDTH = 960  # the whole drawing, in pixels
LABEL = 190  # left margin for each bar's label
ROW = 34  # vertical distance between bars
BAR = 20  # height of a bar
FIELDS = {"pods": "pod_cidrs", "services": "service_cidrs", "global": "global_cidrs", "load_balancers": "load_balancer_cidrs"}


def _colour(name: str) -> str:
    """A stable colour per cluster name."""
    hue = int(hashlib.sha256(name.encode()).hexdigest()[:4], 16) % 360
    return f"hsl({hue},60%,55%)"


def _owners(plan: dict, kind: str) -> dict:
    """Allocated range -> the clusters that use it (several in island mode)."""
    owners: dict = {}
    for name, cluster in sorted(plan["clusters"].items()):
        for cidr in cluster.get(FIELDS[kind]) or []:
            owners.setdefault(cidr, []).append(name)
    return owners


def _rect(x: float, y: float, width: float, fill: str, title: str) -> str:
    return (
        f'<rect x="{x:.2f}" y="{y}" width="{max(width, 1.0):.2f}" height="{BAR}" fill="{fill}" stroke="#333" stroke-width="0.3">'
        f"<title>{escape(title)}</title></rect>"
    )


def plan_svg(plan: dict) -> str:
    require_netaddr("network_plan_svg")
    if not isinstance(plan, dict) or "clusters" not in plan or "pools" not in plan:
        raise AnsibleFilterError(f"{FILTER}: expects the output of the network_plan filter, got {type(plan).__name__}")
    exclusions = [netaddr.IPNetwork(e) for e in plan.get("exclusions", [])]
    body, y = [], 40
    for kind in FIELDS:
        owners = _owners(plan, kind)
        allocated = [(netaddr.IPNetwork(cidr), names) for cidr, names in owners.items()]
        for family, blocks in sorted(plan["pools"].get(kind, {}).items()):
            for block_text in blocks:
                block = netaddr.IPNetwork(block_text)
                scale = (WIDTH - LABEL - 20) / block.size
                body.append(f'<text x="10" y="{y + 15}" font-size="12">{escape(f"{kind} {family} {block}")}</text>')
                body.append(_rect(LABEL, y, block.size * scale, "#f4f4f4", f"{block}: free"))
                # The LoadBalancer pool lies in a node network on purpose; only the other pools are drawn with the
                # node networks and reserved ranges they keep clear of.
                for net in exclusions if kind != "load_balancers" else []:
                    if net.version == block.version and net.first <= block.last and block.first <= net.last:
                        first, last = max(net.first, block.first), min(net.last, block.last)
                        body.append(_rect(LABEL + (first - block.first) * scale, y, (last - first + 1) * scale, "#999", f"{net}: excluded"))
                for net, names in allocated:
                    if net in block:
                        label = "shared by all clusters" if len(names) > 1 else names[0]
                        fill = "#6a8caf" if len(names) > 1 else _colour(names[0])
                        x, width = LABEL + (net.first - block.first) * scale, net.size * scale
                        body.append(_rect(x, y, width, fill, f"{net}: {label}"))
                        if width > 60:
                            body.append(f'<text x="{x + 3:.2f}" y="{y + 14}" font-size="10">{escape(label)}</text>')
                y += ROW
    title = f"Archipelago network plan: {plan.get('model')} model, {len(plan['clusters'])} cluster(s)"
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y + 10}" font-family="sans-serif">',
            f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
            *body,
            "</svg>",
            "",
        ]
    )


class FilterModule:
    """Archipelago's plan diagram."""

    def filters(self):
        return {"network_plan_svg": plan_svg}
