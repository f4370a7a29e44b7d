"""The optimisation loop every learned component shares: mini-batch AdamW with early stopping.

Training stops when the validation loss has not improved for ``patience`` epochs, and the weights of the
best epoch are restored, so a model never ends on an over-fitted state.

With a checkpoint folder, the whole state is saved after every epoch (``checkpoint.py``) and a killed
run resumes to bitwise the same weights; with a ``world`` (``distributed.py``) the mini-batches are split
over data-parallel processes.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn
from torch.nn import functional as F

from adcraft.configuration import check_config
from adcraft.errors import AdcraftError, InputError
from adcraft.learning.checkpoint import (
    array_digest,
    load_checkpoint,
    module_tensors,
    optimiser_tensors,
    restore_optimiser,
    save_checkpoint,
    tensor_digest,
)
from adcraft.learning.checkpoint import fingerprint as run_fingerprint

if TYPE_CHECKING:
    from adcraft.learning.distributed import DataParallel


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings shared by the reward models."""

    epochs: int = 40
    batch_size: int = 512
    learning_rate: float = 0.01
    weight_decay: float = 1e-5
    patience: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self)
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise InputError("epochs, batch_size and patience must be at least 1")
        if not self.learning_rate > 0:
            raise InputError("learning_rate must be positive")


@dataclass
class TrainHistory:
    """Losses per epoch and the epoch whose weights were kept."""

    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1

    def to_json(self) -> dict:
        return {"train_loss": self.train_loss, "valid_loss": self.valid_loss, "best_epoch": self.best_epoch}


CHECKPOINT_FILE = "fit.safetensors"


def fit(
    model: nn.Module,
    n_train: int,
    train_loss: Callable[[torch.Tensor], torch.Tensor],
    valid_loss: Callable[[], float],
    config: TrainConfig,
    progress: bool = False,
    description: str = "training",
    *,
    checkpoint: Path | None = None,
    fingerprint: Mapping[str, Any] | None = None,
    world: DataParallel | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> TrainHistory:
    """Minimise ``train_loss(index)`` over shuffled mini-batches of ``range(n_train)``.

    ``train_loss`` gets a LongTensor of row indices and returns a scalar loss; ``valid_loss`` returns the
    validation loss of the current weights (lower is better). Raises ``AdcraftError`` if a loss is NaN.

    ``checkpoint``: a folder where the whole training state (weights, AdamW moments, best weights,
    early-stopping counters, history, the shuffling generator's and torch's global RNG states) is
    written after every epoch (``checkpoint.py``); a run that finds a checkpoint of the same run there
    continues from it and ends with bitwise the same weights and history as an uninterrupted run. The
    run's identity is ``config``, ``n_train``, the initial weights and ``fingerprint`` (the caller's
    description of its data).

    ``world``: train data-parallel (``distributed.py``): ``train_loss`` must run the model through
    ``world.wrap(model)``; each rank computes the loss on its shard of every mini-batch.

    ``on_epoch(epoch)`` is called after each epoch (and its checkpoint).
    """
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    if world is not None and not world.wraps(model):
        raise AdcraftError(f"{description}: data-parallel training needs train_loss to run world.wrap(model)")
    saver = _FitCheckpoint(checkpoint, model, optimiser, generator, config, n_train, fingerprint, world, description)
    history, best, best_state, stale, start = saver.restore()
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn())
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task(description, total=config.epochs, completed=start, status="")
        last = config.epochs if stale < config.patience else start  # a resumed run may have stopped already
        for epoch in range(start, last):
            model.train()
            order = torch.randperm(n_train, generator=generator)
            total, batches = 0.0, 0
            for begin in range(0, n_train, config.batch_size):
                index = order[begin : begin + config.batch_size]
                if world is None:
                    loss = train_loss(index)
                    value = loss.item()
                else:
                    shard, share = world.shard(index)
                    loss = train_loss(shard)
                    value = world.batch_loss(loss, share)
                    loss = loss * (share * world.size)
                if not math.isfinite(value):
                    raise AdcraftError(f"{description}: the training loss became {value} at epoch {epoch}")
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total, batches = total + value, batches + 1
            model.eval()
            with torch.no_grad():
                current = float(valid_loss())
            history.train_loss.append(total / max(batches, 1))
            history.valid_loss.append(current)
            if current < best - 1e-6:
                best, best_state, stale = current, copy.deepcopy(model.state_dict()), 0
                history.best_epoch = epoch
            else:
                stale += 1
            saver.save(history, best, best_state, stale, epoch + 1)
            if on_epoch is not None:
                on_epoch(epoch)
            bar.update(task, advance=1, status=f"valid loss {current:.5f} (best {best:.5f})")
            if stale >= config.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return history


