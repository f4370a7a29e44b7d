"""``bench/evidence.py``: each product's evidence, the set's, and what the set's lift is graded on, by the truth."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import evidence  # noqa: E402
import worlds  # noqa: E402


def products(seed: int = 0, n: int = 400) -> pd.DataFrame:
    """Products whose estimates are the truth plus noise of known spread, with intervals that know it."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.1, 0.2, n)
    estimate = true + rng.normal(0.0, 0.1, n)
    half = 1.645 * 0.1
    return pd.DataFrame({"world": np.where(np.arange(n) % 2 == 0, "visual", "sparse"), "seed": 1,
                         "product_id": [f"p{i}" for i in range(n)], "true lift": true, "estimate": estimate,
                         "low": estimate - half, "high": estimate + half, "launched": estimate - half > 0})


def test_calibrated_intervals_hold_about_their_level_and_the_rule_row_matches_the_rule():
    rows = products()
    worlds, rules = evidence.per_product_summary(rows)
    everything = worlds.set_index("world").loc["all"]
    assert everything["products"] == len(rows)
    assert everything["95% low"] <= 0.9 <= everything["95% high"]
    held = ((rows["low"] <= rows["true lift"]) & (rows["true lift"] <= rows["high"])).mean()
    assert everything["interval holds the truth"] == pytest.approx(held)
    assert everything["corr(estimate, true)"] > 0.8
    rule = rules.set_index("launch where").iloc[0]
    assert rule["launched share"] == pytest.approx(rows["launched"].mean())


def test_the_lower_bound_rule_launches_fewer_products_and_loses_less_often_than_the_estimate_rule():
    _, rules = evidence.per_product_summary(products(seed=3))
    bound, estimate = rules.iloc[0], rules.iloc[1]
    assert bound["launched share"] < estimate["launched share"]
    assert bound["losing among launched"] < estimate["losing among launched"]
    for rule in (bound, estimate):
        assert rule["harm share (losing launched / all)"] <= rule["launched share"]


def test_an_uninformative_estimate_does_not_tell_gainers_from_losers():
    rows = products(seed=5)
    rows["estimate"] = np.random.default_rng(9).permutation(rows["estimate"].to_numpy())
    worlds, _ = evidence.per_product_summary(rows)
    assert abs(worlds.set_index("world").loc["all", "corr(estimate, true)"]) < 0.2


def proposal_sets(seed: int = 0, n: int = 200, bias: float = 0.0) -> pd.DataFrame:
    """Runs whose set-level estimate is the truth plus ``bias`` plus noise of sd 0.05, with 90% intervals that know
    the noise but not the bias."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0.2, 0.1, n)
    estimate = true + bias + rng.normal(0.0, 0.05, n)
    half = 1.645 * 0.05
    return pd.DataFrame({"world": np.where(np.arange(n) % 2 == 0, "visual", "drift"), "seed": np.arange(n),
                         "true lift": true, "estimate": estimate, "low": estimate - half, "high": estimate + half,
                         "level": 0.9})


def test_honest_set_intervals_cover_about_their_level_and_a_biased_estimate_is_caught_overstating():
    honest = evidence.interval_summary(proposal_sets()).set_index("world").loc["all"]
    assert honest["runs"] == 200
    assert honest["coverage 95% low"] <= 0.9 <= honest["coverage 95% high"]
    assert honest["low above truth"] < 0.15 and honest["high below truth"] < 0.15
    biased = evidence.interval_summary(proposal_sets(bias=0.3)).set_index("world").loc["all"]
    assert biased["coverage"] < 0.05 and biased["low above truth"] > 0.95
    assert biased["median |estimate - true| / |true|"] > honest["median |estimate - true| / |true|"]
    assert biased["mean estimate"] == pytest.approx(honest["mean estimate"] + 0.3, abs=0.02)


def test_the_median_relative_error_leaves_out_runs_whose_true_lift_is_zero():
    rows = proposal_sets(n=4).assign(**{"true lift": [0.0, 0.1, 0.2, 0.4], "estimate": [0.5, 0.2, 0.2, 0.2]})
    row = evidence.interval_summary(rows).set_index("world").loc["all"]
    assert row["median |estimate - true| / |true|"] == pytest.approx(0.5)  # of 1.0, 0.0 and 0.5


class _Run:
    """What ``ScoredRun.lift`` reads of a scored run: the products, their traffic shares and logging policy's CTRs."""

    def __init__(self) -> None:
        self.market = type("M", (), {"products": pd.DataFrame({"product_id": ["a", "b", "c"]})})()
        self.share = pd.Series({"a": 0.25, "b": 0.75, "c": 0.5})
        self.logging = pd.Series({"a": 0.02, "b": 0.04, "c": 0.03})


def test_the_true_set_lift_weighs_products_by_traffic_over_the_products_scored():
    run = _Run()
    lift = evidence.ScoredRun.lift(run, {"a": 0.03, "b": 0.04})  # c has no proposal: left out of both sums
    assert lift == pytest.approx((0.25 * 0.03 + 0.75 * 0.04) / (0.25 * 0.02 + 0.75 * 0.04) - 1)
    assert evidence.ScoredRun.lift(run, {"a": 0.02, "b": 0.04, "c": 0.03}) == pytest.approx(0.0)


