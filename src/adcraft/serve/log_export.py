"""``adcraft logs export``: a run's served log as a new market, for the next ``optimize`` to learn from.

The new market is the old one with:

- ``impressions``: the market's impressions, then every impression the run served (``served_impressions``
  rows of its ``run_id``), each with the propensity the serving policy logged, its click and its context;
- ``creatives``: the market's creatives, then each served creative the market did not have (a creative
  of the same product with the same elements is the market's own: its id is kept), with a stable id
  ``served-<hash of product and elements>`` and the PNG the run rendered for it (``served-creatives/``);
- ``elements``: the market's elements, then the run's own elements (its ``elements.parquet``, e.g. new
  background prompts) that served creatives use.

Every other file of the market is copied as it is. The folder is built beside ``--out``, validated as a
market and only then moved into place, so a refused export leaves nothing behind.

Two cases cannot keep everything, and are handled so that the market stays valid: when the market's own
impressions carry no propensities (or no context), the served ones are written without them too (a column
holds a value in every row or is left out), and the export says so in its notes. A market whose impressions
record a page ``position`` is refused, since served impressions have none, and so is a market whose logs are
aggregated only (``creative_stats``): event-level impressions beside them would hide them from ``optimize``.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from adcraft.atomic import check_output_folder, staged_folder
from adcraft.errors import InputError
from adcraft.market import Market, load_market
from adcraft.market.coerce import typed_frame
from adcraft.market.extra import read_extra_elements
from adcraft.market.images import resolve_inside
from adcraft.market.io import validate_market
from adcraft.market.problems import MarketValidationError
from adcraft.market.schema import CREATIVES, ELEMENTS, IMPRESSIONS, TableSpec
from adcraft.market.tables import to_arrow, write_table
from adcraft.pipeline.run_record import run_id_of
from adcraft.serve.decisions import open_engine, unusable_database
from adcraft.serve.impression_log import served_rows

COMMAND = "logs export"
SERVED_IMAGES = "served-creatives"
SERVED_PREFIX = "served-"
REPLACED_TABLES = (ELEMENTS, CREATIVES, IMPRESSIONS)


@dataclass(frozen=True)
class LogExport:
    """What ``export_served_log`` wrote: the new market, the run whose log it holds, how many impressions and
    clicks it appended, the creatives and elements it added, and what it could not keep (``notes``)."""

    out: Path
    run_id: str
    impressions: int
    clicks: int
    new_creatives: int
    new_elements: int
    notes: tuple[str, ...]


def export_served_log(database_url: str, run_dir: Path, market_dir: Path, out: Path) -> LogExport:
    """Write the market of ``market_dir`` with the served log of the run in ``run_dir`` (read from the database
    at ``database_url``) appended, as a new market at ``out`` (a new or empty folder).

    Raises ``InputError`` for a non-empty ``out``, a run without run.json, a database without impressions of
    that run, served creatives whose elements neither the market nor the run has, or a market the log cannot
    be appended to (see the module docstring).
    """
    run_dir, market_dir, out = Path(run_dir), Path(market_dir), Path(out)
    check_output_folder(out, COMMAND, inputs=[market_dir, run_dir], replaces=False)
    if out.is_dir() and any(out.iterdir()):
        raise InputError(f"--out {out} is not empty; the exported market goes into a new or empty folder")
    run_id = run_id_of(run_dir)
    market = load_market(market_dir)
    log = _served_log(database_url, run_id, run_dir)
    notes: list[str] = []
    elements, new_elements = _elements(market, run_dir, log)
    creatives, creative_ids, images = _creatives(market, run_dir, log)
    impressions = _impressions(market, log, creative_ids, notes)
    tables = {"elements": elements, "creatives": creatives, "impressions": impressions}
    with staged_folder(out) as staging:
        shutil.copytree(market_dir, staging, dirs_exist_ok=True)
        for spec in REPLACED_TABLES:
            for suffix in (".parquet", ".csv"):
                (staging / f"{spec.name}{suffix}").unlink(missing_ok=True)
            _write(tables[spec.name], spec, staging)
        for source, relpath in images.items():
            target = staging / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        problems = validate_market(staging, limits=market.limits)
        if problems:
            raise MarketValidationError(problems, where=f"{out} (the export)")
    return LogExport(out, run_id, len(log), int(log["click"].sum()), len(creatives) - _rows(market.creatives),
                     new_elements, tuple(notes))


def _rows(frame: pd.DataFrame | None) -> int:
    return 0 if frame is None else len(frame)


def _served_log(database_url: str, run_id: str, run_dir: Path) -> pd.DataFrame:
    from sqlalchemy.exc import OperationalError

    engine = open_engine(database_url)
    try:
        log = served_rows(engine, run_id)
    except OperationalError as exc:
        raise unusable_database(database_url, exc) from exc
    finally:
        engine.dispose()
    if log.empty:
        raise InputError(f"the database holds no impressions served by the run in {run_dir} ({run_id}): serve "
                         "it with `adcraft serve` first, or pass the run folder the server ran on")
    return log


def _elements(market: Market, run_dir: Path, log: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The market's elements and the run's own ones that served creatives use; how many were added."""
    used = {element for elements in log["elements"] for element in elements}
    missing = used - set(market.elements["element_id"])
    if not missing:
        return market.elements, 0
    extra_file = run_dir / "elements.parquet"
    extra = read_extra_elements(extra_file, market) if extra_file.is_file() else market.elements.iloc[:0]
    added = extra[extra["element_id"].isin(missing)]
    unknown = sorted(missing - set(added["element_id"]))
    if unknown:
        raise InputError(f"served creatives use elements that neither the market nor {extra_file} has: "
                         f"{unknown[:5]}; pass the market and run folder the server ran on")
    return pd.concat([market.elements, added], ignore_index=True), len(added)


