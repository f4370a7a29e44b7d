"""The one training loop: fixed epochs without validation, weighted epoch losses, gradient clipping, hooks."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch import nn

from adcraft.errors import AdcraftError
from adcraft.learning.checkpoint import position
from adcraft.learning.training import CHECKPOINT_FILE, LoopState, TrainConfig, fit
from tests.killed_processes import Interrupted, stop_after

CONFIG = TrainConfig(epochs=5, batch_size=8, learning_rate=0.05, patience=1)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(30, 3)
    return x, x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(30)


def linear() -> nn.Linear:
    torch.manual_seed(1)
    return nn.Linear(3, 1)


def squared_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    return lambda index: ((model(x[index]).squeeze(1) - y[index]) ** 2).mean()


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_without_validation_every_epoch_runs_and_the_last_weights_are_kept():
    x, y = data()
    model = linear()
    snapshots = []
    history = fit(model, 30, squared_error(model, x, y), None, CONFIG,
                  on_epoch=lambda epoch: snapshots.append(model.weight.detach().clone()))
    # patience 1 would stop a validated run at the first epoch without improvement; here all five run
    assert len(history.train_loss) == CONFIG.epochs and history.valid_loss == []
    assert history.best_epoch == CONFIG.epochs - 1
    assert torch.equal(model.weight, snapshots[-1]) and not torch.equal(snapshots[0], snapshots[-1])


def test_the_epoch_loss_is_the_batch_losses_weighted_by_their_rows():
    x, y = data()
    model = linear()
    weights = torch.linspace(0.1, 3.0, 30)
    batches: list[tuple[float, float]] = []
    loss = squared_error(model, x, y)

    def recorded(index: torch.Tensor) -> torch.Tensor:
        value = loss(index)
        batches.append((value.item(), float(weights[index].sum())))
        return value

    history = fit(model, 30, recorded, None, dataclasses.replace(CONFIG, epochs=1), row_weights=weights)
    assert len(batches) == 4  # 30 rows in batches of 8
    expected = sum(v * w for v, w in batches) / float(weights.sum())
    assert history.train_loss == [pytest.approx(expected, rel=1e-12)]
    assert history.train_loss[0] != pytest.approx(sum(v for v, _ in batches) / len(batches), rel=1e-6)


def test_max_grad_norm_clips_each_step():
    x, y = data()
    model = linear()
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    one_batch = dataclasses.replace(CONFIG, epochs=1, batch_size=30)
    fit(model, 30, lambda index: 1000.0 * squared_error(model, x, y)(index), None, one_batch, optimiser=sgd,
        max_grad_norm=0.25)
    step = torch.cat([p.detach().flatten() for p in model.parameters()]) - before
    assert float(step.norm()) == pytest.approx(0.25, rel=1e-5)


def test_a_given_generator_drives_the_shuffle_and_is_carried_on():
    x, y = data()
    orders: list[list[int]] = []
    loss = squared_error(linear(), x, y)

    def recorded(index: torch.Tensor) -> torch.Tensor:
        orders.append(index.tolist())
        return loss(index)

    generator = torch.Generator().manual_seed(7)
    one_batch = dataclasses.replace(CONFIG, epochs=2, batch_size=30)
    fit(linear(), 30, recorded, None, one_batch, generator=generator)
    replay = torch.Generator().manual_seed(7)
    assert orders == [torch.randperm(30, generator=replay).tolist() for _ in range(2)]
    assert torch.equal(generator.get_state(), replay.get_state())  # the caller's generator moved on


def test_before_epoch_runs_before_each_epoch_also_after_a_resume(tmp_path):
    x, y = data()
    calls: list[int] = []
    model = linear()
    with pytest.raises(Interrupted):
        fit(model, 30, squared_error(model, x, y), None, CONFIG, checkpoint=tmp_path, before_epoch=calls.append,
            on_epoch=stop_after(1))
    assert position(tmp_path / CHECKPOINT_FILE) == f"epoch 2 of {CONFIG.epochs}"
    resumed = linear()
    history = fit(resumed, 30, squared_error(resumed, x, y), None, CONFIG, checkpoint=tmp_path,
                  before_epoch=calls.append)
    assert calls == [0, 1, 2, 3, 4]
    whole = linear()
    assert history == fit(whole, 30, squared_error(whole, x, y), None, CONFIG)
    assert same_weights(resumed, whole)


class MemoryCheckpoint:
    """A ``LoopCheckpoint`` of a trainer's own: keeps the state of every second epoch in memory."""

    def __init__(self) -> None:
        self.saved: tuple[dict, dict, torch.Tensor, LoopState] | None = None
        self.saves: list[int] = []

    def restore(self, model, optimiser, generator) -> LoopState | None:
        if self.saved is None:
            return None
        weights, moments, shuffle, state = self.saved
        model.load_state_dict(weights)
        optimiser.load_state_dict(moments)
        generator.set_state(shuffle)
        return copy.deepcopy(state)

    def save(self, model, optimiser, generator, state: LoopState) -> None:
        if state.epochs % 2 == 0:
            self.saves.append(state.epochs)
            self.saved = ({k: v.clone() for k, v in model.state_dict().items()},
                          copy.deepcopy(optimiser.state_dict()), generator.get_state(), copy.deepcopy(state))


def test_a_trainers_own_checkpoint_resumes_from_what_it_saved():
    x, y = data()
    config = dataclasses.replace(CONFIG, epochs=6)
    store = MemoryCheckpoint()
    model = linear()
    with pytest.raises(Interrupted):
        fit(model, 30, squared_error(model, x, y), None, config, checkpoint=store, on_epoch=stop_after(4))
    assert store.saves == [2, 4]  # the fifth epoch was not saved: the resumed run repeats it
    resumed = linear()
    history = fit(resumed, 30, squared_error(resumed, x, y), None, config, checkpoint=store)
    whole = linear()
    assert history == fit(whole, 30, squared_error(whole, x, y), None, config)
    assert same_weights(resumed, whole)


def test_a_nan_loss_stops_training_with_an_error():
    model = linear()
    with pytest.raises(AdcraftError, match="became nan"):
        fit(model, 10, lambda index: model.weight.sum() * float("nan"), None, CONFIG)


def test_a_checkpoint_folder_refuses_a_generator_or_optimiser_it_cannot_identify(tmp_path):
    model = linear()
    with pytest.raises(AdcraftError, match="LoopCheckpoint"):
        fit(model, 10, lambda index: model.weight.sum(), None, CONFIG, checkpoint=tmp_path,
            generator=torch.Generator().manual_seed(3))
    assert not any(tmp_path.iterdir())
