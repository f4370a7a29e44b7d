"""The ground truth of a simulated market: the true CTR of any combination or image, and true demand.

A simulated market is written with a separate truth folder::

    TRUTH/
      click_model.json     the click model's parameters (see ``click_model``, ``legacy``)
      creatives.parquet    per past creative: true CTR (context-averaged, last week) and its measures
      elements.parquet     per element: slot and true main effect (logit units)
      products.parquet     per product: popularity effect, listing creative (its most-shown) and that
                           image's expected demand
      simulation.json      the simulator's settings and the logging policy

Tests and benchmarks load it with ``GroundTruth.load(TRUTH)``; learners never see it. The model is the
world's ``click_model.TrueClickModel``, or ``legacy.LegacyClickModel`` for a ``legacy`` truth (its
``click_model.json`` has no ``world`` key). Either measures an image itself (``model.measure``).

Backgrounds the simulator never made (prompts written by a generator) are given true parameters by
``GroundTruth.with_elements``. In every world but ``legacy`` a prompt identical (up to case, spacing and
punctuation other than commas) to one of the market's backgrounds keeps that background's parameters;
any other prompt gets its own scene vector (``scenes.scene_vector``: the words carry the scene), a zero
main effect and no interactions (the prior means), and its drawn colour. In the ``legacy`` world a
prompt identical (up to case, spacing and punctuation other than commas) to one of the simulator's
backgrounds keeps exactly that background's parameters; any other prompt gets the word-overlap-weighted
average of the simulator's backgrounds' relevance latents and main effects,

    v(prompt) = sum_j s_j v_j / sum_j s_j,   s_j = |W(prompt) & W_j| / |W(prompt) | W_j|   (Jaccard),

over content words W (lower-cased words and hex codes, without "a, an, and, the, to, with, in, on,
of"); a prompt sharing no word with any of them gets a zero latent and a zero main effect (the
prior means). Its colour for the legibility term is the mean colour of its drawn background, as
for the simulator's own. ``background_match`` is the product-background match of CAIG's evaluation:
the prompt's true relevance term ``relevance_scale * <u_category, v(prompt)>`` is positive.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from adcraft.errors import InputError
from adcraft.market import Market
from adcraft.render.from_market import MarketRenderer
from adcraft.simulator.catalogue import BACKGROUNDS
from adcraft.simulator.click_model import TrueClickModel
from adcraft.simulator.legacy import LegacyClickModel
from adcraft.simulator.measures import background_colour
from adcraft.simulator.scenes import scene_vector

STOP_WORDS = frozenset({"a", "an", "and", "the", "to", "with", "in", "on", "of"})
_PROMPT_TOKEN = re.compile(r"#[0-9a-f]{6}(?![0-9a-f])|#[0-9a-f]{3}(?![0-9a-f])|[a-z]+|,")
_SIMULATOR_BACKGROUND_ID = re.compile(r"bg(\d{2,})")


ClickModel = TrueClickModel | LegacyClickModel


def load_click_model(path: Path) -> ClickModel:
    """The click model saved at ``path``: a world's, or the legacy one (written without a ``world`` key)."""
    raw = json.loads(Path(path).read_text())
    return TrueClickModel.load(path) if "world" in raw else LegacyClickModel.load(path)


def prompt_words(prompt: str) -> frozenset[str]:
    """Content words of a background prompt: lower-cased words and hex codes, without ``STOP_WORDS``."""
    return frozenset(t for t in _PROMPT_TOKEN.findall((prompt or "").lower()) if t != "," and t not in STOP_WORDS)


def canonical_prompt(prompt: str) -> str:
    """A prompt's words, hex codes and commas, lower-cased and single-spaced (how prompts are compared)."""
    return " ".join(_PROMPT_TOKEN.findall((prompt or "").lower()))


@dataclass(frozen=True)
class BackgroundParameters:
    """True parameters of a background: relevance latent, main effect (logit) and mean colour."""

    latent: list[float]
    effect: float
    rgb: list[float]


