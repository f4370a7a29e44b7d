"""An image-aware additive judge, for measuring whether the creative's pixels help a judge that the logs fit.

The additive judge (``rewards.additive``) reads element ids only. This one adds what the rendered creative looks
like: ``logit P(click) = b + u_p + sum_s w_{e_s} + sum_k (a_k z_k + c_k z_k^2) + sum_j d_j y_j`` with ``z`` the
creative's interpretable visual attributes (``features.attributes``: brightness, contrast, colourfulness,
sharpness, symmetry, product area, clutter), standardised on the logged creatives, with squared terms so an
attribute can have an inside optimum (the inverse-U of UA's demand utility ``h(v)``), and, with ``embed``, ``y``
the first ``EMBED_COMPONENTS`` principal components of the image encoder's embedding (``features.image_encoder``)
over the logged creatives. Fitted like the additive judge (penalised binomial likelihood, one L2 strength for the
elements' and the image terms' weights and one for the products', chosen on the latest 20% of the log by time; a tie
within rounding keeps the additive judge); a logged creative is seen through its own image file,
any other combination through a render by the default compositor (``ImageLooks``).

**Images or not, chosen on the market's own logs** (``fit_image_judge``): the additive judge and the image-aware
one are each fitted on the earlier 80% of the log by time and compared by the binomial log loss per impression on
the later 20%; the better kind is refitted on the whole log. Its proposals (``image_picks``): per product, the
additive part's argmax, each single-slot change of it among that slot's ``top`` best elements, and the product's
logged combinations, scored by the whole judge (unseen ones rendered).

Measured with the world's truth in ``bench/evidence_ceiling.py --judges ... images`` (``docs/results.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from adcraft.errors import InputError
from adcraft.features.attributes import ATTRIBUTE_NAMES, compute_attributes
from adcraft.market import Market
from adcraft.market.click_log import click_log, time_split
from adcraft.render.from_market import MarketRenderer
from adcraft.rewards.additive import (
    AdditiveConfig,
    AdditiveJudge,
    best_l2,
    fit_additive,
    fit_logit,
    log_loss,
    pooled_creatives,
    strengths,
)

EMBED_COMPONENTS = 8
Looks = Callable[[str, Sequence[str]], np.ndarray]  # (product, combination) -> raw image features


class ImageLooks:
    """Raw image features of (product, combination): the attributes (``ATTRIBUTE_NAMES`` order), then with
    ``embed`` the image encoder's embedding; a logged creative's own image where the market has it, a render
    otherwise; each computed once."""

    def __init__(self, market: Market, embed: bool = False) -> None:
        self.market, self.renderer = market, MarketRenderer(market)
        self.encoder = None
        if embed:
            from adcraft.features.image_encoder import build_image_encoder

            self.encoder = build_image_encoder()
        self.images: dict[tuple[str, tuple[str, ...]], str] = {}
        if market.creatives is not None and "image" in market.creatives:
            for pid, combo, image in zip(market.creatives["product_id"], market.creatives["elements"],
                                         market.creatives["image"]):
                if isinstance(image, str) and image:
                    self.images.setdefault((str(pid), tuple(map(str, combo))), image)
        self.cache: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}
        self.rendered = 0

    def __call__(self, product_id: str, combo: Sequence[str]) -> np.ndarray:
        key = (str(product_id), tuple(map(str, combo)))
        if key not in self.cache:
            path = self.images.get(key)
            if path is not None:
                image = self.market.open_image(path).convert("RGB")
            else:
                image = self.renderer.render(key[0], list(key[1])).image.convert("RGB")
                self.rendered += 1
            attributes = compute_attributes(image)
            values = np.array([attributes[name] for name in ATTRIBUTE_NAMES], dtype=np.float64)
            if self.encoder is not None:
                values = np.concatenate([values, np.asarray(self.encoder.encode([image]), dtype=np.float64)[0]])
            self.cache[key] = values
        return self.cache[key]


class ImageFeatures:
    """Raw features -> the judge's image design ``[z, z_attributes^2]`` (module docstring): standardisation and,
    for an embedding, its principal axes, all learned on the logged creatives (impression-weighted)."""

    def __init__(self, raw: np.ndarray, weights: np.ndarray) -> None:
        k = len(ATTRIBUTE_NAMES)
        self.axes: tuple[np.ndarray, np.ndarray] | None = None
        if raw.shape[1] > k:
            embedding = raw[:, k:]
            centre = (weights[:, None] * embedding).sum(0) / weights.sum()
            _, _, vt = np.linalg.svd((embedding - centre) * np.sqrt(weights)[:, None], full_matrices=False)
            self.axes = (centre, vt[:EMBED_COMPONENTS])
        reduced = self._reduce(raw)
        self.mean = (weights[:, None] * reduced).sum(0) / weights.sum()
        spread = np.sqrt((weights[:, None] * (reduced - self.mean) ** 2).sum(0) / weights.sum())
        self.scale = np.where(spread > 1e-9, spread, 1.0)  # a constant attribute contributes nothing

    def _reduce(self, raw: np.ndarray) -> np.ndarray:
        k = len(ATTRIBUTE_NAMES)
        if self.axes is None:
            return raw[:, :k]
        centre, axes = self.axes
        return np.concatenate([raw[:, :k], (raw[:, k:] - centre) @ axes.T], axis=1)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        z = (self._reduce(raw) - self.mean) / self.scale
        return np.concatenate([z, z[:, :len(ATTRIBUTE_NAMES)] ** 2], axis=1)


class ImageAdditiveJudge:
    """The additive judge plus image terms (module docstring); ``predict`` as every judge's."""

    def __init__(self, base: AdditiveJudge, coefficients: np.ndarray, features: ImageFeatures, looks: Looks) -> None:
        self.base, self.coefficients, self.features, self.looks = base, coefficients, features, looks
        self.elements, self.l2 = base.elements, base.l2

    @classmethod
    def fit(cls, rows: pd.DataFrame, looks: Looks, l2: float, iterations: int = 200,
            product_l2: float | None = None) -> ImageAdditiveJudge:
        """Fitted on pooled rows (``pooled_creatives``) with L2 strength ``l2`` on every weight but the bias and the
        products' (``product_l2``; ``l2`` when None): the additive judge's fit (``rewards.additive.fit_logit``) with
        the image design as further covariates."""
        if rows.empty or not rows["trials"].sum() > 0:
            raise InputError("the image-aware judge needs logged impressions to fit on")
        raw = np.stack([looks(p, e) for p, e in zip(rows["product_id"], rows["elements"])])
        features = ImageFeatures(raw, rows["trials"].to_numpy(dtype=np.float64))
        bias, products, elements, coefficients = fit_logit(rows, l2, iterations, design=features(raw),
                                                           product_l2=product_l2)
        return cls(AdditiveJudge(bias, products, elements, l2, product_l2), coefficients, features, looks)

    def predict(self, product_ids: Sequence[str], combos: Sequence[Sequence[str]],
                contexts: Sequence[str] | None = None) -> np.ndarray:
        """Click probability of each (product, combination); contexts are accepted and not read."""
        product_ids, combos = [str(p) for p in product_ids], [list(c) for c in combos]
        if not product_ids:
            return np.empty(0)
        raw = np.stack([self.looks(p, c) for p, c in zip(product_ids, combos)])
        eta = self.base.logit(product_ids, combos) + self.features(raw) @ self.coefficients
        return 1.0 / (1.0 + np.exp(-eta))

    def with_elements(self, elements) -> ImageAdditiveJudge:
        return self


