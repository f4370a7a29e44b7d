"""Does the cross-fitted evidence cover the true lift? Simulated markets, ``optimize``, then the truth.

    python bench/evidence.py [--seeds 301 302 303] [--worlds WORLD ...] [--products 120]
                             [--impressions 150000] [--smoke] [--workdir /tmp/adcraft-bench/evidence]
                             [--results docs/results.md]

For each world family and seed it simulates a market (``--worlds``: values of ``SimulatorConfig.world`` where
the simulator has that field; by default the simulator's default world), runs ``optimize`` on it as on a
user's market, and reads the true lift of the rank-1 proposals over the logging policy from the simulator's
click model (``run_ab_test``'s ``true_lift``: exact, not sampled). It reports, over all runs:

- coverage: the share of runs whose ``evidence.lift`` interval (level 0.9) holds the true lift;
- the median of ``|estimate - true| / |true|``, beside the same figure for the single-judge DR lift
  (``ope.lift``: the proposals graded by the judge that chose them);
- the mean width of the interval, and the share of runs whose lower bound exceeds the true lift.

``--smoke`` runs the seconds-long ``OptimizeConfig.smoke()`` on a small market: a check that the script
runs, not a measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from markdown import markdown_table, write_section

from adcraft.evaluate.abtest import ABTestConfig, run_ab_test
from adcraft.market import load_market
from adcraft.pipeline.optimize import OptimizeConfig, optimize
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market

HEADING = "## Evidence: coverage of the true lift"


def simulator_config(seed: int, world: str | None, products: int, impressions: int, smoke: bool) -> SimulatorConfig:
    """The simulator's settings of one run; ``world`` None keeps the simulator's default world."""
    settings: dict[str, object] = dict(seed=seed, n_products=products, n_impressions=impressions)
    if smoke:
        settings.update(canvas=(256, 256), photo_size=160)
    if world is not None:
        if "world" not in {f.name for f in dataclasses.fields(SimulatorConfig)}:
            raise SystemExit(f"--worlds {world}: this simulator has a single world (no SimulatorConfig.world)")
        settings["world"] = world
    return SimulatorConfig(**settings)


def one_run(seed: int, world: str | None, args: argparse.Namespace) -> dict:
    """Simulate, optimize and compare the run's lift figures with the true lift."""
    folder = args.workdir / f"{world or 'default'}-{seed}"
    simulated = simulate_market(simulator_config(seed, world, args.products, args.impressions, args.smoke),
                                folder / "market", folder / "truth", overwrite=True)
    config = OptimizeConfig.smoke() if args.smoke else OptimizeConfig()
    started = time.perf_counter()
    result = optimize(simulated.market_dir, folder / "run", config)
    seconds = time.perf_counter() - started
    market, truth = load_market(simulated.market_dir), GroundTruth.load(simulated.truth_dir)
    extra = folder / "run" / "elements.parquet"
    if extra.is_file():
        added = pd.read_parquet(extra)
        market = dataclasses.replace(market, elements=pd.concat([market.elements, added], ignore_index=True))
        truth = truth.with_elements(added)
    ab = run_ab_test(market, truth, result.proposals, folder / "run", config=ABTestConfig(impressions=1000, seed=seed))
    evidence, ope = result.run["evidence"], result.run["ope"]
    row = {"world": world or "default", "seed": seed, "true_lift": ab.true_lift, "seconds": round(seconds, 1),
           "single_judge_lift": ope.get("lift", np.nan)}
    if evidence.get("possible"):
        lift = evidence["lift"]
        row.update(estimate=lift["estimate"], low=lift["low"], high=lift["high"],
                   evidence_seconds=evidence["scheme"]["seconds"])
    return row


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Coverage, median relative error (cross-fitted and single-judge), mean width, per world and overall."""
    def figures(part: pd.DataFrame) -> dict:
        true = part["true_lift"].abs().replace(0.0, np.nan)
        return {
            "runs": len(part),
            "coverage": float(((part["low"] <= part["true_lift"]) & (part["true_lift"] <= part["high"])).mean()),
            "median_abs_error_over_true": float(((part["estimate"] - part["true_lift"]).abs() / true).median()),
            "single_judge_median_abs_error_over_true": float(
                ((part["single_judge_lift"] - part["true_lift"]).abs() / true).median()),
            "mean_width": float((part["high"] - part["low"]).mean()),
            "low_above_truth": float((part["low"] > part["true_lift"]).mean()),
        }

    rows = [{"world": world, **figures(part)} for world, part in runs.groupby("world")]
    rows.append({"world": "all", **figures(runs)})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[301, 302, 303])
    parser.add_argument("--worlds", nargs="+", default=[None],
                        help="values of SimulatorConfig.world (default: the simulator's default world)")
    parser.add_argument("--products", type=int, default=120)
    parser.add_argument("--impressions", type=int, default=150_000)
    parser.add_argument("--smoke", action="store_true", help="small market, OptimizeConfig.smoke(): checks the script")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "adcraft-bench" / "evidence")
    parser.add_argument("--results", type=Path, default=None, help="a Markdown results file to update")
    args = parser.parse_args()
    runs = pd.DataFrame([one_run(seed, world, args) for world in args.worlds for seed in args.seeds])
    if "estimate" not in runs:
        raise SystemExit("no run had cross-fitted evidence: " + json.dumps(runs.to_dict("records"), default=str))
    summary = summarise(runs.dropna(subset=["estimate"]))
    text = "\n\n".join([HEADING, markdown_table(runs, 3), markdown_table(summary, 3)])
    print(text)
    if args.results is not None:
        write_section(args.results, HEADING, text)


if __name__ == "__main__":
    main()
