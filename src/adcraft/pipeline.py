"""End-to-end jobs over the library: market -> features -> rewards -> generators -> render -> evaluate.

``run_demo`` is the main job on the embedded default market: simulate it, validate it as any user market
is validated, render a sample of creatives (logged ones and new combinations) and write ``index.html``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import Progress

from adcraft.evaluate.gallery import Card, Section, write_gallery
from adcraft.market import load_market
from adcraft.render.from_market import MarketRenderer
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo job."""

    out: Path = Path("out")
    seed: int = 0
    n_products: int = 120
    n_impressions: int = 150_000
    sample: int = 12
    new_per_product: int = 3


@dataclass(frozen=True)
class DemoResult:
    market_dir: Path
    truth_dir: Path
    page: Path
    rendered: int


def run_demo(config: DemoConfig, progress: bool = False) -> DemoResult:
    """Simulate the default market, validate it, render a sample of creatives and write the page."""
    out = Path(config.out)
    simulated = simulate_market(
        SimulatorConfig(seed=config.seed, n_products=config.n_products, n_impressions=config.n_impressions),
        out / "market",
        out / "market-truth",
        progress=progress,
        overwrite=True,
    )
    market = load_market(simulated.market_dir)
    truth = GroundTruth.load(simulated.truth_dir)
    renderer = MarketRenderer(market)
    rng = np.random.default_rng(config.seed)

    stats = market.creative_stats.groupby("creative_id")[["impressions", "clicks"]].sum()
    true_ctr = truth.creatives.set_index("creative_id")["true_ctr"]
    products = market.products.set_index("product_id")
    sample = rng.choice(products.index.to_numpy(), size=min(config.sample, len(products)), replace=False)
    folder = out / "creatives"
    folder.mkdir(parents=True, exist_ok=True)
    sections, rendered = [], 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("rendering sample creatives", total=len(sample) * config.new_per_product)
        for pid in sorted(sample):
            cards = []
            past = market.creatives[market.creatives["product_id"] == pid]
            for cid, image in zip(past["creative_id"], past["image"]):
                shown = stats.loc[cid] if cid in stats.index else pd.Series({"impressions": 0, "clicks": 0})
                observed = shown["clicks"] / shown["impressions"] if shown["impressions"] else float("nan")
                cards.append(
                    Card(
                        image=f"market/{image}",
                        caption=(
                            f"{cid}",
                            f"logged CTR {observed:.2%} ({int(shown['clicks'])}/{int(shown['impressions'])})",
                            f"true CTR {true_ctr[cid]:.2%}",
                        ),
                        badge="logged",
                    )
                )
            for k in range(config.new_per_product):
                combo = [str(rng.choice(market.usable_elements(pid, slot)["element_id"])) for slot in market.config.slots]
                creative = renderer.render(pid, combo)
                path = folder / f"{pid}_new{k}.png"
                creative.image.save(path)
                ctr = truth.ctr_of_image(pid, combo, creative.image, creative.product_bbox)
                cards.append(
                    Card(
                        image=f"creatives/{path.name}",
                        caption=(", ".join(combo), f"true CTR {ctr:.2%}"),
                        badge="new",
                    )
                )
                rendered += 1
                bar.advance(task)
            row = products.loc[pid]
            sections.append(Section(title=f"{pid} · {row['title']}", subtitle=str(row["category"]), cards=tuple(cards)))
    lead = (
        f"Simulated market (seed {config.seed}): {len(market.products)} products, {len(market.creatives)} past "
        f"creatives, {len(market.impressions)} logged impressions. Logged creatives show their observed CTR; "
        "all show the simulator's true CTR."
    )
    page = write_gallery(out / "index.html", "adcraft demo: creatives of the default market", lead, sections)
    return DemoResult(market_dir=simulated.market_dir, truth_dir=simulated.truth_dir, page=page, rendered=rendered)
