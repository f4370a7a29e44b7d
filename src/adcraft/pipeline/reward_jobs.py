"""Reward-model jobs behind the CLI: train one kind on a market, score past creatives (kinds: ``rewards.registry``)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from adcraft.atomic import check_output_folder, check_scratch_folder, mark_output, move_into_place, write_json
from adcraft.errors import InputError
from adcraft.market import Market, load_market
from adcraft.rewards import registry

if TYPE_CHECKING:
    from adcraft.learning.distributed import DataParallel

MODEL_FOLDER = "model"
CHECKPOINT_FOLDER = "checkpoint"
METRICS_FILE = "metrics.json"


def train_reward_model(
    kind: str, market_dir: Path, out: Path, config_path: Path | None = None, progress: bool = False, *,
    world_size: int = 1, fresh: bool = False,
) -> dict:
    """Train one reward model on a market, save it to ``out`` with ``metrics.json``; return the metrics.

    The model is built in a staging folder beside ``out`` (``.OUT.partial``) and moved into place when
    complete, so ``out`` never holds half a model. The ``resumable`` kinds (``rewards.registry``) checkpoint their
    training there after every epoch: running the same command again after the process was killed
    continues from the last epoch to the same model (``fresh`` discards the checkpoint instead). A failed
    run removes the staging folder; an interrupted one (Ctrl-C) keeps it to resume from.

    ``world_size`` > 1 trains data-parallel in that many processes (``learning.distributed``; the
    ``resumable`` kinds).
    """
    from adcraft.configuration import load_config

    spec = registry.spec(kind)
    config = load_config(spec.config_class, config_path)
    if world_size < 1:
        raise InputError(f"world size must be at least 1, got {world_size}")
    if world_size > 1 and not spec.capabilities.resumable:
        raise InputError(f"data-parallel training is for {', '.join(registry.kinds_with('resumable'))} models, "
                         f"not {kind}")
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
    spec = registry.spec(kind)
    started = time.perf_counter()
    resume = {"checkpoint": staging / CHECKPOINT_FOLDER, "world": world} if spec.capabilities.resumable else {}
    model = spec.model_class.train(market, config, progress=progress, **resume)
    if world is not None:
        identical = world.identical(model.network)
        if not world.writes:
            return
    metrics = model.metrics(market)
    if world is not None:
        metrics["world"] = {"size": world.size, "weights_identical": identical}
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    metrics["kind"] = kind
    model.save(staging / MODEL_FOLDER)
    write_json(staging / MODEL_FOLDER / METRICS_FILE, metrics, sort_keys=True)


def score_creatives(model_dir: Path, market_dir: Path, out: Path) -> Path:
    """Write ``OUT/scores.parquet``: the model's predicted CTR of every past creative of the market."""
    from adcraft.market import write_scores

    model = registry.load(model_dir, "scores_combinations")
    market = load_market(market_dir)
    scores = model.score_market(market)
    write_scores(out, scores)
    return Path(out) / "scores.parquet"
