"""``bench/policy_ablation.py``: the judge's own optimum, the intervals, the paired tables and one small market
scored end to end."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import policy_ablation  # noqa: E402
import worlds  # noqa: E402

from adcraft.market import load_market  # noqa: E402


def test_the_judge_optimum_is_the_best_usable_combination_under_the_judge(tiny_market_dir):
    market = load_market(tiny_market_dir)
    weight = {e: float(w) for e, w in zip(market.elements["element_id"],
                                          np.random.default_rng(3).normal(size=len(market.elements)))}

    def reward(product_ids, combos, contexts=None):
        return np.array([sum(weight[e] for e in combo) for combo in combos])

    picks = policy_ablation.judge_optimum(market, reward)
    for pid in market.products["product_id"]:
        usable = [market.usable_elements(pid, s)["element_id"].tolist() for s in market.config.slots]
        best = max(sum(weight[e] for e in c) for c in itertools.product(*usable))
        assert sum(weight[e] for e in picks[pid]) == pytest.approx(best)
        assert all(e in options for e, options in zip(picks[pid], usable))


def test_the_interval_is_the_t_interval_and_one_value_is_its_own_interval():
    mean, low, high = policy_ablation.t_interval([1.0, 2.0, 3.0])  # half-width t(0.975, 2) / sqrt(3) = 2.4841
    assert (mean, low, high) == pytest.approx((2.0, -0.4841, 4.4841), abs=1e-4)
    assert policy_ablation.t_interval([0.5, math.nan]) == (0.5, 0.5, 0.5)
    assert policy_ablation.cell([1.0, 2.0, 3.0], signed=True) == "+2.000 [-0.484, +4.484]"
    assert policy_ablation.cell([]) == "n/a"


def fake_result(world: str, seed: int, shares: dict[str, float]) -> dict:
    return {"world": world, "seed": seed, "methods": {
        name: {"share of oracle lift": share, "harm share": 0.1 * share, "true lift": share,
               "chosen judge's CTR": 0.02} for name, share in shares.items()}}


def test_paired_differences_are_per_market_and_pooled_over_worlds():
    results = [fake_result("a", 1, {"x": 0.5, "y": 0.2}), fake_result("a", 2, {"x": 0.7, "y": 0.2}),
               fake_result("b", 1, {"x": 0.1, "y": 0.4})]
    table = policy_ablation.paired_table(results, ["a", "b"], [("x", "y")])
    assert table["world"].tolist() == ["a", "b", "all"] and table["markets"].tolist() == [2, 1, 3]
    assert table.loc[0, "share of oracle lift"].startswith("+0.400 [")
    assert table.loc[1, "share of oracle lift"] == "-0.300 [-0.300, -0.300]"
    pooled = policy_ablation.t_interval([0.3, 0.5, -0.3])
    assert table.loc[2, "share of oracle lift"].startswith(f"{pooled[0]:+.3f}")


@pytest.mark.slow
def test_one_small_market_is_scored_for_every_policy_and_judge(tmp_path):
    args = SimpleNamespace(workdir=tmp_path / "work", products=6, impressions=4000, out_json=tmp_path / "json",
                           results=tmp_path / "results.md", worlds=["interactions"])
    args.workdir.mkdir()
    result = policy_ablation.score_market("interactions", 5, args)
    names = [*policy_ablation.POLICIES, *(f"judge optimum: {j}" for j in policy_ablation.JUDGES)]
    assert list(result["methods"]) == names
    for values in result["methods"].values():
        assert values["share of oracle lift"] <= 1.0 + 1e-9  # the oracle is at least every pick
        assert 0.0 <= values["harm share"] <= 1.0
    assert result["chosen judge"] in ("mil", "additive")
    assert set(result["held-out log loss"]) == set(policy_ablation.JUDGES)
    worlds.write_result(worlds.result_path(args.out_json, "interactions", 5, 6, 4000), result)
    policy_ablation.write_table(args)
    text = args.results.read_text()
    assert policy_ablation.SECTION in text and "RL most probable - behaviour cloning" in text
