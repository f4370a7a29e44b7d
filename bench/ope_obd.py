"""Off-policy evaluation on real logs: the Open Bandit Dataset sample (ZOZOTOWN, "all" campaign).

    python bench/ope_obd.py [--data ../shared/data] [--bootstrap 1000] [--seed 0] [--results docs/results.md]

The bundle holds 10 000 impressions logged by a uniform-random policy and 10 000 by a Bernoulli
Thompson Sampling (BTS) policy, run side by side in one A/B test (80 items, 3 positions). Each log
therefore gives the other policy's on-policy CTR (the mean click of its own log, with a Wilson
interval) to check an off-policy estimate against:

- bts<-random: the BTS policy's CTR estimated from the random log;
- random<-bts: the random policy's CTR estimated from the BTS log;

with adcraft's IPS, SNIPS, DM, DR and Switch-DR (tau 10), each with a percentile-bootstrap interval
and the Kish effective sample size of its importance weights.

Positions are read as in Open Bandit Pipeline: a row is one impression in a given slot, the slot is
part of the context, and the policy chooses the item for it, so the logged action's probabilities
are ``pi(item | slot)``: ``propensity_score`` for the logging policy, and for the evaluated one

- random: ``1/80`` for every item in every slot (its logged propensity is the constant 0.0125);
- BTS: its time-averaged slot distribution ``pi_bts(item | slot) = E_t[p_t(item | slot)]``. The BTS
  propensities move with time (the posterior is updated during the week): (item, slot) explains only
  about half of their variance and (item, slot, hour) nearly all of it. Because a row is logged with
  probability ``p_t``, the plain mean of the logged propensities of a cell is size-biased
  (``E[p^2]/E[p]``; the cell means add up to 2-4 per slot). The harmonic mean is not: over the rows
  that show a cell, ``E[1/p]`` is (number of slot impressions) / (sum over time of p_t), so
  ``n_cell / sum(1/p)`` estimates ``E_t[p_t]`` (and is exact when p does not move). The harmonic
  means are then renormalised to sum to 1 per slot. A sensitivity table compares that choice with
  the per-slot item frequencies of the BTS log, harmonic means per day, and the plain cell means.

The reward model q(slot, item) behind DM, DR and Switch-DR is fitted on the log being evaluated
(clicks only, user features ignored): the slot's CTR times the item's smoothed lift,
``q(k, i) = ctr_k (c_i + s) / (e_i + s)`` with ``c_i`` the item's clicks, ``e_i = sum ctr_k`` over
its rows (its expected clicks at the slot CTRs) and ``s = 2`` pseudo-clicks. For row j,
``target_reward_predictions[j] = sum_i pi(i | slot_j) q(slot_j, i)``.

When Open Bandit Pipeline (obp 0.4.1) is importable, :func:`obp_side_by_side` runs its
InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting, DirectMethod, DoublyRobust and
SwitchDoublyRobust (same tau) on the same arrays as adcraft's estimators and reports both values, their
absolute difference and the fastest of several timed point estimates of each (``bench/performance.py``
imports it too). obp 0.5.x does not install on Python 3.11 (0.5.7 pins torch==1.12, 0.5.5 a PyYAML<6
that no longer builds); ``pip install obp==0.4.1`` does. Without obp the report says so.

Prints a message and exits 0 when the data folder lacks the OBD files. Tables go to the section
"## Off-policy evaluation on real logs (bench/ope_obd.py)" of --results.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
from markdown import markdown_table, write_section
from timing import best_of

from adcraft.evaluate.ope import (
    IPS,
    SNIPS,
    DirectMethod,
    DoublyRobust,
    OffPolicyEstimator,
    SwitchDR,
    estimate_policy_value,
)

SECTION = "## Off-policy evaluation on real logs (bench/ope_obd.py)"
N_ITEMS = 80
N_SLOTS = 3
PSEUDO_CLICKS = 2.0  # prior strength of an item's click lift, in clicks
ALPHA = 0.05
ESTIMATORS: tuple[OffPolicyEstimator, ...] = (IPS(), SNIPS(), DirectMethod(), DoublyRobust(), SwitchDR(tau=10.0))
OBP_REPEATS = 7  # timed point estimates per library and estimator; the fastest is reported
OBP_MISSING = (
    "Open Bandit Pipeline is not importable in this environment, so its estimators are not run beside adcraft's. "
    "On Python 3.11 `pip install obp` fails (obp 0.5.7 pins torch==1.12, which has no Python 3.11 wheel; pip then "
    "falls back to obp 0.5.5, whose PyYAML<6 pin fails to build); `pip install obp==0.4.1` (a pure-Python wheel "
    "with loose pins) installs and imports with numpy 2, and this script then compares the two"
)


@dataclass(frozen=True)
class BanditLog:
    """One OBD log as arrays: ``slot`` is position - 1, ``day`` whole days since 1970-01-01 (UTC)."""

    policy: str
    item: np.ndarray
    slot: np.ndarray
    day: np.ndarray
    hour: np.ndarray
    click: np.ndarray
    propensity: np.ndarray

    @property
    def n(self) -> int:
        return len(self.click)


def load_log(path: Path, policy: str) -> BanditLog:
    frame = pd.read_csv(path, usecols=["timestamp", "item_id", "position", "click", "propensity_score"])
    since_epoch = pd.to_datetime(frame["timestamp"], utc=True) - pd.Timestamp(0, tz="UTC")
    return BanditLog(
        policy=policy,
        item=frame["item_id"].to_numpy(dtype=np.int64),
        slot=frame["position"].to_numpy(dtype=np.int64) - 1,
        day=(since_epoch // pd.Timedelta(days=1)).to_numpy(dtype=np.int64),
        hour=(since_epoch // pd.Timedelta(hours=1)).to_numpy(dtype=np.int64),
        click=frame["click"].to_numpy(dtype=np.float64),
        propensity=frame["propensity_score"].to_numpy(dtype=np.float64),
    )


# ---------------------------------------------------------------- the evaluated policies


def explained_share(values: np.ndarray, groups: np.ndarray) -> float:
    """1 - within-group sum of squares / total sum of squares: how much of ``values`` the groups explain."""
    _, codes = np.unique(groups, return_inverse=True)
    means = np.bincount(codes, values) / np.bincount(codes)
    total = np.sum((values - values.mean()) ** 2)
    return float(1.0 - np.sum((values - means[codes]) ** 2) / total) if total > 0 else 1.0


def harmonic_cell_means(log: BanditLog, groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(``n_g / sum_g 1/p``, ``n_g``) per group: the time-averaged logging probability of each group's
    (slot, item) cell (see the module docstring); 0 where the group has no row."""
    counts = np.bincount(groups, minlength=n_groups).astype(np.float64)
    inverse = np.bincount(groups, 1.0 / log.propensity, minlength=n_groups)
    return np.divide(counts, inverse, out=np.zeros(n_groups), where=inverse > 0), counts


