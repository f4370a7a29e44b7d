"""The visual demand utility h(v) of UA-InfoNCE (arXiv 2605.28733, section on visual demand utility).

The paper regresses a demand measure on interpretable visual attributes with a linear and a squared
term each, so that demand can peak at a moderate level of an attribute (an inverse U):

    y = a + Σ_k (b1_k x_k + b2_k x_k²) + ε,        h(v) = Σ_k (b1_k x_k(v) + b2_k x_k(v)²)

``y`` is log demand (``log1p`` of sales or occupancy when zeros occur; minus log sales rank, since a
lower rank sells more) or the logit of a smoothed CTR, computed by the caller. ``h`` leaves out the
intercept: a constant added to every image's utility changes no softmax and no ranking, which is
all UA-InfoNCE's score ``US(v, t) = α h(v) + β s(v, t)`` uses it for.

The fit is ordinary least squares in closed form (optionally ridge) on standardised attributes
``z_k = (x_k − m_k) / s_k`` for conditioning; coefficients, their covariance and each attribute's
peak ``x*_k = −b1_k / (2 b2_k)`` are reported in the attributes' original units.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from adcraft.configuration import check_config, from_mapping, to_mapping
from adcraft.errors import InputError
from adcraft.learning.artifacts import load_artifact, save_artifact
from adcraft.market import Market
from adcraft.rewards.judge import Capabilities, refuse_resuming

if TYPE_CHECKING:
    from adcraft.learning.distributed import DataParallel

ARTIFACT_KIND = "utility"
TARGETS = ("log_demand", "logit_ctr")
MAX_CONDITION = 1e12  # beyond this the normal equations lose every significant digit


@dataclass(frozen=True)
class UtilityConfig:
    """Settings of the demand-utility regression.

    - ``attributes``: the attribute columns, in the order of 2-d inputs to ``predict``.
    - ``target``: what the target column measures, "log_demand" or "logit_ctr" (recorded with the
      model; the caller computes the column, higher meaning more demand).
    - ``ridge``: L2 penalty λ on every coefficient but the intercept, on the standardised scale
      when ``standardize`` is true (0: ordinary least squares).
    - ``standardize``: fit on ``(x − mean) / std`` (better conditioned); results are reported in
      original units either way and, without ridge, do not depend on it.
    - ``min_rows``: the fit needs at least ``max(min_rows, 3 · (1 + 2 · len(attributes)))`` rows.
    - ``controls``: with target "logit_ctr", what the regression holds fixed with one-hot controls:
      "product" (default: a popular product's images do not pass for better images),
      "product+elements" (also every element of the creative: stricter, but the attributes then
      vary little within the controls, so their effects are estimated with much less precision), or
      "none".
    """

    attributes: tuple[str, ...] = ("brightness", "colourfulness", "symmetry", "product_area", "clutter")
    target: Literal["log_demand", "logit_ctr"] = "log_demand"
    ridge: float = 0.0
    standardize: bool = True
    min_rows: int = 30
    controls: Literal["none", "product", "product+elements"] = "product"

    def __post_init__(self) -> None:
        check_config(self)
        if isinstance(self.attributes, str):
            raise InputError("attributes must be a list of column names, not one string")
        object.__setattr__(self, "attributes", tuple(self.attributes))
        if not self.attributes or not all(isinstance(a, str) and a for a in self.attributes):
            raise InputError(f"attributes must be non-empty column names, got {self.attributes!r}")
        if len(set(self.attributes)) != len(self.attributes):
            raise InputError(f"attributes repeat a name: {self.attributes!r}")
        if self.target not in TARGETS:
            raise InputError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if not (isinstance(self.ridge, (int, float)) and math.isfinite(self.ridge) and self.ridge >= 0):
            raise InputError(f"ridge must be a finite number >= 0, got {self.ridge!r}")
        if self.controls not in ("none", "product", "product+elements"):
            raise InputError(f"controls must be none, product or product+elements, got {self.controls!r}")
        if not isinstance(self.min_rows, int) or self.min_rows < 1:
            raise InputError(f"min_rows must be a positive integer, got {self.min_rows!r}")

    @property
    def n_params(self) -> int:
        """Intercept plus a linear and a square coefficient per attribute."""
        return 1 + 2 * len(self.attributes)


@dataclass(frozen=True, eq=False)
class DemandUtilityModel:
    """A fitted demand utility; build it with :func:`fit_utility` or :meth:`load`.

    Parameters are stored on the fitting scale, ordered ``[a, b1_1, b2_1, b1_2, b2_2, ...]``:
    ``coef_fit`` and ``covariance_fit`` are in units of the standardised attributes
    ``z = (x − means) / scales`` (``means = 0``, ``scales = 1`` without standardisation).
    ``r2_linear`` is R² of the same regression without the squared terms, for comparison.

    A judge (:class:`adcraft.rewards.judge.Judge`) of images' visual attributes, not of combinations: it
    declares no capability beyond the shared contract (``predict`` here is ``h``, not a CTR).
    """

    kind: ClassVar[str] = ARTIFACT_KIND
    config_class: ClassVar[type] = UtilityConfig
    capabilities: ClassVar[Capabilities] = Capabilities()

    config: UtilityConfig
    target_column: str
    coef_fit: np.ndarray
    covariance_fit: np.ndarray
    means: np.ndarray
    scales: np.ndarray
    observed_min: np.ndarray
    observed_max: np.ndarray
    n_rows: int
    residual_variance: float
    r2: float
    adj_r2: float
    r2_linear: float

    def _to_original_units(self) -> np.ndarray:
        """The matrix T with ``θ_original = T θ_fit``, from expanding ``b1 z + b2 z²`` in x:
        ``b2 = b2_z / s²``, ``b1 = b1_z / s − 2 m b2``, and ``a`` gains ``−b1_z m / s + b2_z m² / s²``."""
        transform = np.eye(self.config.n_params)
        for k, (m, s) in enumerate(zip(self.means, self.scales)):
            linear, square = 1 + 2 * k, 2 + 2 * k
            transform[0, linear], transform[0, square] = -m / s, m * m / (s * s)
            transform[linear, linear], transform[linear, square] = 1 / s, -2 * m / (s * s)
            transform[square, square] = 1 / (s * s)
        return transform

    @property
    def coefficients(self) -> np.ndarray:
        """``[a, b1_1, b2_1, ...]`` in the attributes' original units."""
        return self._to_original_units() @ self.coef_fit

    @property
    def covariance(self) -> np.ndarray:
        """Covariance of :attr:`coefficients`: ``T Σ_fit Tᵀ`` (see :func:`fit_utility` for Σ)."""
        transform = self._to_original_units()
        return transform @ self.covariance_fit @ transform.T

    @property
    def intercept(self) -> float:
        return float(self.coefficients[0])

    def predict(self, attributes: Mapping[str, ArrayLike] | pd.DataFrame | ArrayLike,
                include_intercept: bool = False) -> np.ndarray:
        """``h = Σ_k (b1_k x_k + b2_k x_k²)`` for each row, plus ``a`` when ``include_intercept``
        (then the fitted target itself).

        ``attributes`` is a mapping or DataFrame with a column per configured attribute (scalars
        give one row), or an ``(n, len(attributes))`` array in the configured order.
        """
        x = _attribute_matrix(attributes, self.config.attributes)
        coefficients = self.coefficients
        h = x @ coefficients[1::2] + (x * x) @ coefficients[2::2]
        return h + coefficients[0] if include_intercept else h

    def summary(self) -> pd.DataFrame:
        """One row per attribute (the index): ``b1``, ``b2`` and their standard errors, ``b2_t``
        (``b2 / se``), the ``peak`` ``x* = −b1 / (2 b2)`` with its delta-method ``peak_se``, the
        observed range, and ``inverse_u`` (``b2 < 0`` and the peak inside the observed range).

        Delta method: ``Var x* ≈ gᵀ Σ g`` with ``g = ∂x*/∂(b1, b2) = (−1 / (2 b2), b1 / (2 b2²))``
        and Σ the 2×2 covariance of ``(b1, b2)``; it is accurate when ``|b2| / se(b2)`` is large
        and meaningless for an attribute with no curvature (there the peak is NaN or far away).
        """
        theta, covariance = self.coefficients, self.covariance
        rows = []
        for k, name in enumerate(self.config.attributes):
            linear, square = 1 + 2 * k, 2 + 2 * k
            b1, b2 = theta[linear], theta[square]
            block = covariance[np.ix_([linear, square], [linear, square])]
            b2_se = math.sqrt(max(block[1, 1], 0.0))
            if b2 != 0:
                peak = -b1 / (2 * b2)
                gradient = np.array([-1 / (2 * b2), b1 / (2 * b2 * b2)])
                peak_se = math.sqrt(max(float(gradient @ block @ gradient), 0.0))
            else:
                peak, peak_se = math.nan, math.nan
            low, high = self.observed_min[k], self.observed_max[k]
            rows.append({
                "attribute": name,
                "b1": b1,
                "b1_se": math.sqrt(max(block[0, 0], 0.0)),
                "b2": b2,
                "b2_se": b2_se,
                "b2_t": b2 / b2_se if b2_se > 0 else math.nan,
                "peak": peak,
                "peak_se": peak_se,
                "observed_min": low,
                "observed_max": high,
                "inverse_u": bool(b2 < 0 and low < peak < high),
            })
        return pd.DataFrame(rows).set_index("attribute")

    @classmethod
    def train(
        cls, market: Market, config: UtilityConfig, *, progress: bool = False, checkpoint: Path | None = None,
        world: DataParallel | None = None,
    ) -> DemandUtilityModel:
        """The regression fitted on the market's rows (:func:`utility_table`); it trains in one go, so
        ``checkpoint`` and ``world`` are refused."""
        refuse_resuming(ARTIFACT_KIND, checkpoint, world)
        return utility_table(market, config, progress).fit(config)

    def metrics(self, market: Market) -> dict:
        """Rows, target, R² (with the linear-only R²) and each attribute's :meth:`summary` row."""
        return {
            "rows": int(self.n_rows), "target": self.target_column, "r2": self.r2, "adj_r2": self.adj_r2,
            "r2_linear": self.r2_linear,
            "attributes": {name: {k: _plain(v) for k, v in row.items()} for name, row in self.summary().iterrows()},
        }

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the model as a "utility" artifact (``config.json`` + ``model.safetensors``)."""
        tensors = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        extra = {name: getattr(self, name) for name in _SCALAR_FIELDS}
        return save_artifact(folder, ARTIFACT_KIND, to_mapping(self.config), tensors, extra)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> DemandUtilityModel:
        """Read a model written by :meth:`save`."""
        artifact = load_artifact(folder, expected_kind=ARTIFACT_KIND, tensor_format="numpy")
        config = from_mapping(UtilityConfig, artifact.config, where=f"{folder}/config.json")
        try:
            scalars = {name: (artifact.extra or {})[name] for name in _SCALAR_FIELDS}
            arrays = {name: artifact.tensors[name] for name in _ARRAY_FIELDS}
        except KeyError as error:
            raise InputError(f"{folder} is not a complete utility model (missing {error}); "
                             "save it again with DemandUtilityModel.save") from None
        return cls(config=config, **arrays, **scalars)


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python number it holds (for JSON); anything else as it is."""
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


_ARRAY_FIELDS = ("coef_fit", "covariance_fit", "means", "scales", "observed_min", "observed_max")
_SCALAR_FIELDS = ("target_column", "n_rows", "residual_variance", "r2", "adj_r2", "r2_linear")


def fit_utility(
    table: pd.DataFrame,
    target_column: str,
    config: UtilityConfig,
    weight_column: str | None = None,
    controls: np.ndarray | None = None,
) -> DemandUtilityModel:
    """Fit the demand utility of UA-InfoNCE (arXiv 2605.28733, visual demand utility) to ``table``.

    ``table`` has one row per image (or creative), a column per configured attribute and
    ``target_column``, the demand measure computed by the caller: ``log1p(sales)`` (or
    occupancy) when zeros occur, ``−log(sales rank)`` for a rank, or the logit of a smoothed CTR.

    Closed form on the design ``Z = [1, z_k, z_k²]_k`` with ``D = diag(0, 1, …, 1)``:
    ``β = (ZᵀZ + λD)⁻¹ Zᵀy``, ``σ² = RSS / (n − p)``, ``Cov β = σ² A⁻¹ ZᵀZ A⁻¹`` with
    ``A = ZᵀZ + λD``, which is the classical ``σ² (ZᵀZ)⁻¹`` when λ = 0. With ridge it is the
    estimator's variance about its shrunk mean: it ignores the ridge bias and uses n − p degrees of
    freedom, so intervals are too narrow when the penalty matters. ``R² = 1 − RSS / TSS``, adjusted
    ``1 − (1 − R²)(n − 1)/(n − p)``.

    With ``weight_column`` (e.g. impressions behind a CTR, whose variance falls as 1/impressions) the
    fit is weighted least squares: every row of ``Z`` and ``y`` is scaled by ``sqrt(w / mean w)``, and
    RSS, TSS and R² are the weighted ones.

    ``controls`` (an ``(n, c)`` matrix, e.g. one-hot products and elements without a reference level)
    enter the design beside the attribute terms, ``Z = [1, z_k, z_k², C]``, so that the attribute
    effects are estimated holding them fixed; only the attribute terms are kept in the model.

    Refuses (``InputError``) a missing or non-numeric column, NaN or infinite values, fewer rows
    than ``max(min_rows, 3p)``, a constant target, an attribute with fewer than three distinct
    values (constant, or its square collinear with it), and collinear attributes.
    """
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"fit_utility needs a pandas DataFrame, got {type(table).__name__}")
    names = config.attributes
    x = _attribute_matrix(table, names)
    y = _column(table, target_column)[:, 0]
    root_w = np.ones(len(y))
    if weight_column is not None:
        w = _column(table, weight_column)[:, 0]
        if np.any(w <= 0):
            raise InputError(f"weight column '{weight_column}' must be positive in every row")
        root_w = np.sqrt(w / w.mean())
    needed = max(config.min_rows, 3 * config.n_params)
    if len(y) < needed:
        raise InputError(f"the utility fit of {len(names)} attribute(s) needs at least {needed} rows "
                         f"(3 per parameter, and min_rows={config.min_rows}); the table has {len(y)}")
    if np.ptp(y) == 0:
        raise InputError(f"target column '{target_column}' is constant ({y[0]}): nothing to explain")
    for k, name in enumerate(names):
        distinct = np.unique(x[:, k])
        if len(distinct) < 3:
            raise InputError(
                f"attribute '{name}' takes {len(distinct)} distinct value(s) {distinct.tolist()}; "
                "a linear and a square term need at least 3 (drop it or vary it)"
            )
    means = x.mean(axis=0) if config.standardize else np.zeros(len(names))
    scales = x.std(axis=0) if config.standardize else np.ones(len(names))
    z = (x - means) / scales
    extra = np.zeros((len(y), 0)) if controls is None else np.asarray(controls, dtype=float)
    if extra.shape[0] != len(y):
        raise InputError(f"controls have {extra.shape[0]} rows, the table {len(y)}")
    extra = _independent_controls(_design(z, squares=True), extra)
    quadratic = np.hstack([_design(z, squares=True), extra]) * root_w[:, None]
    coef, covariance, rss = _least_squares(quadratic, y * root_w, config.ridge, names)
    linear = np.hstack([_design(z, squares=False), extra]) * root_w[:, None]
    _, _, rss_linear = _least_squares(linear, y * root_w, config.ridge, names)
    n, p = len(y), config.n_params
    dof = n - p - extra.shape[1]
    if dof < 1:
        raise InputError(f"{n} rows cannot fit {p} attribute terms and {extra.shape[1]} controls")
    coef, covariance = coef[:p], covariance[:p, :p]
    weights = root_w**2
    tss = float(np.sum(weights * (y - np.average(y, weights=weights)) ** 2))
    r2 = 1 - rss / tss
    return DemandUtilityModel(
        config=config,
        target_column=target_column,
        coef_fit=coef,
        covariance_fit=covariance,
        means=means,
        scales=scales,
        observed_min=x.min(axis=0),
        observed_max=x.max(axis=0),
        n_rows=n,
        residual_variance=rss / dof,
        r2=r2,
        adj_r2=1 - (1 - r2) * (n - 1) / dof,
        r2_linear=1 - rss_linear / tss,
    )