def fit_image_judge(log: pd.DataFrame, looks: Looks, config: AdditiveConfig) -> tuple[object, dict[str, float]]:
    """The additive or the image-aware judge, whichever has the lower held-out log loss on the latest part of
    ``log`` by time (each with its L2 strength chosen on a further split of the earlier part, as
    ``fit_additive`` does), refitted on the whole log (the additive one by ``fit_additive`` itself, so that
    where images lose this judge is the additive judge); and both losses."""
    try:
        early_log, late_log = time_split(log, config.split)
    except InputError:  # too short to compare: the additive judge, as ``fit_additive`` fits it
        return fit_additive(log, config), {"additive": math.nan, "images": math.nan}
    early, late = pooled_creatives(early_log), pooled_creatives(late_log)
    additive = fit_additive(early_log, config)

    def held_out_loss(inner_early: pd.DataFrame, inner_late: pd.DataFrame,
                      strength: tuple[float, float | None]) -> float:
        fitted = ImageAdditiveJudge.fit(inner_early, looks, strength[0], config.iterations, strength[1])
        return log_loss(fitted.predict(inner_late["product_id"], inner_late["elements"]), inner_late)

    l2, product_l2 = best_l2(early_log, config, held_out_loss, strengths(config))  # as fit_additive chooses its own
    image = ImageAdditiveJudge.fit(early, looks, l2, config.iterations, product_l2)
    losses = {"additive": log_loss(additive.predict(late["product_id"], late["elements"]), late),
              "images": log_loss(image.predict(late["product_id"], late["elements"]), late)}
    if losses["images"] < losses["additive"] * (1.0 - 1e-9):  # a tie within rounding keeps the plain judge
        return ImageAdditiveJudge.fit(pooled_creatives(log), looks, l2, config.iterations, product_l2), losses
    return fit_additive(log, config), losses  # exactly the additive judge (``evidence_ceiling``'s arm)


