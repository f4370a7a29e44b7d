"""Fixtures of the HTTP API and review-page tests: one small optimize run, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from adcraft.generate.combo import BehaviourCloningConfig, ComboConfig, PolicyConfig, ProposalConfig, RLConfig
from adcraft.pipeline.optimize import OptimizeConfig, optimize
from adcraft.rewards.encoding import EncodingConfig
from adcraft.rewards.mil import MILConfig
from adcraft.rewards.training import TrainConfig
from adcraft.simulator import SimulatorConfig, simulate_market

TINY_TEXT = EncodingConfig(text_backbone="tiny", embedding_dim=8)
FAST_OPTIMIZE = OptimizeConfig(
    top_k=2,
    reward=MILConfig(encoding=TINY_TEXT, train=TrainConfig(epochs=3, batch_size=512, learning_rate=0.02)),
    combo=ComboConfig(
        policy=PolicyConfig(encoding=TINY_TEXT, hidden=16),
        bc=BehaviourCloningConfig(epochs=5),
        rl=RLConfig(steps=10, products_per_step=8),
        proposals=ProposalConfig(samples=8, beam_width=4),
    ),
    n_bootstrap=50,
)


@pytest.fixture(scope="session")
def served_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(run_dir, market_dir)``: a 5-product simulated market and the output of ``optimize`` on it.

    Treat both as read-only; a test that writes (a decisions database, say) puts it under its own tmp_path.
    """
    root = tmp_path_factory.mktemp("served")
    config = SimulatorConfig(seed=31, n_products=5, n_impressions=6000, creatives_per_product=3,
                             canvas=(192, 192), photo_size=128)
    market_dir = simulate_market(config, root / "market").market_dir
    run_dir = root / "run"
    optimize(market_dir, run_dir, FAST_OPTIMIZE)
    return run_dir, market_dir
