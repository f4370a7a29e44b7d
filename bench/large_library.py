"""``optimize`` on a market whose shared element library holds tens of thousands of extra titles.

    python bench/large_library.py [--titles 50000] [--products 20] [--impressions 20000] [--seed 17]
                                  [--workdir /tmp/adcraft-bench/large-library] [--limit-seconds 600]
                                  [--limit-gb 4]

Real element libraries are large: a shop's copy team keeps thousands of titles that any product may use.
The script simulates a market (``realistic`` world, ``--seed``), then adds ``--titles`` shared title
elements (``product_id`` null, so every product may use every one of them; texts of 6 to 14 words drawn
from a fixed vocabulary with the same seed) to ``elements.parquet``. ``adcraft validate`` must accept the
market; ``adcraft optimize`` then runs on it with the default config, in a child process, and the script
prints its wall time, the children's CPU time and the load average at the end (wall time means little on a
machine other work shares), the child's peak resident memory (``ru_maxrss`` of the waited-for child), the
number of proposals and whether the run kept within ``--limit-seconds`` and ``--limit-gb`` (exit 1 otherwise).

The usual limits are the ones ``bench/optimize.py`` holds ``optimize`` to on a 120-product market: 10
minutes and 4 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from adcraft.simulator import SimulatorConfig, simulate_market

WORDS = ("soft", "light", "classic", "everyday", "fresh", "bold", "warm", "premium", "easy", "smart", "cosy",
         "summer", "winter", "new", "best", "value", "comfort", "style", "quality", "perfect", "pick", "home",
         "travel", "sport", "gift", "daily", "essential", "modern", "natural", "bright")


def extra_titles(n: int, seed: int) -> pd.DataFrame:
    """``n`` shared title elements with seeded texts of 6 to 14 words."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(6, 15, n)
    texts = [" ".join(rng.choice(WORDS, size=length)).capitalize() for length in lengths]
    return pd.DataFrame({"element_id": [f"bulk-title-{i:06d}" for i in range(n)], "slot": "title",
                         "product_id": None, "text": texts, "value": None, "image": None})


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "adcraft.cli", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--titles", type=int, default=50_000)
    parser.add_argument("--products", type=int, default=20)
    parser.add_argument("--impressions", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "adcraft-bench" / "large-library")
    parser.add_argument("--limit-seconds", type=float, default=600.0)
    parser.add_argument("--limit-gb", type=float, default=4.0)
    args = parser.parse_args()

    shutil.rmtree(args.workdir, ignore_errors=True)
    simulated = simulate_market(SimulatorConfig(seed=args.seed, world="realistic", n_products=args.products,
                                                n_impressions=args.impressions),
                                args.workdir / "market", args.workdir / "truth")
    elements_file = simulated.market_dir / "elements.parquet"
    elements = pd.read_parquet(elements_file)
    added = extra_titles(args.titles, args.seed)
    pd.concat([elements, added[elements.columns]], ignore_index=True).to_parquet(elements_file, index=False)
    print(f"market: {args.products} products, {args.impressions} impressions, "
          f"{len(elements)} elements + {len(added)} shared titles", flush=True)

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(cli("validate", str(simulated.market_dir)), check=True, env=env)
    started = time.perf_counter()
    run = subprocess.run(cli("optimize", "--market", str(simulated.market_dir), "--out", str(args.workdir / "run")),
                         env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_gb = usage.ru_maxrss * 1024 / 1e9  # kB on Linux
    if run.returncode != 0:
        raise SystemExit(f"optimize failed (exit {run.returncode}): {run.stderr.strip().splitlines()[-1:]}")
    proposals = pd.read_parquet(args.workdir / "run" / "creatives.parquet")
    used = {e for combo in proposals["elements"] for e in combo} & set(added["element_id"])
    timings = json.loads((args.workdir / "run" / "run.json").read_text()).get("timings", {})
    figures = {"titles_added": args.titles, "products": args.products, "impressions": args.impressions,
               "seed": args.seed, "seconds": round(seconds, 1),
               "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),  # validate + optimize, all threads
               "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()], "peak_gb": round(peak_gb, 2),
               "proposals": len(proposals), "proposals_using_added_titles": int(sum(
                   any(e in used for e in combo) for combo in proposals["elements"])),
               "within_limits": seconds <= args.limit_seconds and peak_gb <= args.limit_gb,
               "stage_seconds": timings.get("stages", timings)}
    print(json.dumps(figures, indent=2))
    if not figures["within_limits"]:
        raise SystemExit(f"over the limits ({args.limit_seconds:.0f} s, {args.limit_gb:g} GB)")


if __name__ == "__main__":
    main()
