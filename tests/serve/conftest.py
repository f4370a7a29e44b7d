"""Fixtures of the HTTP API and review-page tests: one small optimize run, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from adcraft.pipeline.optimize import OptimizeConfig, optimize
from adcraft.simulator import SimulatorConfig, simulate_market


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
    optimize(market_dir, run_dir, OptimizeConfig.smoke(top_k=3))  # a kept rank 1 and two proposals to approve
    return run_dir, market_dir
