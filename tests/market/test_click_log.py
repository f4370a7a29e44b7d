from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from adcraft.errors import InputError
from adcraft.market.click_log import SplitConfig, click_log, creative_outcomes, impression_contexts, time_split


def test_click_log_aggregates_impressions_without_losing_counts(logged_market):
    market, _ = logged_market
    log = click_log(market)
    assert log["trials"].sum() == len(market.impressions)
    assert log["clicks"].sum() == market.impressions["click"].sum()
    assert not log.duplicated(["creative_id", "context", "time"]).any()
    per_creative = creative_outcomes(log).set_index("creative_id")["clicks"]
    raw = market.impressions.groupby("creative_id")["click"].sum()
    pd.testing.assert_series_equal(per_creative.loc[raw.index], raw.astype(float), check_names=False)


def test_time_split_holds_out_the_latest_part(logged_market):
    market, _ = logged_market
    train, valid = time_split(click_log(market), SplitConfig(valid_fraction=0.25))
    assert train["time"].max() < valid["time"].min()
    share = valid["trials"].sum() / (train["trials"].sum() + valid["trials"].sum())
    assert 0.1 < share < 0.4


def test_creative_stats_without_dates_split_by_creative(logged_market):
    market, _ = logged_market
    stats = market.creative_stats.groupby("creative_id", as_index=False)[["impressions", "clicks"]].sum()
    no_dates = dataclasses.replace(market, impressions=None, creative_stats=stats)
    log = click_log(no_dates)
    assert log["time"].isna().all() and log["trials"].sum() == len(market.impressions)
    train, valid = time_split(log, SplitConfig(valid_fraction=0.2, seed=1))
    assert not set(train["creative_id"]) & set(valid["creative_id"])
    assert len(valid) == round(0.2 * log["creative_id"].nunique())


def test_bad_logs_are_refused(logged_market):
    market, _ = logged_market
    with pytest.raises(InputError, match="no logs"):
        click_log(dataclasses.replace(market, impressions=None, creative_stats=None))
    zero = market.impressions.assign(click=np.int8(0))
    with pytest.raises(InputError, match="no clicks"):
        click_log(dataclasses.replace(market, impressions=zero))
    one = market.impressions[market.impressions["creative_id"] == "c_p0000_0"]
    with pytest.raises(InputError, match="single creative"):
        click_log(dataclasses.replace(market, impressions=one))
    with pytest.raises(InputError, match="valid_fraction"):
        SplitConfig(valid_fraction=1.0)


def test_one_product_with_several_creatives_is_enough(logged_market):
    market, _ = logged_market
    one = market.impressions[market.impressions["creative_id"].str.startswith("c_p0000_")]
    log = click_log(dataclasses.replace(market, impressions=one))
    assert log["product_id"].nunique() == 1 and log["creative_id"].nunique() > 1


def test_position_becomes_part_of_the_context(logged_market):
    market, _ = logged_market
    imp = market.impressions.head(600)
    imp = imp.assign(position=np.arange(len(imp)) % 3 + 1)
    log = click_log(dataclasses.replace(market, impressions=imp))
    assert all('"position": ' in c for c in log["context"])
    assert {json.loads(c)["position"] for c in log["context"]} == {1, 2, 3}


def test_best_logged_creative_is_not_won_by_a_lucky_handful_of_impressions():
    from adcraft.market.click_log import best_logged_creatives

    log = pd.DataFrame({
        "creative_id": ["lucky", "steady", "weak", "only"],
        "product_id": ["a", "a", "a", "b"],
        "elements": [["e1"], ["e2"], ["e3"], ["e4"]],
        "clicks": [2.0, 60.0, 20.0, 1.0],
        "trials": [3.0, 1000.0, 1000.0, 50.0],
    })
    best = best_logged_creatives(log, prior_impressions=200.0)
    assert best.loc["a", "creative_id"] == "steady"  # 2/3 observed, but shrunk toward a's 4% it loses
    assert best.loc["b", "creative_id"] == "only"
    assert best.loc["a", "shrunk_ctr"] == pytest.approx((60 + 200 * 82 / 2003) / 1200)
    # without shrinkage the lucky one would win
    assert best_logged_creatives(log, prior_impressions=0.0).loc["a", "creative_id"] == "lucky"


@pytest.mark.parametrize("context", [None, [np.nan, np.nan], ['{"device": "app"}', None]])
def test_contexts_of_impressions_without_position_are_strings_and_missing_ones_empty(context):
    impressions = pd.DataFrame({"creative_id": ["a", "b"]})
    if context is not None:
        impressions["context"] = context
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fill of a float column with a string, which pandas will refuse
        contexts = impression_contexts(impressions)
    given = [None, None] if context is None else context
    assert contexts.tolist() == [c if isinstance(c, str) else "" for c in given]
