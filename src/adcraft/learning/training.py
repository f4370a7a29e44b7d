"""The optimisation loop every learned component shares: mini-batch AdamW with early stopping.

``fit`` is the one mini-batch loop of the package: the reward models, behaviour cloning of the
combination policy, the prompt model's supervised fit and each DPO/PCPO preference round all run
through it. Epochs shuffle the rows with a seeded generator; with a validation loss, training stops
when it has not improved for ``patience`` epochs and the weights of the best epoch are restored, so a
model never ends on an over-fitted state (a trainer without validation data runs all its epochs).

With a checkpoint folder, the whole state is saved after every epoch (``checkpoint.py``) and a killed
run resumes to bitwise the same weights; with a ``world`` (``distributed.py``) the mini-batches are split
over data-parallel processes.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
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
    """Settings of ``fit``: the reward models read them from their configs; the other trainers build them
    from their own (behaviour cloning, the prompt model, the preference rounds)."""

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


@dataclass
class LoopState:
    """Where ``fit`` stands between epochs, besides the weights, the optimiser and the shuffling generator:
    what a checkpoint must hold for a resumed run to end with the same bits.

    ``best`` and ``best_weights`` are the lowest validation loss and the weights that reached it (the
    initial weights before any epoch); without validation ``best_weights`` is None and the last epoch's
    weights are kept. ``stale`` counts the epochs since the validation loss last improved.
    """

    history: TrainHistory = field(default_factory=TrainHistory)
    epochs: int = 0
    best: float = math.inf
    best_weights: dict[str, torch.Tensor] | None = None
    stale: int = 0

    @classmethod
    def fresh(cls, model: nn.Module, validated: bool) -> LoopState:
        return cls(best_weights=copy.deepcopy(model.state_dict()) if validated else None)

    def record(self, epoch: int, model: nn.Module, valid: float | None) -> None:
        """Note an epoch's validation loss (None without validation): keep the weights of a new best."""
        if valid is None:
            self.history.best_epoch = epoch
            return
        self.history.valid_loss.append(valid)
        if valid < self.best - 1e-6:
            self.best, self.best_weights, self.stale = valid, copy.deepcopy(model.state_dict()), 0
            self.history.best_epoch = epoch
        else:
            self.stale += 1


class LoopCheckpoint(Protocol):
    """Where ``fit`` saves its state after every epoch and finds it again when a killed run restarts.

    ``fit`` with a folder uses its own file (``fit.safetensors``); a trainer whose checkpoint also holds
    other phases (the combination policy's: behaviour cloning, then RL) passes an object of its own that
    writes the same state into its file. ``restore`` loads a saved run's weights, optimiser and generator
    state and returns its ``LoopState`` (None: start afresh); ``save`` may skip epochs (a save interval).
    """

    def restore(self, model: nn.Module, optimiser: torch.optim.Optimizer, generator: torch.Generator
                ) -> LoopState | None: ...

    def save(self, model: nn.Module, optimiser: torch.optim.Optimizer, generator: torch.Generator,
             state: LoopState) -> None: ...