@dataclass
class GroundTruth:
    """Loaded truth of one simulated market.

    ``added_prompts`` holds the prompts of backgrounds added by ``with_elements`` (by element id).
    """

    model: ClickModel
    creatives: pd.DataFrame
    elements: pd.DataFrame
    products: pd.DataFrame
    simulation: dict
    added_prompts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path) -> GroundTruth:
        folder = Path(folder)
        return cls(
            model=load_click_model(folder / "click_model.json"),
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
        attributes = self.model.measure(list(element_ids), image)
        return self.model.ctr(product_id, list(element_ids), attributes, context)

    def ctr_by_context_of_image(self, product_id: str, element_ids: Sequence[str], image: Image.Image) -> list[float]:
        """True CTR of an image in each context of ``click_model.contexts()``, measuring the image once."""
        attributes = self.model.measure(list(element_ids), image)
        return self.model.ctr_by_context(product_id, list(element_ids), attributes)

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
        return additive_element_effects(market, self.creatives.set_index("creative_id")["true_ctr"])

    def demand_of_image(self, product_id: str, image: Image.Image) -> float:
        """Expected demand of the product if its listing showed this image."""
        return self.model.demand_of_image(product_id, image)

    # -- backgrounds the simulator never made ----------------------------------------------------------

    def simulator_backgrounds(self) -> dict[str, str]:
        """The simulator's own backgrounds, element id -> prompt (legacy: ``bgNN`` is ``catalogue.BACKGROUNDS[NN]``)."""
        if isinstance(self.model, TrueClickModel):
            return {e: p for e, p in self.model.background_prompt.items() if e not in self.added_prompts}
        out = {}
        for element_id in self.model.background_latent:
            found = _SIMULATOR_BACKGROUND_ID.fullmatch(element_id)
            if element_id not in self.added_prompts and found and int(found.group(1)) < len(BACKGROUNDS):
                out[element_id] = BACKGROUNDS[int(found.group(1))]
        return out

    def background_parameters(self, prompt: str) -> BackgroundParameters:
        """True parameters of any background prompt (module docstring: known prompts keep theirs)."""
        known = self.simulator_backgrounds()
        canonical = canonical_prompt(prompt)
        for element_id, text in known.items():
            if canonical_prompt(text) == canonical:
                return BackgroundParameters(
                    list(self.model.background_latent[element_id]),
                    float(self.model.element_effect.get(element_id, 0.0)),
                    list(self.model.background_rgb[element_id]),
                )
        if isinstance(self.model, TrueClickModel):
            return BackgroundParameters(scene_vector(prompt), 0.0, background_colour(prompt))
        words = prompt_words(prompt)
        ids = list(known)
        overlap = np.array([len(words & prompt_words(known[e])) / max(1, len(words | prompt_words(known[e])))
                            for e in ids])
        dim = len(next(iter(self.model.category_latent.values())))
        if overlap.sum() > 0:
            weights = overlap / overlap.sum()
            latent = weights @ np.array([self.model.background_latent[e] for e in ids], dtype=float)
            effect = float(weights @ np.array([self.model.element_effect.get(e, 0.0) for e in ids]))
        else:
            latent, effect = np.zeros(dim), 0.0
        return BackgroundParameters([float(v) for v in latent], effect, background_colour(prompt))

    def background_relevance(self, product_id: str, prompt: str) -> float:
        """The true relevance term ``relevance_scale * <u_category(product), v(prompt)>`` (logit units)."""
        if product_id not in self.model.product_category:
            raise InputError(f"unknown product {product_id!r}")
        u = self.model.category_latent[self.model.product_category[product_id]]
        return self.model.relevance_scale * float(np.dot(u, self.background_parameters(prompt).latent))

    def background_match(self, product_id: str, prompt: str) -> bool:
        """Whether the background suits the product: its true relevance term is positive."""
        return self.background_relevance(product_id, prompt) > 0.0

    def with_elements(self, elements: pd.DataFrame) -> GroundTruth:
        """A copy whose click model also knows new background elements (market elements-table rows).

        Each new background gets ``background_parameters`` of its prompt (``value``); ids the model
        already knows are left as they are, so every known number is unchanged. Only background
        elements can be added.
        """
        missing = [c for c in ("element_id", "slot", "value") if c not in elements]
        if missing:
            raise InputError(f"new elements need the columns element_id, slot and value; missing {missing}")
        other = sorted(set(elements["slot"]) - {"background"})
        if other:
            raise InputError(f"the truth can only be extended with background elements, not {other}")
        new = elements[~elements["element_id"].isin(set(self.model.element_slot))].drop_duplicates("element_id")
        empty = new["value"].map(lambda v: not isinstance(v, str) or not v.strip())
        if empty.any():
            raise InputError(f"background elements need a prompt in 'value': {new['element_id'][empty].tolist()[:5]}")
        model = self.model
        slots, effects = dict(model.element_slot), dict(model.element_effect)
        latents, colours = dict(model.background_latent), dict(model.background_rgb)
        for element_id, prompt in zip(new["element_id"], new["value"]):
            parameters = self.background_parameters(prompt)
            slots[element_id] = "background"
            effects[element_id] = parameters.effect
            latents[element_id] = parameters.latent
            colours[element_id] = parameters.rgb
        changes = dict(element_slot=slots, element_effect=effects, background_latent=latents, background_rgb=colours)
        if isinstance(model, TrueClickModel):
            changes["background_prompt"] = {**model.background_prompt, **dict(zip(new["element_id"], new["value"]))}
        grown = dataclasses.replace(model, **changes)
        rows = pd.DataFrame({"element_id": new["element_id"].to_numpy(), "slot": "background",
                             "true_effect": [effects[e] for e in new["element_id"]]})
        return GroundTruth(
            model=grown,
            creatives=self.creatives,
            elements=pd.concat([self.elements, rows], ignore_index=True) if len(rows) else self.elements,
            products=self.products,
            simulation=self.simulation,
            added_prompts={**self.added_prompts, **dict(zip(new["element_id"], new["value"]))},
        )


def additive_element_effects(market: Market, ctr: pd.Series) -> pd.Series:
    """Element effects of the additive projection of past creatives' logit CTRs (``ctr`` by creative id).

    The logits are projected by least squares on one-hot products and elements; the element
    coefficients, centred within their slot, are returned by element id.
    """
    creatives = market.creatives[market.creatives["creative_id"].isin(ctr.index)]
    p = ctr.loc[creatives["creative_id"]].to_numpy()
    y = np.log(p / (1 - p))
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
