"""A combination-policy training killed at any checkpoint resumes to bitwise the same policy."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

from adcraft.generate.combo import (
    CHECKPOINT_FILE,
    BehaviourCloningConfig,
    ComboConfig,
    ComboGenerator,
    ComboTrainer,
    PolicyConfig,
    RLConfig,
)
from adcraft.learning.checkpoint import read_state
from adcraft.rewards.encoding import EncodingConfig

CONFIG = ComboConfig(
    policy=PolicyConfig(encoding=EncodingConfig(text_backbone="tiny", embedding_dim=8), hidden=16),
    bc=BehaviourCloningConfig(epochs=6, batch_size=16),
    rl=RLConfig(steps=9, samples_per_product=4, products_per_step=3),
    checkpoint_every=2,
)


class Interrupted(Exception):
    """Stands for the process being killed right after a checkpoint."""


def element_reward(product_ids, combos):
    """A deterministic reward: a fixed pseudo-random value per element, summed over the combination."""
    return np.array([sum((hash_element(e) % 97) / 97 for e in combo) for combo in combos])


def hash_element(element: str) -> int:
    return sum(ord(ch) * (i + 1) for i, ch in enumerate(element))


def same_generators(a: ComboGenerator, b: ComboGenerator) -> bool:
    states = [(a.network.state_dict(), b.network.state_dict()), (a.reference.state_dict(), b.reference.state_dict())]
    return all(torch.equal(x[k], y[k]) for x, y in states for k in x) and a.history == b.history


@pytest.fixture(scope="module")
def market(generator_market):
    return generator_market[0]


@pytest.fixture(scope="module")
def uninterrupted(market):
    return ComboTrainer(CONFIG).fit(market, element_reward)


def stop_at(phase: str, done: int):
    def hook(at_phase: str, at_done: int) -> None:
        if (at_phase, at_done) == (phase, done):
            raise Interrupted

    return hook


@pytest.mark.parametrize("phase, done", [("bc", 2), ("bc", 6), ("rl", 4), ("rl", 9)])
def test_a_run_resumed_from_a_checkpoint_equals_an_uninterrupted_run(market, uninterrupted, tmp_path, phase, done):
    with pytest.raises(Interrupted):
        ComboTrainer(CONFIG).fit(market, element_reward, checkpoint=tmp_path, on_checkpoint=stop_at(phase, done))
    before = read_state(tmp_path / CHECKPOINT_FILE)[1]["history"]["reward_evaluations"]
    asked = []

    def counted(product_ids, combos):
        asked.extend(zip(product_ids, map(tuple, combos)))
        return element_reward(product_ids, combos)

    resumed = ComboTrainer(CONFIG).fit(market, counted, checkpoint=tmp_path)
    assert same_generators(resumed, uninterrupted)
    # the reward cache came back: rows asked before the interruption are not asked again
    assert len(asked) == uninterrupted.history.reward_evaluations - before
    proposals = [g.propose(k=2) for g in (resumed, uninterrupted)]
    assert proposals[0].equals(proposals[1])


def test_the_checkpoint_interval_does_not_change_the_result(market, uninterrupted, tmp_path):
    every_step = ComboTrainer(dataclasses.replace(CONFIG, checkpoint_every=1)).fit(
        market, element_reward, checkpoint=tmp_path)
    assert same_generators(every_step, uninterrupted)


def test_a_checkpoint_of_another_run_is_ignored_with_a_warning(market, tmp_path, caplog):
    with pytest.raises(Interrupted):
        ComboTrainer(CONFIG).fit(market, element_reward, checkpoint=tmp_path, on_checkpoint=stop_at("rl", 4))
    other = dataclasses.replace(CONFIG, rl=dataclasses.replace(CONFIG.rl, kl_coef=0.5))
    with caplog.at_level(logging.WARNING):
        resumed = ComboTrainer(other).fit(market, element_reward, checkpoint=tmp_path)
    assert "another combination policy run" in caplog.text
    assert same_generators(resumed, ComboTrainer(other).fit(market, element_reward))
