"""``bench/serving_loop.py`` end to end on a tiny world: two rounds of optimize, review, serve, export, optimize."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import serving_loop  # noqa: E402
from reviewers import SimulatedReviewer  # noqa: E402

from adcraft.market import load_market  # noqa: E402
from adcraft.pipeline.optimize import OptimizeConfig  # noqa: E402
from adcraft.pipeline.run_record import run_id_of  # noqa: E402
from adcraft.serve.impression_log import served_rows  # noqa: E402
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market  # noqa: E402


@pytest.mark.slow
def test_two_rounds_log_exact_propensities_and_the_next_optimize_reads_them(tmp_path):
    config = SimulatorConfig(seed=4711, n_products=5, n_impressions=4000, creatives_per_product=3,
                             canvas=(192, 192), photo_size=128)
    market_dir = simulate_market(config, tmp_path / "market").market_dir
    truth = GroundTruth.load(tmp_path / "market-truth")
    reviewer = SimulatedReviewer(frozenset())  # approves every proposal: each product has arms to choose among
    workdir = tmp_path / "loop"
    rounds = serving_loop.run_loop(market_dir, truth, reviewer, workdir, OptimizeConfig.smoke(), rounds=2,
                                   traffic=400, seed=1)
    assert [r.round for r in rounds] == [1, 2] and all(r.acceptance == 1.0 for r in rounds)

    # The export of round 1 holds every served impression with the propensity the policy logged, exactly.
    engine = sa.create_engine(f"sqlite:///{workdir / 'decisions.sqlite'}")
    logged = served_rows(engine, run_id_of(workdir / "run-1")).set_index("impression_id")
    engine.dispose()
    exported = load_market(workdir / "market-2").impressions.set_index("impression_id")
    served = exported.loc[logged.index]
    assert len(logged) == 400 == rounds[0].exported_impressions
    assert served["propensity"].tolist() == logged["propensity"].tolist()  # exact: no rounding on the way
    assert ((served["propensity"] > 0) & (served["propensity"] <= 1)).all()
    assert (served["propensity"] < 1).sum() == rounds[0].chosen_among_several > 0
    assert served["click"].tolist() == logged["click"].tolist() and served["click"].sum() == rounds[0].clicks

    # Round 2 optimized that export, and its proposals are shown in the served log: its evidence has support.
    run = json.loads((workdir / "run-2" / "run.json").read_text())
    assert Path(run["market"]) == (workdir / "market-2").resolve()
    assert rounds[1].ope_matched_impressions == run["ope"]["matched_impressions"] > 0
