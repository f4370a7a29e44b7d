"""A killed ``optimize`` run, run again, resumes from its checkpoints to the outputs of an uninterrupted run."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from adcraft.configuration import to_mapping
from adcraft.errors import AdcraftError
from adcraft.generate.combo import CHECKPOINT_FILE as COMBO_CHECKPOINT
from adcraft.generate.combo import (
    BehaviourCloningConfig,
    ComboTrainer,
    RLConfig,
)
from adcraft.learning.checkpoint import read_state
from adcraft.learning.training import CHECKPOINT_FILE as FIT_CHECKPOINT
from adcraft.learning.training import TrainConfig
from adcraft.pipeline.optimize import OptimizeConfig, optimize
from adcraft.rewards.encoding import EncodingConfig
from adcraft.rewards.mil import MILConfig
from tests.killed_processes import adcraft, kill_when

TINY_TEXT = EncodingConfig(text_backbone="tiny", embedding_dim=8)
CONFIG = OptimizeConfig.smoke(  # smoke settings with several batches per epoch and a checkpoint every 2 steps
    reward=MILConfig(encoding=TINY_TEXT, train=TrainConfig(epochs=6, batch_size=64, learning_rate=0.02)),
    combo=dataclasses.replace(OptimizeConfig.smoke().combo, bc=BehaviourCloningConfig(epochs=4),
                              rl=RLConfig(steps=8, products_per_step=4), checkpoint_every=2),
)


def output_files(out: Path) -> dict[str, bytes]:
    """Every output file's bytes, except run.json (timings differ between runs)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
            and p.name != "run.json"}


def assert_same_outputs(a: Path, b: Path) -> None:
    pd.testing.assert_frame_equal(pd.read_parquet(a / "creatives.parquet"), pd.read_parquet(b / "creatives.parquet"))
    files_a, files_b = output_files(a), output_files(b)
    assert sorted(files_a) == sorted(files_b)
    different = [name for name in files_a if files_a[name] != files_b[name] and not name.endswith(".html")]
    assert different == []  # models' safetensors and config, images, tables: byte for byte
    run_a, run_b = (json.loads((d / "run.json").read_text()) for d in (a, b))
    assert run_a["ope"] == run_b["ope"] and run_a["counts"] == run_b["counts"]


@pytest.fixture(scope="module")
def uninterrupted(tiny_market_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "out"
    optimize(tiny_market_dir, out, CONFIG)
    return out


class Interrupted(KeyboardInterrupt):
    """Ctrl-C at a chosen checkpoint: an interruption keeps the staging folder to resume from."""


def interrupt_combo_at(monkeypatch, phase: str, done: int) -> None:
    fit = ComboTrainer.fit

    def stopping_fit(self, market, reward, progress=False, *, checkpoint=None, on_checkpoint=None):
        def hook(at_phase, at_done):
            if (at_phase, at_done) == (phase, done):
                raise Interrupted

        return fit(self, market, reward, progress, checkpoint=checkpoint, on_checkpoint=hook)

    monkeypatch.setattr(ComboTrainer, "fit", stopping_fit)


def test_an_interrupted_run_resumes_to_the_uninterrupted_outputs(tiny_market_dir, uninterrupted, tmp_path,
                                                                 monkeypatch):
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        interrupt_combo_at(patch, "rl", 4)
        with pytest.raises(Interrupted):
            optimize(tiny_market_dir, out, CONFIG)
    staging = tmp_path / ".out.partial"
    assert not out.exists() and (staging / "checkpoints" / "reward" / "model.safetensors").is_file()
    assert read_state(staging / "checkpoints" / "combo-training" / COMBO_CHECKPOINT)[1]["done"] == 4
    result = optimize(tiny_market_dir, out, CONFIG)
    assert result.run["resumed_from"] == {"reward model": "finished model",
                                          "combination policy": "checkpoint at policy-gradient step 4 of 8"}
    assert_same_outputs(out, uninterrupted)
    assert not staging.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_staging_folder_of_another_config_is_discarded(tiny_market_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        interrupt_combo_at(patch, "bc", 2)
        with pytest.raises(Interrupted):
            optimize(tiny_market_dir, out, CONFIG)
    other = dataclasses.replace(CONFIG, top_k=1)
    result = optimize(tiny_market_dir, out, other)
    assert result.run["resumed_from"] is None
    assert result.proposals.groupby("product_id").size().max() == 1


def test_fresh_discards_an_interrupted_run(tiny_market_dir, tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        interrupt_combo_at(patch, "bc", 2)
        with pytest.raises(Interrupted):
            optimize(tiny_market_dir, tmp_path / "out", CONFIG)
    assert optimize(tiny_market_dir, tmp_path / "out", CONFIG, fresh=True).run["resumed_from"] is None


def test_a_failed_run_leaves_nothing_behind(tiny_market_dir, tmp_path, monkeypatch):
    def failing(*args, **kwargs):
        raise AdcraftError("the policy failed")

    monkeypatch.setattr(ComboTrainer, "fit", failing)
    with pytest.raises(AdcraftError):
        optimize(tiny_market_dir, tmp_path / "out", CONFIG)
    assert list(tmp_path.iterdir()) == []


SLOW_CONFIG = dataclasses.replace(
    CONFIG,
    reward=dataclasses.replace(CONFIG.reward, train=TrainConfig(epochs=12, batch_size=16, learning_rate=0.005,
                                                                patience=12)),
    combo=dataclasses.replace(CONFIG.combo, bc=BehaviourCloningConfig(epochs=10, batch_size=8),
                              rl=RLConfig(steps=20, products_per_step=4)),
)


def done_at_least(path: Path, key: str, count: int, phase: str | None = None):
    def ready() -> bool:
        state = read_state(path) if path.is_file() else None
        return state is not None and state[1].get("phase", phase) == phase and state[1][key] >= count

    return ready


@pytest.mark.slow
@pytest.mark.parametrize("where", ["reward training", "policy gradient"])
def test_optimize_killed_with_sigkill_resumes_to_the_same_outputs(tiny_market_dir, tmp_path, where):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(to_mapping(SLOW_CONFIG)))
    out = tmp_path / "killed"
    command = adcraft("optimize", "--market", str(tiny_market_dir), "--out", str(out), "--config", str(config))
    checkpoints = tmp_path / ".killed.partial" / "checkpoints"
    if where == "reward training":
        kill_when(command, done_at_least(checkpoints / "reward-training" / FIT_CHECKPOINT, "epochs", 3))
    else:
        kill_when(command, done_at_least(checkpoints / "combo-training" / COMBO_CHECKPOINT, "done", 4, "rl"))
    assert not out.exists()
    resumed = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "resumed:" in resumed.stdout
    optimize(tiny_market_dir, tmp_path / "whole", SLOW_CONFIG)
    assert_same_outputs(out, tmp_path / "whole")
    assert json.loads((out / "run.json").read_text())["resumed_from"]
