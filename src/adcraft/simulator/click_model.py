"""The true click and demand model of every world but ``legacy`` (the truth benchmarks score against).

Click-through probability of product ``p`` shown with creative ``c`` (one element per slot) to a user in
context ``x`` (device, segment), in week ``w`` of the log:

    logit P(click) = mu + b_p                                        product popularity
                   + sum_s T_s e[c_s]                                element main effects
                   + sum_{s<t} T_st J[c_s, c_t]                      element x element
                   + sum_s T_s G[c_s, category(p)]                   element x category
                   + r * <A[category(p)], S(background(c))>          scene relevance (``scenes``)
                   + l * T * clip(log CR(text colour, background) - log 4.5, -1.5, 0.5)   legibility
                   + sum_k a_k exp(-((m_k(image) - peak_k) / width_k)^2 / 2)           peaked visual effects
                   + d[device] + s[segment] + sum_s T_s M[c_s, device] + T_s M[c_s, segment]
                   + sum_s D[c_s, w]                                 weekly drift (``drift`` world)

``T_s`` is 0 for the text slots (title, highlight, font, text colour) under a text-free template and 1
otherwise (``T_st`` is 0 when either is muted); ``CR`` is the WCAG contrast ratio; ``m_k`` are the
simulator's own pixel measures (``measures``), not the models' attributes. A world (``worlds``) sets how
much each family weighs. ``ctr`` without a week is the last week's (the week proposals are served in);
the log also loses ``fatigue * log2(1 + shown / halfway)`` for a creative already shown ``shown`` times.

Expected demand of a product whose listing shows an image (log units):

    log E[demand] = log D0 + b_p + sum_k a'_k exp(-((m_k - peak'_k) / width'_k)^2 / 2)

over the image-only measures (lightness, colourfulness, clutter). The model is saved as JSON and loaded
back bit for bit.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image

from adcraft.atomic import write_json
from adcraft.simulator.measures import image_measures, scene_measures, wcag_contrast

DEVICES: tuple[str, ...] = ("mobile", "desktop")
DEVICE_PROBS: tuple[float, ...] = (0.65, 0.35)
SEGMENTS: tuple[str, ...] = ("deal_seeker", "brand_lover", "new_visitor")
SEGMENT_PROBS: tuple[float, ...] = (0.35, 0.25, 0.40)
TEXT_SLOTS: tuple[str, ...] = ("title", "highlight", "font", "text_color")


def contexts() -> list[tuple[dict[str, str], float]]:
    """Every (context, probability) pair of the simulated traffic; devices and segments independent."""
    return [
        ({"device": d, "segment": s}, pd * ps)
        for d, pd in zip(DEVICES, DEVICE_PROBS)
        for s, ps in zip(SEGMENTS, SEGMENT_PROBS)
    ]


def sigmoid(z: float | np.ndarray) -> float | np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def pair_key(a: str, b: str) -> str:
    """The key of an element pair in ``pair_effect``: the two ids sorted, joined by ``|``."""
    return f"{a}|{b}" if a <= b else f"{b}|{a}"


@dataclass(frozen=True)
class Bump:
    """A peaked term ``amplitude * exp(-((x - peak) / width)^2 / 2)`` of one measure: best at the peak."""

    attribute: str
    peak: float
    width: float
    amplitude: float

    def __call__(self, x: float) -> float:
        return self.amplitude * math.exp(-0.5 * ((x - self.peak) / self.width) ** 2)


@dataclass
class TrueClickModel:
    """Parameters of a world's click and demand model; see the module docstring for the formula."""

    world: str
    mu: float
    product_effect: dict[str, float]
    product_category: dict[str, str]
    element_slot: dict[str, str]
    element_effect: dict[str, float]
    template_name: dict[str, str]
    template_shows_text: dict[str, bool]
    background_prompt: dict[str, str]
    background_rgb: dict[str, list[float]]
    text_rgb: dict[str, list[float]]
    category_latent: dict[str, list[float]]  # affinity of each category to each scene
    background_latent: dict[str, list[float]]  # scene vector of each background
    relevance_scale: float
    legibility_scale: float
    click_terms: list[Bump]
    demand_terms: list[Bump]
    demand_base: float
    demand_popularity: float
    device_effect: dict[str, float]
    segment_effect: dict[str, float]
    pair_effect: dict[str, float] = field(default_factory=dict)
    category_element: dict[str, dict[str, float]] = field(default_factory=dict)
    context_element: dict[str, dict[str, float]] = field(default_factory=dict)
    weekly_drift: dict[str, list[float]] = field(default_factory=dict)
    fatigue: float = 0.0
    fatigue_halfway: float = 400.0

    # -- measures --------------------------------------------------------------------------------------
    def _by_slot(self, element_ids: list[str]) -> dict[str, str]:
        return {self.element_slot[e]: e for e in element_ids}  # KeyError for an element the truth does not know

    def measure(self, element_ids: list[str], image: Image.Image) -> dict[str, float]:
        """The simulator's measures of a rendered creative showing these elements (``measures``)."""
        by_slot = self._by_slot(list(element_ids))
        background = self.background_prompt.get(by_slot.get("background", ""))
        template = self.template_name.get(by_slot.get("template", ""))
        return {**image_measures(image), **scene_measures(image, background, template)}

    # -- click model -----------------------------------------------------------------------------------
    def _text_weights(self, by_slot: dict[str, str]) -> dict[str, float]:
        template = by_slot.get("template")
        shows = 1.0 if template is None else float(self.template_shows_text.get(template, True))
        return {e: (shows if slot in TEXT_SLOTS else 1.0) for slot, e in by_slot.items()}

    def logit_terms(
        self, product_id: str, element_ids: list[str], measures: dict[str, float], week: int | None = None
    ) -> dict[str, float]:
        """The context-free terms of the logit by family (module docstring); ``week=None``: the last week."""
        by_slot = self._by_slot(list(element_ids))
        on = self._text_weights(by_slot)
        category = self.product_category[product_id]
        terms = {
            "base": self.mu + self.product_effect[product_id],
            "elements": sum(on[e] * self.element_effect.get(e, 0.0) for e in on),
            "pairs": sum(on[a] * on[b] * self.pair_effect.get(pair_key(a, b), 0.0) for a, b in combinations(on, 2)),
            "category": sum(on[e] * self.category_element.get(e, {}).get(category, 0.0) for e in on),
            "relevance": 0.0,
            "legibility": 0.0,
            "visual": float(sum(term(measures[term.attribute]) for term in self.click_terms)),
        }
        bg = by_slot.get("background")
        if bg in self.background_latent:
            terms["relevance"] = self.relevance_scale * float(np.dot(self.category_latent[category],
                                                                     self.background_latent[bg]))
        tc = by_slot.get("text_color")
        if bg in self.background_rgb and tc in self.text_rgb:
            ratio = wcag_contrast(self.text_rgb[tc], self.background_rgb[bg])
            terms["legibility"] = self.legibility_scale * on[tc] * float(
                np.clip(math.log(ratio) - math.log(4.5), -1.5, 0.5))
        if week is not None and self.weekly_drift:
            terms["drift"] = sum(self.weekly_drift[e][week] for e in on if e in self.weekly_drift)
        return terms

    def context_logit(self, element_ids: list[str], context: dict[str, str]) -> float:
        """The context's own effect and its interactions with the creative's elements."""
        device, segment = context.get("device", ""), context.get("segment", "")
        value = self.device_effect.get(device, 0.0) + self.segment_effect.get(segment, 0.0)
        for e, weight in self._text_weights(self._by_slot(list(element_ids))).items():
            effects = self.context_element.get(e)
            if effects:
                value += weight * (effects.get(f"device:{device}", 0.0) + effects.get(f"segment:{segment}", 0.0))
        return value

    def ctr_by_context(
        self, product_id: str, element_ids: list[str], attributes: dict[str, float], week: int | None = None
    ) -> list[float]:
        """True click probability in each context of ``contexts()``, in that order."""
        static = sum(self.logit_terms(product_id, list(element_ids), attributes, week).values())
        return [float(sigmoid(static + self.context_logit(list(element_ids), c))) for c, _ in contexts()]

    def ctr(
        self,
        product_id: str,
        element_ids: list[str],
        attributes: dict[str, float],
        context: dict[str, str] | None = None,
    ) -> float:
        """True click probability (last week); ``context=None`` averages it over the traffic's contexts."""
        if context is not None:
            static = sum(self.logit_terms(product_id, list(element_ids), attributes).values())
            return float(sigmoid(static + self.context_logit(list(element_ids), context)))
        weights = [p for _, p in contexts()]
        return float(np.dot(weights, self.ctr_by_context(product_id, element_ids, attributes)))

    # -- demand model ----------------------------------------------------------------------------------
    def expected_demand(self, product_id: str, attributes: dict[str, float]) -> float:
        utility = sum(term(attributes[term.attribute]) for term in self.demand_terms)
        return float(math.exp(self.demand_base + self.demand_popularity * self.product_effect[product_id] + utility))

    def demand_of_image(self, product_id: str, image: Image.Image) -> float:
        """Expected demand of the product if its listing showed this image (image-only measures)."""
        return self.expected_demand(product_id, image_measures(image))

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        write_json(Path(path), asdict(self), sort_keys=True)

    @classmethod
    def load(cls, path: Path) -> TrueClickModel:
        raw = json.loads(Path(path).read_text())
        raw["click_terms"] = [Bump(**t) for t in raw["click_terms"]]
        raw["demand_terms"] = [Bump(**t) for t in raw["demand_terms"]]
        return cls(**raw)
