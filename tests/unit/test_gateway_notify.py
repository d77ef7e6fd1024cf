"""keepalived's notify script of the island_gateway role, rendered from its template and run with stand-ins for
conntrackd, systemctl and logger that record their calls: the conntrackd steps of each VRRP state, and the routes unit
run again (before anything else) only when the gateway leaves the fault state, whose link-down took its routes."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "roles" / "island_gateway" / "templates" / "archipelago-gateway-notify.sh.j2"
DEFAULTS = yaml.safe_load((ROOT / "roles" / "island_gateway" / "defaults" / "main.yml").read_text())
RECORDER = '#!/bin/sh\necho "$(basename "$0") $*" >> "$CALLS"\n'


@pytest.fixture
def notify(tmp_path):
    """Returns run(state) -> the calls the script made, in order."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("conntrackd", "systemctl", "logger"):
        (bin_dir / tool).write_text(RECORDER)
        (bin_dir / tool).chmod(0o755)
    variables = {**DEFAULTS, "island_gateway_ha_state_file": str(tmp_path / "vrrp-state")}
    text = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True).from_string(TEMPLATE.read_text())
    script = tmp_path / "notify.sh"
    script.write_text(text.render(**variables))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    calls = tmp_path / "calls"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls)}

    def run(state: str) -> list[str]:
        calls.write_text("")
        result = subprocess.run([str(script), state], env=env, capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stderr
        return calls.read_text().splitlines()

    return run


CONNTRACKD = f"conntrackd -C {DEFAULTS['island_gateway_ha_conntrackd_config']}"
ROUTES = f"systemctl try-restart {DEFAULTS['island_gateway_routes_service']}.service"


def test_each_state_runs_its_conntrackd_steps_and_only_leaving_fault_puts_the_routes_back(notify):
    # A gateway that starts (no previous state) and becomes a backup, then active: no routes unit run.
    assert notify("backup") == [f"{CONNTRACKD} -t", f"{CONNTRACKD} -n", "logger -t archipelago-gateway VRRP state backup (was none)"]
    assert notify("primary") == [f"{CONNTRACKD} -c", f"{CONNTRACKD} -f", f"{CONNTRACKD} -R", f"{CONNTRACKD} -B",
                                 "logger -t archipelago-gateway VRRP state primary (was backup)"]
    # Its transit link goes down: fault. Coming back it is a backup, and the routes unit runs first.
    assert notify("fault") == [f"{CONNTRACKD} -t", "logger -t archipelago-gateway VRRP state fault (was primary)"]
    assert notify("backup") == [ROUTES, f"{CONNTRACKD} -t", f"{CONNTRACKD} -n",
                                "logger -t archipelago-gateway VRRP state backup (was fault)"]
    assert notify("backup") == [f"{CONNTRACKD} -t", f"{CONNTRACKD} -n", "logger -t archipelago-gateway VRRP state backup (was backup)"]
    # Straight from fault to active (keepalived may do so when no other gateway answers): the routes first as well.
    notify("fault")
    assert notify("primary")[0] == ROUTES


def test_an_unknown_state_is_refused_and_changes_nothing(notify, tmp_path):
    notify("fault")
    script = tmp_path / "notify.sh"
    result = subprocess.run([str(script), "master"], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2 and "usage" in result.stderr
    assert (tmp_path / "vrrp-state").read_text().strip() == "fault"