def served_creative_id(product_id: str, elements: tuple[str, ...]) -> str:
    """The id of a served creative the market did not have: stable for the same product and elements."""
    digest = hashlib.sha256("\x1f".join([product_id, *elements]).encode("utf-8")).hexdigest()[:16]
    return SERVED_PREFIX + digest


def _creatives(market: Market, run_dir: Path, log: pd.DataFrame
               ) -> tuple[pd.DataFrame, dict[tuple[str, tuple[str, ...]], str], dict[Path, str]]:
    """The market's creatives with the served ones it lacks; (product, elements) -> creative id of every
    served creative; and the images to copy (run file -> path in the new market)."""
    own = market.creatives if market.creatives is not None else pd.DataFrame(
        {"creative_id": [], "product_id": [], "elements": [], "image": []})
    ids = {(p, tuple(e)): c for p, e, c in zip(own["product_id"], own["elements"], own["creative_id"])}
    taken = set(own["creative_id"])
    rows, images = [], {}
    first = log.drop_duplicates(subset=["product_id", "creative_id"])
    for product_id, elements, image in zip(first["product_id"], first["elements"], first["image"]):
        key = (product_id, tuple(elements))
        if key in ids:
            continue
        creative_id = served_creative_id(*key)
        if creative_id in taken:
            raise InputError(f"the market already has a creative {creative_id!r} with other elements than the "
                             f"served one of product {product_id!r}")
        relpath = None
        if isinstance(image, str):
            source = resolve_inside(run_dir, image)
            if source.is_file():
                relpath = f"{SERVED_IMAGES}/{creative_id}{source.suffix.lower()}"
                images[source] = relpath
        ids[key] = creative_id
        taken.add(creative_id)
        rows.append({"creative_id": creative_id, "product_id": product_id, "elements": list(elements),
                     "image": relpath})
    clash = [path for path in images.values() if market.root is not None and (Path(market.root) / path).exists()]
    if clash:
        raise InputError(f"the market already has a file {clash[0]}, where the export would put a served "
                         "creative's image")
    added = pd.DataFrame(rows, columns=["creative_id", "product_id", "elements", "image"])
    return (pd.concat([own, added], ignore_index=True) if len(added) else own), ids, images


def _impressions(market: Market, log: pd.DataFrame, creative_ids: dict[tuple[str, tuple[str, ...]], str],
                 notes: list[str]) -> pd.DataFrame:
    """The market's impressions, then the served ones (see the module docstring for what is left out)."""
    own = market.impressions
    if (own is None or own.empty) and market.creative_stats is not None and not market.creative_stats.empty:
        raise InputError("the market's logs are aggregated (creative_stats) only: served impressions beside them "
                         "would hide them from optimize, which reads impressions when a market has them")
    if own is not None and "position" in own and own["position"].notna().any():
        raise InputError("the market's impressions record a page position, which served impressions do not: "
                         "the export cannot give them one")
    served = pd.DataFrame({
        "impression_id": log["impression_id"].to_numpy(dtype=object),
        "ts": log["ts"].to_numpy(dtype=np.int64),
        "creative_id": [creative_ids[(p, tuple(e))] for p, e in zip(log["product_id"], log["elements"])],
        "click": log["click"].to_numpy(dtype=np.int64),
        "propensity": log["propensity"].to_numpy(dtype=np.float64),
        "context": [c if isinstance(c, str) else "{}" for c in log["context"]],
    })
    if own is None or own.empty:
        if log["context"].isna().all():
            served = served.drop(columns="context")
        return served
    clash = sorted(set(served["impression_id"]) & set(own["impression_id"]))
    if clash:
        raise InputError(f"the market already has impressions {clash[:3]} of the served log: was it exported "
                         "before? export into the market the run was made from")
    for column, what in (("propensity", "propensities"), ("context", "contexts")):
        if column not in own or own[column].isna().all():
            served = served.drop(columns=column)
            notes.append(f"the market's impressions carry no {what}: the served impressions are written "
                         f"without theirs too")
    return pd.concat([own, served], ignore_index=True)


def _write(frame: pd.DataFrame, spec: TableSpec, folder: Path) -> None:
    typed = typed_frame(spec, frame, f"{spec.name}.parquet")
    if typed.problems:
        raise MarketValidationError(typed.problems, where=f"{folder} (the export)")
    write_table(to_arrow(typed.frame, spec), folder / f"{spec.name}.parquet", "parquet")

