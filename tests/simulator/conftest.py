"""A tiny simulated market shared by the simulator, CLI and pipeline tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adcraft.simulator import SimulatorConfig, simulate_market

TINY = SimulatorConfig(seed=3, n_products=6, n_impressions=6000, creatives_per_product=3, titles_per_product=2)


@pytest.fixture(scope="session")
def tiny_sim(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sim")
    return simulate_market(TINY, root / "market")


@pytest.fixture(scope="session")
def tiny_market_dir(tiny_sim) -> Path:
    return tiny_sim.market_dir


@pytest.fixture(scope="session")
def tiny_config() -> SimulatorConfig:
    return TINY
