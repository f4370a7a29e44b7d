"""Paired comparison of two ``bench/worlds.py`` result sets: the same markets, two optimize configs.

    python bench/ablation.py --base DIR --variant DIR --name "judge: additive" [--results docs/results.md]

``--base`` and ``--variant`` are ``--out-json`` folders of ``bench/worlds.py`` runs on the same (world, seed)
markets, e.g. the default config and ``--config bench/configs/judge_additive.yaml``, or two versions of the code
(``--base-label``, ``--variant-label`` say which). For every (world, seed) in both, the script takes optimize's
share of the oracle lift, harm share, true lift, kept products, whether its reported interval holds the true lift
(1 or 0) and its reported minus true lift, and reports
per world and over all pairs the mean of variant - base with a 95% paired t-interval over the pairs. With
``--workdir`` (the markets' and runs' folder of ``bench/worlds.py``) it adds the share of the oracle lift and the
harm share had every product launched its rank-1 proposal (``evidence.rank1_scored``): what the
judges' proposals are worth before do no harm keeps any of them back (``--variant-workdir`` where the variant's
runs are in a folder of their own).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from evidence import rank1_scored
from markdown import markdown_table, write_section
from worlds import OPTIMIZE, mean_interval

METRICS = ("share of oracle lift", "harm share", "true lift", "kept products", "interval holds the true lift",
           "reported - true lift")


LAUNCHED = ("share of oracle lift, every proposal launched", "harm share, every proposal launched")


def load(folder: Path, workdir: Path | None = None) -> dict[tuple[str, int], dict]:
    out = {}
    for path in sorted(folder.glob("*.json")):
        result = json.loads(path.read_text())
        figures = dict(result["methods"][OPTIMIZE])
        if "reported low" in figures:  # the run's evidence against the truth: 1 where its interval holds it
            true = figures["true lift"]
            figures["interval holds the true lift"] = float(figures["reported low"] <= true <= figures["reported high"])
            figures["reported - true lift"] = figures["reported lift"] - true
        if workdir is not None:
            figures.update(zip(LAUNCHED, rank1_scored(result, workdir, kept_rows=False)))
        out[(result["world"], int(result["seed"]))] = figures
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--variant", type=Path, required=True)
    parser.add_argument("--name", required=True, help="what the variant changes, for the heading")
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--base-label", default="with the default config",
                        help="what made the base runs, for the text (e.g. 'at commit abc1234')")
    parser.add_argument("--variant-label", default="with the variant", help="what made the variant runs")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="bench/worlds.py's --workdir: also score every product's rank-1 proposal launched")
    parser.add_argument("--variant-workdir", type=Path, default=None,
                        help="the variant's --workdir where it is not --workdir's (two versions of the code)")
    args = parser.parse_args()
    base, variant = load(args.base, args.workdir), load(args.variant, args.variant_workdir or args.workdir)
    pairs = sorted(set(base) & set(variant))
    if not pairs:
        raise SystemExit("no (world, seed) in both result sets")
    rows = []
    for world in [*dict.fromkeys(w for w, _ in pairs), "all"]:
        mine = [p for p in pairs if world in ("all", p[0])]
        row = {"world": world, "pairs": len(mine)}
        for metric in METRICS + (LAUNCHED if args.workdir is not None else ()):
            row[f"base {metric}"] = float(np.mean([base[p].get(metric, math.nan) for p in mine]))
            row[f"variant - base {metric}"] = mean_interval(  # a paired t-interval: over the differences
                [variant[p].get(metric, math.nan) - base[p].get(metric, math.nan) for p in mine], "+.3f")
        rows.append(row)
    heading = f"## Ablation: {args.name} (bench/ablation.py)"
    seeds = sorted({s for _, s in pairs})
    text = "\n\n".join([
        heading,
        f"Paired over {len(pairs)} (world, seed) markets (seeds {', '.join(map(str, seeds))}) run by `bench/worlds.py` "
        f"{args.base_label} (base, `{args.base}`) and {args.variant_label} (`{args.variant}`). Means of the base, "
        "and of variant - base with a 95% paired t-interval over the markets.",
        markdown_table(pd.DataFrame(rows), 3),
    ])
    print(text)
    if args.results is not None:
        write_section(args.results, heading, text)


if __name__ == "__main__":
    main()
