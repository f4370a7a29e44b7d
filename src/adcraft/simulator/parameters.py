"""Drawing a world's true click and demand parameters, calibrated on the market's past creatives.

Each family of terms (``worlds.FAMILIES``) is drawn with unit-sized effects, then rescaled so that its
within-product standard deviation over the past creatives equals the world's weight; the sum is then
rescaled so a creative's logit varies with sd ``creative_sd`` within a product (``worlds`` cites the
calibration). Each product's popularity is set last, so that the mean logit of its past (random)
creatives equals a base CTR drawn around ``SimulatorConfig.base_ctr`` and kept inside
``BASE_CTR_RANGE``: every product's base CTR lies in 0.5-5%, as on real shops.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd

from adcraft.simulator.catalogue import DEAL_HIGHLIGHTS
from adcraft.simulator.click_model import (
    DEVICES,
    SEGMENTS,
    Bump,
    TrueClickModel,
    contexts,
    pair_key,
)
from adcraft.simulator.config import SimulatorConfig
from adcraft.simulator.measures import IMAGE_MEASURES, MEASURES, background_colour
from adcraft.simulator.scenes import category_affinity, scene_vector
from adcraft.simulator.worlds import FAMILIES, WorldSettings

BASE_CTR_RANGE: tuple[float, float] = (0.007, 0.045)
BASE_CTR_SPREAD = 0.45  # sd of the products' base logits around logit(base_ctr)
SIDE_TEMPLATES = frozenset({"left", "right"})  # text beside the product: cramped on a phone


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def draw_world_model(
    config: SimulatorConfig,
    settings: WorldSettings,
    products: pd.DataFrame,
    elements: pd.DataFrame,
    creatives: pd.DataFrame,
    measures: list[dict[str, float]],
    weeks: int,
    rng: np.random.Generator,
) -> TrueClickModel:
    """A world's model, calibrated on ``creatives`` (product_id, elements) and their ``measures``."""
    ids = elements["element_id"].tolist()
    slot_of = dict(zip(elements["element_id"], elements["slot"]))
    shared = [e for e in ids if slot_of[e] != "title"]
    categories = sorted(products["category"].unique())
    templates = elements[elements["slot"] == "template"]
    backgrounds = elements[elements["slot"] == "background"]
    colours = elements[elements["slot"] == "text_color"]
    weight = {k: float(settings.weights.get(k, 0.0)) for k in FAMILIES}

    pairs: dict[str, float] = {}
    if weight["pairs"]:
        by_slot: dict[str, list[str]] = {}
        for e in ids:
            by_slot.setdefault(slot_of[e], []).append(e)
        for s, t in combinations(sorted(by_slot), 2):
            for a in by_slot[s]:
                for b in by_slot[t]:
                    pairs[pair_key(a, b)] = float(rng.normal())
    category_element = (
        {e: {c: float(rng.normal()) for c in categories} for e in shared} if weight["category"] else {}
    )
    context_keys = [f"device:{d}" for d in DEVICES] + [f"segment:{s}" for s in SEGMENTS]
    context_element: dict[str, dict[str, float]] = {}
    if weight["context"]:
        texts = dict(zip(elements["element_id"], elements["text"]))
        values = dict(zip(elements["element_id"], elements["value"]))
        for e in shared:
            effects = {k: float(rng.normal(0.0, 0.5)) for k in context_keys}
            if texts.get(e) in DEAL_HIGHLIGHTS:
                effects["segment:deal_seeker"] += 1.5
            if values.get(e) in SIDE_TEMPLATES:
                effects["device:mobile"] -= 1.5
            context_element[e] = effects
    click_terms = []
    table = pd.DataFrame(measures)
    for name in MEASURES:
        values = table[name].to_numpy(dtype=float)
        spread = float(max(values.std(), 1e-3))
        peak = float(np.quantile(values, rng.uniform(0.3, 0.7)))
        click_terms.append(Bump(name, peak, spread * float(rng.uniform(0.6, 1.2)), 1.0))
    demand_terms = []
    for name in IMAGE_MEASURES:
        values = table[name].to_numpy(dtype=float)
        spread = float(max(values.std(), 1e-3))
        peak = float(np.quantile(values, rng.uniform(0.3, 0.7)))
        demand_terms.append(Bump(name, peak, spread, float(rng.uniform(0.1, 0.3))))

    model = TrueClickModel(
        world=config.world,
        mu=_logit(config.base_ctr),
        product_effect={p: 0.0 for p in products["product_id"]},
        product_category=dict(zip(products["product_id"], products["category"])),
        element_slot=slot_of,
        element_effect={e: float(rng.normal()) for e in ids},
        template_name=dict(zip(templates["element_id"], templates["value"])),
        template_shows_text={e: v != "minimal" for e, v in zip(templates["element_id"], templates["value"])},
        background_prompt=dict(zip(backgrounds["element_id"], backgrounds["value"])),
        background_rgb={e: background_colour(v) for e, v in zip(backgrounds["element_id"], backgrounds["value"])},
        text_rgb={e: [int(v[i : i + 2], 16) for i in (1, 3, 5)]
                  for e, v in zip(colours["element_id"], colours["value"])},
        category_latent={c: category_affinity(c, rng) for c in categories},
        background_latent={e: scene_vector(v) for e, v in zip(backgrounds["element_id"], backgrounds["value"])},
        relevance_scale=1.0,
        legibility_scale=1.0,
        click_terms=click_terms,
        demand_terms=demand_terms,
        demand_base=float(np.log(60.0)),
        demand_popularity=1.0,
        device_effect={d: float(rng.normal(0.0, 0.15)) for d in DEVICES},
        segment_effect={s: float(rng.normal(0.0, 0.15)) for s in SEGMENTS},
        pair_effect=pairs,
        category_element=category_element,
        context_element=context_element,
        fatigue=settings.fatigue,
    )
    scale = _family_scales(model, creatives, measures, weight, settings.creative_sd)
    model = _rescaled(model, scale)
    if settings.drift_sd > 0:
        step = settings.drift_sd * scale["elements"]
        drift = {}
        for e in ids:
            walk = np.concatenate([np.cumsum(rng.normal(0.0, step, weeks - 1))[::-1], [0.0]])
            drift[e] = [float(v) for v in walk]
        model.weekly_drift = drift
    model.fatigue_halfway = settings.fatigue_halfway
    _set_popularity(model, config, creatives, measures, rng)
    return model


