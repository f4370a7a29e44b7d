"""Are the off-policy estimators unbiased on simulated logs? Mean error over many independent logs.

    python bench/ope_unbiased.py [--logs 500] [--impressions 20000] [--seed 7] [--workdir out/bench]
                                 [--results docs/results.md]

One simulated market fixes the truth (true CTR of every past creative in every context). Each of
``--logs`` independent logs is drawn from the simulator's logging policy (``log_impressions``; every log
draws its own traffic shares and house defaults). The target policy shows each product's truly best
past creative. For every log and estimator: error = estimate - true value of the target policy under
that log's traffic. An unbiased estimator's mean error should sit within about two standard errors
(sd of the errors / sqrt(logs)) of zero; DM with a deliberately crude reward model (the log's base
rate for every creative) is included to show what bias looks like. DR uses the same crude model;
Switch-DR falls back to it where the weight exceeds tau, so it is biased by design.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from markdown import markdown_table, write_section

from adcraft.evaluate.ope import estimate_policy_value
from adcraft.market import load_market
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market
from adcraft.simulator.build import log_impressions
from adcraft.simulator.click_model import contexts

SECTION = "## Unbiasedness of the off-policy estimators on simulated logs (bench/ope_unbiased.py)"
ESTIMATORS = ("ips", "snips", "dr", "switch-dr", "dm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=500)
    parser.add_argument("--impressions", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("out/bench"))
    parser.add_argument("--results", type=Path, default=Path("docs/results.md"))
    args = parser.parse_args()

    config = SimulatorConfig(seed=args.seed, n_products=20, n_impressions=2_000, creatives_per_product=4)
    folder = args.workdir / f"ope-market-{args.seed}"
    if not (folder / "market.json").is_file():
        simulate_market(config, folder, overwrite=True)
    market = load_market(folder)
    truth = GroundTruth.load(folder.with_name(folder.name + "-truth"))

    creatives = market.creatives[["creative_id", "product_id", "elements"]].reset_index(drop=True)
    attrs = truth.creatives.set_index("creative_id")
    names = [t.attribute for t in truth.model.click_terms]
    ctx = contexts()
    true_ctr = np.array(
        [
            truth.model.ctr_by_context(p, list(e), {n: float(attrs.at[c, n]) for n in names})
            for c, p, e in zip(creatives["creative_id"], creatives["product_id"], creatives["elements"])
        ]
    )
    averaged = true_ctr @ np.array([w for _, w in ctx])
    best = creatives.assign(ctr=averaged).sort_values("ctr").groupby("product_id").tail(1)
    best_of = dict(zip(best["product_id"], best["creative_id"]))
    row_of = {c: i for i, c in enumerate(creatives["creative_id"])}

    errors = {name: [] for name in ESTIMATORS}
    ess = {name: [] for name in ESTIMATORS}
    started = time.perf_counter()
    for i in range(args.logs):
        rng = np.random.default_rng(10_000 + i)
        log, policy = log_impressions(replace(config, n_impressions=args.impressions), creatives, true_ctr, rng)
        owner = log["creative_id"].map(dict(zip(creatives["creative_id"], creatives["product_id"])))
        target = (log["creative_id"] == owner.map(best_of)).to_numpy(dtype=float)
        share = policy["traffic_share"]
        # true value: traffic-weighted, context-averaged true CTR of each product's best creative
        value = sum(share[p] * averaged[row_of[c]] for p, c in best_of.items())
        rewards = log["click"].to_numpy(dtype=float)
        base = np.full(len(log), rewards.mean())
        for name in ESTIMATORS:
            estimate = estimate_policy_value(
                rewards, log["propensity"].to_numpy(), target, name, base, base, n_bootstrap=2, seed=i
            )
            errors[name].append(estimate.value - value)
            ess[name].append(estimate.ess)
    rows = []
    for name in ESTIMATORS:
        e = np.asarray(errors[name])
        se = e.std(ddof=1) / np.sqrt(len(e))
        rows.append(
            {
                "estimator": name,
                "mean_error": float(e.mean()),
                "se_of_mean": float(se),
                "z": float(e.mean() / se),
                "within_2_se": bool(abs(e.mean()) <= 2 * se),
                "rmse": float(np.sqrt(np.mean(e**2))),
                "mean_ess": float(np.mean(ess[name])),
            }
        )
    table = pd.DataFrame(rows)
    text = "\n".join(
        [
            SECTION,
            "",
            f"{args.logs} independent logs of {args.impressions} impressions "
            f"(log seeds 10000..{10_000 + args.logs - 1}) "
            f"from the logging policy of a simulated market (seed {args.seed}, 20 products x 4 past creatives); "
            "target policy: each product's truly best past creative. DR, Switch-DR (tau 10) and DM use a "
            "deliberately crude reward model (the log's base rate for every creative); DM's bias shows it. "
            "Switch-DR is not unbiased by design: rows whose weight exceeds tau fall back to that model.",
            "",
            markdown_table(table, digits=5),
            "",
            f"Run time {time.perf_counter() - started:.0f} s.",
        ]
    )
    print(text)
    write_section(args.results, SECTION, text)


if __name__ == "__main__":
    main()
