"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adcraft.market import load_market
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data bundle (``../shared/data`` beside the checkout, or ``$ADCRAFT_SHARED_DATA``).

    Tests that use it are skipped with a message when it is absent, as in a user's fresh clone.
    """
    folder = Path(os.environ.get("ADCRAFT_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not folder.is_dir():
        pytest.skip(f"real-data bundle not found at {folder} (set ADCRAFT_SHARED_DATA to use it)")
    return folder


@pytest.fixture(scope="session", autouse=True)
def private_feature_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep the feature cache of every test out of the user's home folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADCRAFT_CACHE_DIR", str(tmp_path_factory.mktemp("feature-cache")))
        yield


TINY = SimulatorConfig(seed=3, n_products=6, n_impressions=6000, creatives_per_product=3, titles_per_product=2)


@pytest.fixture(scope="session")
def tiny_sim(tmp_path_factory: pytest.TempPathFactory):
    """A tiny simulated market (6 products, 3 past creatives each), built once per session."""
    root = tmp_path_factory.mktemp("sim")
    return simulate_market(TINY, root / "market")


@pytest.fixture(scope="session")
def tiny_market_dir(tiny_sim) -> Path:
    return tiny_sim.market_dir


@pytest.fixture(scope="session")
def tiny_config() -> SimulatorConfig:
    return TINY


def _market_and_truth(tmp_path_factory: pytest.TempPathFactory, name: str, config: SimulatorConfig):
    sim = simulate_market(config, tmp_path_factory.mktemp(name) / "market")
    return load_market(sim.market_dir), GroundTruth.load(sim.truth_dir)


@pytest.fixture(scope="session")
def logged_market(tmp_path_factory: pytest.TempPathFactory):
    """(market, truth) of 10 products with 5 past creatives each and 30k impressions (reward-model tests)."""
    return _market_and_truth(tmp_path_factory, "rewards", SimulatorConfig(
        seed=11, n_products=10, n_impressions=30_000, creatives_per_product=5))


@pytest.fixture(scope="session")
def generator_market(tmp_path_factory: pytest.TempPathFactory):
    """(market, truth) of 8 products with 5 past creatives each and 20k impressions (generator tests)."""
    return _market_and_truth(tmp_path_factory, "generate", SimulatorConfig(
        seed=5, n_products=8, n_impressions=20_000, creatives_per_product=5))