def fit(
    model: nn.Module,
    n_train: int,
    train_loss: Callable[[torch.Tensor], torch.Tensor],
    valid_loss: Callable[[], float] | None,
    config: TrainConfig,
    progress: bool = False,
    description: str = "training",
    *,
    checkpoint: Path | LoopCheckpoint | None = None,
    fingerprint: Mapping[str, Any] | None = None,
    world: DataParallel | None = None,
    on_epoch: Callable[[int], None] | None = None,
    before_epoch: Callable[[int], None] | None = None,
    generator: torch.Generator | None = None,
    optimiser: torch.optim.Optimizer | None = None,
    row_weights: torch.Tensor | None = None,
    max_grad_norm: float | None = None,
) -> TrainHistory:
    """Minimise ``train_loss(index)`` over shuffled mini-batches of ``range(n_train)``, for ``config.epochs``
    epochs or until early stopping.

    ``train_loss`` gets a LongTensor of row indices and returns a scalar loss. ``valid_loss`` returns the
    validation loss of the current weights (lower is better): training stops after ``config.patience``
    epochs without improvement and the best epoch's weights are restored. Without ``valid_loss`` (a
    trainer with no validation data) all epochs run and the last weights are kept. Raises
    ``AdcraftError`` if a loss is NaN.

    ``checkpoint``: a folder where the whole training state (weights, AdamW moments, best weights,
    early-stopping counters, history, the shuffling generator's and torch's global RNG states) is
    written after every epoch (``checkpoint.py``); a run that finds a checkpoint of the same run there
    continues from it and ends with bitwise the same weights and history as an uninterrupted run. The
    run's identity is ``config``, ``n_train``, the initial weights and ``fingerprint`` (the caller's
    description of its data). Or a ``LoopCheckpoint`` of the trainer's own (needed when it passes its
    own ``generator`` or ``optimiser``, whose starting state the folder's run identity does not cover).

    ``world``: train data-parallel (``distributed.py``): ``train_loss`` must run the model through
    ``world.wrap(model)``; each rank computes the loss on its shard of every mini-batch.

    ``before_epoch(epoch)`` is called before an epoch's rows are shuffled (a trainer whose rows change
    from epoch to epoch builds them there), ``on_epoch(epoch)`` after the epoch and its checkpoint.

    A trainer that shares its generator with the loss (random masks) or carries it on after the loop
    passes ``generator`` (default: a fresh one seeded with ``config.seed``); one that keeps its optimiser
    over several calls passes ``optimiser`` (default: AdamW with ``config``'s learning rate and weight
    decay). ``row_weights``: the epoch's loss in the history is the mean of the batch losses weighted by
    their rows' total weight (default: each batch counts the same). ``max_grad_norm``: clip the
    gradient's norm before each step.
    """
    if isinstance(checkpoint, (str, os.PathLike)) and (generator is not None or optimiser is not None):
        raise AdcraftError(f"{description}: a checkpoint folder covers fit's own generator and optimiser only; "
                           "a trainer that brings its own passes a LoopCheckpoint that saves them")
    generator = torch.Generator().manual_seed(config.seed) if generator is None else generator
    if optimiser is None:
        optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    if world is not None and not world.wraps(model):
        raise AdcraftError(f"{description}: data-parallel training needs train_loss to run world.wrap(model)")
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = _FitCheckpoint(Path(checkpoint), description, config.epochs, world, run_fingerprint(
            "fit", asdict(config), n_train, None if world is None else world.size,
            tensor_digest(model.state_dict().items()), dict(fingerprint or {}),
        ))
    state = None if checkpoint is None else checkpoint.restore(model, optimiser, generator)
    state = state or LoopState.fresh(model, valid_loss is not None)
    with progress_bar(progress) as bar:
        task = bar.add_task(description, total=config.epochs, completed=state.epochs, status="")
        last = config.epochs if state.stale < config.patience else state.epochs  # a resumed run may have stopped
        for epoch in range(state.epochs, last):
            if before_epoch is not None:
                before_epoch(epoch)
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
                if max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                optimiser.step()
                if row_weights is None:
                    total, batches = total + value, batches + 1
                else:
                    total += value * float(row_weights[index].sum())
            state.history.train_loss.append(total / max(batches, 1) if row_weights is None
                                            else total / float(row_weights.sum()))
            current = None
            if valid_loss is not None:
                model.eval()
                with torch.no_grad():
                    current = float(valid_loss())
            state.record(epoch, model, current)
            state.epochs = epoch + 1
            if checkpoint is not None:
                checkpoint.save(model, optimiser, generator, state)
            if on_epoch is not None:
                on_epoch(epoch)
            status = (f"loss {state.history.train_loss[-1]:.5f}" if current is None
                      else f"valid loss {current:.5f} (best {state.best:.5f})")
            bar.update(task, advance=1, status=status)
            if state.stale >= config.patience:
                break
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    model.eval()
    return state.history


class _FitCheckpoint:
    """``fit``'s own checkpoint: its state in ``folder/fit.safetensors``."""

    def __init__(self, folder: Path, description: str, epochs: int, world: DataParallel | None, run: str) -> None:
        self.path = folder / CHECKPOINT_FILE
        self.description, self.epochs, self.run = description, epochs, run
        self.writes = world is None or world.writes

    def restore(self, model: nn.Module, optimiser: torch.optim.Optimizer, generator: torch.Generator
                ) -> LoopState | None:
        saved = load_checkpoint(self.path, self.run, self.description)
        if saved is None:
            return None
        state = saved.state
        model.load_state_dict(saved.module_state("model."))
        restore_optimiser(optimiser, saved, "optimiser.")
        generator.set_state(saved.tensors["rng.generator"])
        torch.set_rng_state(saved.tensors["rng.torch"])
        best_weights = saved.module_state("best.") or None
        return LoopState(TrainHistory(**state["history"]), int(state["epochs"]), float(state["best"]), best_weights,
                         int(state["stale"]))

    def save(self, model: nn.Module, optimiser: torch.optim.Optimizer, generator: torch.Generator,
             state: LoopState) -> None:
        if not self.writes:
            return
        tensors = {**module_tensors("model.", model), **optimiser_tensors("optimiser.", optimiser)}
        tensors.update({f"best.{k}": v for k, v in (state.best_weights or {}).items()})
        tensors["rng.generator"] = generator.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        header = {"epochs": state.epochs, "best": state.best, "stale": state.stale, "history": state.history.to_json(),
                  "position": f"epoch {state.epochs} of {self.epochs}"}
        save_checkpoint(self.path, self.run, header, tensors)


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


def progress_bar(enabled: bool) -> Progress:
    """The progress display of a training: the task, a bar, a status (e.g. the loss) and the time taken;
    it vanishes when done. Only one can be live at a time."""
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn())
    return Progress(*columns, disable=not enabled, transient=True)


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
