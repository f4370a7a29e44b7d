"""The market simulator: markets with a known ground truth, for tests, benchmarks and the demo.

It uses ``market`` and ``render`` (it writes markets and renders creatives) and measures the rendered
pixels itself (``measures``): the truth imports nothing from the models it judges (``features``,
``rewards``, ``generate``, ``evaluate``). ``worlds`` lists the families of truths it can simulate.
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
