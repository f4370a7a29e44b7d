"""Search-side pieces of the combination generator (GenCO, arXiv 2508.09730): the reward interface and
its cache, the logged creatives, the diverse top-K rule, and the reference searches a policy is measured
against (element-wise greedy from the most-shown creative, and the exhaustive optimum of small spaces).

Every search returns the proposals table of ``ComboGenerator.propose``: one row per proposal with
``product_id``, ``rank`` (1..K per product), ``elements`` (one id per slot, market.json order),
``reward`` and ``log_prob`` (the generator's log-probability; NaN for searches without a policy).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from adcraft.errors import InputError
from adcraft.generate.combo_policy import slot_candidates
from adcraft.market import Market
from adcraft.market.click_log import click_log

RewardFn = Callable[[Sequence[str], Sequence[Sequence[str]]], np.ndarray]
"""(product_ids, combinations) -> one reward per row; called with ``contexts=`` when contexts are used."""

PROPOSAL_COLUMNS = ("product_id", "rank", "elements", "reward", "log_prob")
NO_CONTEXT = ""


class CachedReward:
    """A reward function with memory: each distinct (product, combination, context) is evaluated once,
    all new rows of a call in one batch. Rows with context ``""`` are scored without contexts."""

    def __init__(self, reward: RewardFn) -> None:
        self.reward = reward
        self.values: dict[tuple, float] = {}

    @property
    def evaluations(self) -> int:
        return len(self.values)

    def __call__(
        self, product_ids: Sequence[str], combos: Sequence[Sequence[str]], contexts: Sequence[str] | None = None
    ) -> np.ndarray:
        contexts = contexts if contexts is not None else [NO_CONTEXT] * len(product_ids)
        keys = [(p, tuple(c), x) for p, c, x in zip(product_ids, combos, contexts)]
        new = list(dict.fromkeys(key for key in keys if key not in self.values))
        for with_context in (False, True):
            batch = [key for key in new if (key[2] != NO_CONTEXT) == with_context]
            if not batch:
                continue
            pids, rows = [key[0] for key in batch], [list(key[1]) for key in batch]
            if with_context:
                values = self.reward(pids, rows, contexts=[key[2] for key in batch])
            else:
                values = self.reward(pids, rows)
            values = np.asarray(values, dtype=np.float64).reshape(-1)
            if len(values) != len(batch) or not np.all(np.isfinite(values)):
                raise InputError(f"the reward function must return one finite number per row: asked for "
                                 f"{len(batch)}, got {len(values)} values (non-finite: "
                                 f"{int((~np.isfinite(values)).sum())})")
            self.values.update(zip(batch, values.tolist()))
        return np.array([self.values[key] for key in keys], dtype=np.float64)


def logged_combinations(market: Market, use_context: bool) -> pd.DataFrame:
    """Logged creatives to clone: product_id, elements, context, trials and weight, the weights summing
    to 1 per product (its impression shares). Logs are read with ``click_log``; a market with past
    creatives but no usable logs gives each creative the same weight; without creatives, an empty table.

    With ``use_context``, each creative appears once per logged context and once with no context
    (context ``""``, all its impressions), so the policy also learns the traffic-wide choice.
    """
    columns = ["product_id", "elements", "context", "trials", "weight"]
    if market.creatives is None or market.creatives.empty:
        return pd.DataFrame(columns=columns)
    try:
        log = click_log(market)
    except InputError:
        log = market.creatives[["creative_id", "product_id", "elements"]].assign(context=NO_CONTEXT, trials=1.0)
    keys = ["creative_id", "context"] if use_context else ["creative_id"]
    grouped = log.groupby(keys, sort=True).agg(
        product_id=("product_id", "first"), elements=("elements", "first"), trials=("trials", "sum")
    ).reset_index()
    if use_context:
        overall = grouped.groupby("creative_id", sort=True).agg(
            product_id=("product_id", "first"), elements=("elements", "first"), trials=("trials", "sum")
        ).reset_index().assign(context=NO_CONTEXT)
        grouped = pd.concat([grouped[grouped["context"] != NO_CONTEXT], overall], ignore_index=True)
    else:
        grouped["context"] = NO_CONTEXT
    grouped = grouped[grouped["trials"] > 0].reset_index(drop=True)
    per_product = grouped[grouped["context"] == NO_CONTEXT].groupby("product_id")["trials"].sum()
    grouped["weight"] = grouped["trials"] / grouped["product_id"].map(per_product)
    if use_context:  # the contextual rows and the context-free rows of a product each sum to 1, halved
        grouped["weight"] *= 0.5
    return grouped[columns]


def check_k(k: int) -> None:
    """Refuse a number of proposals per product that is not a positive integer."""
    if not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")


def proposals_frame(rows: Sequence[tuple]) -> pd.DataFrame:
    """Proposals table from (product_id, rank, elements, reward, log_prob) tuples."""
    frame = pd.DataFrame(list(rows), columns=list(PROPOSAL_COLUMNS))
    return frame.astype({"product_id": object, "rank": "int32", "reward": "float64", "log_prob": "float64"})


def pivot_slot(actions: np.ndarray, scores: np.ndarray) -> int:
    """The slot whose elements' mean candidate score varies most (max minus min over its elements)."""
    best, best_spread = 0, -1.0
    for t in range(actions.shape[1]):
        means = pd.Series(scores).groupby(actions[:, t]).mean()
        spread = float(means.max() - means.min())
        if spread > best_spread:
            best, best_spread = t, spread
    return best


