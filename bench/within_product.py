"""Do the judges order a product's creatives? Held-out clicks of ``bench/worlds.py`` markets, within products.

    python bench/within_product.py --out-json DIR --workdir DIR [--results docs/results.md] [--label TEXT]

For every (world, seed) run of ``bench/worlds.py`` in ``--out-json`` (its markets and optimize runs in
``--workdir``), the click log is split by time as optimize splits it (the latest 20% held out) and each judge
fitted on the earlier part scores the held-out creatives: the multi-instance model that the run trained (its
``models/reward``, fitted on the earlier part) and the additive logistic judge, both scored by
``rewards.additive.choose_judge`` as the run scored them, then a constant (no order at all) and, as a ceiling,
the world's truth of each logged creative on its own image (context-averaged). The score is
``rewards.additive.within_product_log_likelihood`` per held-out click: the mean log-probability of which
creative of its product got each click, blind to each product's level, which the run's judge choice records
beside the held-out log losses it chooses by. Reported per world: each judge's score minus the constant's (above
0: it orders the creatives better than not ordering them), the multi-instance minus the additive judge's, with
95% t-intervals over the markets, and how often ``judge: auto`` chose each judge in the run (read from its
notes).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from markdown import markdown_table, write_section
from optimize import TruthScorer
from worlds import machine, mean_interval, simulated

from adcraft.market import load_market
from adcraft.market.click_log import click_log, time_split
from adcraft.pipeline.optimize import OptimizeConfig, additive_config
from adcraft.rewards.additive import choose_judge, pooled_creatives, within_product_log_likelihood
from adcraft.rewards.mil import MILModel
from adcraft.simulator.truth import GroundTruth

HEADING = "## Judges within products: held-out clicks (bench/within_product.py)"
JUDGES = ("multi-instance", "additive", "truth")


def chosen_judge(run_dir: Path) -> str:
    """Which judge the run's notes say chose the proposals ("additive", "multi-instance" or "" if none says)."""
    notes = json.loads((run_dir / "run.json").read_text())["notes"]
    for note in notes:
        if "chooses and values the proposals" in note:
            return "additive" if note.startswith("The additive") else "multi-instance"
    return ""


def score_market(result: dict, workdir: Path) -> dict:
    """Per judge, its within-product log-likelihood per held-out click minus the constant's, for one market."""
    world, seed = result["world"], result["seed"]
    products, impressions = result["configured products"], result["configured impressions"]
    market_dir = simulated(world, seed, workdir, products, impressions)
    run_dir = workdir / f"run-{world}-{seed}-{products}-{impressions}"
    market = load_market(market_dir)
    truth = GroundTruth.load(market_dir.with_name(market_dir.name + "-truth"))
    log = click_log(market)
    judge_config = additive_config(OptimizeConfig())
    # the two judges scored exactly as the run's choice scores them (same split, same fits, same clicks)
    _, choice = choose_judge(log, MILModel.load(run_dir / "models" / "reward"), judge_config)
    rows = pooled_creatives(time_split(log, judge_config.split)[1])
    ids, combos = rows["product_id"].tolist(), [list(c) for c in rows["elements"]]
    images = market.creatives.set_index("creative_id")["image"]
    scorer = TruthScorer(market, truth)
    predicted = {
        "truth": np.array([scorer.exact(p, c, market.open_image(images[cid]).convert("RGB"))
                           for p, c, cid in zip(ids, combos, rows["creative_id"])]),
        "constant": np.full(len(rows), 0.5),
    }
    scores = {name: within_product_log_likelihood(p, rows) for name, p in predicted.items()}
    clicks = float(choice.held_out_clicks)
    per_click = {"multi-instance": choice.within_product["mil"], "additive": choice.within_product["additive"],
                 **{name: float(s["log_likelihood"].sum()) / clicks for name, s in scores.items()}}
    out = {"world": world, "seed": seed, "held-out clicks": clicks, "chosen": chosen_judge(run_dir)}
    for name in JUDGES:
        out[f"{name} - constant"] = per_click[name] - per_click["constant"]
    out["multi-instance - additive"] = per_click["multi-instance"] - per_click["additive"]
    return out


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per world and over all markets: mean and 95% t-interval of each difference, the judges auto chose."""
    out = []
    for world in [*dict.fromkeys(rows["world"]), "all"]:
        part = rows if world == "all" else rows[rows["world"] == world]
        row = {"world": world, "markets": len(part),
               "held-out clicks per market": f"{part['held-out clicks'].mean():.0f}"}
        for column in [f"{name} - constant" for name in JUDGES] + ["multi-instance - additive"]:
            row[column] = mean_interval(part[column].tolist(), "+.4f")
        row["auto chose additive"] = int((part["chosen"] == "additive").sum())
        out.append(row)
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-json", type=Path, required=True, help="bench/worlds.py's --out-json")
    parser.add_argument("--workdir", type=Path, required=True, help="bench/worlds.py's --workdir")
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--label", default="", help="what made the runs (code, seeds), for the text")
    args = parser.parse_args()
    results = [json.loads(p.read_text()) for p in sorted(args.out_json.glob("*.json"))]
    rows = pd.DataFrame([score_market(result, args.workdir) for result in results])
    seeds = sorted(set(rows["seed"]))
    text = "\n\n".join([
        HEADING,
        f"{len(rows)} markets of `bench/worlds.py` (seeds {', '.join(map(str, seeds))}; {args.label}), the latest 20% "
        "of each log by time held out. Per held-out click, the mean log-probability of which creative of its product "
        "got it (`within_product_log_likelihood`, blind to each product's level) under each judge fitted on the "
        "earlier part, minus a constant's (above 0: the judge orders the product's creatives better than no order); "
        "the truth is the world's true CTR of each logged creative on its own image, context-averaged, a ceiling. "
        f"Means over markets [95% t-interval]. Run on {machine()}, written "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        markdown_table(table(rows), 4),
    ])
    print(text)
    if args.results is not None:
        write_section(args.results, HEADING, text)


if __name__ == "__main__":
    main()
