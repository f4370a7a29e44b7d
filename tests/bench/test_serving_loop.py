"""``bench/serving_loop.py``'s tables (round over round, paired with another run) and its results sections."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from adcraft.market import load_market
from adcraft.pipeline.optimize import OptimizeConfig
from adcraft.simulator import GroundTruth

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import serving_loop  # noqa: E402
import worlds  # noqa: E402
from markdown import write_section  # noqa: E402
from reviewers import SimulatedReviewer  # noqa: E402


def run(seed: int, ctrs: list[float], support: list[int | None]) -> dict:
    return {"seed": seed, "rounds": [{"served_true_ctr": c, "supported_matched_impressions": s}
                                     for c, s in zip(ctrs, support)]}


def test_the_paired_table_differences_each_seed_against_the_same_seed_of_the_other_run():
    this = [run(1, [0.030, 0.032], [None, 10]), run(2, [0.040, 0.041], [None, 0]), run(3, [0.05, 0.05], [None, 5])]
    other = [run(2, [0.038, 0.042], [None, 7]), run(1, [0.031, 0.031], [None, 0])]  # seed 3 not run there
    table = serving_loop.paired_table(this, other, rounds=2)
    assert table["seeds"].tolist() == [2, 2]
    # round 2, paired by seed: (0.032 - 0.031) and (0.041 - 0.042) have mean 0
    assert table.loc[1, "this - other"].startswith("+0.0000 [")
    # round 1: -0.001 and +0.002, mean +0.0005
    assert table.loc[0, "this - other"].startswith("+0.0005 [")
    assert table.loc[1, "rise from round 1, this run"].startswith("+0.0015 [")  # +0.002 and +0.001
    assert table.loc[1, "rise from round 1, other run"].startswith("+0.0020 [")  # 0.000 and +0.004
    assert table.loc[1, "matched impressions per seed, this run"] == "10, 0"
    assert table.loc[1, "matched impressions per seed, other run"] == "0, 7"
    assert table.loc[0, "matched impressions per seed, this run"] == "-, -"



def test_the_rise_table_pairs_each_round_with_the_one_before_and_with_round_one_by_seed():
    runs = [run(1, [0.030, 0.032, 0.031], [None] * 3), run(2, [0.040, 0.039, 0.043], [None] * 3)]
    table = serving_loop.rise_table(runs, rounds=3)
    assert list(zip(table["round"], table["change from"])) == [
        (2, "the round before"), (3, "the round before"), (3, "round 1")]
    assert table["per seed"].tolist() == ["+0.0020, -0.0010", "-0.0010, +0.0040", "+0.0010, +0.0030"]
    assert table["seeds that rose"].tolist() == [1, 1, 2]
    assert table.loc[2, "change of served true CTR"].startswith("+0.0020 [")  # round 3 - round 1: mean of 0.001, 0.003


def test_a_run_at_another_traffic_or_policy_gets_its_own_section_beside_the_default_one(tmp_path):
    results = tmp_path / "results.md"
    default = serving_loop.section(serving_loop.TRAFFIC, carry_over=False)
    more = serving_loop.section(5 * serving_loop.TRAFFIC, carry_over=False)
    carried = serving_loop.section(5 * serving_loop.TRAFFIC, carry_over=True)
    assert default == serving_loop.SECTION and more != default and "--traffic 20000" in more
    assert carried not in (default, more) and "--traffic 20000 --carry-over" in carried
    write_section(results, default, default + "\n\nat the default")
    write_section(results, more, more + "\n\nat five times the default")
    write_section(results, carried, carried + "\n\ncarried over")
    write_section(results, more, more + "\n\nrerun")  # a rerun replaces its own section only
    text = results.read_text()
    assert "at the default" in text and "rerun" in text and "at five times the default" not in text
    assert "carried over" in text
    assert text.count(default) == 1 and text.count(more) == 1 and text.count(carried) == 1


@pytest.mark.slow
def test_three_rounds_of_the_loop_log_every_served_impression_and_give_the_next_evidence_support(tmp_path):
    """The loop end to end on a small world (optimize, review through the API, serve through the API with
    honest propensities, export, optimize again with the decisions): every served impression, click and
    propensity reaches the next round's market, with the creative it showed, and every round's run reads it
    (its evidence counts how much of it shows what the run proposes)."""
    market_dir = worlds.simulated("realistic", 7, tmp_path, products=6, impressions=3000)
    truth = GroundTruth.load(market_dir.with_name(market_dir.name + "-truth"))
    traffic = 400
    rounds = serving_loop.run_loop(market_dir, truth, SimulatedReviewer(frozenset()), tmp_path / "loop",
                                   OptimizeConfig(top_k=2), rounds=3, traffic=traffic, seed=7)
    assert [r.round for r in rounds] == [1, 2, 3]
    assert all(r.served == r.exported_impressions == traffic for r in rounds)
    assert all(r.acceptance == 1.0 for r in rounds)  # a reviewer with no dislikes approves every proposal
    assert all(r.chosen_among_several > 0 for r in rounds)  # approved creatives beside the current one
    assert all(r.supported_matched_impressions is not None for r in rounds[1:])
    before = load_market(market_dir).impressions
    for k, result in enumerate(rounds, start=1):
        exported = load_market(tmp_path / "loop" / f"market-{k + 1}")
        after = exported.impressions
        assert len(after) == len(before) + traffic
        served = after[~after["impression_id"].isin(before["impression_id"])]
        assert int(served["click"].sum()) == result.clicks
        assert served["propensity"].between(0.0, 1.0, inclusive="right").all()
        assert (served["propensity"] < 1.0).sum() == result.chosen_among_several
        assert served["creative_id"].isin(exported.creatives["creative_id"]).all()
        before = after


def test_the_run_compared_is_found_whichever_serving_policy_it_ran(tmp_path):
    args = argparse.Namespace(world="realistic", products=24, impressions=20000, rounds=3, traffic=20000,
                              carry_over=True)
    assert serving_loop.paired_file(tmp_path, 7, args) is None
    other = serving_loop.result_file(tmp_path, 7, args, carry_over=False)
    other.write_text("{}")
    assert serving_loop.paired_file(tmp_path, 7, args) == other and "carry" not in other.name
    same = serving_loop.result_file(tmp_path, 7, args)
    same.write_text("{}")
    assert serving_loop.paired_file(tmp_path, 7, args) == same != other  # the same policy first
    assert serving_loop.paired_file(tmp_path, 8, args) is None
