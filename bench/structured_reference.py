"""A reference click model that knows the legacy world's functional form: what the logs allow at best.

The simulator's click logit (``adcraft.simulator.click_model``) is linear in known features once its
structure is given: product and element indicators, category x background indicators (relevance),
the legibility term, template x title-length, the image attributes and their squares, device, segment
and highlight x segment. This module builds exactly those features from the truth's structure (never
its parameter values) and fits their coefficients by L2-penalised logistic regression (Newton's method)
on a part of the logs. Held-out metrics of this model mark how close any learner can come to the
truth with that many impressions; it is a benchmark reference and leans on the simulator by design,
so it is not part of the library.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from adcraft.learning.metrics import binomial_log_loss
from adcraft.render.text_layout import contrast_ratio
from adcraft.market.click_log import SplitConfig, time_split
from adcraft.simulator import GroundTruth
from adcraft.simulator.click_model import contexts
from adcraft.simulator.legacy import TEXT_SLOTS_AFFECTED

PENALTIES = (1.0, 3.0, 10.0, 30.0, 100.0)  # L2 on every coefficient but the intercept: the grid searched


class StructuredReference:
    """Coefficients of the true click logit's features, fitted on ``train`` (a ``click_log`` part)."""

    def __init__(self, truth: GroundTruth, train: pd.DataFrame, penalty: float) -> None:
        self.penalty = penalty
        self.model = truth.model
        attrs = truth.creatives.set_index("creative_id")
        self.attribute_names = [t.attribute for t in self.model.click_terms]
        values = attrs[self.attribute_names].to_numpy(dtype=float)
        self.attr_mean, self.attr_scale = values.mean(axis=0), values.std(axis=0) + 1e-12
        self.attributes = attrs[self.attribute_names]
        self.columns: dict[tuple, int] = {}
        grouped = train.groupby(["creative_id", "context"], sort=True).agg(
            product_id=("product_id", "first"), elements=("elements", "first"),
            clicks=("clicks", "sum"), trials=("trials", "sum"),
        ).reset_index()
        rows = [self._features(p, list(e), c, cid, grow=True) for cid, p, e, c in
                zip(grouped["creative_id"], grouped["product_id"], grouped["elements"], grouped["context"])]
        design = self._matrix(rows)
        self.coef = _penalised_logistic(design, grouped["clicks"].to_numpy(float), grouped["trials"].to_numpy(float),
                                        penalty)

    def _features(self, product_id: str, elements: list[str], context: str, creative_id: str,
                  grow: bool = False) -> dict[int, float]:
        m = self.model
        by_slot = {m.element_slot.get(e, ""): e for e in elements}
        template = by_slot.get("template")
        text = 1.0 if template is None else float(m.template_shows_text.get(template, True))
        named: dict[tuple, float] = {("product", product_id): 1.0}
        for slot, e in by_slot.items():
            named[("element", e)] = text if slot in TEXT_SLOTS_AFFECTED else 1.0
        bg, tc, title = by_slot.get("background"), by_slot.get("text_color"), by_slot.get("title")
        if bg is not None:
            named[("relevance", m.product_category[product_id], bg)] = 1.0
        if bg is not None and tc is not None and tc in m.text_rgb and bg in m.background_rgb:
            ratio = contrast_ratio(m.text_rgb[tc], m.background_rgb[bg])
            named[("legibility",)] = text * float(np.clip(math.log(ratio) - math.log(4.5), -1.5, 0.5))
        if title is not None and template is not None:
            named[("layout_length", template)] = text * m.title_length_z.get(title, 0.0)
        z = (self.attributes.loc[creative_id].to_numpy(dtype=float) - self.attr_mean) / self.attr_scale
        for name, value in zip(self.attribute_names, z):
            named[("attribute", name)] = float(value)
            named[("attribute_square", name)] = float(value * value)
        ctx = json.loads(context) if context else {}
        named[("device", ctx.get("device", ""))] = 1.0
        named[("segment", ctx.get("segment", ""))] = 1.0
        if by_slot.get("highlight") is not None:
            named[("highlight_segment", by_slot["highlight"], ctx.get("segment", ""))] = text
        out = {}
        for key, value in named.items():
            if key not in self.columns:
                if not grow:
                    continue  # a feature never seen in training has coefficient 0
                self.columns[key] = len(self.columns)
            out[self.columns[key]] = value
        return out

    def _matrix(self, rows: Sequence[dict[int, float]]) -> np.ndarray:
        design = np.zeros((len(rows), len(self.columns) + 1))
        design[:, -1] = 1.0  # intercept, unpenalised
        for i, row in enumerate(rows):
            for j, value in row.items():
                design[i, j] = value
        return design

    def predict(self, product_ids: Sequence[str], elements: Sequence[Sequence[str]], contexts_: Sequence[str],
                creative_ids: Sequence[str]) -> np.ndarray:
        """Click probability of each logged (creative, context) row."""
        rows = [self._features(p, list(e), c, cid)
                for p, e, c, cid in zip(product_ids, elements, contexts_, creative_ids)]
        return 1.0 / (1.0 + np.exp(-self._matrix(rows) @ self.coef))

    def relevance_coefficients(self) -> pd.DataFrame:
        """The fitted category x background coefficients (the relevance term's stand-ins), one row each:
        category, background element id, coefficient."""
        rows = [(key[1], key[2], float(self.coef[j])) for key, j in self.columns.items() if key[0] == "relevance"]
        return pd.DataFrame(rows, columns=["category", "background", "coefficient"])

    def creative_ctr(self, creatives: pd.DataFrame) -> pd.Series:
        """Context-averaged CTR (the traffic's context mix) of past creatives (creative_id, product_id, elements)."""
        total = np.zeros(len(creatives))
        for ctx, weight in contexts():
            text = json.dumps(ctx)
            total += weight * self.predict(creatives["product_id"].tolist(), creatives["elements"].tolist(),
                                           [text] * len(creatives), creatives["creative_id"].tolist())
        return pd.Series(total, index=creatives["creative_id"].to_numpy())


