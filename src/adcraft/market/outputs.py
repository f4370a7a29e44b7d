"""Writing what a run produces, in the output layout of market-format.md.

- ``OUT/creatives.parquet``: the proposed creatives (``PROPOSALS_SCHEMA``);
- ``OUT/elements.parquet``: elements the system made itself, same columns as a market's elements;
- ``OUT/scores.parquet``: predicted click-through rate of each past creative (``SCORES_SCHEMA``);
- ``OUT/products.parquet``: per product, the creative shown now and the estimated lift of proposal #1
  (``PRODUCTS_SCHEMA``), an optional output of ``adcraft optimize`` read by the review page.

Each file is written under a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from adcraft.atomic import write_parquet
from adcraft.errors import InputError
from adcraft.market.coerce import typed_frame
from adcraft.market.market import Market
from adcraft.market.schema import ELEMENTS
from adcraft.market.tables import to_arrow

PROPOSALS_SCHEMA = pa.schema([
    ("product_id", pa.string()),
    ("rank", pa.int32()),
    ("elements", pa.list_(pa.string())),
    ("image", pa.string()),
    ("product_bbox", pa.list_(pa.int32())),
    ("predicted_ctr", pa.float64()),
])
SCORES_SCHEMA = pa.schema([("creative_id", pa.string()), ("predicted_ctr", pa.float64())])
PRODUCTS_SCHEMA = pa.schema([
    ("product_id", pa.string()),
    ("current_creative_id", pa.string()),
    ("current_image", pa.string()),
    ("current_elements", pa.list_(pa.string())),
    ("current_logged_ctr", pa.float64()),
    ("current_predicted_ctr", pa.float64()),
    ("lift_impressions", pa.int64()),
    ("estimated_lift", pa.float64()),
    ("lift_low", pa.float64()),
    ("lift_high", pa.float64()),
    ("keep_current", pa.bool_()),
])
PRODUCT_COLUMNS = tuple(PRODUCTS_SCHEMA.names)


def write_proposals(out_dir: str | os.PathLike[str], creatives: pd.DataFrame,
                    elements: pd.DataFrame | None = None) -> None:
    """Write ``OUT/creatives.parquet`` (and ``OUT/elements.parquet`` for elements the run made).

    Columns take ``PROPOSALS_SCHEMA``'s types exactly; extra columns are kept. Raises
    ``ValueError`` when a column is missing, a value is null, a rank is < 1, a bbox is not four
    integers or a predicted CTR is not a finite number.
    """
    table = _exact_table(creatives, PROPOSALS_SCHEMA, "creatives.parquet")
    if (creatives["rank"] < 1).any():
        raise ValueError("creatives.parquet: rank must be >= 1 (1 = the creative to show)")
    if any(len(box) != 4 for box in creatives["product_bbox"]):
        raise ValueError("creatives.parquet: product_bbox must be [x0, y0, x1, y1]")
    _check_ctr(creatives, "creatives.parquet")
    element_table = None
    if elements is not None:
        typed = typed_frame(ELEMENTS, elements, "elements.parquet")
        if typed.problems:
            raise ValueError("; ".join(str(problem) for problem in typed.problems))
        element_table = to_arrow(typed.frame, ELEMENTS)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(out / "creatives.parquet", table)
    if element_table is not None:
        write_parquet(out / "elements.parquet", element_table)


def kept_products(proposals: pd.DataFrame) -> set[str]:
    """The products whose rank 1 in a proposals table is marked ``kept`` (``optimize``'s do no harm: nothing is
    launched for them, what runs now stays); empty for a table without the column."""
    if "kept" not in proposals or proposals.empty:
        return set()
    first = proposals[(proposals["rank"] == 1) & proposals["kept"].fillna(False).astype(bool)]
    return set(first["product_id"].astype(str))


def write_scores(out_dir: str | os.PathLike[str], scores: pd.DataFrame) -> None:
    """Write ``OUT/scores.parquet``: ``creative_id`` (string), ``predicted_ctr`` (float64)."""
    table = _exact_table(scores, SCORES_SCHEMA, "scores.parquet")
    _check_ctr(scores, "scores.parquet")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(out / "scores.parquet", table)


def _exact_table(frame: pd.DataFrame, schema: pa.Schema, file: str) -> pa.Table:
    """``frame`` with the schema's columns first, in its types exactly, then extra columns."""
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise ValueError(f"{file}: missing column(s) {', '.join(missing)}")
    arrays, names = [], []
    for spec_field in schema:
        values = frame[spec_field.name]
        if values.isna().any():
            raise ValueError(f"{file}: column {spec_field.name} has null values")
        if pa.types.is_list(spec_field.type):
            values = [list(items) for items in values]
        arrays.append(pa.array(values, type=spec_field.type, from_pandas=True))
        names.append(spec_field.name)
    for name in frame.columns:
        if name not in schema.names:
            arrays.append(pa.array(frame[name], from_pandas=True))
            names.append(str(name))
    return pa.table(arrays, names=names)


