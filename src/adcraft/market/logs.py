"""What a market's logs must hold for a reward model to learn from them.

The reward models read a market's ``impressions`` (or, without them, ``creative_stats``) as a click
log (``click_log.click_log``) and hold out its latest days for validation (``time_split``).
Validation runs the same rules on the same tables, so a market that ``adcraft validate`` accepts is
never refused later for its logs. Days are read here, once, for both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd

DAY_SECONDS = 86_400
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
"""The one date form of ``creative_stats.date`` (``YYYY-MM-DD``); ISO 8601's week dates
(``2026-W01-3``) and basic form (``20260104``) are refused."""


def is_iso_date(text: object) -> bool:
    """Whether ``text`` is a calendar date written ``YYYY-MM-DD``."""
    if not isinstance(text, str) or ISO_DATE.fullmatch(text) is None:
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def impression_days(ts: np.ndarray) -> np.ndarray:
    """Unix seconds of the start of the (UTC) day of each impression time ``ts`` (unix seconds)."""
    return (np.asarray(ts, dtype=np.int64) // DAY_SECONDS) * DAY_SECONDS


def stats_days(dates: pd.Series) -> np.ndarray:
    """Unix seconds of each ``YYYY-MM-DD`` date (validated with ``is_iso_date`` beforehand)."""
    parsed = pd.to_datetime(dates, format="%Y-%m-%d", utc=True)
    return np.asarray(parsed.astype("int64") // 10**9, dtype=np.int64)


@dataclass(frozen=True)
class LogProblem:
    """Why a click log cannot train a reward model: the rule, and what it is about."""

    about: Literal["creative", "clicks", "time"]
    rule: str


def missing_logs(creatives: pd.DataFrame | None, impressions: pd.DataFrame | None,
                 creative_stats: pd.DataFrame | None) -> str | None:
    """Why a market has nothing for a reward model to learn from (no past creatives, or no logs of
    them), or None. Such a market is valid (logs are optional) but cannot be optimised."""
    if creatives is None or creatives.empty:
        return "the market has no past creatives: a reward model needs creatives.parquet and logs"
    if all(table is None or table.empty for table in (impressions, creative_stats)):
        return ("the market has no logs: a reward model needs impressions.parquet or "
                "creative_stats.parquet")
    return None


def span_problem(times: np.ndarray) -> LogProblem | None:
    """A log whose rows all fall on one day cannot be split in time for validation."""
    if len(np.unique(times)) < 2:
        return LogProblem("time", "the logs span a single day: a time split for validation needs "
                                  "at least two")
    return None


def log_problem(creative_ids: np.ndarray, clicks: np.ndarray, trials: np.ndarray) -> LogProblem | None:
    """The first rule a click log breaks, or None: at least two creatives, some clicks and some
    impressions without a click. (A time split also needs two days: ``span_problem``.)"""
    if len(pd.unique(creative_ids)) < 2:
        return LogProblem("creative", "the logs cover a single creative: a reward model needs at "
                                      "least 2 different creatives to compare")
    total_clicks = float(np.sum(clicks))
    if total_clicks <= 0:
        return LogProblem("clicks", "the logs have no clicks at all: there is nothing to learn a "
                                    "click model from")
    if total_clicks >= float(np.sum(trials)):
        return LogProblem("clicks", "every logged impression was clicked: a click model needs "
                                    "impressions without a click to learn from")
    return None