def select_penalty(truth: GroundTruth, train: pd.DataFrame, penalties: Sequence[float] = PENALTIES) -> float:
    """The penalty whose fit on the earlier part of ``train`` has the lowest log loss on its latest part
    (``time_split``): nothing held out from ``train`` is looked at."""
    inner_train, inner_valid = time_split(train, SplitConfig())
    keys = (inner_valid["product_id"].tolist(), inner_valid["elements"].tolist(), inner_valid["context"].tolist(),
            inner_valid["creative_id"].tolist())
    losses = [binomial_log_loss(inner_valid["clicks"], inner_valid["trials"],
                                StructuredReference(truth, inner_train, penalty).predict(*keys))
              for penalty in penalties]
    return penalties[int(np.argmin(losses))]


def fit_selected(truth: GroundTruth, train: pd.DataFrame) -> StructuredReference:
    """The reference fitted on all of ``train`` with the penalty ``select_penalty`` chooses."""
    return StructuredReference(truth, train, select_penalty(truth, train))


def _penalised_logistic(design: np.ndarray, clicks: np.ndarray, trials: np.ndarray, penalty: float) -> np.ndarray:
    """Maximum of the binomial log likelihood minus ``penalty/2 |w|^2`` (Newton with step halving)."""
    weights = np.zeros(design.shape[1])
    rate = clicks.sum() / trials.sum()
    weights[-1] = math.log(rate / (1 - rate))
    ridge = np.full(design.shape[1], penalty)
    ridge[-1] = 0.0

    def objective(w: np.ndarray) -> float:
        eta = design @ w
        return float(np.sum(clicks * eta - trials * np.logaddexp(0.0, eta)) - 0.5 * np.sum(ridge * w * w))

    current = objective(weights)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(design @ weights)))
        gradient = design.T @ (clicks - trials * p) - ridge * weights
        hessian = (design * (trials * p * (1 - p))[:, None]).T @ design + np.diag(ridge)
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(weights)), gradient)
        scale = 1.0
        while scale > 1e-6:
            candidate = weights + scale * step
            value = objective(candidate)
            if value >= current - 1e-9:
                break
            scale /= 2
        weights, improvement, current = candidate, value - current, value
        if abs(improvement) < 1e-8 * (1 + abs(current)):
            break
    return weights