def diverse_top_k(
    actions: np.ndarray, scores: np.ndarray, tiebreak: np.ndarray, k: int, min_distinct_slots: int,
    max_share: float, min_slots_from_first: int = 1,
) -> list[int]:
    """Indices of a diverse top k of distinct candidates ``actions`` (n, S), best score first.

    Down the ranking (score, then ``tiebreak``, both descending), a candidate is taken if it differs from
    every taken one in at least ``min_distinct_slots`` slots, from the first taken (rank 1) in at least
    ``min_slots_from_first`` slots (at most all S), and fewer than ceil(max_share k) taken ones share its
    element in the pivot slot; if that leaves fewer than k, the best candidates skipped for the cap, then
    those skipped for their likeness to rank 1, fill in.
    """
    order = [int(i) for i in np.lexsort((-tiebreak, -scores))]
    if not order:
        return []
    cap = max(1, math.ceil(max_share * k))
    pivot = pivot_slot(actions, scores) if len(actions) > 1 else 0
    from_first = min(min_slots_from_first, actions.shape[1])
    taken: list[int] = []
    counts: dict[int, int] = {}

    def differ(i: int, j: int) -> int:
        return int((actions[i] != actions[j]).sum())

    for far_only, capped in ((True, True), (True, False), (False, False)):  # the rules loosened in turn
        for i in order:
            if len(taken) == k:
                break
            if i in taken or any(differ(i, j) < min_distinct_slots for j in taken):
                continue
            if far_only and taken and differ(i, taken[0]) < from_first:
                continue
            if capped and counts.get(actions[i, pivot], 0) >= cap:
                continue
            taken.append(i)
            counts[actions[i, pivot]] = counts.get(actions[i, pivot], 0) + 1
    rank = {i: r for r, i in enumerate(order)}
    return sorted(taken, key=rank.__getitem__)


def most_shown_combinations(market: Market) -> dict[str, list[str]]:
    """Each product's most-shown logged creative (by impressions; equal weights without logs), or, for a
    product never shown, the first usable element of every slot."""
    logged = logged_combinations(market, use_context=False)
    out = {p: [s[0] for s in sets] for p, sets in slot_candidates(market).items()}
    if not logged.empty:
        top = logged.sort_values(["product_id", "trials"], ascending=[True, False], kind="stable")
        for product, elements in top.drop_duplicates("product_id")[["product_id", "elements"]].itertuples(
                index=False):
            if product in out:
                out[product] = list(elements)
    return out


def market_products(market: Market, product_ids: Sequence[str] | None) -> list[str]:
    """The requested products (all by default), deduplicated; ``InputError`` for one the market lacks."""
    known = market.products["product_id"].tolist()
    if isinstance(product_ids, str):
        raise InputError("product_ids must be a list of product ids, not a single string")
    chosen = known if product_ids is None else list(dict.fromkeys(product_ids))
    missing = sorted(set(chosen) - set(known))
    if missing:
        raise InputError(f"unknown product {missing[0]!r}: it is not in the market's products table")
    return chosen


