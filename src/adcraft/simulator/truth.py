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

import numpy as np
import pandas as pd
from PIL import Image

from adcraft.features.attributes import compute_attributes
from adcraft.market import Market
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

    def element_marginal_effects(self, market: Market) -> pd.Series:
        """Each element's true average effect: the additive part of the true logits of the past creatives.

        The true logit of every past creative (context-averaged CTR) is projected by least squares on
        one-hot products and elements; the element coefficients, centred within their slot, are the
        effects an additive model of these creatives would have if it knew the truth. Unlike
        ``model.element_effect`` (the main-effect parameters) they include each element's average share
        of the interaction and image-attribute terms, which no learner can tell apart from its own effect.
        """
        ctr = self.creatives.set_index("creative_id")["true_ctr"]
        creatives = market.creatives[market.creatives["creative_id"].isin(ctr.index)]
        y = np.log(ctr.loc[creatives["creative_id"]].to_numpy() / (1 - ctr.loc[creatives["creative_id"]].to_numpy()))
        products = sorted(creatives["product_id"].unique())
        columns = [("product", p) for p in products]
        columns += sorted({(slot, e) for combo in creatives["elements"] for slot, e in zip(market.config.slots, combo)})
        index = {c: j for j, c in enumerate(columns)}
        design = np.zeros((len(creatives), len(columns)))
        for i, (pid, combo) in enumerate(zip(creatives["product_id"], creatives["elements"])):
            design[i, index[("product", pid)]] = 1.0
            for slot, e in zip(market.config.slots, combo):
                design[i, index[(slot, e)]] = 1.0
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        effects = pd.DataFrame(
            [(slot, e, coef[j]) for (slot, e), j in index.items() if slot != "product"],
            columns=["slot", "element_id", "effect"],
        )
        effects["effect"] -= effects.groupby("slot")["effect"].transform("mean")
        return effects.set_index("element_id")["effect"].sort_index()

    def demand_of_image(self, product_id: str, image: Image.Image) -> float:
        """Expected demand of the product if its listing showed this image."""
        return self.model.expected_demand(product_id, image_attributes(image))