def _check_ctr(frame: pd.DataFrame, file: str) -> None:
    if not all(math.isfinite(value) for value in frame["predicted_ctr"].astype(float)):
        raise ValueError(f"{file}: predicted_ctr must be finite numbers")


def read_proposals(out_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Read ``OUT/creatives.parquet`` written by a run (or by anyone following the output layout).

    Raises ``InputError`` naming the file and the rule when it is missing or breaks the layout.
    """
    path = Path(out_dir) / "creatives.parquet"
    if not path.is_file():
        raise InputError(f"{path}: proposals file is missing (expected the output layout's creatives.parquet)")
    try:
        frame = pq.read_table(path).to_pandas()
    except Exception as error:  # any reader failure means an unreadable file to the user
        raise InputError(f"{path}: cannot read as Parquet ({error})") from None
    missing = [name for name in ("product_id", "rank", "elements") if name not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    if frame.empty:
        raise InputError(f"{path}: no proposals")
    rank = pd.to_numeric(frame["rank"], errors="coerce")
    bad_rank = frame.index[rank.isna() | (rank % 1 != 0) | (rank < 1)]
    if len(bad_rank):
        raise InputError(f"{path}: rows {list(bad_rank[:5])}: column rank: must be an integer >= 1")
    frame["rank"] = frame["rank"].astype(int)
    frame["elements"] = [list(e) for e in frame["elements"]]
    return frame


def write_products(out_dir: str | os.PathLike[str], market: Market, logged: pd.DataFrame,
                   logged_images: dict[str, str], lifts: pd.DataFrame | None, kept: Collection[str]) -> None:
    """``OUT/products.parquet``: per product, the creative shown now and the estimated lift of proposal #1.

    One row per product of ``market``, in ``PRODUCTS_SCHEMA``'s types. ``logged`` is each product's best
    logged creative (``click_log.best_logged_creatives`` indexed by product, with ``elements``, ``ctr`` and
    ``predicted_ctr``; a product without one gets nulls), ``logged_images`` its image path relative to OUT;
    ``lifts`` is the per-product off-policy estimate (``product_id``, ``impressions``, ``lift``, ``lift_low``,
    ``lift_high``; the cross-fitted evidence's when the run has it), None when no estimate was possible (the
    lift columns are then NaN, ``lift_impressions`` 0). ``keep_current`` is True for the products of ``kept``:
    those whose run keeps what runs now (do no harm: their rank 1 is a kept row).
    """
    lift_rows = lifts.set_index("product_id") if lifts is not None else None
    rows = []
    for pid in market.products["product_id"]:
        has_logged = pid in logged.index
        best = logged.loc[pid] if has_logged else None
        lift = lift_rows.loc[pid] if lift_rows is not None and pid in lift_rows.index else None
        rows.append((
            pid,
            best["creative_id"] if has_logged else None,
            logged_images.get(pid),
            [str(e) for e in best["elements"]] if has_logged else None,
            float(best["ctr"]) if has_logged else np.nan,
            float(best["predicted_ctr"]) if has_logged else np.nan,
            int(lift["impressions"]) if lift is not None else 0,
            float(lift["lift"]) if lift is not None else np.nan,
            float(lift["lift_low"]) if lift is not None else np.nan,
            float(lift["lift_high"]) if lift is not None else np.nan,
            pid in kept,
        ))
    frame = pd.DataFrame(rows, columns=list(PRODUCT_COLUMNS))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(out / "products.parquet", pa.Table.from_pandas(frame, preserve_index=False, schema=PRODUCTS_SCHEMA))


def read_products(out_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Read ``OUT/products.parquet`` written by ``write_products``.

    Raises ``InputError`` naming the file when it is missing, unreadable or lacks one of ``PRODUCT_COLUMNS``.
    """
    path = Path(out_dir) / "products.parquet"
    if not path.is_file():
        raise InputError(
            f"{path} is missing: this run was written by an older adcraft that did not record the "
            "creative each product shows now. Run `adcraft optimize` again to review it."
        )
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable Parquet table ({exc})") from exc
    missing = [name for name in PRODUCT_COLUMNS if name not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; run `adcraft optimize` again")
    return frame