def _independent_controls(design: np.ndarray, controls: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """The control columns that are not linear combinations of the design and earlier controls.

    Nested one-hot groups (a product's own titles within the product) would make the normal
    equations singular; QR of ``[design, controls]`` in order finds the redundant columns, whose
    ``|R_jj|`` vanishes, and they are dropped (the fitted attribute effects do not change).
    """
    if controls.shape[1] == 0:
        return controls
    _, r = np.linalg.qr(np.hstack([design, controls]))
    diagonal = np.abs(np.diag(r))
    keep = diagonal[design.shape[1] :] > tol * diagonal.max()
    return controls[:, keep]


def _design(z: np.ndarray, squares: bool) -> np.ndarray:
    """``[1, z_1, z_1², z_2, z_2², …]``, or ``[1, z_1, z_2, …]`` without squares."""
    columns = [np.ones(len(z))]
    for k in range(z.shape[1]):
        columns += [z[:, k], z[:, k] ** 2] if squares else [z[:, k]]
    return np.column_stack(columns)


def _least_squares(
    design: np.ndarray, y: np.ndarray, ridge: float, names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, float]:
    """Coefficients, their covariance and the residual sum of squares (formulas in fit_utility)."""
    gram = design.T @ design
    penalty = np.full(design.shape[1], ridge)
    penalty[0] = 0.0
    system = gram + np.diag(penalty)
    if np.linalg.cond(system) > MAX_CONDITION:
        raise InputError(f"the attributes {list(names)} are (nearly) collinear, so their effects "
                         "cannot be told apart; drop redundant attributes or set ridge > 0")
    inverse = np.linalg.inv(system)
    coef = inverse @ (design.T @ y)
    residual = y - design @ coef
    rss = float(residual @ residual)
    sigma2 = rss / (len(y) - design.shape[1])
    return coef, sigma2 * inverse @ gram @ inverse, rss


def _column(table: Mapping[str, Any] | pd.DataFrame, name: str) -> np.ndarray:
    """One numeric, finite column as an ``(n, 1)`` float64 array."""
    try:
        values = table[name]
    except KeyError:
        available = list(table.keys())
        raise InputError(f"column '{name}' is missing; the input has {available}") from None
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    except (TypeError, ValueError):
        raise InputError(f"column '{name}' must hold numbers") from None
    bad = ~np.isfinite(array[:, 0])
    if bad.any():
        raise InputError(f"column '{name}' has {int(bad.sum())} NaN or infinite value(s) "
                         f"(first at row {int(np.flatnonzero(bad)[0])}); drop or fill them first")
    return array


def _attribute_matrix(
    attributes: Mapping[str, ArrayLike] | pd.DataFrame | ArrayLike, names: tuple[str, ...]
) -> np.ndarray:
    """``(n, len(names))`` float64 matrix from a mapping/DataFrame with those columns or an array."""
    if isinstance(attributes, (Mapping, pd.DataFrame)):
        columns = [_column(attributes, name) for name in names]
        if len({len(c) for c in columns}) > 1:
            raise InputError(f"attribute columns {list(names)} differ in length")
        return np.hstack(columns)
    try:
        x = np.asarray(attributes, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("attributes must be a mapping of columns or a numeric 2-d array") from None
    if x.ndim != 2 or x.shape[1] != len(names):
        raise InputError(f"an attribute array must have shape (n, {len(names)}) with columns "
                         f"{list(names)}, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError("attribute array has NaN or infinite values")
    return x


def listing_images(market: Market) -> dict[str, str]:
    """Each product's listing image: its most-shown past creative, else its product photo.

    A listing-level demand measure cannot say which picture a listing showed; the creative with the
    most logged impressions is the best stand-in the market's data offers.
    """
    images = dict(zip(market.products["product_id"], market.products["image"]))
    if market.creatives is None or market.creatives.empty:
        return images
    if market.impressions is not None and not market.impressions.empty:
        shown = market.impressions["creative_id"].value_counts()
    elif market.creative_stats is not None and not market.creative_stats.empty:
        shown = market.creative_stats.groupby("creative_id")["impressions"].sum()
    else:
        return images
    creatives = market.creatives[market.creatives["image"].notna()]
    best: dict[str, tuple[float, str]] = {}
    for cid, pid, image in zip(creatives["creative_id"], creatives["product_id"], creatives["image"]):
        count = float(shown.get(cid, 0))
        if count > 0 and (pid not in best or count > best[pid][0]):
            best[pid] = (count, image)
    images.update({pid: image for pid, (_, image) in best.items()})
    return images


@dataclass(frozen=True, eq=False)
class UtilityData:
    """What :func:`fit_utility` is fitted on: rows, their target and weight columns, and controls."""

    table: pd.DataFrame
    target: str
    weight_column: str | None = None
    controls: np.ndarray | None = None

    def fit(self, config: UtilityConfig) -> DemandUtilityModel:
        return fit_utility(self.table, self.target, config, self.weight_column, self.controls)


def one_hot_controls(columns: list[list[str]]) -> np.ndarray:
    """One-hot indicators of categorical columns, each without its first (reference) level."""
    blocks = []
    for values in columns:
        levels = sorted(set(values))[1:]
        index = {level: j for j, level in enumerate(levels)}
        block = np.zeros((len(values), len(levels)))
        for i, value in enumerate(values):
            if value in index:
                block[i, index[value]] = 1.0
        blocks.append(block)
    return np.hstack(blocks) if blocks else np.zeros((0, 0))


def utility_table(market: Market, config: UtilityConfig, progress: bool = False) -> UtilityData:
    """Rows to fit ``h`` on, with their target, weights and controls.

    - ``log_demand``: one row per product of the ``demand`` table: its listing image's attributes and
      ``log1p(demand)``.
    - ``logit_ctr``: one row per past creative with an image and logs: its attributes and the logit of
      its CTR shrunk toward the market's rate, ``(clicks + 2) / (impressions + 2 / rate)`` (two
      pseudo-clicks of prior), so that creatives with few impressions do not dominate with 0 or 1;
      weighted by impressions, with the controls ``config.controls`` names.
    """
    from rich.progress import track

    from adcraft.features.attributes import compute_attributes

    if config.target == "log_demand":
        if market.demand is None or market.demand.empty:
            raise InputError("target log_demand needs the market's demand table; use target logit_ctr instead")
        demand = market.demand.groupby("product_id")["demand"].sum()
        listing = listing_images(market)
        rows = [(pid, listing[pid], float(np.log1p(value))) for pid, value in demand.items() if pid in listing]
        key, target, weights = "product_id", "log_demand", None
    else:
        if market.creatives is None or market.creatives.empty:
            raise InputError("target logit_ctr needs past creatives with images and logs")
        if market.impressions is not None and not market.impressions.empty:
            counts = market.impressions.groupby("creative_id")["click"].agg(clicks="sum", trials="size")
        elif market.creative_stats is not None and not market.creative_stats.empty:
            counts = market.creative_stats.groupby("creative_id").agg(
                clicks=("clicks", "sum"), trials=("impressions", "sum")
            )
        else:
            raise InputError("target logit_ctr needs impressions or creative_stats")
        rate = counts["clicks"].sum() / counts["trials"].sum()
        if rate <= 0:
            raise InputError("the logs have no clicks at all: a CTR target cannot be formed")
        smoothed = (counts["clicks"] + 2.0) / (counts["trials"] + 2.0 / rate)
        images = market.creatives.dropna(subset=["image"]).set_index("creative_id")["image"]
        rows = [
            (cid, images[cid], float(np.log(p / (1 - p)))) for cid, p in smoothed.items() if cid in images.index
        ]
        key, target, weights = "creative_id", "logit_ctr", "impressions"
    if not rows:
        raise InputError(f"no images with a {target} target were found in the market")
    records = []
    for ident, image, y in track(rows, description="visual attributes", disable=not progress, transient=True):
        attributes = compute_attributes(market.open_image(image))
        missing = [a for a in config.attributes if a not in attributes]
        if missing:
            raise InputError(f"unknown visual attribute(s) {missing}; known: {sorted(attributes)}")
        records.append({key: ident, **{a: attributes[a] for a in config.attributes}, target: y})
    table = pd.DataFrame(records)
    if weights is None:
        return UtilityData(table, target)
    table[weights] = counts["trials"].reindex(table[key]).to_numpy(dtype=float)
    controls = None
    if config.controls != "none":
        creatives = market.creatives.set_index("creative_id").loc[table[key]]
        groups = [list(creatives["product_id"])]
        if config.controls == "product+elements":
            groups += [list(slot) for slot in zip(*creatives["elements"])]
        controls = one_hot_controls(groups)
    return UtilityData(table, target, weights, controls)
