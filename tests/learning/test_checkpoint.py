"""A reward-model training killed after any epoch resumes from its checkpoint to bitwise the same weights."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

from adcraft.learning.checkpoint import position, read_state
from adcraft.learning.training import CHECKPOINT_FILE, TrainConfig, fit
from adcraft.market import load_market
from adcraft.pipeline import train_reward_model
from adcraft.rewards.encoding import EncodingConfig
from adcraft.rewards.mil import MILConfig, MILTrainer
from tests.killed_processes import Interrupted, adcraft, kill_when, stop_after

MIL = MILConfig(encoding=EncodingConfig(text_backbone="tiny", embedding_dim=8),
                train=TrainConfig(epochs=12, batch_size=16, learning_rate=0.02, patience=4))


def regression(config: TrainConfig, folder: Path | None = None, on_epoch=None):
    """A small network with dropout (so torch's global RNG matters) fitted to a noisy linear target."""
    torch.manual_seed(0)
    x = torch.randn(300, 5)
    y = x @ torch.arange(1.0, 6.0) + 0.3 * torch.randn(300)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))

    def train_loss(index):
        return ((model(x[index]).squeeze(1) - y[index]) ** 2).mean()

    def valid_loss():
        return float(((model(x[250:]).squeeze(1) - y[250:]) ** 2).mean())

    history = fit(model, 250, train_loss, valid_loss, config, checkpoint=folder, on_epoch=on_epoch)
    return model, history


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


REGRESSION = TrainConfig(epochs=8, batch_size=32, learning_rate=0.01, patience=3)


@pytest.mark.parametrize("epoch", [0, 3, 7])
def test_fit_resumed_after_any_epoch_ends_with_the_same_weights_and_history(tmp_path, epoch):
    model, history = regression(REGRESSION)
    with pytest.raises(Interrupted):
        regression(REGRESSION, tmp_path, stop_after(epoch))
    assert position(tmp_path / CHECKPOINT_FILE) == f"epoch {epoch + 1} of {REGRESSION.epochs}"
    resumed, resumed_history = regression(REGRESSION, tmp_path)
    assert same_weights(resumed, model)
    assert resumed_history == history


def test_a_run_that_had_stopped_early_resumes_to_its_best_epoch(tmp_path):
    patient = dataclasses.replace(REGRESSION, epochs=60, learning_rate=0.2, patience=1)
    model, history = regression(patient)
    assert len(history.valid_loss) < patient.epochs  # it did stop early
    regression(patient, tmp_path)
    resumed, resumed_history = regression(patient, tmp_path)  # the checkpoint holds the finished run
    assert same_weights(resumed, model) and resumed_history == history


def test_a_checkpoint_of_other_settings_is_ignored_with_a_warning(tmp_path, caplog):
    with pytest.raises(Interrupted):
        regression(REGRESSION, tmp_path, stop_after(2))
    other = dataclasses.replace(REGRESSION, learning_rate=0.02)
    with caplog.at_level(logging.WARNING):
        resumed, history = regression(other, tmp_path)
    assert "another" in caplog.text
    fresh, fresh_history = regression(other)
    assert same_weights(resumed, fresh) and history == fresh_history


def test_an_unreadable_checkpoint_is_ignored(tmp_path, caplog):
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING):
        model, history = regression(REGRESSION, tmp_path)
    assert "unreadable" in caplog.text
    assert same_weights(model, regression(REGRESSION)[0])
    assert read_state(tmp_path / CHECKPOINT_FILE)[1]["epochs"] == len(history.valid_loss)
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_FILE]  # no temporary files left


@pytest.fixture(scope="module")
def market(tiny_market_dir):
    return load_market(tiny_market_dir)


def test_the_multi_instance_trainer_resumes_to_the_same_model(market, tmp_path):
    model = MILTrainer(MIL).fit(market)
    with pytest.raises(Interrupted):
        MILTrainer(MIL).fit(market, checkpoint=tmp_path, on_epoch=stop_after(1))
    resumed = MILTrainer(MIL).fit(market, checkpoint=tmp_path)
    assert same_weights(resumed.network, model.network) and resumed.history == model.history


MIL_YAML = """\
encoding: {text_backbone: tiny, embedding_dim: 8}
train: {epochs: 20, batch_size: 16, learning_rate: 0.002, patience: 20}
"""


def epochs_done(path: Path) -> int:
    state = read_state(path) if path.is_file() else None
    return 0 if state is None else int(state[1]["epochs"])


@pytest.mark.slow
def test_train_mil_killed_twice_resumes_to_the_same_model_as_an_uninterrupted_run(tiny_market_dir, tmp_path):
    config = tmp_path / "mil.yaml"
    config.write_text(MIL_YAML)
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    command = adcraft("train", "mil", "--market", str(tiny_market_dir), "--out", str(killed), "--config", str(config))
    checkpoint = tmp_path / ".killed.partial" / "checkpoint" / CHECKPOINT_FILE
    kill_when(command, lambda: epochs_done(checkpoint) >= 2)
    first = epochs_done(checkpoint)
    kill_when(command, lambda: epochs_done(checkpoint) >= first + 3)
    assert not killed.exists()  # a killed run leaves no output
    subprocess.run(command, check=True, capture_output=True)
    train_reward_model("mil", tiny_market_dir, whole, config)  # the same job, uninterrupted
    assert (killed / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
    assert (killed / "config.json").read_text() == (whole / "config.json").read_text()
    assert not (tmp_path / ".killed.partial").exists()  # the checkpoint is removed after success
