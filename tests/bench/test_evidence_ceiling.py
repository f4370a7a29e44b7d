"""``bench/evidence_ceiling.py``: the truth as a judge, each judge's picks, and one market scored end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import evidence_ceiling  # noqa: E402
import optimize as bench_optimize  # noqa: E402
import worlds  # noqa: E402

from adcraft.market import load_market  # noqa: E402
from adcraft.simulator.click_model import contexts  # noqa: E402
from adcraft.simulator.truth import GroundTruth  # noqa: E402


@pytest.fixture(scope="module")
def market_and_truth(tiny_sim):
    return load_market(tiny_sim.market_dir), GroundTruth.load(tiny_sim.truth_dir)


def test_the_truth_judge_predicts_each_logged_creatives_true_ctr_on_its_own_image(market_and_truth):
    market, truth = market_and_truth
    judge = evidence_ceiling.TruthJudge(market, truth, bench_optimize.TruthScorer(market, truth))
    creatives = market.creatives.head(6)
    averaged = judge.predict(creatives["product_id"].tolist(), creatives["elements"].tolist())
    expected = [truth.ctr_of_image(p, list(e), market.open_image(i).convert("RGB"))
                for p, e, i in zip(creatives["product_id"], creatives["elements"], creatives["image"])]
    np.testing.assert_allclose(averaged, expected, rtol=1e-12)
    # per context, and the traffic's mixture of the contexts is the context-averaged CTR
    pid, combo = creatives["product_id"].iloc[0], list(creatives["elements"].iloc[0])
    by_context = judge.predict([pid] * len(contexts()), [combo] * len(contexts()),
                               [json.dumps(c) for c, _ in contexts()])
    assert float(np.dot([w for _, w in contexts()], by_context)) == pytest.approx(expected[0], rel=1e-12)
    assert judge.with_elements(None) is judge


def test_additive_picks_take_each_slots_highest_weight_usable_element(market_and_truth):
    market, _ = market_and_truth
    weights = {e: float(i % 7) for i, e in enumerate(sorted(market.elements["element_id"]))}
    picks = evidence_ceiling.additive_picks(market, SimpleNamespace(elements=weights))
    assert list(picks["product_id"]) == list(market.products["product_id"]) and set(picks["rank"]) == {1}
    for pid, combo in zip(picks["product_id"], picks["elements"]):
        for slot, element in zip(market.config.slots, combo):
            usable = market.usable_elements(pid, slot)["element_id"]
            assert element in set(usable) and weights[element] == max(weights[e] for e in usable)


def test_the_oracle_picks_are_at_least_every_logged_creative(market_and_truth):
    market, truth = market_and_truth
    scorer = bench_optimize.TruthScorer(market, truth)
    picks = evidence_ceiling.oracle_picks(market, scorer)
    logged = truth.creatives.set_index("creative_id")["true_ctr"]
    for pid, combo in zip(picks["product_id"], picks["elements"]):
        mine = market.creatives.loc[market.creatives["product_id"] == pid, "creative_id"]
        assert scorer.exact(pid, combo) >= max(scorer.exact(pid, list(e)) for e in
                                               market.creatives.loc[mine.index, "elements"]) - 1e-12
        assert np.isfinite(logged[mine]).all()


@pytest.mark.slow
def test_one_small_market_is_scored_for_every_judge(tmp_path):
    args = SimpleNamespace(workdir=tmp_path / "work", products=6, impressions=6000, out_json=tmp_path / "json",
                           results=tmp_path / "results.md", worlds=["main_effects"], seeds=[5], label="",
                           judges=["truth", "additive", "images"], embed=False)
    args.workdir.mkdir()
    result = evidence_ceiling.score_market("main_effects", 5, args)
    assert list(result["judges"]) == list(evidence_ceiling.JUDGES)
    truth, additive, images = (result["judges"][name] for name in ("truth", "additive", "images"))
    # each of the three fits (the whole log, then each half) took images or not, and unseen picks were rendered
    assert 0.0 <= images["images chosen"] <= 1.0 and images["renders"] > 0
    # the truth's picks are the oracle's: launched everywhere they capture the whole oracle lift, harming none
    assert truth["every proposal launched"] == pytest.approx(1.0)
    assert truth["harm share, every proposal launched"] == 0.0 and truth["judges_disagreement"] == 0.0
    for values in (truth, additive, images):
        assert 0.0 <= values["launched share"] <= 1.0 and 0.0 <= values["harm share"] <= 1.0
        assert values["share of oracle lift"] <= 1.0 + 1e-9 and values["every proposal launched"] <= 1.0 + 1e-9
        assert values["reported low"] <= values["reported lift"] <= values["reported high"]
        held, above = values["product intervals hold the truth"], values["product intervals above the truth"]
        assert 0.0 <= held <= 1.0 and 0.0 <= above <= 1.0 - held  # a miss is above or below, never both
    worlds.write_result(worlds.result_path(args.out_json, "main_effects", 5, 6, 6000), result)
    evidence_ceiling.write_table(args)
    text = args.results.read_text()
    assert evidence_ceiling.heading(args) in text and "6 products and 6000 impressions" in text
    assert "| all | truth | 1 |" in text and "| all | images | 1 |" in text
