"""Training data of the reward models, read from a market's logs.

``click_log`` turns a market's ``impressions`` (event level) or, when absent, ``creative_stats``
(aggregated) into one table of combination-level outcomes: one row per (creative, context, day) with
``clicks`` out of ``trials`` impressions. Aggregating impressions that share creative, context and day
loses nothing a click model can use: the binomial likelihood and the weighted AUC of the aggregated
rows equal those of the raw impressions.

``time_split`` holds out the most recent part of the log for validation, so that no model is checked on
impressions older than some it was trained on (no leakage from the future).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.market.logs import impression_days, log_problem, missing_logs, span_problem, stats_days
from adcraft.market.market import Market

MAX_CONTEXTS = 64
LOG_COLUMNS = ("creative_id", "product_id", "elements", "context", "time", "clicks", "trials")


@dataclass(frozen=True)
class SplitConfig:
    """How the log is split for validation: the last ``valid_fraction`` of its time span is held out."""

    valid_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self)
        if not 0.0 < self.valid_fraction < 1.0:
            raise InputError(f"valid_fraction must be in (0, 1), got {self.valid_fraction}")


def past_creatives(market: Market) -> pd.DataFrame:
    """The market's past creatives (creative_id, product_id, elements, image); InputError if there are none."""
    if market.creatives is None or market.creatives.empty:
        raise InputError("the market has no past creatives to score")
    return market.creatives


def scores_frame(creatives: pd.DataFrame, predicted_ctr: np.ndarray) -> pd.DataFrame:
    """The spec's scores table: ``creative_id`` and ``predicted_ctr`` (float64)."""
    return pd.DataFrame(
        {
            "creative_id": creatives["creative_id"].to_numpy(),
            "predicted_ctr": np.asarray(predicted_ctr, dtype="float64"),
        }
    )


def click_log(market: Market) -> pd.DataFrame:
    """Combination-level outcomes of a market (columns ``LOG_COLUMNS``).

    ``time`` is unix seconds of the day (impressions) or of the row's date (creative_stats), NaN when
    creative_stats has no date. ``context`` is the impression's context JSON, or ``""`` when unknown.
    A single product with several creatives is enough (one ad with many variants is a common case).
    Raises ``InputError`` for a market without logs, with a single logged creative, or without clicks.
    """
    missing = missing_logs(market.creatives, market.impressions, market.creative_stats)
    if missing is not None:
        raise InputError(missing)
    creatives = market.creatives[["creative_id", "product_id", "elements"]]
    if market.impressions is not None and not market.impressions.empty:
        imp = market.impressions
        context = impression_contexts(imp)
        day = impression_days(imp["ts"].to_numpy(dtype=np.int64))
        frame = pd.DataFrame(
            {"creative_id": imp["creative_id"], "context": context, "time": day, "click": imp["click"]}
        )
        log = (
            frame.groupby(["creative_id", "context", "time"], sort=True)["click"]
            .agg(clicks="sum", trials="size")
            .reset_index()
        )
    else:  # no impressions, so creative_stats (missing_logs found one of the two)
        stats = market.creative_stats
        assert stats is not None
        if "date" in stats and stats["date"].notna().all():
            time = pd.Series(stats_days(stats["date"]), index=stats.index)
        else:
            time = pd.Series(np.nan, index=stats.index)
        log = pd.DataFrame(
            {
                "creative_id": stats["creative_id"],
                "context": "",
                "time": time,
                "clicks": stats["clicks"],
                "trials": stats["impressions"],
            }
        )
    log = log.merge(creatives, on="creative_id", how="left")
    log["clicks"] = log["clicks"].astype("float64")
    log["trials"] = log["trials"].astype("float64")
    problem = log_problem(log["creative_id"].to_numpy(), log["clicks"].to_numpy(), log["trials"].to_numpy())
    if problem is not None:  # the same rules as validation (market.logs)
        raise InputError(problem.rule)
    return log[list(LOG_COLUMNS)].reset_index(drop=True)


