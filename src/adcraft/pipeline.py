"""End-to-end jobs over the library: market -> features -> rewards -> generators -> render -> evaluate.

``run_demo`` is the main job on the embedded default market: simulate it, validate it as any user market
is validated, render a sample of creatives (logged ones and new combinations) and write ``index.html``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import Progress

from adcraft.atomic import write_png, write_text
from adcraft.errors import InputError
from adcraft.evaluate.gallery import Card, Section, write_gallery
from adcraft.market import Market, load_market
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
                combo = [
                    str(rng.choice(market.usable_elements(pid, slot)["element_id"])) for slot in market.config.slots
                ]
                creative = renderer.render(pid, combo)
                path = folder / f"{pid}_new{k}.png"
                write_png(path, creative.image)
                ctr = truth.ctr_of_image(pid, combo, creative.image)
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


# -- reward models -------------------------------------------------------------------------------------

REWARD_KINDS = ("ctr", "pairwise", "mil", "utility")


def _reward_classes(kind: str):
    """(config class, trainer or fit function, model class) of a reward-model kind."""
    if kind == "ctr":
        from adcraft.rewards.ctr import CTRConfig, CTRTrainer, PointwiseCTRModel

        return CTRConfig, CTRTrainer, PointwiseCTRModel
    if kind == "mil":
        from adcraft.rewards.mil import MILConfig, MILModel, MILTrainer

        return MILConfig, MILTrainer, MILModel
    if kind == "pairwise":
        from adcraft.rewards.pairwise import PairwiseConfig, PairwiseModel, PairwiseTrainer

        return PairwiseConfig, PairwiseTrainer, PairwiseModel
    if kind == "utility":
        from adcraft.rewards.utility import DemandUtilityModel, UtilityConfig

        return UtilityConfig, None, DemandUtilityModel
    raise InputError(f"unknown model kind {kind!r}; choose one of {', '.join(REWARD_KINDS)}")


def _click_validation(model, market: Market, split) -> dict:
    """Validation metrics of a click model on the held-out (latest) part of the market's logs."""
    from adcraft.evaluate.metrics import click_metrics
    from adcraft.rewards.data import click_log, time_split

    _, valid = time_split(click_log(market), split)
    probs = model.predict(valid["product_id"].tolist(), valid["elements"].tolist(), valid["context"].tolist())
    return click_metrics(valid["clicks"], valid["trials"], probs, valid["product_id"])


def train_reward_model(
    kind: str, market_dir: Path, out: Path, config_path: Path | None = None, progress: bool = False
) -> dict:
    """Train one reward model on a market, save it to ``out`` with ``metrics.json``; return the metrics."""
    from adcraft.configuration import load_config

    config_class, trainer_class, _ = _reward_classes(kind)
    config = load_config(config_class, config_path)
    market = load_market(market_dir)
    out = Path(out)
    started = time.perf_counter()
    if kind == "utility":
        from adcraft.rewards.utility import utility_table

        data = utility_table(market, config, progress)
        model = data.fit(config)
        summary = model.summary()
        metrics = {
            "rows": int(model.n_rows), "target": data.target, "r2": model.r2, "adj_r2": model.adj_r2,
            "r2_linear": model.r2_linear,
            "attributes": {name: {k: _plain(v) for k, v in row.items()} for name, row in summary.iterrows()},
        }
    else:
        model = trainer_class(config).fit(market, progress=progress)
        if kind == "pairwise":
            metrics = {
                "pairwise": {
                    "valid_accuracy": model.valid_accuracy,
                    "train_pairs": model.n_train_pairs,
                    "valid_pairs": model.n_valid_pairs,
                }
            }
        else:
            metrics = {"validation": _click_validation(model, market, config.split)}
        metrics["history"] = model.history.to_json()
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    metrics["kind"] = kind
    model.save(out)
    write_text(out / "metrics.json", json.dumps(metrics, indent=1, sort_keys=True, allow_nan=True))
    return metrics


def _plain(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def load_reward_model(folder: Path):
    """Load any saved reward model by the kind recorded in its ``config.json``."""
    from adcraft.rewards.artifacts import load_artifact

    kind = load_artifact(folder).kind
    return _reward_classes(kind)[2].load(folder)


def score_creatives(model_dir: Path, market_dir: Path, out: Path) -> Path:
    """Write ``OUT/scores.parquet``: the model's predicted CTR of every past creative of the market."""
    from adcraft.market import write_scores

    model = load_reward_model(model_dir)
    if not hasattr(model, "score_market"):
        raise InputError(f"{model_dir} holds a model that does not predict CTR (a demand utility); nothing to score")
    market = load_market(market_dir)
    scores = model.score_market(market)
    write_scores(out, scores)
    return Path(out) / "scores.parquet"
