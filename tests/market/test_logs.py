"""The rules on a market's logs (market/logs.py): validation and the reward models' click log refuse
the same logs with the same words, and dates are read in one form only."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from adcraft.errors import InputError
from adcraft.market import load_market, validate_market
from adcraft.market.click_log import click_log, time_split
from adcraft.market.logs import is_iso_date, missing_logs
from adcraft.rewards.mil import POOLINGS, initial_bias
from tests.market.market_drafts import MarketDraft


@pytest.mark.parametrize("text", ["2026-01-04", "2024-02-29", "1999-12-31"])
def test_calendar_dates_are_read(text: str):
    assert is_iso_date(text)


@pytest.mark.parametrize("text", ["2026-W01-3", "20260104", "2026-1-4", "2026-02-30", "2026-01-04T00:00",
                                  " 2026-01-04", "2026-01-04\n", "", None])
def test_other_date_forms_are_refused(text: object):
    assert not is_iso_date(text)


def _single_day(draft: MarketDraft) -> None:
    draft.tables["impressions"]["ts"] = [1_700_000_000 + second for second in range(4)]


def _no_clicks(draft: MarketDraft) -> None:
    draft.tables["impressions"]["click"] = [0, 0, 0, 0]


def _one_creative(draft: MarketDraft) -> None:
    draft.tables["impressions"]["creative_id"] = ["c1"] * 4


def _stats_all_clicked(draft: MarketDraft) -> None:
    draft.tables["impressions"] = None
    stats = draft.tables["creative_stats"]
    stats["clicks"] = stats["impressions"]


def _stats_one_day(draft: MarketDraft) -> None:
    draft.tables["impressions"] = None
    draft.tables["creative_stats"]["date"] = ["2024-01-01", "2024-01-01"]


@pytest.mark.parametrize("change, file, column", [
    (_single_day, "impressions.parquet", "ts"),
    (_no_clicks, "impressions.parquet", "click"),
    (_one_creative, "impressions.parquet", "creative_id"),
    (_stats_all_clicked, "creative_stats.parquet", "clicks"),
    (_stats_one_day, "creative_stats.parquet", "date"),
], ids=["single_day", "no_clicks", "one_creative", "stats_all_clicked", "stats_one_day"])
def test_validation_refuses_the_logs_the_click_log_refuses_with_the_same_rule(
        make_draft: Callable[..., MarketDraft], change: Callable[[MarketDraft], None], file: str, column: str):
    draft = make_draft()
    change(draft)
    root = draft.write()
    problems = validate_market(root)
    assert [(problem.file, problem.column) for problem in problems] == [(file, column)]
    market = load_market(root, validate=False)
    with pytest.raises(InputError) as caught:
        time_split(click_log(market))
    assert str(caught.value) == problems[0].rule


def test_the_valid_draft_gives_a_click_log_that_splits_in_time(make_draft: Callable[..., MarketDraft]):
    market = load_market(make_draft().write())
    train, valid = time_split(click_log(market))
    assert len(train) and len(valid)
    assert train["time"].max() < valid["time"].min()


def test_a_market_without_logs_is_valid_but_named_as_such(make_draft: Callable[..., MarketDraft]):
    draft = make_draft()
    draft.tables["impressions"] = draft.tables["creative_stats"] = None
    market = load_market(draft.write())
    reason = missing_logs(market.creatives, market.impressions, market.creative_stats)
    assert reason is not None and "no logs" in reason
    with pytest.raises(InputError, match="no logs"):
        click_log(market)


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_initial_bias_is_finite_for_a_training_part_with_no_clicks_or_only_clicks(pooling: str, rate: float):
    assert math.isfinite(initial_bias(pooling, rate, 7))
