"""What each round's arms were worth: the served true CTR beside the arms' mean, the best arm and the current one.

    python bench/serving_arms.py --workdir DIR --seeds 10341 10342 [--world realistic] [--products 24]
                                 [--impressions 20000] [--results docs/results.md]

Reads the database of a ``bench/serving_loop.py`` run (``DIR/loop-SEED/decisions.sqlite``: every round's served
impressions, with the creative's elements, whether it was the product's current creative, and the traffic
context) and the world's truth of its simulated market (``DIR/market-WORLD-SEED-PRODUCTS-IMPRESSIONS-truth``).
Rounds are the runs in the order they first served. Per round and product, the arms are the combinations the
round served for the product (the server shows each arm with probability at least 0.05 / K, so at hundreds of
impressions per product every arm is in the log); each arm is valued by its true CTR averaged over the simulated
traffic's contexts, and the served impressions by the served creative's true CTR in their context. Per round,
weighted by each product's served impressions:

- served: the mean true CTR of what was served (``serving_loop.py``'s served true CTR);
- arms' mean: what showing every arm equally often would have earned;
- best arm: what showing each product's best arm would have earned (the most a policy over these arms can earn);
- current: what showing only the product's current creative (its best logged one) would have earned, and its
  change from round 1 paired by seed (the current creative of a later round is the best logged one of a market
  that holds the earlier rounds' served impressions);
- share of the gap: (served - arms' mean) / (best arm - arms' mean), how far within the round the serving policy
  moved from spreading its traffic toward the best arm (ratio of the means over seeds; rounds with one arm per
  product have no gap).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from serving_loop import SECTION as LOOP_SECTION
from serving_loop import ContextTruth
from worlds import mean_interval

from adcraft.market import load_market
from adcraft.serve.impression_log import served_rows, served_table
from adcraft.simulator import GroundTruth
from adcraft.simulator.click_model import contexts
from markdown import markdown_table, write_section

SECTION = "## What the loop's rounds could have earned from their arms (bench/serving_arms.py)"
Value = Callable[[str, tuple[str, ...], int], float]  # (product, elements, context index) -> true CTR


def round_values(served: pd.DataFrame, value: Value, weights: np.ndarray) -> dict[str, float]:
    """The module docstring's figures for one round's ``served`` rows (columns ``product_id``, ``source``,
    ``elements`` as tuples, ``context`` as an index into ``weights``, the contexts' traffic shares summing to 1)."""
    totals = {"served": 0.0, "arms' mean": 0.0, "best arm": 0.0, "current": 0.0}
    arms_per_product = []
    for product_id, rows in served.groupby("product_id", sort=True):
        n = len(rows)
        totals["served"] += sum(value(product_id, e, c) for e, c in zip(rows["elements"], rows["context"]))
        arms = sorted(set(rows["elements"]))
        worth = {arm: float(np.dot(weights, [value(product_id, arm, c) for c in range(len(weights))]))
                 for arm in arms}
        current = rows.loc[rows["source"] == "current", "elements"]
        totals["arms' mean"] += n * float(np.mean(list(worth.values())))
        totals["best arm"] += n * max(worth.values())
        totals["current"] += n * (worth[current.iloc[0]] if len(current) else float(np.mean(list(worth.values()))))
        arms_per_product.append(len(arms))
    out = {name: total / max(len(served), 1) for name, total in totals.items()}
    out["arms per product"] = float(np.mean(arms_per_product)) if arms_per_product else 0.0
    out["impressions"] = float(len(served))
    return out


def seed_rounds(workdir: Path, seed: int, args) -> list[dict[str, float]]:
    """Every round of one seed's loop in ``workdir``, in the order the rounds served."""
    market_dir = workdir / f"market-{args.world}-{seed}-{args.products}-{args.impressions}"
    truth = ContextTruth(load_market(market_dir), GroundTruth.load(market_dir.with_name(market_dir.name + "-truth")))
    traffic = contexts()
    weights = np.array([w for _, w in traffic], dtype=float)
    index = {json.dumps(context, sort_keys=True): i for i, (context, _) in enumerate(traffic)}
    engine = sa.create_engine(f"sqlite:///{workdir / f'loop-{seed}' / 'decisions.sqlite'}")
    try:
        with engine.connect() as connection:
            runs = list(connection.execute(sa.select(served_table.c.run_id).group_by(served_table.c.run_id)
                                           .order_by(sa.func.min(served_table.c.served_at))).scalars())
        rounds = []
        for run_id in runs:
            rows = served_rows(engine, run_id)
            rows = rows.assign(elements=[tuple(e) for e in rows["elements"]],
                               context=[index[c] for c in rows["context"]])
            rounds.append(round_values(rows, truth, weights / weights.sum()))
    finally:
        engine.dispose()
    return rounds


def table(per_seed: dict[int, list[dict[str, float]]]) -> pd.DataFrame:
    """Per round: each figure's mean [95% t-interval over seeds] and the share of the gap (ratio of means)."""
    rounds = min(len(r) for r in per_seed.values())
    rows = []
    for k in range(rounds):
        got = [r[k] for r in per_seed.values()]
        row = {"round": k + 1, "seeds": len(got)}
        for name in ("served", "arms' mean", "best arm", "current"):
            row[name + " true CTR"] = mean_interval([g[name] for g in got], ".4f")
        row["served - current"] = mean_interval([g["served"] - g["current"] for g in got], "+.4f")
        row["current - round 1's"] = mean_interval([r[k]["current"] - r[0]["current"] for r in per_seed.values()],
                                                   "+.4f")
        spread = [g["arms' mean"] for g in got]
        gap = np.mean([g["best arm"] for g in got]) - np.mean(spread)
        gained = np.mean([g["served"] for g in got]) - np.mean(spread)
        row["share of the gap"] = f"{gained / gap:.2f}" if gap > 0 else "-"
        row["arms per product"] = f"{np.mean([g['arms per product'] for g in got]):.2f}"
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="the --workdir of a serving_loop.py run")
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--world", default="realistic")
    parser.add_argument("--products", type=int, default=24)
    parser.add_argument("--impressions", type=int, default=20_000)
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "results.md")
    args = parser.parse_args()
    per_seed = {seed: seed_rounds(args.workdir, seed, args) for seed in args.seeds}
    for seed, rounds in per_seed.items():
        print(seed, json.dumps(rounds), flush=True)
    served = round(np.mean([r["impressions"] for rounds in per_seed.values() for r in rounds]))
    text = "\n\n".join([
        SECTION,
        f"The databases of a `bench/serving_loop.py` run (section \"{LOOP_SECTION[3:]}\" or its variants; world "
        f"`{args.world}`, {args.products} products, {args.impressions} logged impressions; seeds "
        f"{', '.join(map(str, args.seeds))}; {served} "
        "served impressions per round), valued with the world's truth as the module docstring says. Cells: "
        "mean over seeds [95% t-interval over seeds].",
        markdown_table(table(per_seed)),
    ])
    write_section(args.results, SECTION, text)
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
