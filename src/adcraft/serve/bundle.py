"""The approved creatives of a run as a folder an ad manager uploads in bulk (``adcraft export``).

::

    BUNDLE/
      creatives.csv    one row per approved creative, columns BUNDLE_COLUMNS (no cell runs as a formula)
      images/          each approved creative's PNG, as the run rendered it
      manifest.json    that every image is machine-generated, by which run and adcraft version, when it was
                       exported, and each creative's elements and render settings

The headline is the text of the creative's ``title`` element and the description that of its ``highlight``
element (the market format's standard slots); a market without that slot leaves the cell empty. The final URL
is a template the user gives (``{product_id}`` is replaced by the product's id), by default a placeholder on
example.com to be replaced before upload.

Approved means: the latest decision on the creative in the review page's database is approve. A decision on a
creative the run does not have (another run's, or one the run's folder no longer holds as decided) is refused,
not skipped, so that a bundle never mixes runs. The bundle is written beside ``BUNDLE`` and moved into place when
complete; ``BUNDLE`` must be new or empty.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError

from adcraft import __version__
from adcraft.atomic import check_output_folder, json_text, staged_folder, write_bytes
from adcraft.configuration import check_config, to_mapping
from adcraft.errors import InputError
from adcraft.features.cache import file_sha256
from adcraft.pipeline.optimize import RunRecord
from adcraft.pipeline.reviews import sqlite_url
from adcraft.serve.config import DATABASE_FILE
from adcraft.serve.decisions import DecisionStore
from adcraft.serve.run_view import Proposal, RunView
from adcraft.serve.spreadsheet import spreadsheet_csv

BUNDLE_FORMAT = "adcraft-ad-bundle/1"
BUNDLE_COLUMNS = ("creative_name", "image_file", "headline", "description", "product_id", "final_url")
CSV_FILE = "creatives.csv"
MANIFEST_FILE = "manifest.json"
IMAGES = "images"
HEADLINE_SLOT = "title"
DESCRIPTION_SLOT = "highlight"
DEFAULT_FINAL_URL = "https://example.com/products/{product_id}"
PRODUCT_FIELD = "{product_id}"
FINAL_URL_PATTERN = r"^https?://[^ \t\r\n\f\v]+$"  # the same in Python and in the OpenAPI schema (ECMA)


@dataclass(frozen=True)
class BundleConfig:
    """What ``adcraft export`` writes where.

    - ``run_dir``: an ``adcraft optimize`` output folder; ``market_dir``: the market it was made from
      (default: the one its run.json names).
    - ``database_url``: the review page's decisions (default: ``decisions.sqlite`` in the run folder, as
      ``adcraft serve`` keeps them).
    - ``out``: the bundle folder, new or empty; ``zip``: also write ``out`` with ``.zip`` appended, holding the
      same files.
    - ``final_url``: each row's final URL, ``{product_id}`` replaced by the product's id (URL-encoded).
    """

    run_dir: Path
    out: Path
    database_url: str | None = None
    market_dir: Path | None = None
    final_url: str = DEFAULT_FINAL_URL
    zip: bool = False

    def __post_init__(self) -> None:
        check_config(self)
        object.__setattr__(self, "run_dir", Path(self.run_dir))
        object.__setattr__(self, "out", Path(self.out))
        if self.market_dir is not None:
            object.__setattr__(self, "market_dir", Path(self.market_dir))
        if self.database_url is None:
            object.__setattr__(self, "database_url", sqlite_url(self.run_dir / DATABASE_FILE))
        if not re.match(FINAL_URL_PATTERN, self.final_url):
            raise InputError(f"--final-url must start with https:// or http://, got {self.final_url!r}")

    @property
    def zip_path(self) -> Path:
        return self.out.with_name(self.out.name + ".zip")


@dataclass(frozen=True)
class BundleResult:
    """What ``export_bundle`` wrote: the folder, the zip (None without one) and how many creatives."""

    out: Path
    zip_path: Path | None
    creatives: int


def export_bundle(config: BundleConfig) -> BundleResult:
    """Write the bundle of ``config.run_dir``'s approved creatives to ``config.out`` (module docstring).

    Raises ``InputError``, before anything is written, for a non-empty ``out`` (or an existing zip), an ``out``
    inside the run or the market, a run folder or decisions database that cannot be read, a decision on a
    creative the run does not have, or no approved creative at all.
    """
    out = _check_out(config)
    record = RunRecord.load(config.run_dir / "run.json")
    market_dir = config.market_dir or record.market
    if not market_dir.is_dir():
        raise InputError(f"{config.run_dir / 'run.json'} names the market {market_dir}, which is not a folder; "
                         "pass the market the run was made from with --market")
    check_output_folder(out, "export", inputs=[config.run_dir, market_dir], replaces=False)
    _check_database(config.database_url)
    view = RunView.load(config.run_dir, market_dir)
    store = DecisionStore(config.database_url, view)
    try:
        approved = store.approved()
    finally:
        store.dispose()
    files = bundle_files(config.run_dir, view, approved, config.database_url, config.final_url)
    zipped = None
    try:
        with staged_folder(out) as staging:
            (staging / IMAGES).mkdir()
            for name, content in files.items():
                if isinstance(content, Path):
                    shutil.copyfile(content, staging / name)
                else:
                    write_bytes(staging / name, content)
            if config.zip:
                zipped = _zipped(files, config.zip_path)
        if zipped is not None:
            os.replace(zipped, config.zip_path)
    except BaseException:
        if zipped is not None:
            zipped.unlink(missing_ok=True)
        raise
    return BundleResult(out, config.zip_path if config.zip else None,
                        sum(name.startswith(f"{IMAGES}/") for name in files))


def bundle_files(run_dir: Path, view: RunView, approved: pd.DataFrame, database_url: str,
                 final_url: str = DEFAULT_FINAL_URL) -> dict[str, Path | bytes]:
    """The bundle of the run at ``run_dir`` (seen through ``view``), by file name: each image as the run's file,
    ``creatives.csv`` and ``manifest.json`` as bytes. ``approved`` is ``DecisionStore.approved()`` of the
    decisions database at ``database_url``.

    Raises ``InputError`` for a decision on a creative the run does not have or no approved creative at all.
    """
    record = RunRecord.load(Path(run_dir) / "run.json")
    rows, entries = [], []
    for proposal, decision in _approved(view, Path(run_dir), approved, database_url):
        image_file = f"{IMAGES}/{proposal.creative_id}.png"
        rows.append({
            "creative_name": proposal.creative_id, "image_file": image_file,
            "headline": _slot_text(view, proposal, HEADLINE_SLOT),
            "description": _slot_text(view, proposal, DESCRIPTION_SLOT),
            "product_id": proposal.product_id,
            "final_url": final_url.replace(PRODUCT_FIELD, quote(proposal.product_id, safe="")),
        })
        entries.append((proposal, decision, image_file, _run_file(Path(run_dir), proposal.image)))
    frame = pd.DataFrame(rows, columns=list(BUNDLE_COLUMNS), dtype=object)
    manifest = _manifest(Path(run_dir), record, view, database_url, final_url, entries)
    return {
        **{image_file: source for _, _, image_file, source in entries},
        CSV_FILE: spreadsheet_csv(frame).encode("utf-8"),
        MANIFEST_FILE: (json_text(manifest) + "\n").encode("utf-8"),
    }


def bundle_zip(files: dict[str, Path | bytes]) -> bytes:
    """The files of :func:`bundle_files` as a zip archive in memory (the review page's download)."""
    buffer = io.BytesIO()
    _write_zip(files, buffer)
    return buffer.getvalue()


def _check_out(config: BundleConfig) -> Path:
    """``config.out`` when it is new or an empty folder (and the zip, if asked for, is new)."""
    out = config.out
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder; choose a new folder")
    if out.is_dir() and any(out.iterdir()):
        raise InputError(f"--out {out} is not empty; the bundle goes into a new or empty folder: choose another")
    if config.zip and config.zip_path.exists():
        raise InputError(f"{config.zip_path} exists; it is left untouched: choose another --out or remove it")
    return out


def _approved(view: RunView, run_dir: Path, frame: pd.DataFrame, database_url: str
              ) -> list[tuple[Proposal, pd.Series]]:
    """The run's proposals approved in ``frame`` (``DecisionStore.approved()``), each with its decision row, in
    the database's order (by product, then rank)."""
    if not len(frame):
        raise InputError(f"the decisions database {_shown(database_url)} holds no approved creative: "
                         "approve some on the review page (`adcraft serve`) first")
    found = []
    for _, decision in frame.iterrows():
        product_id, creative_id = str(decision["product_id"]), str(decision["creative_id"])
        try:
            proposal = view.proposal(product_id, creative_id)
        except InputError:
            raise InputError(f"the decisions database {_shown(database_url)} approves creative "
                             f"{creative_id!r} of product {product_id!r}, which run {run_dir} does not "
                             "propose: export from the run the decisions were made on") from None
        if tuple(decision["elements"]) != proposal.elements or str(decision["image"]) != proposal.image:
            raise InputError(f"creative {creative_id!r} of product {product_id!r} was approved with other elements "
                             f"or another image than run {run_dir} now holds: the run folder was replaced "
                             "after the decision; review it again")
        found.append((proposal, decision))
    return found


def _check_database(url: str) -> None:
    """Refuse an SQLite database file that does not exist (opening it would create an empty one)."""
    try:
        parsed = sa.make_url(url)
    except ArgumentError as exc:
        raise InputError(f"--decisions {_shown(url)} is not a database URL: {exc}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).is_file():
            raise InputError(f"no decisions database at {parsed.database}: pass the --database-url that "
                             "`adcraft serve` used with --decisions")


def _shown(url: str) -> str:
    """The URL without its password."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<malformed URL>"


def _slot_text(view: RunView, proposal: Proposal, slot: str) -> str:
    """The content of the proposal's element in ``slot`` ("" when the market has no such slot)."""
    if slot not in view.slots:
        return ""
    return view.element_content(proposal.elements[view.slots.index(slot)])


def _run_file(run_dir: Path, relative: str) -> Path:
    """``run_dir / relative``, refused when it leaves the run folder or is missing."""
    path = (run_dir / relative).resolve()
    if run_dir.resolve() not in path.parents:
        raise InputError(f"{run_dir / 'creatives.parquet'}: image {relative!r} lies outside the run folder")
    if not path.is_file():
        raise InputError(f"{run_dir / relative}: the run's image of an approved creative is missing")
    return path


def _manifest(run_dir: Path, record: RunRecord, view: RunView, database_url: str, final_url: str,
              entries: list[tuple[Proposal, pd.Series, str, Path]]) -> dict:
    """manifest.json: provenance of every image (machine-generated, by which run and code) and its elements."""
    run_json = (run_dir / "run.json").resolve()
    generated_file = run_dir / "elements.parquet"
    generated = set(pd.read_parquet(generated_file, columns=["element_id"])["element_id"]) \
        if generated_file.is_file() else set()
    creatives = []
    for proposal, decision, image_file, source in entries:
        elements = [{"slot": slot, "element_id": element, "content": view.element_content(element),
                     "generated_by_run": element in generated}
                    for slot, element in zip(view.slots, proposal.elements)]
        creatives.append({
            "creative_name": proposal.creative_id, "image_file": image_file,
            "image_sha256": file_sha256(source), "machine_generated": True,
            "product_id": proposal.product_id, "rank": proposal.rank, "predicted_ctr": proposal.predicted_ctr,
            "run_image": proposal.image, "elements": elements,
            "approved_at": decision["decided_at"].isoformat(), "review_note": str(decision["note"]),
        })
    return {
        "format": BUNDLE_FORMAT,
        "machine_generated": True,
        "statement": ("Every image in this bundle was generated by software (adcraft), not photographed or "
                      "drawn by a person: it composes the product's own photo with text and background elements "
                      "chosen by a model trained on click logs. A person approved each one on the review page."),
        "exported_at": datetime.now(UTC).isoformat(),
        "adcraft_version": __version__,
        "run": {
            "folder": str(run_dir.resolve()), "run_json": str(run_json),
            "run_json_sha256": file_sha256(run_json), "market": str(record.market),
            "versions": to_mapping(record.versions), "seeds": to_mapping(record.seeds),
        },
        "decisions": _shown(database_url),
        "render": to_mapping(record.config.render),
        "canvas": list(view.market.config.canvas),
        "slots": list(view.slots),
        "columns": {"headline": f"text of the {HEADLINE_SLOT!r} element",
                    "description": f"text of the {DESCRIPTION_SLOT!r} element",
                    "final_url": f"the template {final_url!r}"},
        "creatives": creatives,
    }


def _zipped(files: dict[str, Path | bytes], zip_path: Path) -> Path:
    """``files`` in a temporary zip beside ``zip_path`` (the caller renames it into place)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{zip_path.name}.", suffix=".tmp", dir=zip_path.parent)
    os.close(handle)
    try:
        with open(temporary, "wb") as stream:
            _write_zip(files, stream)
        os.chmod(temporary, 0o644)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary)


def _write_zip(files: dict[str, Path | bytes], stream: BinaryIO) -> None:
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in sorted(files.items()):
            if isinstance(content, Path):
                archive.write(content, name)
            else:
                archive.writestr(name, content)