def impression_contexts(impressions: pd.DataFrame) -> pd.Series:
    """Each impression's context JSON, with its page ``position`` (when logged) added as a context key.

    Position is context, not creative: a click model that sees it can tell a creative's appeal from
    where it was shown.
    """
    raw = impressions["context"] if "context" in impressions else pd.Series(None, index=impressions.index)
    if "position" not in impressions or impressions["position"].isna().all():
        return raw.astype(object).fillna("").astype(str)
    out = []
    for context, position in zip(raw, impressions["position"]):
        data = json.loads(context) if isinstance(context, str) and context else {}
        if not isinstance(data, dict):
            data = {"context": data}
        if position == position and position is not None:
            data["position"] = int(position)
        out.append(json.dumps(data, sort_keys=True) if data else "")
    return pd.Series(out, index=impressions.index)


def time_split(log: pd.DataFrame, config: SplitConfig = SplitConfig()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and validation parts of a click log: validation is the latest ``valid_fraction`` of trials.

    Rows are cut at the time before which ``1 - valid_fraction`` of the impressions lie. A log without
    time (creative_stats without dates) is split by creative at random instead, with ``config.seed``:
    then no creative appears in both parts.
    """
    if log["time"].notna().all():
        order = log["time"].to_numpy()
        times = np.unique(order)
        single_day = span_problem(times)
        if single_day is not None:
            raise InputError(single_day.rule)
        weight = log.groupby("time")["trials"].sum().reindex(times).to_numpy()
        share = np.cumsum(weight) / weight.sum()
        cut_index = min(int(np.searchsorted(share, 1.0 - config.valid_fraction)) + 1, len(times) - 1)
        cutoff = times[cut_index]
        valid = order >= cutoff
    else:
        creatives = np.sort(log["creative_id"].unique())
        rng = np.random.default_rng(config.seed)
        size = max(1, int(round(config.valid_fraction * len(creatives))))
        held = set(rng.choice(creatives, size=size, replace=False))
        valid = log["creative_id"].isin(held).to_numpy()
    train, held_out = log[~valid].reset_index(drop=True), log[valid].reset_index(drop=True)
    if held_out["trials"].sum() == 0 or train["trials"].sum() == 0:
        raise InputError("the logs are too short to hold out a validation part")
    return train, held_out


def creative_outcomes(log: pd.DataFrame) -> pd.DataFrame:
    """Per creative: product, elements, total clicks and trials, and observed CTR."""
    grouped = log.groupby("creative_id", sort=True).agg(
        product_id=("product_id", "first"),
        elements=("elements", "first"),
        clicks=("clicks", "sum"),
        trials=("trials", "sum"),
    )
    grouped["ctr"] = grouped["clicks"] / grouped["trials"]
    return grouped.reset_index()


def most_shown_creatives(log: pd.DataFrame) -> pd.DataFrame:
    """Each product's most-shown logged creative (what its logging policy runs most: the creative it runs now),
    indexed by product (``creative_outcomes`` columns); ties go to the smaller creative id. Chosen by the
    policy's own traffic, not by clicks, so its logged CTR carries no selection on outcomes."""
    per = creative_outcomes(log)
    ranked = per.sort_values(["product_id", "trials", "creative_id"], ascending=[True, False, True])
    return ranked.drop_duplicates("product_id").set_index("product_id")


def best_logged_creatives(log: pd.DataFrame, prior_impressions: float = 200.0) -> pd.DataFrame:
    """Each product's logged creative with the best shrunk CTR, indexed by product (``creative_outcomes``
    columns plus ``shrunk_ctr``).

    A creative's CTR is shrunk toward its product's pooled CTR c_p with m = ``prior_impressions``
    pseudo-impressions, ``(clicks + m·c_p) / (trials + m)``, so a creative shown a handful of times does
    not win on luck; ties go to the smaller creative id.
    """
    per = creative_outcomes(log)
    pooled = per.groupby("product_id")[["clicks", "trials"]].transform("sum")
    prior = pooled["clicks"] / pooled["trials"].clip(lower=1.0)
    per["shrunk_ctr"] = (per["clicks"] + prior_impressions * prior) / (per["trials"] + prior_impressions)
    ranked = per.sort_values(["product_id", "shrunk_ctr", "creative_id"], ascending=[True, False, True])
    return ranked.drop_duplicates("product_id").set_index("product_id")


def context_distribution(log: pd.DataFrame, limit: int = MAX_CONTEXTS) -> list[tuple[str, float]]:
    """The most frequent contexts of a log with their share of impressions (renormalised to sum to 1)."""
    weights = log.groupby("context")["trials"].sum().sort_values(ascending=False).head(limit)
    return [(str(c), float(w / weights.sum())) for c, w in weights.items()]