def image_picks(market: Market, judge, top: int = 4) -> pd.DataFrame:
    """Per product, the judge's best among: the additive part's argmax, each single-slot change of it among the
    slot's ``top`` best usable elements, and the product's logged combinations (module docstring)."""
    logged: dict[str, set[tuple[str, ...]]] = {}
    for pid, combo in zip(market.creatives["product_id"], market.creatives["elements"]):
        logged.setdefault(str(pid), set()).add(tuple(map(str, combo)))
    rows = []
    for pid in market.products["product_id"].astype(str):
        ranked = []
        for slot in market.config.slots:
            usable = sorted(market.usable_elements(pid, slot)["element_id"].astype(str))
            ranked.append(sorted(usable, key=lambda e: (-judge.elements.get(e, 0.0), e))[:top])
        best = tuple(options[0] for options in ranked)
        candidates = {best} | logged.get(pid, set())
        for s, options in enumerate(ranked):
            candidates |= {best[:s] + (e,) + best[s + 1:] for e in options[1:]}
        ordered = sorted(candidates)
        scores = judge.predict([pid] * len(ordered), ordered)
        rows.append((pid, 1, list(ordered[int(np.argmax(scores))])))
    return pd.DataFrame(rows, columns=["product_id", "rank", "elements"])


class ImageJudgeArm:
    """The judge of ``bench/evidence_ceiling.py``'s ``images`` arm on one market: ``fit`` (for
    ``proposal_evidence``: the judge fitted on a part of the market, images or not chosen on that part's logs)
    and ``choose`` (its picks); ``choices`` records each fit's losses and whether it took the images, ``looks``
    the features and renders shared by every fit."""

    def __init__(self, market: Market, config: AdditiveConfig, embed: bool = False) -> None:
        self.market, self.config = market, config
        self.looks = ImageLooks(market, embed=embed)
        self.choices: list[dict[str, float]] = []

    def fit(self, part: Market):
        judge, losses = fit_image_judge(click_log(part), self.looks, self.config)
        self.choices.append({**losses, "images chosen": float(isinstance(judge, ImageAdditiveJudge))})
        return judge

    def choose(self, judge) -> pd.DataFrame:
        return image_picks(self.market, judge)