def normalised(table: np.ndarray) -> np.ndarray:
    """Rows of ``table`` (one per slot, or per day and slot) rescaled to sum to 1."""
    return table / table.sum(axis=-1, keepdims=True)


def cell(log: BanditLog) -> np.ndarray:
    return log.slot * N_ITEMS + log.item


def bts_slot_tables(bts: BanditLog) -> dict[str, np.ndarray]:
    """pi_bts(item | slot) as a (3, 80) table, four ways (the first is the one the main table uses)."""
    harmonic, counts = harmonic_cell_means(bts, cell(bts), N_SLOTS * N_ITEMS)
    mean = np.bincount(cell(bts), bts.propensity, minlength=N_SLOTS * N_ITEMS) / np.maximum(counts, 1.0)
    return {
        "harmonic mean of logged propensities per (slot, item), renormalised": normalised(
            harmonic.reshape(N_SLOTS, N_ITEMS)),
        "item frequency per slot in the BTS log": normalised(counts.reshape(N_SLOTS, N_ITEMS)),
        "plain mean of logged propensities per (slot, item), not normalised": mean.reshape(N_SLOTS, N_ITEMS),
    }


def bts_day_table(bts: BanditLog, days: np.ndarray) -> np.ndarray:
    """pi_bts(item | day, slot) as a (len(days), 3, 80) table: harmonic means per (day, slot, item),
    the week's value for cells with no row that day, renormalised per (day, slot)."""
    week = harmonic_cell_means(bts, cell(bts), N_SLOTS * N_ITEMS)[0]
    day_index = np.searchsorted(days, bts.day)
    daily, counts = harmonic_cell_means(bts, day_index * N_SLOTS * N_ITEMS + cell(bts), len(days) * N_SLOTS * N_ITEMS)
    daily = np.where(counts > 0, daily, np.tile(week, len(days)))
    return normalised(daily.reshape(len(days), N_SLOTS, N_ITEMS))


