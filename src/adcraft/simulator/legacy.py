"""The ``legacy`` world: the simulator's original click and demand model, kept to reproduce old results.

Its visual terms are quadratics in the same attributes the models compute (brightness, colourfulness,
product area, clutter, symmetry as ``adcraft.features.attributes`` defined them when this model was
written), so a learner scores well here by matching the truth's definitions, not by learning. The
attribute formulas are a frozen copy (``legacy_attributes``): the truth imports nothing from the models,
and old markets reproduce bit for bit even if the models' attributes change.

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
of the rendered image, computed from its pixels alone (``legacy_attributes``, no product mask),
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
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from PIL import Image

from adcraft.atomic import write_json
from adcraft.render.background import draw_background, parse_background
from adcraft.simulator.catalogue import DEAL_HIGHLIGHTS
from adcraft.simulator.click_model import DEVICES, SEGMENTS, contexts, sigmoid
from adcraft.simulator.config import SimulatorConfig
from adcraft.simulator.measures import wcag_contrast

CLICK_ATTRIBUTES: tuple[str, ...] = ("brightness", "colourfulness", "product_area", "clutter")
DEMAND_ATTRIBUTES: tuple[str, ...] = ("brightness", "colourfulness", "symmetry", "product_area")
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


@dataclass
class LegacyClickModel:
    """Parameters of the legacy click and demand model; see the module docstring for the formula."""

    world: ClassVar[str] = "legacy"

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
            ratio = wcag_contrast(self.text_rgb[tc], self.background_rgb[bg])
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

    def measure(self, element_ids: list[str], image: Image.Image) -> dict[str, float]:
        """The attributes this model reads from an image (the element ids play no part here)."""
        return legacy_attributes(image)

    def demand_of_image(self, product_id: str, image: Image.Image) -> float:
        return self.expected_demand(product_id, legacy_attributes(image))

    # -- persistence -------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        write_json(Path(path), asdict(self), sort_keys=True)  # no "world" key: how legacy truths were written

    @classmethod
    def load(cls, path: Path) -> LegacyClickModel:
        raw = json.loads(Path(path).read_text())
        raw["click_terms"] = [InverseU(**t) for t in raw["click_terms"]]
        raw["demand_terms"] = [InverseU(**t) for t in raw["demand_terms"]]
        return cls(**raw)



def draw_legacy_model(
    config: SimulatorConfig,
    products: pd.DataFrame,
    elements: pd.DataFrame,
    attributes: pd.DataFrame,
    rng: np.random.Generator,
) -> LegacyClickModel:
    """Draw the legacy model's parameters; attribute peaks sit at interior quantiles of the rendered images."""
    s = config.element_effect_scale
    slot_of = dict(zip(elements["element_id"], elements["slot"]))
    effects = {e: float(rng.normal(0.0, s)) for e in elements["element_id"]}
    categories = sorted(products["category"].unique())
    latent = {c: list(rng.normal(0.0, 1.0, 3) / np.sqrt(3)) for c in categories}
    backgrounds = elements[elements["slot"] == "background"]
    bg_latent = {e: list(rng.normal(0.0, 1.0, 3) / np.sqrt(3)) for e in backgrounds["element_id"]}
    bg_rgb = {}
    for e, prompt in zip(backgrounds["element_id"], backgrounds["value"]):
        swatch = np.asarray(draw_background(parse_background(prompt), (48, 48), seed=0), dtype=float)
        bg_rgb[e] = [float(v) for v in swatch.reshape(-1, 3).mean(axis=0)]
    colours = elements[elements["slot"] == "text_color"]
    text_rgb = {e: [int(v[i : i + 2], 16) for i in (1, 3, 5)] for e, v in zip(colours["element_id"], colours["value"])}
    titles = elements[elements["slot"] == "title"]
    lengths = titles["text"].str.split().str.len().astype(float)
    z = (lengths - lengths.mean()) / (lengths.std() or 1.0)
    templates = elements[elements["slot"] == "template"]
    shows_text = {e: v != "minimal" for e, v in zip(templates["element_id"], templates["value"])}
    length_coef = {
        e: float(rng.normal(0.0, config.layout_length_scale)) if shows_text[e] else 0.0
        for e in templates["element_id"]
    }
    lo, hi = config.attribute_curvature

    def terms(names: tuple[str, ...]) -> list[InverseU]:
        out = []
        for name in names:
            values = attributes[name].to_numpy(dtype=float)
            scale = float(max(values.std(), 1e-3))
            peak = float(np.quantile(values, rng.uniform(0.3, 0.7)))
            out.append(InverseU(name, peak, scale, float(rng.uniform(lo, hi))))
        return out

    c = config.context_scale
    highlights = elements[elements["slot"] == "highlight"]
    highlight_segment = {
        e: {"deal_seeker": float(abs(rng.normal(2 * c, c)))}
        for e, text in zip(highlights["element_id"], highlights["text"])
        if text in DEAL_HIGHLIGHTS
    }
    base = float(np.log(config.base_ctr / (1 - config.base_ctr)))
    return LegacyClickModel(
        mu=base,
        product_effect={p: float(rng.normal(0.0, config.product_scale)) for p in products["product_id"]},
        product_category=dict(zip(products["product_id"], products["category"])),
        element_slot=slot_of,
        element_effect=effects,
        category_latent=latent,
        background_latent=bg_latent,
        background_rgb=bg_rgb,
        text_rgb=text_rgb,
        title_length_z={e: float(v) for e, v in zip(titles["element_id"], z)},
        template_length_coef=length_coef,
        template_shows_text=shows_text,
        relevance_scale=config.relevance_scale,
        legibility_scale=config.legibility_scale,
        click_terms=terms(CLICK_ATTRIBUTES),
        demand_terms=terms(DEMAND_ATTRIBUTES),
        demand_base=float(np.log(60.0)),
        demand_popularity=1.0,
        device_effect={d: float(rng.normal(0.0, c)) for d in DEVICES},
        segment_effect={g: float(rng.normal(0.0, c)) for g in SEGMENTS},
        highlight_segment=highlight_segment,
    )


