"""Reward-model jobs behind the CLI: train one kind on a market, load any saved model, score past creatives."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from adcraft.atomic import write_text
from adcraft.errors import InputError
from adcraft.market import Market, load_market

REWARD_KINDS = ("ctr", "pairwise", "mil", "utility", "contrastive")


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
    if kind == "contrastive":
        from adcraft.rewards.contrastive import ContrastiveConfig, ContrastiveModel, ContrastiveTrainer

        return ContrastiveConfig, ContrastiveTrainer, ContrastiveModel
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
        if kind == "contrastive":
            metrics = {"validation": {k: v for k, v in model.validation.items() if k != "products"}}
        elif kind == "pairwise":
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
