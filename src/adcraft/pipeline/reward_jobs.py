"""Reward-model jobs behind the CLI: train one kind on a market, load any saved model, score past creatives."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adcraft.atomic import check_output_folder, check_scratch_folder, mark_output, move_into_place, write_json
from adcraft.errors import InputError
from adcraft.market import Market, load_market

if TYPE_CHECKING:
    from adcraft.learning.distributed import DataParallel

REWARD_KINDS = ("ctr", "pairwise", "mil", "utility", "contrastive")
RESUMABLE_KINDS = ("ctr", "pairwise", "mil")  # trained by training.fit with checkpoints; data-parallel too
MODEL_FOLDER = "model"
CHECKPOINT_FOLDER = "checkpoint"
METRICS_FILE = "metrics.json"


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
    from adcraft.learning.metrics import click_metrics
    from adcraft.market.click_log import click_log, time_split

    _, valid = time_split(click_log(market), split)
    probs = model.predict(valid["product_id"].tolist(), valid["elements"].tolist(), valid["context"].tolist())
    return click_metrics(valid["clicks"], valid["trials"], probs, valid["product_id"])


def train_reward_model(
    kind: str, market_dir: Path, out: Path, config_path: Path | None = None, progress: bool = False, *,
    world_size: int = 1, fresh: bool = False,
) -> dict:
    """Train one reward model on a market, save it to ``out`` with ``metrics.json``; return the metrics.

    The model is built in a staging folder beside ``out`` (``.OUT.partial``) and moved into place when
    complete, so ``out`` never holds half a model. The kinds in ``RESUMABLE_KINDS`` checkpoint their
    training there after every epoch: running the same command again after the process was killed
    continues from the last epoch to the same model (``fresh`` discards the checkpoint instead). A failed
    run removes the staging folder; an interrupted one (Ctrl-C) keeps it to resume from.

    ``world_size`` > 1 trains data-parallel in that many processes (``learning.distributed``; the kinds
    in ``RESUMABLE_KINDS``).
    """
    from adcraft.configuration import load_config

    config_class, _, _ = _reward_classes(kind)
    config = load_config(config_class, config_path)
    if world_size < 1:
        raise InputError(f"world size must be at least 1, got {world_size}")
    if world_size > 1 and kind not in RESUMABLE_KINDS:
        raise InputError(f"data-parallel training is for {', '.join(RESUMABLE_KINDS)} models, not {kind}")
    from adcraft.learning.artifacts import is_artifact

    out = Path(out)
    staging = out.parent / f".{out.name}.partial"
    check_output_folder(out, "train", inputs=[Path(market_dir)], scratch=[staging], previous=is_artifact)
    check_scratch_folder(staging, "train", lambda folder: {p.name for p in folder.iterdir()} <= {
        MODEL_FOLDER, CHECKPOINT_FOLDER})
    market = load_market(market_dir)
    if fresh:
        shutil.rmtree(staging, ignore_errors=True)
    try:
        if world_size == 1:
            _train_into(None, kind, market, config, staging, progress)
        else:
            from adcraft.learning.distributed import run_data_parallel

            run_data_parallel(_train_rank, world_size, kind, Path(market_dir), config, staging, progress)
        metrics = json.loads((staging / MODEL_FOLDER / METRICS_FILE).read_text(encoding="utf-8"))
        mark_output(staging / MODEL_FOLDER, "train")
        move_into_place(staging / MODEL_FOLDER, out)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return metrics


def _train_rank(world: DataParallel, kind: str, market_dir: Path, config, staging: Path, progress: bool) -> None:
    """One process of a data-parallel ``train_reward_model``."""
    _train_into(world, kind, load_market(market_dir), config, staging, progress and world.writes)


def _train_into(world: DataParallel | None, kind: str, market: Market, config, staging: Path, progress: bool) -> None:
    """Train, then (on the writing rank) save the model and ``metrics.json`` to ``staging/model``."""
    trainer_class = _reward_classes(kind)[1]
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
    elif kind == "contrastive":
        model = trainer_class(config).fit(market, progress=progress)
        metrics = {"validation": {k: v for k, v in model.validation.items() if k != "products"}}
    else:
        model = trainer_class(config).fit(market, progress=progress, checkpoint=staging / CHECKPOINT_FOLDER,
                                          world=world)
        if kind == "pairwise":
            metrics = {
                "pairwise": {
                    "valid_accuracy": model.valid_accuracy,
                    "train_pairs": model.n_train_pairs,
                    "valid_pairs": model.n_valid_pairs,
                    "lambda_point": model.config.lambda_point,
                    "lambda_point_selection": (
                        None if model.lambda_point_selection is None
                        else {str(k): v for k, v in model.lambda_point_selection.items()}
                    ),
                }
            }
        else:
            metrics = {"validation": _click_validation(model, market, config.split)}
    if world is not None:
        metrics["world"] = {"size": world.size, "weights_identical": world.identical(model.network)}
        if not world.writes:
            return
    if kind != "utility":
        metrics["history"] = model.history.to_json()
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    metrics["kind"] = kind
    model.save(staging / MODEL_FOLDER)
    write_json(staging / MODEL_FOLDER / METRICS_FILE, metrics, sort_keys=True)


def _plain(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


SCORING_KINDS = ("ctr", "pairwise", "mil")  # the kinds that predict a creative's CTR (``score_market``)


def load_reward_model(folder: Path):
    """Load any saved reward model by the kind recorded in its ``config.json``."""
    from adcraft.learning.artifacts import read_artifact_header

    return _reward_classes(read_artifact_header(folder)["kind"])[2].load(folder)


def check_scoring_model(folder: Path) -> str:
    """The kind of the saved model at ``folder``, read from its header; ``InputError`` unless it predicts CTR."""
    from adcraft.learning.artifacts import read_artifact_header

    kind = read_artifact_header(folder)["kind"]
    if kind not in SCORING_KINDS:
        raise InputError(f"{folder} holds a '{kind}' model, which does not predict CTR; nothing to score "
                         f"(score with a {', '.join(SCORING_KINDS)} model)")
    return kind


def load_scoring_model(folder: Path):
    """A saved reward model that predicts CTR (:func:`check_scoring_model`), loaded."""
    return _reward_classes(check_scoring_model(folder))[2].load(folder)


def score_creatives(model_dir: Path, market_dir: Path, out: Path) -> Path:
    """Write ``OUT/scores.parquet``: the model's predicted CTR of every past creative of the market."""
    from adcraft.market import write_scores

    model = load_scoring_model(model_dir)
    market = load_market(market_dir)
    scores = model.score_market(market)
    write_scores(out, scores)
    return Path(out) / "scores.parquet"
