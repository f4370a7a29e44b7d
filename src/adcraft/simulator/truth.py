"""The ground truth of a simulated market: the true CTR of any combination or image, and true demand.

A simulated market is written with a separate truth folder::

    TRUTH/
      click_model.json     the TrueClickModel's parameters (see ``click_model``)
      creatives.parquet    per past creative: true CTR (context-averaged) and its image attributes
      elements.parquet     per element: slot and true main effect (logit units)
      products.parquet     per product: popularity effect, listing creative (its most-shown) and that
                           image's expected demand
      simulation.json      the simulator's settings and the logging policy

Tests and benchmarks load it with ``GroundTruth.load(TRUTH)``; learners never see it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from adcraft.features.attributes import compute_attributes
from adcraft.render.from_market import MarketRenderer
from adcraft.simulator.click_model import TrueClickModel


def image_attributes(image: Image.Image) -> dict[str, float]:
    """The visual attributes the true model reads: functions of the image alone, as a learner sees it."""
    return compute_attributes(image)


@dataclass
class GroundTruth:
    """Loaded truth of one simulated market."""

    model: TrueClickModel
    creatives: pd.DataFrame
    elements: pd.DataFrame
    products: pd.DataFrame
    simulation: dict

    @classmethod
    def load(cls, folder: Path) -> GroundTruth:
        folder = Path(folder)
        return cls(
            model=TrueClickModel.load(folder / "click_model.json"),
            creatives=pd.read_parquet(folder / "creatives.parquet"),
            elements=pd.read_parquet(folder / "elements.parquet"),
            products=pd.read_parquet(folder / "products.parquet"),
            simulation=json.loads((folder / "simulation.json").read_text()),
        )

    def ctr_of_image(
        self,
        product_id: str,
        element_ids: Sequence[str],
        image: Image.Image,
        context: dict[str, str] | None = None,
    ) -> float:
        """True CTR of an image that shows this combination (context-averaged unless a context is given)."""
        attributes = image_attributes(image)
        return self.model.ctr(product_id, list(element_ids), attributes, context)

    def ctr_of_combination(
        self,
        renderer: MarketRenderer,
        product_id: str,
        element_ids: Sequence[str],
        context: dict[str, str] | None = None,
    ) -> float:
        """True CTR of a combination as the default compositor renders it."""
        rendered = renderer.render(product_id, list(element_ids))
        return self.ctr_of_image(product_id, element_ids, rendered.image, context)

    def demand_of_image(self, product_id: str, image: Image.Image) -> float:
        """Expected demand of the product if its listing showed this image."""
        return self.model.expected_demand(product_id, image_attributes(image))