# -- the attributes the legacy model reads: a frozen copy of adcraft.features.attributes (no mask) ---------

LEGACY_ATTRIBUTE_NAMES: tuple[str, ...] = (
    "brightness", "contrast", "colourfulness", "sharpness", "symmetry", "product_area", "clutter",
)
_WHITE = (255, 255, 255)
ANALYSIS_MAX_SIDE = 512
REC601_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
COLOURFULNESS_SCALE = 109.0  # Hasler & Süsstrunk's "extremely colourful" M (8-bit units)
SHARPNESS_REFERENCE = 100.0  # Laplacian variance (8-bit luma) usually taken as the blur threshold
EDGE_THRESHOLD = 0.1  # Sobel magnitude, in luma steps, that counts as an edge
BORDER_TOLERANCE = 0.1  # per-channel difference from the border colour that counts as "product"
STRIP_ROWS = 48  # float32 work happens 48 rows at a time, so temporaries stay small and in cache




def legacy_attributes(image: Image.Image) -> dict[str, float]:
    """The seven attributes of ``LEGACY_ATTRIBUTE_NAMES`` of an image, as the legacy truth was written with.

    Transparency is composited onto white; images longer than 512 px are box-downscaled first; luma is
    Rec. 601. Formulas as in ``features.attributes`` at the time (brightness: mean luma; colourfulness:
    ``tanh(M / 109)``, Hasler & Suesstrunk 2003 eq. 3; product_area: pixels unlike the border's median
    colour by more than 0.1; clutter: Sobel edge density above 0.1 of a luma step).
    """
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        page = Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE + (255,)), rgba).convert("RGB")
    else:
        page = image.convert("RGB")
    scale = ANALYSIS_MAX_SIDE / max(page.size)
    if scale < 1:
        size = (max(1, round(page.width * scale)), max(1, round(page.height * scale)))
        page = page.resize(size, Image.Resampling.BOX)
    planes = np.stack([np.asarray(channel) for channel in page.split()])
    luma = np.empty(planes.shape[1:], dtype=np.float32)
    luma_moments = _RunningMoments()
    for top, bottom in _strips(luma.shape[0]):
        red, green, blue = planes[:, top:bottom]
        strip = np.multiply(red, REC601_LUMA[0], dtype=np.float32, out=luma[top:bottom])
        strip += REC601_LUMA[1] * green
        strip += REC601_LUMA[2] * blue
        luma_moments.add(strip)
    return {
        "brightness": min(luma_moments.mean / 255.0, 1.0),
        "contrast": luma_moments.std / 255.0,
        "colourfulness": _colourfulness(planes),
        "sharpness": _sharpness(luma),
        "symmetry": _symmetry(planes),
        "product_area": _area_unlike_border(planes),
        "clutter": _clutter(luma, None),
    }


