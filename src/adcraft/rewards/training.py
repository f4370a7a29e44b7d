"""The optimisation loop every reward model shares: mini-batch AdamW with early stopping.

Training stops when the validation loss has not improved for ``patience`` epochs, and the weights of the
best epoch are restored, so a model never ends on an over-fitted state.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn
from torch.nn import functional as F

from adcraft.errors import AdcraftError, InputError

if TYPE_CHECKING:
    from adcraft.rewards.encoding import CreativeBatch


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


def fit(
    model: nn.Module,
    n_train: int,
    train_loss: Callable[[torch.Tensor], torch.Tensor],
    valid_loss: Callable[[], float],
    config: TrainConfig,
    progress: bool = False,
    description: str = "training",
) -> TrainHistory:
    """Minimise ``train_loss(index)`` over shuffled mini-batches of ``range(n_train)``.

    ``train_loss`` gets a LongTensor of row indices and returns a scalar loss; ``valid_loss`` returns the
    validation loss of the current weights (lower is better). Raises ``AdcraftError`` if a loss is NaN.
    """
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    history = TrainHistory()
    best, best_state, stale = math.inf, copy.deepcopy(model.state_dict()), 0
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn())
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task(description, total=config.epochs, status="")
        for epoch in range(config.epochs):
            model.train()
            order = torch.randperm(n_train, generator=generator)
            total, batches = 0.0, 0
            for start in range(0, n_train, config.batch_size):
                loss = train_loss(order[start : start + config.batch_size])
                if not torch.isfinite(loss.detach()):
                    raise AdcraftError(f"{description}: the training loss became {loss.item()} at epoch {epoch}")
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total, batches = total + loss.item(), batches + 1
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
            bar.update(task, advance=1, status=f"valid loss {current:.5f} (best {best:.5f})")
            if stale >= config.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return history


def binomial_loss(logits: torch.Tensor, clicks: torch.Tensor, trials: torch.Tensor) -> torch.Tensor:
    """Impression-weighted binomial negative log-likelihood per impression.

    ``-sum(clicks log p + (trials - clicks) log(1 - p)) / sum(trials)``: the mean log loss over the raw
    impressions that the aggregated rows stand for.
    """
    nll = -(clicks * F.logsigmoid(logits) + (trials - clicks) * F.logsigmoid(-logits))
    return nll.sum() / trials.sum()


ClickTensors = tuple["CreativeBatch", torch.Tensor, torch.Tensor]


def fit_click_model(
    network: nn.Module,
    train: ClickTensors,
    valid: ClickTensors,
    config: TrainConfig,
    progress: bool = False,
    description: str = "training",
) -> TrainHistory:
    """``fit`` a network from a ``CreativeBatch`` to click logits on (batch, clicks, trials) tensors.

    The loss is ``binomial_loss`` on training mini-batches; early stopping watches it on ``valid``.
    """
    train_batch, train_clicks, train_trials = train
    valid_batch, valid_clicks, valid_trials = valid

    def train_loss(index: torch.Tensor) -> torch.Tensor:
        return binomial_loss(network(train_batch.take(index)), train_clicks[index], train_trials[index])

    def valid_loss() -> float:
        return float(binomial_loss(network(valid_batch), valid_clicks, valid_trials))

    return fit(network, len(train_batch), train_loss, valid_loss, config, progress, description)


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
