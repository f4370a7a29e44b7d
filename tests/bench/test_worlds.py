"""The references of ``bench/worlds.py``: the plain logistic regression, its argmax, the intervals over seeds
and the lift a run reports."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import worlds  # noqa: E402

from adcraft.market import load_market  # noqa: E402


def test_fit_logit_recovers_a_known_effect_and_l2_shrinks_it():
    rng = np.random.default_rng(0)
    rows = []
    for element, effect in (("a", 0.8), ("b", -0.8)):
        for device, shift in (("mobile", 0.0), ("desktop", 0.3)):
            trials = 200_000
            p = 1.0 / (1.0 + math.exp(-(-3.0 + effect + shift)))
            rows.append({"features": [f"slot={element}", f"device={device}"], "clicks": rng.binomial(trials, p),
                         "trials": trials})
    frame = pd.DataFrame(rows)
    loose = worlds.fit_logit(frame, l2=0.01)
    tight = worlds.fit_logit(frame, l2=1e5)
    gap = loose.coefficient("slot=a") - loose.coefficient("slot=b")
    assert gap == pytest.approx(1.6, abs=0.05)
    assert loose.coefficient("device=desktop") - loose.coefficient("device=mobile") == pytest.approx(0.3, abs=0.05)
    assert abs(tight.coefficient("slot=a") - tight.coefficient("slot=b")) < 0.5 * gap
    assert loose.coefficient("slot=never-seen") == 0.0


def test_logit_argmax_is_the_exhaustive_argmax_of_the_fitted_score(tiny_market_dir):
    market = load_market(tiny_market_dir)
    model = worlds.plain_logit(market)
    assert model.l2 in worlds.L2_GRID
    picks = worlds.logit_argmax(market, model)
    slots = market.config.slots

    def score(combo):
        return sum(model.coefficient(f"{slot}={e}") for slot, e in zip(slots, combo))

    for pid in market.products["product_id"]:
        usable = [market.usable_elements(pid, slot)["element_id"].tolist() for slot in slots]
        best = max(score(c) for c in itertools.product(*usable))
        assert all(e in options for e, options in zip(picks[pid], usable))
        assert score(picks[pid]) == pytest.approx(best, abs=1e-12)


def test_random_combinations_are_usable_and_vary(tiny_market_dir):
    market = load_market(tiny_market_dir)
    picks = worlds.random_combinations(market, seed=1)
    assert picks == worlds.random_combinations(market, seed=1)
    for pid, combo in picks.items():
        for slot, element in zip(market.config.slots, combo):
            assert element in set(market.usable_elements(pid, slot)["element_id"])
    assert len({tuple(c) for c in picks.values()}) > 1


def test_mean_interval_is_the_t_interval_over_seeds():
    # mean 2, sd 1, n 3: half-width t(0.975, 2) / sqrt(3) = 4.3027 / 1.7321 = 2.4841
    assert worlds.mean_interval([1.0, 2.0, 3.0]) == "2.000 [-0.484, 4.484]"
    assert worlds.mean_interval([0.25]) == "0.250"
    assert worlds.mean_interval([float("nan")]) == "n/a"


def test_reported_lift_prefers_the_evidence_estimate():
    ope = {"possible": True, "lift": 0.4}
    assert worlds.reported_lift({"ope": ope}) == (0.4, "ope.lift")
    assert worlds.reported_lift({"ope": ope, "evidence": {"lift": {"estimate": 0.1}}}) == (
        0.1, "evidence.lift.estimate")
    value, source = worlds.reported_lift({"ope": {"possible": False, "reason": "no propensities"}})
    assert math.isnan(value) and source == "none"


def test_the_truth_scores_each_drawing_of_a_combination_as_its_own_creative(tmp_path):
    """Two drawings of one combination (the photo placed otherwise) are two creatives: the scorer caches by the
    pixels of an image it is given, and by the combination only for its own default drawing."""
    import optimize
    from PIL import Image

    from adcraft.render.compositor import Placement
    from adcraft.simulator import SimulatorConfig, simulate_market
    from adcraft.simulator.truth import GroundTruth

    sim = simulate_market(SimulatorConfig(seed=4, world="visual", n_products=2, n_impressions=2000,
                                          creatives_per_product=2), tmp_path / "market")
    market, truth = load_market(sim.market_dir), GroundTruth.load(sim.truth_dir)
    scorer = optimize.TruthScorer(market, truth)
    pid, combo = market.creatives["product_id"].iloc[0], list(market.creatives["elements"].iloc[0])
    small = scorer.renderer.render(pid, combo, Placement(0.4, 0.0, 1.0)).image
    moved = scorer.exact(pid, combo, small)
    default = scorer.exact(pid, combo)
    assert moved == truth.ctr_of_image(pid, combo, small)
    assert default == truth.ctr_of_image(pid, combo, scorer.renderer.render(pid, combo).image) != moved
    assert scorer.exact(pid, combo, Image.frombytes(small.mode, small.size, small.tobytes())) == moved
