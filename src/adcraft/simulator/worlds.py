"""World families: which truths a simulated market's clicks follow (``SimulatorConfig.world``).

Every world but ``legacy`` uses one click model (``click_model``) whose families of terms a world
weighs: element main effects, element x element pairs, element x category and element x context
interactions, the semantic relevance of the background's scene to the product's category, the
legibility of the text, and peaked (non-monotone) effects of the simulator's own pixel measures
(``measures``). After drawing, each family is rescaled so that its spread over the past creatives is
its weight, and the sum is rescaled so that a creative's logit varies with standard deviation
``creative_sd`` within a product. Calibration: 200 real AES creatives of one ad span CTRs from 1.34% to
2.71% (max/min 2.02, /work/shared/data/README.md); a normal spread of sd 0.13 logits over 200 draws
gives that range, and sd 0.20 within a pool of 8 gives a best/mean ratio near 1.3 with a best
possible creative near 1.6x the mean random one, inside the 1.2-2x a real shop sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

World = Literal["realistic", "main_effects", "interactions", "visual", "semantic", "sparse", "drift", "legacy"]
WORLDS: tuple[str, ...] = get_args(World)
DEFAULT_WORLD: World = "realistic"

FAMILIES: tuple[str, ...] = ("elements", "pairs", "category", "context", "relevance", "legibility", "visual")


@dataclass(frozen=True)
class WorldSettings:
    """How one world's truth is drawn.

    weights: the spread (relative) of each family of ``FAMILIES`` over the past creatives; absent = 0.
    creative_sd: standard deviation of a creative's logit within a product (all families together).
    contextual_logging: the house default depends on the device (mobile and desktop defaults differ).
    product_factor: products simulated per configured product (``sparse``: many products, few
        impressions per creative).
    drift_sd: weekly random-walk step of every element's effect, in units of its own spread.
    fatigue: logit lost by a creative at ``fatigue_halfway`` impressions already shown, ``fatigue *
        log2(1 + shown / fatigue_halfway)``.
    """

    card: str
    weights: dict[str, float] = field(default_factory=dict)
    creative_sd: float = 0.2
    contextual_logging: bool = False
    product_factor: int = 1
    drift_sd: float = 0.0
    fatigue: float = 0.0
    fatigue_halfway: float = 400.0


WORLD_SETTINGS: dict[str, WorldSettings] = {
    "realistic": WorldSettings(
        card="a mix of the other worlds' drivers at modest sizes; device-specific house defaults (the default world)",
        weights={"elements": 1.0, "pairs": 0.4, "category": 0.5, "context": 0.5, "relevance": 0.8,
                 "legibility": 0.4, "visual": 0.8},
        contextual_logging=True,
    ),
    "main_effects": WorldSettings(
        card="each element adds its own effect, nothing else: an additive model is exactly right",
        weights={"elements": 1.0},
    ),
    "interactions": WorldSettings(
        card="strong element x element, element x category and element x user-segment/device effects; "
             "device-specific house defaults",
        weights={"elements": 0.3, "pairs": 1.0, "category": 1.0, "context": 1.0},
        contextual_logging=True,
    ),
    "visual": WorldSettings(
        card="peaked effects of the rendered pixels: lightness, colourfulness, product size and placement, "
             "text coverage, clutter, legibility",
        weights={"elements": 0.3, "legibility": 0.5, "visual": 1.0},
    ),
    "semantic": WorldSettings(
        card="the background's scene must suit the product's category (sunglasses x beach, chair x living "
             "room); prompts name their scenes",
        weights={"elements": 0.3, "relevance": 1.0},
    ),
    "sparse": WorldSettings(
        card="four times the products at the same traffic: few impressions per creative, mostly main effects",
        weights={"elements": 1.0, "relevance": 0.4, "visual": 0.3},
        product_factor=4,
    ),
    "drift": WorldSettings(
        card="element effects wander week by week and creatives tire as they are shown (fatigue)",
        weights={"elements": 1.0, "relevance": 0.4, "visual": 0.4},
        drift_sd=0.6,
        fatigue=0.25,
    ),
    "legacy": WorldSettings(
        card="the original model, kept to reproduce old results: quadratics in the models' own attributes "
             "(truth and learners share their definition)",
    ),
}


def world_settings(name: str) -> WorldSettings:
    """The settings of a world; ``ValueError`` naming the worlds if there is no such world."""
    if name not in WORLD_SETTINGS:
        raise ValueError(f"unknown world {name!r}; worlds: {', '.join(WORLDS)}")
    return WORLD_SETTINGS[name]