class _FitCheckpoint:
    """Writes and restores ``fit``'s state in ``folder/fit.safetensors`` (a no-op without a folder)."""

    def __init__(self, folder: Path | None, model: nn.Module, optimiser: torch.optim.Optimizer,
                 generator: torch.Generator, config: TrainConfig, n_train: int,
                 fingerprint: Mapping[str, Any] | None, world: DataParallel | None, description: str) -> None:
        self.path = None if folder is None else Path(folder) / CHECKPOINT_FILE
        self.model, self.optimiser, self.generator, self.config = model, optimiser, generator, config
        self.writes = world is None or world.writes
        self.description = description
        self.run = "" if folder is None else run_fingerprint(
            "fit", asdict(config), n_train, None if world is None else world.size,
            tensor_digest(model.state_dict().items()), dict(fingerprint or {}),
        )

    def restore(self) -> tuple[TrainHistory, float, dict[str, torch.Tensor], int, int]:
        """(history, best loss, best state, stale epochs, epochs done): a fresh start or the checkpoint's."""
        fresh = (TrainHistory(), math.inf, copy.deepcopy(self.model.state_dict()), 0, 0)
        if self.path is None:
            return fresh
        saved = load_checkpoint(self.path, self.run, self.description)
        if saved is None:
            return fresh
        state = saved.state
        self.model.load_state_dict(saved.module_state("model."))
        restore_optimiser(self.optimiser, saved, "optimiser.")
        self.generator.set_state(saved.tensors["rng.generator"])
        torch.set_rng_state(saved.tensors["rng.torch"])
        history = TrainHistory(**state["history"])
        return history, float(state["best"]), saved.module_state("best."), int(state["stale"]), int(state["epochs"])

    def save(self, history: TrainHistory, best: float, best_state: Mapping[str, torch.Tensor], stale: int,
             epochs: int) -> None:
        if self.path is None or not self.writes:
            return
        tensors = {**module_tensors("model.", self.model), **optimiser_tensors("optimiser.", self.optimiser)}
        tensors.update({f"best.{k}": v for k, v in best_state.items()})
        tensors["rng.generator"] = self.generator.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        state = {"epochs": epochs, "best": best, "stale": stale, "history": history.to_json(),
                 "position": f"epoch {epochs} of {self.config.epochs}"}
        save_checkpoint(self.path, self.run, state, tensors)


def binomial_loss(logits: torch.Tensor, clicks: torch.Tensor, trials: torch.Tensor) -> torch.Tensor:
    """Impression-weighted binomial negative log-likelihood per impression.

    ``-sum(clicks log p + (trials - clicks) log(1 - p)) / sum(trials)``: the mean log loss over the raw
    impressions that the aggregated rows stand for.
    """
    nll = -(clicks * F.logsigmoid(logits) + (trials - clicks) * F.logsigmoid(-logits))
    return nll.sum() / trials.sum()


class RowBatch(Protocol):
    """Inputs of n rows that a network maps to n logits (the reward models' ``CreativeBatch``)."""

    def __len__(self) -> int: ...

    def take(self, index: torch.Tensor) -> Self: ...

    def tensors(self) -> tuple[torch.Tensor, ...]: ...


ClickTensors = tuple[RowBatch, torch.Tensor, torch.Tensor]


def fit_click_model(
    network: nn.Module,
    train: ClickTensors,
    valid: ClickTensors,
    config: TrainConfig,
    progress: bool = False,
    description: str = "training",
    *,
    checkpoint: Path | None = None,
    world: DataParallel | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> TrainHistory:
    """``fit`` a network from a ``RowBatch`` to click logits on (batch, clicks, trials) tensors.

    The loss is ``binomial_loss`` on training mini-batches; early stopping watches it on ``valid``.
    ``checkpoint``, ``world`` and ``on_epoch`` are passed to ``fit``; the checkpoint's fingerprint covers
    the training and validation outcomes.
    """
    train_batch, train_clicks, train_trials = train
    valid_batch, valid_clicks, valid_trials = valid
    forward = network if world is None else world.wrap(network)

    def train_loss(index: torch.Tensor) -> torch.Tensor:
        return binomial_loss(forward(train_batch.take(index)), train_clicks[index], train_trials[index])

    def valid_loss() -> float:
        return float(binomial_loss(network(valid_batch), valid_clicks, valid_trials))

    data = {"train": _click_digest(train), "valid": _click_digest(valid)}
    return fit(network, len(train_batch), train_loss, valid_loss, config, progress, description,
               checkpoint=checkpoint, fingerprint=data, world=world, on_epoch=on_epoch)


def _click_digest(tensors: ClickTensors) -> str:
    batch, clicks, trials = tensors
    return array_digest(clicks, trials, *batch.tensors())


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run a block with ``threads`` torch intra-op threads (None: unchanged), then restore the setting.

    The small networks trained here (policies, prompt models) have matrices too small for intra-op
    parallelism to pay; on a busy machine the threads' waiting costs many times the work.
    """
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
