"""Does the cross-fitted evidence cover the true lift? The benchmark worlds' runs of ``optimize``, against the truth.

    python bench/evidence.py [--worlds realistic main_effects ...] [--seeds 8101 8102]
                             [--products 30] [--impressions 30000] [--out-json DIR] [--workdir DIR]
                             [--results docs/results.md] [--table-only]

For every (world, seed) it takes ``bench/worlds.py``'s result (running ``worlds.score_world`` first when that
result is not in ``--out-json`` yet, so both scripts share one run per market): ``adcraft optimize``'s
``evidence.lift`` (estimate and interval at level 0.9, after do-no-harm: each kept product shows its best logged
creative) beside the true lift of the rank-1 creatives it wrote, scored by the world's truth on their rendered
pixels (``sum_p w_p T_p / sum_p w_p L_p - 1``). It reports, per world and over all runs:

- coverage: the share of runs whose interval holds the true lift, with its 95% Wilson interval;
- the median of ``|estimate - true| / |true|``;
- the mean width of the interval, and the shares of runs whose lower bound exceeds the true lift (an
  overstated headline) and whose upper bound falls below it;
- the mean number of products kept by do-no-harm.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from markdown import markdown_table, write_section
from worlds import BENCH_WORLDS, OPTIMIZE, result_path, score_world, write_result

HEADING = "## Evidence: coverage of the true lift (bench/evidence.py)"


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion (Wilson, JASA 1927)."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def run_rows(results: list[dict]) -> pd.DataFrame:
    """One row per (world, seed): the true lift beside the run's evidence."""
    rows = []
    for r in results:
        got = r["methods"][OPTIMIZE]
        rows.append({"world": r["world"], "seed": r["seed"], "true lift": got["true lift"],
                     "estimate": got.get("reported lift", math.nan), "low": got.get("reported low", math.nan),
                     "high": got.get("reported high", math.nan),
                     "proposals lift (before do-no-harm)": got.get("proposals lift", math.nan),
                     "kept products": got.get("kept products", math.nan), "products": r["products"],
                     "harm share": got["harm share"], "share of oracle lift": got["share of oracle lift"]})
    return pd.DataFrame(rows).astype({"low": float, "high": float, "estimate": float})


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Coverage (Wilson 95%), median relative error, mean width and misses, per world and over all runs."""
    def figures(part: pd.DataFrame) -> dict:
        covered = (part["low"] <= part["true lift"]) & (part["true lift"] <= part["high"])
        low, high = wilson(int(covered.sum()), len(part))
        true = part["true lift"].abs().replace(0.0, np.nan)
        error = (part["estimate"] - part["true lift"]).abs() / true
        return {"runs": len(part), "coverage": float(covered.mean()), "coverage 95% low": low,
                "coverage 95% high": high,
                "median |estimate - true| / |true|": float(error.median()),
                "mean width": float((part["high"] - part["low"]).mean()),
                "low above truth": float((part["low"] > part["true lift"]).mean()),
                "high below truth": float((part["high"] < part["true lift"]).mean()),
                "mean kept share": float((part["kept products"] / part["products"]).mean())}

    rows = [{"world": world, **figures(part)} for world, part in runs.groupby("world", sort=False)]
    rows.append({"world": "all", **figures(runs)})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", nargs="+", default=list(BENCH_WORLDS), choices=BENCH_WORLDS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[8101, 8102])
    parser.add_argument("--products", type=int, default=30)
    parser.add_argument("--impressions", type=int, default=30_000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "adcraft-bench" / "worlds")
    parser.add_argument("--out-json", type=Path,
                        default=Path(tempfile.gettempdir()) / "adcraft-bench" / "worlds-results")
    parser.add_argument("--results", type=Path, default=None, help="a Markdown results file to update")
    parser.add_argument("--table-only", action="store_true", help="summarise the JSON files only")
    args = parser.parse_args()
    results = []
    for seed in args.seeds:
        for world in args.worlds:
            path = result_path(args.out_json, world, seed, args.products, args.impressions)
            if not path.is_file() and not args.table_only:
                args.workdir.mkdir(parents=True, exist_ok=True)
                try:
                    write_result(path, score_world(world, seed, args))
                except (Exception, SystemExit):  # one failed market must not stop the others
                    print(f"{world} {seed} failed:", flush=True)
                    traceback.print_exc()
                    continue
            if path.is_file():
                results.append(json.loads(path.read_text()))
    runs = run_rows([r for r in results if "reported low" in r["methods"][OPTIMIZE]])
    if runs.empty:
        raise SystemExit("no run with cross-fitted evidence among the results")
    text = "\n\n".join([
        HEADING,
        f"Worlds {', '.join(dict.fromkeys(runs['world']))}; seeds {', '.join(map(str, sorted(set(runs['seed']))))}; "
        f"{args.products} products and {args.impressions} impressions per market (the `sparse` world simulates four "
        "times as many products); `adcraft optimize` with its default config; intervals at level 0.9; lifts relative "
        f"to the logging policy's true CTR. Run on {'; '.join(sorted({r['machine'] for r in results}))}; written "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
        markdown_table(summary(runs), 3),
        "Per run:",
        markdown_table(runs, 3),
    ])
    print(text)
    if args.results is not None:
        write_section(args.results, HEADING, text)


if __name__ == "__main__":
    main()
