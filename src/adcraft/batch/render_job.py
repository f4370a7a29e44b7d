"""Batch rendering: many creatives of a market to PNG files, on either backend.

Items are creatives (``creative_id``, ``product_id``, ``elements``: one element id per slot), by default
the market's past creatives. Each worker builds one ``MarketRenderer`` (each product photo opened
once per worker) and returns every creative as PNG bytes and its product box; this process writes the
files, so a cluster needs no shared file system for the output. The output folder is built aside and
moved into place at the end: a refused input or a failed worker leaves nothing at ``out``.

- ``OUT/images/<creative_id>.png`` (the id made file-safe; ``~<row>`` added where two ids collide);
- ``OUT/rendered.parquet``: ``creative_id``, ``product_id``, ``elements``, the placement
  (``product_scale``, ``product_x``, ``product_y``), ``image`` (path in ``OUT``), ``product_bbox``
  (``[x0, y0, x1, y1]``), in item order.

A creatives table with the placement columns (``optimize``'s ``creatives.parquet``) is drawn with each row's
placement, so a proposal renders again exactly; a table without them is drawn with the default placement.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from adcraft.atomic import check_output_folder, mark_output, staged_folder, write_parquet
from adcraft.batch.backend import map_chunks
from adcraft.batch.chunks import ROW, BatchConfig, ChunkFunction
from adcraft.errors import InputError

if TYPE_CHECKING:
    from adcraft.render.backend import RenderConfig

RENDERED = "rendered.parquet"


@dataclass(frozen=True)
class RenderJob:
    """Render creatives (items: ``product_id``, ``elements``) of the market in ``market_dir`` to PNG bytes,
    with the renderer ``render`` selects (``None``: the default compositor)."""

    market_dir: str
    render: RenderConfig | None = None

    def load(self) -> ChunkFunction:
        from adcraft.market import load_market
        from adcraft.render.compositor import placements_of
        from adcraft.render.from_market import MarketRenderer

        renderer = MarketRenderer(load_market(self.market_dir), config=self.render)

        def render(items: pa.Table) -> pa.Table:
            pngs, boxes = [], []
            for product_id, elements, placement in zip(items.column("product_id").to_pylist(),
                                                       items.column("elements").to_pylist(),
                                                       placements_of(items.to_pandas())):
                rendered = renderer.render(product_id, elements, placement)
                buffer = io.BytesIO()
                rendered.image.save(buffer, format="PNG")
                pngs.append(buffer.getvalue())
                boxes.append([int(v) for v in rendered.product_bbox])
            return pa.table({"png": pa.array(pngs, pa.binary()), "product_bbox": pa.array(boxes, pa.list_(pa.int32()))})

        return render


def creative_items(creatives: pd.DataFrame) -> pa.Table:
    """Work items from a creatives table: ``product_id`` and ``elements`` required, ``creative_id`` optional
    (``row-<n>`` when absent), the placement columns optional (the default placement when absent);
    ``InputError`` for a table a user must fix."""
    from adcraft.render.compositor import PLACEMENT_COLUMNS, placements_of

    missing = [name for name in ("product_id", "elements") if name not in creatives]
    if missing:
        raise InputError(f"creatives to render need the column(s) {', '.join(missing)}")
    if creatives.empty:
        raise InputError("no creatives to render")
    ids = (creatives["creative_id"].astype(str).tolist() if "creative_id" in creatives
           else [f"row-{row}" for row in range(len(creatives))])
    if len(set(ids)) != len(ids):
        raise InputError("creative_id must be unique among the creatives to render")
    elements = []
    for row, combo in enumerate(creatives["elements"]):
        if isinstance(combo, str) or not all(isinstance(e, str) for e in combo):
            raise InputError(f"creative {ids[row]}: elements must be a list of element ids")
        elements.append(list(combo))
    try:
        placements = placements_of(creatives)
    except (InputError, TypeError, ValueError) as error:
        raise InputError(f"creatives to render: a placement column is out of range ({error})") from None
    return pa.table({
        "creative_id": pa.array(ids, pa.string()),
        "product_id": pa.array([str(p) for p in creatives["product_id"]], pa.string()),
        "elements": pa.array(elements, pa.list_(pa.string())),
        **{column: pa.array([p.as_columns()[column] for p in placements], pa.float64())
           for column in PLACEMENT_COLUMNS},
    })


def file_names(creative_ids: list[str]) -> list[str]:
    """A file-safe, unique PNG path under ``images/`` for each creative id."""
    names, seen = [], set()
    for row, creative_id in enumerate(creative_ids):
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", creative_id)[:80].strip("._") or "creative"
        if stem in seen:
            stem = f"{stem}~{row}"
        seen.add(stem)
        names.append(f"images/{stem}.png")
    return names


def render_creatives(
    market_dir: Path,
    out: Path,
    creatives: pd.DataFrame | None = None,
    config: BatchConfig | None = None,
    render: RenderConfig | None = None,
) -> Path:
    """Render ``creatives`` (default: the market's past creatives) to ``OUT/images`` and ``OUT/rendered.parquet``;
    ``render`` picks the renderer (default: the compositor)."""
    from adcraft.market import load_market
    from adcraft.render.compositor import PLACEMENT_COLUMNS

    config = config or BatchConfig()
    out = check_output_folder(Path(out), "render", inputs=[Path(market_dir)])
    market = load_market(market_dir)
    if creatives is None:
        if market.creatives is None or market.creatives.empty:
            raise InputError(f"the market at {market_dir} has no past creatives; give the creatives to render")
        creatives = market.creatives
    items = creative_items(creatives)
    names = file_names(items.column("creative_id").to_pylist())
    with staged_folder(out) as staging:
        (staging / "images").mkdir()
        boxes: dict[int, list[int]] = {}
        job = RenderJob(str(Path(market_dir).resolve()), render)
        for result in map_chunks(job, items.select(["product_id", "elements", *PLACEMENT_COLUMNS]), config):
            for row, png, box in zip(result.column(ROW).to_pylist(), result.column("png").to_pylist(),
                                     result.column("product_bbox").to_pylist()):
                (staging / names[row]).write_bytes(png)  # the staging folder is moved into place whole
                boxes[row] = box
        if sorted(boxes) != list(range(items.num_rows)):
            raise RuntimeError(f"rendered {len(boxes)} of {items.num_rows} creatives")
        index = items.append_column("image", pa.array(names, pa.string())).append_column(
            "product_bbox", pa.array([boxes[row] for row in range(items.num_rows)], pa.list_(pa.int32())))
        write_parquet(staging / RENDERED, index)
        mark_output(staging, "render")
    return out / RENDERED