def grader_runs() -> pd.DataFrame:
    """Four runs whose interval holds the half-data judges' picks' truth but the final proposals' only once, a
    graders' DR lift that follows the half picks' truth and an estimate that does not."""
    return pd.DataFrame({"world": ["visual", "visual", "drift", "drift"], "seed": [1, 2, 1, 2],
                         "true lift": [0.5, 0.1, 0.6, 0.0], "half picks' true lift": [0.1, 0.1, 0.2, 0.3],
                         "graders' DR lift": [0.0, 0.0, 0.1, 0.2], "estimate": [0.1, 0.2, 0.1, 0.2],
                         "low": [0.0, 0.0, 0.1, 0.2], "high": [0.2, 0.3, 0.3, 0.4],
                         "|change| from run.json": [0.0, 0.001, 0.0, 0.002]})


def test_the_grader_summary_tells_a_missed_estimand_from_a_missed_truth():
    summary = evidence.grader_summary(grader_runs()).set_index("world")
    everything = summary.loc["all"]
    assert everything["runs"] == 4 and everything["holds half picks' truth"] == 1.0
    assert everything["holds final truth"] == 0.25  # only 0.1 in [0.0, 0.3]; 0.5, 0.6 above, 0.0 below
    assert everything["95% low"] < 1.0 == pytest.approx(everything["95% high"])
    assert everything["corr(DR lift, half truth)"] == pytest.approx(np.corrcoef([0, 0, .1, .2], [.1, .1, .2, .3])[0, 1])
    assert everything["corr(estimate, half truth)"] < everything["corr(DR lift, half truth)"]
    assert everything["max |change| from run.json"] == 0.002
    assert summary.loc["visual", "mean true lift"] == pytest.approx(0.3)


def test_the_paired_summary_counts_what_a_setting_gains_and_where_it_overstates():
    # run 1 held by both, run 2 gained (its old interval understated), run 3 lost to a new overstatement
    rows = pd.DataFrame({"world": ["realistic"] * 3, "seed": [1, 2, 3], "true lift": [0.2, 0.4, 0.05],
                         "estimate": [0.2, 0.35, 0.15], "low": [0.1, 0.25, 0.08], "high": [0.3, 0.45, 0.2],
                         "run.json estimate": [0.15, 0.2, 0.1], "run.json low": [0.05, 0.1, 0.0],
                         "run.json high": [0.25, 0.3, 0.2],
                         # do no harm: run 1 launches where the run did not, and harms; run 3 launches less, no harm
                         "launched": [10, 0, 2], "run.json launched": [0, 0, 6], "harm share": [0.2, 0.0, 0.0],
                         "run.json harm share": [0.0, 0.0, 0.15], "share of oracle lift": [0.3, 0.0, 0.1],
                         "run.json share of oracle lift": [0.0, 0.0, 0.3]})
    everything = evidence.paired_summary(rows).set_index("world").loc["all"]
    assert (everything["launched, setting on"], everything["launched, run.json"]) == (12, 6)
    assert (everything["runs harm > 0.10, setting on"], everything["runs harm > 0.10, run.json"]) == (1, 1)
    assert (everything["max harm share, setting on"], everything["max harm share, run.json"]) == (0.2, 0.15)
    assert everything["mean share of oracle lift, setting on"] == pytest.approx(0.4 / 3)
    assert (everything["coverage, setting on"], everything["coverage, run.json"]) == (2 / 3, 2 / 3)
    assert (everything["gained"], everything["lost"]) == (1, 1)
    assert (everything["new low above truth"], everything["low above truth, run.json"]) == (1, 0)
    assert (everything["high below truth, setting on"], everything["high below truth, run.json"]) == (0, 1)
    assert everything["median rel. error, setting on"] == pytest.approx(0.125)  # 0, 0.125, 2.0
    assert everything["median rel. error, run.json"] == pytest.approx(0.5)  # 0.25, 0.5, 1.0
    assert everything["mean estimate, run.json"] == pytest.approx(0.15)


@pytest.mark.slow
def test_the_cross_fitting_run_again_reproduces_the_runs_own_evidence(tmp_path):
    args = SimpleNamespace(workdir=tmp_path / "work", products=6, impressions=6000)
    args.workdir.mkdir()
    result = worlds.score_world("main_effects", 5, args)
    rows = evidence.grader_rows([result], args.workdir)
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["|change| from run.json"] < 0.01  # the same evidence as optimize computed, up to refit noise
    assert row["low"] <= row["estimate"] <= row["high"]
    assert -1.0 < row["half picks' true lift"] < 10.0 and np.isfinite(row["graders' DR lift"])
    # the interval of both contrast slopes: the run's own figures beside, the same picks
    on = evidence.grader_rows([result], args.workdir, set_slope="both").iloc[0]
    for key in ("estimate", "low", "high"):  # the run's own figures, which the setting-off recomputation reproduces
        assert abs(on[f"run.json {key}"] - row[key]) < 0.01
    assert on["low"] <= on["estimate"] <= on["high"]
    assert on["half picks' true lift"] == row["half picks' true lift"]  # the same picks, only the grading moved
    # do no harm by the recomputed evidence launches what the run launched, and is scored as the run was
    own = result["methods"][worlds.OPTIMIZE]
    assert on["run.json launched"] == row["launched"] == result["products"] - own["kept products"]
    assert (row["harm share"], row["share of oracle lift"]) == pytest.approx((own["harm share"],
                                                                              own["share of oracle lift"]))
