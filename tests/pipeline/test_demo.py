from __future__ import annotations

import json

import pytest

from adcraft.errors import InputError
from adcraft.market.outputs import read_proposals
from adcraft.pipeline import DemoConfig, run_demo
from adcraft.pipeline.demo import ab_test_size


@pytest.mark.slow
def test_demo_optimizes_the_simulated_market_and_ab_tests_the_proposals(tmp_path):
    config = DemoConfig(out=tmp_path / "out", n_products=8, n_impressions=6000, ab_impressions=20_000)
    result = run_demo(config)
    proposals = read_proposals(result.report.parent)
    assert set(proposals["product_id"]) == set(result.run.proposals["product_id"])
    assert result.report.is_file() and (result.report.parent / "run.json").is_file()
    ab = json.loads((result.report.parent / "abtest.json").read_text())
    assert ab["true_lift"] == pytest.approx(result.ab_test.true_lift)
    assert ab["impressions_per_arm"] == 20_000
    # rerunning into the same folder works (make demo twice)
    again = run_demo(config)
    assert again.report == result.report


def _record_with_plan(impressions_per_arm):
    """A stand-in for a run's record whose evidence carries a launch plan of ``impressions_per_arm``."""
    from types import SimpleNamespace

    from adcraft.evaluate.evidence import LiftInterval
    from adcraft.pipeline.run_record import EvidenceRecord

    plan = {"impressions_per_arm": impressions_per_arm}
    return SimpleNamespace(evidence=EvidenceRecord(LiftInterval(0.02, 0.01, 0.03, 0.9), {"launch_plan": plan}))


@pytest.mark.parametrize(("needed", "size"), [(3_000_000, 3_000_000), (5_000, 100_000), (10**9, 20_000_000),
                                              (None, 100_000)])
def test_the_ab_test_takes_the_launch_plans_size_within_its_bounds(tmp_path, needed, size):
    assert ab_test_size(DemoConfig(out=tmp_path), _record_with_plan(needed)) == size


def test_a_fixed_ab_test_size_overrides_the_launch_plan(tmp_path):
    assert ab_test_size(DemoConfig(out=tmp_path, ab_impressions=7), _record_with_plan(3_000_000)) == 7


def test_a_run_without_evidence_gets_the_smallest_ab_test(tmp_path):
    from types import SimpleNamespace

    from adcraft.pipeline.run_record import EvidenceRecord

    record = SimpleNamespace(evidence=EvidenceRecord(None, reason="switched off"))
    assert ab_test_size(DemoConfig(out=tmp_path, ab_bounds=(500, 900)), record) == 500


@pytest.mark.parametrize("bounds", [(0, 10), (10, 5)])
def test_bad_ab_bounds_are_refused(tmp_path, bounds):
    with pytest.raises(InputError, match="ab_bounds"):
        DemoConfig(out=tmp_path, ab_bounds=bounds)
