"""Do proposals keep to a brand file? Runs `optimize` with and without one on a simulated market.

    python bench/brand.py [--seed 3] [--products 8] [--impressions 20000] [--min-contrast 4.5] [--full]
                          [--results docs/results.md]

The market is simulated in the "realistic" world. The brand file forbids the background, font and text
colour the logged creatives show most (and the second most shown background) and sets ``min_contrast``.
``optimize`` runs with the smoke settings (``--full``: the default settings) once with the brand and once
without. Printed: the brand, how many proposals of each run break it (every proposal rechecked from
``creatives.parquet``: its elements, the contrast of its text colour and background, the product's area
in the rendered image), and how many the branded run marked ``brand_compliant``. The branded run's count
of violating proposals must be 0. With ``--results`` the same lines are written as a section of that file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from markdown import write_section
from worlds import machine

from adcraft.generate.brand import load_brand
from adcraft.market import load_market
from adcraft.pipeline.optimize import OptimizeConfig, optimize
from adcraft.simulator import SimulatorConfig, simulate_market


SECTION = "## Brand guardrails: proposals that break a brand file (bench/brand.py)"


def most_shown(market, slot: str, n: int) -> list[str]:
    """The ``n`` elements of ``slot`` that the market's logged creatives use most (by creative count)."""
    position = list(market.slots).index(slot)
    counts = pd.Series([list(e)[position] for e in market.creatives["elements"]]).value_counts()
    return counts.index[:n].tolist()


def violations(brand, market, out: Path) -> tuple[int, int, list[str]]:
    """(proposals that break the brand, proposals, the first few reasons), rechecked from the written table."""
    table = pd.read_parquet(out / "creatives.parquet")
    reasons = [brand.creative_problems(market, p, list(e), list(b))
               for p, e, b in zip(table["product_id"], table["elements"], table["product_bbox"])]
    broken = [r for r in reasons if r]
    return len(broken), len(table), [r[0] for r in broken[:3]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--products", type=int, default=8)
    parser.add_argument("--impressions", type=int, default=20_000)
    parser.add_argument("--min-contrast", type=float, default=4.5)
    parser.add_argument("--full", action="store_true", help="default optimize settings instead of the smoke ones")
    parser.add_argument("--results", type=Path, default=None, help="a Markdown results file to write a section of")
    args = parser.parse_args()
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    config = OptimizeConfig() if args.full else OptimizeConfig.smoke()
    with tempfile.TemporaryDirectory(prefix="adcraft-brand-") as tmp:
        work = Path(tmp)
        simulated = simulate_market(SimulatorConfig(seed=args.seed, world="realistic", n_products=args.products,
                                                    n_impressions=args.impressions), work / "market")
        market = load_market(simulated.market_dir)
        forbidden = most_shown(market, "background", 2) + most_shown(market, "font", 1) + \
            most_shown(market, "text_color", 1)
        brand_file = work / "brand.yaml"
        brand_file.write_text(json.dumps({"forbidden_elements": forbidden, "min_contrast": args.min_contrast}))
        brand = load_brand(brand_file, market)
        say(f"market: realistic world, seed {args.seed}, {args.products} products, {args.impressions} impressions")
        say(f"brand: forbidden_elements {forbidden}, min_contrast {args.min_contrast:g}")
        counts = {}
        for name, path in (("with the brand", brand_file), ("without", None)):
            started = time.perf_counter()
            optimize(simulated.market_dir, work / name, config, brand=path)
            broken, total, examples = violations(brand, market, work / name)
            counts[name] = broken
            say(f"{name}: {broken} of {total} proposals break the brand ({time.perf_counter() - started:.0f} s)"
                  + (f"; e.g. {examples[0]}" if examples else ""))
        marked = pd.read_parquet(work / "with the brand" / "creatives.parquet")["brand_compliant"]
        say(f"marked brand_compliant by the branded run: {int(marked.sum())} of {len(marked)}")
        say(f"violating proposals with the brand: {counts['with the brand']}")
    if args.results is not None:
        settings = "the default optimize config" if args.full else "the smoke optimize config"
        write_section(args.results, SECTION, f"{SECTION}\n\nRun {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}, "
                      f"with {settings}. The brand file forbids the two backgrounds, the font and the text colour "
                      "that the logged creatives show most, and sets `min_contrast`; every proposal is checked "
                      "again from `creatives.parquet` (elements, WCAG contrast of text colour and background, the "
                      "product's area in the rendered image).\n\n" + "\n".join(f"- {line}" for line in lines))
    return 0 if counts["with the brand"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