# ---------------------------------------------------------------- reward model and truth


def reward_model(log: BanditLog) -> np.ndarray:
    """q(slot, item) as a (3, 80) table: the slot's CTR times the item's smoothed click lift
    ``(c_i + s) / (e_i + s)``, with ``e_i`` the item's clicks expected at the slot CTRs."""
    slot_ctr = np.bincount(log.slot, log.click, minlength=N_SLOTS) / np.bincount(log.slot, minlength=N_SLOTS)
    clicks = np.bincount(log.item, log.click, minlength=N_ITEMS)
    expected = np.bincount(log.item, slot_ctr[log.slot], minlength=N_ITEMS)
    lift = (clicks + PSEUDO_CLICKS) / (expected + PSEUDO_CLICKS)
    return slot_ctr[:, None] * lift[None, :]


def wilson_interval(clicks: float, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion (Wilson, JASA 1927)."""
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    rate = clicks / n
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return float(centre - half), float(centre + half)


# ---------------------------------------------------------------- estimates


@dataclass(frozen=True)
class Direction:
    """A target policy evaluated on the other policy's log: ``row_policy[j]`` is pi(. | context of row j)."""

    name: str
    logged: BanditLog
    truth: BanditLog
    row_policy: np.ndarray  # (n, 80)


def row_rewards(direction: Direction) -> np.ndarray:
    """q(slot_j, item) for every row j and item, shape (n, 80), from the model fitted on the logged rows."""
    return reward_model(direction.logged)[direction.logged.slot]


def adcraft_arrays(direction: Direction, q: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target_probabilities, reward_predictions, target_reward_predictions) as adcraft's estimators take them,
    from the (n, 80) reward table ``q`` (``row_rewards``, fitted here when not given)."""
    log = direction.logged
    q = row_rewards(direction) if q is None else q
    rows_index = np.arange(log.n)
    return (direction.row_policy[rows_index, log.item], q[rows_index, log.item],
            np.sum(direction.row_policy * q, axis=1))


def estimate_rows(direction: Direction, n_bootstrap: int, seed: int) -> list[dict]:
    log = direction.logged
    target, predictions, target_predictions = adcraft_arrays(direction)
    truth = direction.truth.click.mean()
    truth_low, truth_high = wilson_interval(direction.truth.click.sum(), direction.truth.n)
    rows = []
    for estimator in ESTIMATORS:
        started = time.perf_counter()
        result = estimate_policy_value(log.click, log.propensity, target, estimator, predictions,
                                       target_predictions, alpha=ALPHA, n_bootstrap=n_bootstrap, seed=seed)
        elapsed = time.perf_counter() - started
        rows.append({
            "direction": direction.name,
            "estimator": result.estimator,
            "ctr_%": 100 * result.value,
            "ci_%": f"[{100 * result.ci_low:.3f}, {100 * result.ci_high:.3f}]",
            "ess": f"{result.ess:.0f}",
            "max_w": f"{np.max(target / log.propensity):.1f}",
            "on_policy_ctr_%": 100 * truth,
            "on_policy_ci_%": f"[{100 * truth_low:.3f}, {100 * truth_high:.3f}]",
            "rel_error": f"{(result.value - truth) / truth:+.2f}",
            "ci_covers": "yes" if result.ci_low <= truth <= result.ci_high else "no",
            "adcraft_s": f"{elapsed:.3f}",
        })
    return rows


def obp_estimator(estimator: OffPolicyEstimator) -> object:
    """Open Bandit Pipeline's counterpart of an adcraft estimator, with the same settings."""
    from obp import ope

    if isinstance(estimator, IPS) and estimator.clip is not None:
        raise ValueError("obp 0.4.1's InverseProbabilityWeighting does not clip weights")
    counterparts = {
        "ips": ope.InverseProbabilityWeighting,
        "snips": ope.SelfNormalizedInverseProbabilityWeighting,
        "dm": ope.DirectMethod,
        "dr": ope.DoublyRobust,
    }
    if isinstance(estimator, SwitchDR):
        return ope.SwitchDoublyRobust(tau=estimator.tau)
    return counterparts[estimator.name]()


def obp_side_by_side(direction: Direction, estimators: tuple[OffPolicyEstimator, ...] = ESTIMATORS,
                     repeats: int = OBP_REPEATS) -> list[dict]:
    """adcraft's and obp's point estimates of one direction on the same arrays, with wall times.

    obp takes the log as ``reward``, ``action`` (item), ``position`` (slot), ``pscore`` and two
    (n, 80, 3) arrays, ``action_dist[j, :, k]`` = pi(. | row j at position k) and
    ``estimated_rewards_by_reg_model[j, :, k]`` = q(., k); obp reads only position ``slot_j`` of row j,
    so every position holds the row's slot distribution and q(slot_j, .). adcraft takes pi(a_j | slot_j),
    q(slot_j, a_j) and sum_a pi(a | slot_j) q(slot_j, a) (computed outside the timed call, as obp's arrays
    are). Times: fastest of ``repeats`` point estimates (no bootstrap), input checks included in both;
    ``obp_unchecked_ms`` times obp's per-round arithmetic alone (``_estimate_round_rewards``, no checks);
    ``adcraft_prep_ms`` the caller's work of building adcraft's three arrays from the (n, 80) tables.
    Raises ``ImportError`` when obp is not importable.
    """
    import obp

    log, q = direction.logged, row_rewards(direction)
    target, predictions, target_predictions = adcraft_arrays(direction, q)
    obp_inputs = {
        "reward": log.click,
        "action": log.item,
        "position": log.slot,
        "pscore": log.propensity,
        "action_dist": np.repeat(direction.row_policy[:, :, None], N_SLOTS, axis=2),
        "estimated_rewards_by_reg_model": np.repeat(q[:, :, None], N_SLOTS, axis=2),
    }
    prep_s = best_of(lambda: adcraft_arrays(direction, q), repeats).wall
    rows = []
    for estimator in estimators:
        counterpart = obp_estimator(estimator)

        def ours(estimator: OffPolicyEstimator = estimator) -> float:
            return estimator.estimate(log.click, log.propensity, target, predictions, target_predictions)

        def theirs(counterpart: object = counterpart) -> float:
            return float(counterpart.estimate_policy_value(**obp_inputs))

        def theirs_unchecked(counterpart: object = counterpart) -> float:
            return float(np.mean(counterpart._estimate_round_rewards(**obp_inputs)))

        value, obp_value = ours(), theirs()
        adcraft_s, obp_s = best_of(ours, repeats).wall, best_of(theirs, repeats).wall
        unchecked_s = best_of(theirs_unchecked, repeats).wall
        rows.append({
            "direction": direction.name,
            "estimator": estimator.label,
            "obp_estimator": f"{type(counterpart).__name__}" + (
                f"(tau={counterpart.tau:g})" if isinstance(estimator, SwitchDR) else ""),
            "adcraft_ctr_%": 100 * value,
            "obp_ctr_%": 100 * obp_value,
            "abs_diff": abs(value - obp_value),
            "adcraft_ms": 1e3 * adcraft_s,
            "obp_ms": 1e3 * obp_s,
            "obp_unchecked_ms": 1e3 * unchecked_s,
            "obp_time / adcraft_time": obp_s / adcraft_s,
            "adcraft_prep_ms": 1e3 * prep_s,
            "obp_version": obp.__version__,
        })
    return rows


def sensitivity_rows(random: BanditLog, bts: BanditLog, n_bootstrap: int, seed: int) -> list[dict]:
    """bts<-random under each reading of pi_bts(item | slot): point estimates and slot sums."""
    days = np.unique(np.concatenate([random.day, bts.day]))
    readings = {name: table[random.slot] for name, table in bts_slot_tables(bts).items()}
    daily = bts_day_table(bts, days)
    readings["harmonic mean per (day, slot, item), week's value where a day has no row, renormalised"] = (
        daily[np.searchsorted(days, random.day), random.slot])
    truth = bts.click.mean()
    rows = []
    for name, row_policy in readings.items():
        direction = Direction("bts<-random", random, bts, row_policy)
        estimates = {row["estimator"]: row["ctr_%"] for row in estimate_rows(direction, n_bootstrap, seed)}
        sums = np.bincount(random.slot, row_policy.sum(axis=1), minlength=N_SLOTS) / np.bincount(random.slot)
        rows.append({
            "reading of pi_bts": name,
            "sum per slot": " / ".join(f"{s:.2f}" for s in sums),
            **{f"{label}_%": value for label, value in estimates.items()},
            "on_policy_ctr_%": 100 * truth,
        })
    return rows


def propensity_facts(bts: BanditLog) -> dict[str, float]:
    return {
        "slot_item": explained_share(bts.propensity, cell(bts)),
        "slot_item_day": explained_share(bts.propensity, bts.day * 1000 + cell(bts)),
        "slot_item_hour": explained_share(bts.propensity, bts.hour * 1000 + cell(bts)),
        "cells": float(len(np.unique(cell(bts)))),
    }


# ---------------------------------------------------------------- report


def obp_lines(comparison: pd.DataFrame | None) -> list[str]:
    """The side-by-side with Open Bandit Pipeline, or why it is missing."""
    if comparison is None:
        return [OBP_MISSING + ".", ""]
    shown = comparison.assign(**{
        "adcraft_ctr_%": comparison["adcraft_ctr_%"].map("{:.6f}".format),
        "obp_ctr_%": comparison["obp_ctr_%"].map("{:.6f}".format),
        "abs_diff": comparison["abs_diff"].map("{:.1e}".format),
        "adcraft_ms": comparison["adcraft_ms"].map("{:.3f}".format),
        "obp_ms": comparison["obp_ms"].map("{:.2f}".format),
        "obp_unchecked_ms": comparison["obp_unchecked_ms"].map("{:.2f}".format),
        "obp_time / adcraft_time": comparison["obp_time / adcraft_time"].map("{:.0f}x".format),
    }).drop(columns=["obp_version", "adcraft_prep_ms"])
    prep = comparison.groupby("direction", sort=False)["adcraft_prep_ms"].first()
    return [
        (f"Side by side with Open Bandit Pipeline (obp {comparison['obp_version'].iloc[0]}) on the same arrays: "
         "rewards, items as actions, slots as positions, `propensity_score` as pscore, the target's "
         "pi(item | slot) as `action_dist` and the reward model's q(slot, item) as "
         "`estimated_rewards_by_reg_model` (both (n, 80, 3); obp reads row j at its own position only). "
         "Point estimates only (no bootstrap). Times: fastest of "
         f"{OBP_REPEATS} calls after a warm-up, input checks included on both sides; `obp_unchecked_ms` is obp's "
         "per-round arithmetic alone (`_estimate_round_rewards`). **Timings were taken on a shared 2-core CPU and "
         "are noisy**; only their order of magnitude means anything."),
        "",
        markdown_table(shown),
        "",
        (f"Values: the largest |adcraft − obp| is {comparison['abs_diff'].max():.1e} (CTR as a fraction), "
         "floating-point rounding: on these arrays the two libraries compute the same per-row terms. obp 0.4.1's "
         "IPW does not clip (adcraft's IPS runs unclipped here), SNIPW divides by mean(w) as SNIPS does, and "
         "both Switch-DRs keep the residual correction where w ≤ tau (tau = 10) and use DM's term elsewhere. "
         "One difference by design is not exercised here: obp's DM/DR/Switch-DR baseline is "
         "`np.average(q, weights=pi)` = Σπq / Σπ per row, and obp refuses an `action_dist` whose positions do not "
         "sum to 1 (\"action_dist must be a probability distribution\"), whereas adcraft receives "
         "Σ_a pi(a|x) q(x, a) already summed and pi only at the logged item, so it cannot check that pi sums to 1. "
         "The sensitivity table's \"plain mean ... not normalised\" reading can therefore be run by adcraft only."),
        "",
        ("Speed: obp spends most of its time checking and indexing (n, 80, 3) arrays (`obp_ms` − "
         "`obp_unchecked_ms` is its input check, mostly `np.allclose(action_dist.sum(axis=1), 1)`; DM/DR add "
         "`np.average` over 80 items per row), whereas adcraft's estimators take one number per row. Building "
         "adcraft's three arrays from the (n, 80) tables, which includes that Σ_a pi q, is the caller's work: "
         + ", ".join(f"{ms:.2f} ms ({name})" for name, ms in prep.items())
         + " once per direction, to add to adcraft's DM/DR/Switch-DR time for a like-for-like total; with it, "
         "obp's DirectMethod takes " + ", ".join(
             f"{dm['obp_ms'] / (dm['adcraft_ms'] + prep[dm['direction']]):.1f}x ({dm['direction']})"
             for _, dm in comparison[comparison["estimator"] == "dm"].iterrows())
         + " adcraft's time."),
        "",
    ]


def report(args: argparse.Namespace, random: BanditLog, bts: BanditLog, facts: dict[str, float],
           table: pd.DataFrame, sensitivity: pd.DataFrame, comparison: pd.DataFrame | None) -> str:
    random_constant = bool(np.allclose(random.propensity, 1.0 / N_ITEMS))
    lines = [
        SECTION,
        "",
        (f"Data: `{args.data}/obd` (Open Bandit Dataset sample, ZOZOTOWN \"all\" campaign, 2019-11-24 to 30; "
         f"provenance in its README): {random.n:,} impressions of the uniform-random policy "
         f"({int(random.click.sum())} clicks) and {bts.n:,} of the Bernoulli-TS policy ({int(bts.click.sum())} "
         "clicks), logged side by side in one A/B test. Each policy's CTR is estimated off-policy from the "
         "other's log and compared with its on-policy CTR (mean click of its own log, Wilson 95% interval)."),
        "",
        ("**Clicks are very sparse (about 40 per log)**: the on-policy CTRs themselves are known only to about "
         "±30%, the two policies' intervals overlap, and a relative error inside that band says nothing about "
         "an estimator. Read the intervals and `ci_covers`, not the point estimates."),
        "",
        ("Actions and positions: as in Open Bandit Pipeline, a row is one impression in a given slot (position "
         "1-3, part of the context) and the policy chooses the item for it, so every probability is "
         "pi(item | slot); the logging propensity is `propensity_score`. Random target: 1/80 for every item in "
         f"every slot (its logged propensity is constant 0.0125: {'checked' if random_constant else 'NOT the case'}"
         "). BTS target: its time-averaged slot distribution. The BTS propensities are not a function of "
         f"(item, slot): that pair explains {facts['slot_item']:.0%} of their variance, (day, item, slot) "
         f"{facts['slot_item_day']:.0%} and (hour, item, slot) {facts['slot_item_hour']:.0%} (the posterior moves "
         "during the week). The plain mean of a cell's logged propensities is size-biased (rows are logged in "
         "proportion to p, so it estimates E[p²]/E[p]; those means add up to 2-4 per slot), so pi_bts(item | "
         "slot) is the harmonic mean n_cell / Σ 1/p over the BTS rows of that (slot, item), which estimates "
         "E_t[p_t] (exact if p did not move), renormalised to sum to 1 per slot "
         f"({int(facts['cells'])} of the 240 cells appear in the BTS log; the missing one gets 0). The estimate is "
         "thus of a stationary policy with BTS's average slot distribution; BTS's time variation is not "
         "modelled (see the sensitivity table)."),
        "",
        ("Reward model for DM, DR and Switch-DR, fitted on the log being evaluated (clicks only, user features "
         "ignored): q(slot, item) = slot CTR × item lift, lift = (clicks + 2) / (expected clicks at the slot "
         "CTRs + 2); `target_reward_predictions` = Σ_item pi(item | slot) q(slot, item). Switch-DR uses tau = 10. "
         f"Intervals: percentile bootstrap, {args.bootstrap} resamples of the logged rows, seed {args.seed}. "
         "`ess` and `max_w`: Kish's (Σw)²/Σw² and the largest of the importance weights w = pi/p (Switch-DR equals DR "
         "when no weight exceeds tau). DM's interval resamples rows with q held fixed, so it leaves out the reward "
         "model's own error and is far too narrow. `rel_error` = (estimate − on-policy CTR) / "
         "on-policy CTR. `adcraft_s`: seconds for the estimate and its bootstrap. CTRs in %."),
        "",
        markdown_table(table, digits=3),
        "",
        ("Sensitivity of bts<-random to the reading of pi_bts(item | slot) (point estimates, CTR in %; "
         "`sum per slot` is the target's total probability in slots 1 / 2 / 3, which must be 1):"),
        "",
        markdown_table(sensitivity, digits=3),
        "",
        *obp_lines(comparison),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=Path("docs/results.md"))
    args = parser.parse_args()
    needed = ["obd/random_all.csv.gz", "obd/bts_all.csv.gz"]
    missing = [name for name in needed if not (args.data / name).is_file()]
    if missing:
        print(f"skipping off-policy evaluation on real logs: {args.data} lacks {', '.join(missing)} "
              "(point --data at the shared data bundle)")
        sys.exit(0)

    random = load_log(args.data / "obd" / "random_all.csv.gz", "random")
    bts = load_log(args.data / "obd" / "bts_all.csv.gz", "bts")
    bts_table = bts_slot_tables(bts)["harmonic mean of logged propensities per (slot, item), renormalised"]
    directions = [
        Direction("bts<-random", random, bts, bts_table[random.slot]),
        Direction("random<-bts", bts, random, np.full((bts.n, N_ITEMS), 1.0 / N_ITEMS)),
    ]
    table = pd.DataFrame([row for d in directions for row in estimate_rows(d, args.bootstrap, args.seed)])
    sensitivity = pd.DataFrame(sensitivity_rows(random, bts, args.bootstrap, args.seed))
    try:
        comparison = pd.DataFrame([row for d in directions for row in obp_side_by_side(d)])
    except ImportError:
        comparison = None
    text = report(args, random, bts, propensity_facts(bts), table, sensitivity, comparison)
    print(text)
    write_section(args.results, SECTION, text)


if __name__ == "__main__":
    main()
