"""benchmarks/plan_scale.py times the planner only on complete plans: every planned cluster must be in each result."""

import copy
import subprocess
import sys

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import plan_scale

SMALL = ["--sizes", "10", "100", "--repeat", "1"]


def test_the_benchmark_runs_small_and_confirms_every_cluster():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "plan_scale.py"), *SMALL],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Every planned cluster is in every result, with its ranges and no overlap: yes (110 clusters per round)" in result.stdout
    assert "| 100 |" in result.stdout


def planner_that(damage):
    """The real planner, with its result damaged by damage(plan)."""
    real = plan_scale.plan_network

    def planner(spec):
        plan = copy.deepcopy(real(spec))
        damage(plan)
        return plan
    return planner


def drop_one_cluster(plan):
    del plan["clusters"][sorted(plan["clusters"])[-1]]


def drop_the_ipv6_pod_range(plan):
    plan["clusters"]["c00003"]["pod_cidrs"] = plan["clusters"]["c00003"]["pod_cidrs"][:1]


def share_a_range(plan):
    plan["clusters"]["c00002"]["service_cidrs"] = plan["clusters"]["c00001"]["service_cidrs"]


@pytest.mark.parametrize(("damage", "message"), [
    (drop_one_cluster, "1 planned clusters missing from the result (first: ['c00009'])"),
    (drop_the_ipv6_pod_range, "cluster c00003 has pod ranges"),
    (share_a_range, "the plan's ranges overlap: clusters c00001 and c00002 share addresses"),
])
def test_an_incomplete_plan_is_an_error_not_a_time(monkeypatch, capsys, damage, message):
    monkeypatch.setattr(plan_scale, "plan_network", planner_that(damage))
    assert plan_scale.main(SMALL) == 2
    out = capsys.readouterr().out
    assert message in out, out
    assert "| clusters |" not in out, "no timing table for an incomplete plan"