def elementwise_greedy_proposals(
    market: Market, reward: RewardFn, product_ids: Sequence[str] | None = None, k: int = 5
) -> pd.DataFrame:
    """Element-wise greedy baseline: for each slot independently, the element with the best reward when
    the other slots are held at the product's most-shown logged creative (one pass, no re-evaluation).

    With gains g_t(e) = R(base with e in slot t) - R(base), rank 1 is the argmax of every slot and
    ranks 2..k are the next best combinations under the additive estimate sum_t g_t(e_t); the reward
    column is each combination's actual reward.
    """
    check_k(k)
    products = market_products(market, product_ids)
    candidates, base = slot_candidates(market), most_shown_combinations(market)
    probe_rows: list[tuple[str, list[str]]] = []
    for product in products:
        probe_rows.append((product, base[product]))
        for t, usable in enumerate(candidates[product]):
            probe_rows += [(product, base[product][:t] + [e] + base[product][t + 1:]) for e in usable]
    cached = CachedReward(reward)
    values = cached([p for p, _ in probe_rows], [c for _, c in probe_rows])
    out, start = [], 0
    for product in products:
        origin = values[start]
        start += 1
        gains = []
        for usable in candidates[product]:
            gains.append(values[start:start + len(usable)] - origin)
            start += len(usable)
        picks = _k_best_sums(gains, k)
        combos = [[candidates[product][t][m] for t, m in enumerate(pick)] for pick in picks]
        rewards = cached([product] * len(combos), combos)
        out += [(product, rank, c, r, math.nan) for rank, (c, r) in enumerate(zip(combos, rewards), start=1)]
    return proposals_frame(out)


def _k_best_sums(gains: list[np.ndarray], k: int) -> list[tuple[int, ...]]:
    """The k index tuples with the largest sum_t gains[t][i_t], best first (lazy best-first search)."""
    orders = [np.argsort(-g, kind="stable") for g in gains]

    def total(ranks: tuple[int, ...]) -> float:
        return float(sum(g[o[r]] for g, o, r in zip(gains, orders, ranks)))

    start = (0,) * len(gains)
    heap, seen, out = [(-total(start), start)], {start}, []
    while heap and len(out) < k:
        _, ranks = heapq.heappop(heap)
        out.append(tuple(int(o[r]) for o, r in zip(orders, ranks)))
        for t in range(len(ranks)):
            if ranks[t] + 1 < len(orders[t]):
                step = ranks[:t] + (ranks[t] + 1,) + ranks[t + 1:]
                if step not in seen:
                    seen.add(step)
                    heapq.heappush(heap, (-total(step), step))
    return out


def combination_space_sizes(market: Market) -> pd.Series:
    """Number of usable combinations of each product (product of its slots' usable element counts)."""
    sizes = {p: math.prod(len(s) for s in sets) for p, sets in slot_candidates(market).items()}
    return pd.Series(sizes, name="combinations", dtype="int64")


def best_combinations(
    market: Market, reward: RewardFn, product_ids: Sequence[str] | None = None, k: int = 1,
    limit: int = 50_000, batch_size: int = 65_536,
) -> pd.DataFrame:
    """The exact reward optimum: every usable combination of each product whose space has at most
    ``limit`` combinations is scored and the k best are returned (same columns as ``propose``).

    Products with larger spaces are left out (see ``combination_space_sizes``); the reward is called in
    batches of ``batch_size`` rows.
    """
    check_k(k)
    products = market_products(market, product_ids)
    candidates = slot_candidates(market)
    out = []
    for product in products:
        sets = candidates[product]
        if math.prod(len(s) for s in sets) > limit:
            continue
        best: list[tuple[float, list[str]]] = []
        space = itertools.product(*sets)
        while chunk := [list(c) for c in itertools.islice(space, batch_size)]:
            values = np.asarray(reward([product] * len(chunk), chunk), dtype=np.float64).reshape(-1)
            if len(values) != len(chunk):
                raise InputError(f"the reward function returned {len(values)} values for {len(chunk)} rows")
            top = np.argsort(-values, kind="stable")[:k]
            best = sorted(best + [(float(values[i]), chunk[i]) for i in top], key=lambda x: -x[0])[:k]
        out += [(product, rank, combo, value, math.nan) for rank, (value, combo) in enumerate(best, start=1)]
    return proposals_frame(out)