def _colourfulness(planes: np.ndarray) -> float:
    rg_moments, yb_moments = _RunningMoments(), _RunningMoments()
    for top, bottom in _strips(planes.shape[1]):
        red, green, blue = planes[:, top:bottom]
        rg = np.subtract(red, green, dtype=np.float32)
        yb = np.add(red, green, dtype=np.float32)
        yb *= 0.5
        yb -= blue
        rg_moments.add(rg)
        yb_moments.add(yb)
    spread = math.hypot(rg_moments.std, yb_moments.std)
    offset = math.hypot(rg_moments.mean, yb_moments.mean)
    return math.tanh((spread + 0.3 * offset) / COLOURFULNESS_SCALE)


def _symmetry(planes: np.ndarray) -> float:
    # |I - mirror(I)| is itself mirror-symmetric (and 0 on an odd width's middle column), so the
    # left half holds exactly half of its sum.
    half = planes.shape[2] // 2
    left = planes[:, :, :half]
    mirrored_left = planes[:, :, ::-1][:, :, :half]
    difference = np.maximum(left, mirrored_left)
    difference -= np.minimum(left, mirrored_left)  # |a - b| without leaving uint8
    total = 2.0 * float(difference.sum(dtype=np.int64))
    return 1.0 - total / (planes.size * 255.0)


def _sharpness(luma: np.ndarray) -> float:
    if min(luma.shape) < 3:
        return 0.0
    moments = _RunningMoments()
    for top, bottom in _strips(luma.shape[0] - 2):  # rows of the interior, 1..height-2
        y = luma[top : bottom + 2]  # with one row of context above and below
        moments.add(y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4.0 * y[1:-1, 1:-1])
    variance = moments.std**2
    return variance / (variance + SHARPNESS_REFERENCE)


def _clutter(luma: np.ndarray, product_mask: np.ndarray | None) -> float:
    if min(luma.shape) < 3:
        return 0.0
    threshold = (4.0 * 255.0 * EDGE_THRESHOLD) ** 2  # |Sobel| / 4 > t  <=>  gx² + gy² > (4 t)²
    edges = counted = 0
    for top, bottom in _strips(luma.shape[0] - 2):
        y = luma[top : bottom + 2]
        # Sobel, separably: a central difference along one axis smoothed by [1, 2, 1] along the other.
        across = y[:, 2:] - y[:, :-2]
        down = y[2:] - y[:-2]
        gx = across[:-2] + 2.0 * across[1:-1] + across[2:]
        gy = down[:, :-2] + 2.0 * down[:, 1:-1] + down[:, 2:]
        np.multiply(gx, gx, out=gx)
        np.multiply(gy, gy, out=gy)
        strong = np.add(gx, gy, out=gx) > threshold
        if product_mask is None:
            edges += np.count_nonzero(strong)
            counted += strong.size
        else:
            background = ~product_mask[top + 1 : bottom + 1, 1:-1]
            edges += np.count_nonzero(strong & background)
            counted += np.count_nonzero(background)
    return float(edges / counted) if counted else 0.0


def _area_unlike_border(planes: np.ndarray) -> float:
    border = np.concatenate([planes[:, 0], planes[:, -1], planes[:, :, 0], planes[:, :, -1]], axis=1)
    colour = np.median(border, axis=1)
    tolerance = 255.0 * BORDER_TOLERANCE
    differs = np.zeros(planes.shape[1:], dtype=bool)
    for plane, level in zip(planes, colour, strict=True):
        # |plane - level| > tolerance, as integer bounds so the comparison stays in uint8
        low, high = math.ceil(level - tolerance), math.floor(level + tolerance)
        if low > 0:
            differs |= plane < low
        if high < 255:
            differs |= plane > high
    return float(np.count_nonzero(differs) / differs.size)


class _RunningMoments:
    """Count, mean and spread of values seen strip by strip.

    Strips are merged with the pairwise update of Chan, Golub & LeVeque (1979):
    ``M2 = M2_a + M2_b + delta² n_a n_b / n``, as stable as a two-pass variance.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.squared_deviations = 0.0

    def add(self, values: np.ndarray) -> None:
        count = values.size
        if count == 0:
            return
        mean = float(values.mean())
        deviations = (values - np.float32(mean)).ravel()
        total = self.count + count
        delta = mean - self.mean
        self.squared_deviations += (
            float(np.dot(deviations, deviations)) + delta**2 * self.count * count / total
        )
        self.mean += delta * count / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(self.squared_deviations / self.count) if self.count else 0.0


def _strips(rows: int) -> Iterator[tuple[int, int]]:
    """``(top, bottom)`` row ranges of at most ``STRIP_ROWS`` rows covering ``range(rows)``."""
    for top in range(0, rows, STRIP_ROWS):
        yield top, min(rows, top + STRIP_ROWS)
