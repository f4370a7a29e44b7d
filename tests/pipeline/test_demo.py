from __future__ import annotations

import json

import pytest

from adcraft.market.outputs import read_proposals
from adcraft.pipeline import DemoConfig, run_demo


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
