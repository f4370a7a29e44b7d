"""Does a change of code leave `adcraft optimize`'s output unchanged? Runs both versions on one market.

    python bench/same_behaviour.py --before REV [--after REV] [--seed 11] [--products 16] [--impressions 12000]
                               [--after-config CONFIG]

The market is simulated by the ``--before`` code (so both versions read the same files); each version runs
``adcraft optimize`` with its default config (the ``--after`` run with ``--after-config`` when given, e.g. one
switching off a stage the older code lacks) in a fresh process with its own empty feature cache.
Printed: whether the proposals (product, rank, elements) are equal, the largest difference of predicted
CTRs, the off-policy estimates of both, and how many rendered PNGs differ byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def checkout(rev: str, into: Path) -> Path:
    """The source tree of ``rev`` (a detached worktree), or the working tree for ``rev`` = ``WORKTREE``."""
    if rev == "WORKTREE":
        return ROOT
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(into), rev], check=True)
    return into


def adcraft(source: Path, cache: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(source / "src"), "HF_HUB_OFFLINE": "1", "ADCRAFT_CACHE_DIR": str(cache)}
    subprocess.run([sys.executable, "-m", "adcraft.cli", *args], env=env, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", default="WORKTREE")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--products", type=int, default=16)
    parser.add_argument("--impressions", type=int, default=12_000)
    parser.add_argument("--after-config", type=Path, help="optimize config of the --after run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="adcraft-same-") as tmp:
        work = Path(tmp)
        trees = {}
        try:
            trees = {name: checkout(rev, work / f"src-{name}") for name, rev in
                     (("before", args.before), ("after", args.after))}
            adcraft(trees["before"], work / "cache-sim", "simulate", "--products", str(args.products),
                    "--impressions", str(args.impressions), "--seed", str(args.seed), "--out", str(work / "m"))
            after_config = ["--config", str(args.after_config.resolve())] if args.after_config else []
            for name, tree in trees.items():
                adcraft(tree, work / f"cache-{name}", "optimize", "--market", str(work / "m"), "--out",
                        str(work / name), *(after_config if name == "after" else []))
            before, after = (pd.read_parquet(work / n / "creatives.parquet") for n in ("before", "after"))
            same = (len(before) == len(after)
                    and before[["product_id", "rank"]].equals(after[["product_id", "rank"]])
                    and all(list(a) == list(b) for a, b in zip(before["elements"], after["elements"])))
            ope = {n: json.loads((work / n / "run.json").read_text())["ope"] for n in ("before", "after")}
            images = sorted(p.name for p in (work / "before" / "creatives").iterdir())
            differing = sum((work / "before" / "creatives" / i).read_bytes()
                            != (work / "after" / "creatives" / i).read_bytes() for i in images)
            print(f"market: seed {args.seed}, {args.products} products, {args.impressions} impressions")
            print(f"proposals equal: {same} ({len(before)} rows)")
            print(f"largest predicted CTR difference: {np.abs(before.predicted_ctr - after.predicted_ctr).max():.3g}")
            for name, value in ope.items():
                print(f"{name}: off-policy lift {value.get('lift')} [{value.get('lift_ci_low')}, "
                      f"{value.get('lift_ci_high')}], matched impressions {value.get('matched_impressions')}")
            print(f"rendered PNGs differing: {differing} of {len(images)}")
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


if __name__ == "__main__":
    main()
