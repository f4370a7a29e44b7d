"""The simulator's true click and demand model (the ground truth that tests and benchmarks score against).

Click-through probability of product ``p`` shown with creative ``c`` (one element per slot) to a user in
context ``x`` (device, segment):

    logit P(click) = mu + b_p                                             product popularity
                   + sum_s e[c_s]                                         per-element main effects
                   + g_rel * <u_cat(p), v_bg(c)>                          background relevance to the product
                   + g_leg * T(c) * clip(log CR(text, bg) - log 4.5, -1.5, 0.5)   text/background legibility
                   + T(c) * L[template(c)] * z_len(title(c))              layout x title length
                   - sum_k a_k * ((x_k(image) - peak_k) / sd_k)^2         inverse-U image attributes
                   + d[device] + s[segment] + m[highlight(c), segment]    context and its interaction

``T(c)`` is 1 when the template shows text and 0 for text-free templates (then title, highlight, font and
text-colour effects vanish too); ``CR`` is the WCAG contrast ratio between the text colour and the mean
colour of the background; ``x_k`` are visual attributes (brightness, colourfulness, product area, clutter)
of the rendered image, computed from its pixels alone (``adcraft.features.attributes``, no product mask),
exactly as a learner that sees only the image can compute them. Only the last three lines are
interactions: a model with per-element effects alone cannot capture them.

Demand (listing-level sales) of a product whose image has attributes ``x``:

    log E[demand] = log D0 + kappa * b_p - sum_k a'_k * ((x_k - peak'_k) / sd_k)^2

over brightness, colourfulness, symmetry and product area: every attribute is an inverse U with an interior
peak. The model is saved as JSON and loaded back bit for bit.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from adcraft.atomic import write_json
from adcraft.render.text_layout import contrast_ratio

CLICK_ATTRIBUTES: tuple[str, ...] = ("brightness", "colourfulness", "product_area", "clutter")
DEMAND_ATTRIBUTES: tuple[str, ...] = ("brightness", "colourfulness", "symmetry", "product_area")
DEVICES: tuple[str, ...] = ("mobile", "desktop")
DEVICE_PROBS: tuple[float, ...] = (0.65, 0.35)
SEGMENTS: tuple[str, ...] = ("deal_seeker", "brand_lover", "new_visitor")
SEGMENT_PROBS: tuple[float, ...] = (0.35, 0.25, 0.40)
TEXT_SLOTS_AFFECTED: tuple[str, ...] = ("title", "highlight", "font", "text_color")


@dataclass(frozen=True)
class InverseU:
    """A concave quadratic term ``-curvature * ((x - peak) / scale)^2`` of one attribute."""

    attribute: str
    peak: float
    scale: float
    curvature: float

    def __call__(self, x: float) -> float:
        return -self.curvature * ((x - self.peak) / self.scale) ** 2


def contexts() -> list[tuple[dict[str, str], float]]:
    """Every (context, probability) pair of the simulated traffic; devices and segments independent."""
    return [
        ({"device": d, "segment": s}, pd * ps)
        for d, pd in zip(DEVICES, DEVICE_PROBS)
        for s, ps in zip(SEGMENTS, SEGMENT_PROBS)
    ]


def sigmoid(z: float | np.ndarray) -> float | np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class TrueClickModel:
    """Parameters of the true click and demand model; see the module docstring for the formula."""

    mu: float
    product_effect: dict[str, float]
    product_category: dict[str, str]
    element_slot: dict[str, str]
    element_effect: dict[str, float]
    category_latent: dict[str, list[float]]
    background_latent: dict[str, list[float]]
    background_rgb: dict[str, list[float]]
    text_rgb: dict[str, list[float]]
    title_length_z: dict[str, float]
    template_length_coef: dict[str, float]
    template_shows_text: dict[str, bool]
    relevance_scale: float
    legibility_scale: float
    click_terms: list[InverseU]
    demand_terms: list[InverseU]
    demand_base: float
    demand_popularity: float
    device_effect: dict[str, float]
    segment_effect: dict[str, float]
    highlight_segment: dict[str, dict[str, float]] = field(default_factory=dict)

    # -- click model -------------------------------------------------------------------------------
    def _by_slot(self, element_ids: list[str]) -> dict[str, str]:
        return {self.element_slot[e]: e for e in element_ids}

    def _shows_text(self, by_slot: dict[str, str]) -> float:
        template = by_slot.get("template")
        return 1.0 if template is None else float(self.template_shows_text.get(template, True))

    def static_logit_terms(self, product_id: str, element_ids: list[str]) -> dict[str, float]:
        """The context- and image-free terms of the logit, by name (main effects and interactions)."""
        by_slot = self._by_slot(element_ids)
        text = self._shows_text(by_slot)
        main = sum(
            self.element_effect.get(e, 0.0) * (text if slot in TEXT_SLOTS_AFFECTED else 1.0)
            for slot, e in by_slot.items()
        )
        terms = {"base": self.mu + self.product_effect[product_id], "elements": main}
        bg = by_slot.get("background")
        if bg is not None and bg in self.background_latent:
            u = self.category_latent[self.product_category[product_id]]
            terms["relevance"] = self.relevance_scale * float(np.dot(u, self.background_latent[bg]))
        tc = by_slot.get("text_color")
        if bg is not None and tc is not None and tc in self.text_rgb and bg in self.background_rgb:
            ratio = contrast_ratio(self.text_rgb[tc], self.background_rgb[bg])
            legibility = float(np.clip(math.log(ratio) - math.log(4.5), -1.5, 0.5))
            terms["legibility"] = self.legibility_scale * text * legibility
        title, template = by_slot.get("title"), by_slot.get("template")
        if title is not None and template is not None:
            coef = self.template_length_coef.get(template, 0.0)
            terms["layout_length"] = text * coef * self.title_length_z.get(title, 0.0)
        return terms

    def attribute_logit(self, attributes: dict[str, float]) -> float:
        """Sum of the inverse-U image-attribute terms of the click logit."""
        return float(sum(term(attributes[term.attribute]) for term in self.click_terms))

    def context_logit(self, element_ids: list[str], context: dict[str, str]) -> float:
        by_slot = self._by_slot(element_ids)
        value = self.device_effect.get(context.get("device", ""), 0.0)
        segment = context.get("segment", "")
        value += self.segment_effect.get(segment, 0.0)
        highlight = by_slot.get("highlight")
        if highlight is not None:
            value += self._shows_text(by_slot) * self.highlight_segment.get(highlight, {}).get(segment, 0.0)
        return value

    def ctr(
        self,
        product_id: str,
        element_ids: list[str],
        attributes: dict[str, float],
        context: dict[str, str] | None = None,
    ) -> float:
        """True click probability; ``context=None`` averages the probability over the traffic's contexts."""
        if context is not None:
            static = sum(self.static_logit_terms(product_id, element_ids).values())
            static += self.attribute_logit(attributes)
            return float(sigmoid(static + self.context_logit(element_ids, context)))
        weights = [p for _, p in contexts()]
        return float(np.dot(weights, self.ctr_by_context(product_id, element_ids, attributes)))

    def ctr_by_context(
        self, product_id: str, element_ids: list[str], attributes: dict[str, float]
    ) -> list[float]:
        """True click probability in each context of ``contexts()``, in that order."""
        static = sum(self.static_logit_terms(product_id, element_ids).values())
        static += self.attribute_logit(attributes)
        return [float(sigmoid(static + self.context_logit(element_ids, c))) for c, _ in contexts()]

    # -- demand model ------------------------------------------------------------------------------
    def demand_log_utility(self, attributes: dict[str, float]) -> float:
        """The image part of log expected demand: the sum of the demand's inverse-U terms."""
        return float(sum(term(attributes[term.attribute]) for term in self.demand_terms))

    def expected_demand(self, product_id: str, attributes: dict[str, float]) -> float:
        log_mean = self.demand_base + self.demand_popularity * self.product_effect[product_id]
        return float(math.exp(log_mean + self.demand_log_utility(attributes)))

    # -- persistence -------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        write_json(Path(path), asdict(self), sort_keys=True)

    @classmethod
    def load(cls, path: Path) -> TrueClickModel:
        raw = json.loads(Path(path).read_text())
        raw["click_terms"] = [InverseU(**t) for t in raw["click_terms"]]
        raw["demand_terms"] = [InverseU(**t) for t in raw["demand_terms"]]
        return cls(**raw)

