"""The market simulator: markets with a known ground truth, for tests, benchmarks and the demo.

It sits above ``market``, ``features`` and ``render`` because it renders creatives and reads their visual
attributes to decide true click-through rates; nothing below it imports it.
"""

from adcraft.simulator.build import SimulatedMarket, default_truth_dir, simulate_market
from adcraft.simulator.click_model import TrueClickModel
from adcraft.simulator.config import SimulatorConfig
from adcraft.simulator.truth import GroundTruth

__all__ = [
    "GroundTruth",
    "SimulatedMarket",
    "SimulatorConfig",
    "TrueClickModel",
    "default_truth_dir",
    "simulate_market",
]
