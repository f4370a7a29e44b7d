"""``bench/serving_loop.py``'s table paired with another run of the same seeds."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import serving_loop  # noqa: E402


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