def _family_values(model: TrueClickModel, creatives: pd.DataFrame, measures: list[dict[str, float]]) -> pd.DataFrame:
    """Each family's logit contribution to each past creative (context terms averaged over the traffic)."""
    rows = []
    traffic = contexts()
    for pid, combo, m in zip(creatives["product_id"], creatives["elements"], measures):
        terms = model.logit_terms(pid, list(combo), m)
        context = sum(p * (model.context_logit(list(combo), c) - model.device_effect[c["device"]]
                           - model.segment_effect[c["segment"]]) for c, p in traffic)
        rows.append({**{k: terms[k] for k in FAMILIES if k != "context"}, "context": context})
    frame = pd.DataFrame(rows, columns=list(FAMILIES))
    return frame - frame.groupby(creatives["product_id"].to_numpy()).transform("mean")


def _family_scales(model: TrueClickModel, creatives: pd.DataFrame, measures: list[dict[str, float]],
                   weight: dict[str, float], creative_sd: float) -> dict[str, float]:
    """Per family, the factor that gives it spread ``weight`` and the sum spread ``creative_sd``."""
    within = _family_values(model, creatives, measures)
    factor = {k: (weight[k] / within[k].std() if weight[k] > 0 and within[k].std() > 1e-12 else 0.0)
              for k in FAMILIES}
    total = sum(factor[k] * within[k] for k in FAMILIES)
    overall = creative_sd / total.std() if total.std() > 1e-12 else 0.0
    return {k: overall * factor[k] for k in FAMILIES}


def _rescaled(model: TrueClickModel, scale: dict[str, float]) -> TrueClickModel:
    model.element_effect = {e: v * scale["elements"] for e, v in model.element_effect.items()}
    model.pair_effect = {k: v * scale["pairs"] for k, v in model.pair_effect.items() if scale["pairs"]}
    model.category_element = {e: {c: v * scale["category"] for c, v in row.items()}
                              for e, row in model.category_element.items() if scale["category"]}
    model.context_element = {e: {c: v * scale["context"] for c, v in row.items()}
                             for e, row in model.context_element.items() if scale["context"]}
    model.relevance_scale = scale["relevance"]
    model.legibility_scale = scale["legibility"]
    model.click_terms = [Bump(t.attribute, t.peak, t.width, t.amplitude * scale["visual"])
                         for t in model.click_terms if scale["visual"]]
    return model


def _set_popularity(model: TrueClickModel, config: SimulatorConfig, creatives: pd.DataFrame,
                    measures: list[dict[str, float]], rng: np.random.Generator) -> None:
    """Each product's effect: its past creatives' mean logit becomes a base logit in ``BASE_CTR_RANGE``."""
    low, high = (_logit(p) for p in BASE_CTR_RANGE)
    traffic = contexts()
    logits: dict[str, list[float]] = {}
    for pid, combo, m in zip(creatives["product_id"], creatives["elements"], measures):
        static = sum(model.logit_terms(pid, list(combo), m).values())
        logits.setdefault(pid, []).append(static + sum(p * model.context_logit(list(combo), c) for c, p in traffic))
    for pid in model.product_effect:
        target = float(np.clip(rng.normal(model.mu, BASE_CTR_SPREAD), low, high))
        current = float(np.mean(logits[pid])) if pid in logits else model.mu
        model.product_effect[pid] = target - current
