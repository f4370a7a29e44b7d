"""A small simulated market with logs, shared by the reward-model tests (built once per session)."""

from __future__ import annotations

import pytest

from adcraft.market import load_market
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market


@pytest.fixture(scope="session")
def logged_market(tmp_path_factory):
    """(market, truth) of 10 products with 5 past creatives each and 30k impressions."""
    root = tmp_path_factory.mktemp("rewards")
    sim = simulate_market(
        SimulatorConfig(seed=11, n_products=10, n_impressions=30_000, creatives_per_product=5), root / "market"
    )
    return load_market(sim.market_dir), GroundTruth.load(sim.truth_dir)

