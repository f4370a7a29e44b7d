"""Tiny synthetic markets for the market tests: a valid one with every optional table, written
as a folder or built in memory, and the means to break it."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from adcraft.market import Market, MarketConfig

SLOTS = ["product_image", "title", "highlight", "background", "template", "font", "text_color"]


def png_bytes(size: tuple[int, int] = (8, 6), color: tuple[int, ...] = (200, 40, 40, 255),
              fmt: str = "PNG") -> bytes:
    """A tiny image file's bytes."""
    mode = "RGBA" if len(color) == 4 and fmt != "JPEG" else "RGB"
    buffer = io.BytesIO()
    Image.new(mode, size, color[: len(mode)]).save(buffer, format=fmt)
    return buffer.getvalue()


def photo_bytes(size: tuple[int, int] = (8, 6), color: tuple[int, ...] = (200, 40, 40, 255),
                fmt: str = "PNG") -> bytes:
    """A tiny product photo's bytes: a block of ``color`` on a light background, so that it shows
    a product (a photo of one plain colour shows nothing)."""
    mode = "RGBA" if len(color) == 4 and fmt != "JPEG" else "RGB"
    image = Image.new(mode, size, (245, 245, 240, 255)[: len(mode)])
    width, height = size
    image.paste(Image.new(mode, (max(1, width // 2), max(1, height // 2)), color[: len(mode)]),
                (width // 4, height // 4))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def base_tables() -> dict[str, pd.DataFrame]:
    """A valid market's tables: 3 products, elements for every slot, every optional table."""
    products = pd.DataFrame({
        "product_id": ["p1", "p2", "p3"],
        "title": ["Linen shirt", "Clay mug", "Oak chair"],
        "category": ["apparel", "kitchen", "furniture"],
        "image": ["images/p1.png", "images/p2.png", "images/p3.png"],
        "price": [39.5, 12.0, 149.99],
        "attributes": ['{"color": "white"}', '{"color": "grey"}', "{}"],
    })
    element_rows = [
        ("img1", "product_image", "p1", None, None, "images/p1.png"),
        ("img2", "product_image", "p2", None, None, "images/p2.png"),
        ("img3", "product_image", "p3", None, None, "images/p3_alt.png"),
        ("t1", "title", "p1", "Breathable linen", None, None),
        ("t2", "title", "p2", "Hand-made mug", None, None),
        ("t3", "title", None, "New in", None, None),
        ("h1", "highlight", None, "Free shipping", None, None),
        ("b1", "background", None, None, "warm beige studio, soft shadow", None),
        ("b2", "background", None, None, "#F0E0D0", None),
        ("tp1", "template", None, None, "center", None),
        ("f1", "font", None, None, "DejaVu Sans", None),
        ("k1", "text_color", None, None, "#202020", None),
    ]
    elements = pd.DataFrame(element_rows,
                            columns=["element_id", "slot", "product_id", "text", "value", "image"])
    creatives = pd.DataFrame({
        "creative_id": ["c1", "c2"],
        "product_id": ["p1", "p2"],
        "elements": [["img1", "t1", "h1", "b1", "tp1", "f1", "k1"],
                     ["img2", "t3", "h1", "b2", "tp1", "f1", "k1"]],
        "image": ["images/c1.jpg", None],
    })
    impressions = pd.DataFrame({
        "impression_id": ["i1", "i2", "i3", "i4"],
        "ts": [1_700_000_000, 1_700_000_060, 1_700_090_000, 1_700_090_060],  # two days
        "creative_id": ["c1", "c1", "c2", "c2"],
        "click": [0, 1, 0, 0],
        "propensity": [0.5, 0.5, 0.25, 1.0],
        "position": [1, 2, 1, 3],
        "context": ['{"device": "mobile"}', "{}", "{}", '{"device": "desktop"}'],
    })
    creative_stats = pd.DataFrame({
        "creative_id": ["c1", "c2"],
        "date": ["2024-01-01", "2024-01-02"],
        "impressions": [100, 80],
        "clicks": [7, 0],
    })
    demand = pd.DataFrame({
        "product_id": ["p1", "p2", "p3"],
        "demand": [12.0, 0.0, 3.5],
        "period": ["2024-01", "2024-01", "2024-01"],
    })
    return {"products": products, "elements": elements, "creatives": creatives,
            "impressions": impressions, "creative_stats": creative_stats, "demand": demand}


def _copy(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame | None]:
    copies: dict[str, pd.DataFrame | None] = {}
    for name, frame in tables.items():
        copy = frame.copy(deep=True)
        if "elements" in copy.columns:  # lists inside cells are not copied by pandas
            copy["elements"] = [list(items) for items in copy["elements"]]
        copies[name] = copy
    return copies


_BASE = base_tables()

IMAGES = {
    "images/p1.png": photo_bytes(),
    "images/p2.png": png_bytes(color=(20, 90, 200, 128)),  # half transparent
    "images/p3.png": photo_bytes(fmt="WEBP"),  # a WebP file with a .png name is fine
    "images/p3_alt.png": photo_bytes((5, 5)),
    "images/c1.jpg": png_bytes((16, 16), (90, 90, 90), fmt="JPEG"),
}


@dataclass
class MarketDraft:
    """A market about to be written: change its tables, config or files, then ``write()`` it as
    a folder or turn it into an in-memory ``market()``."""

    root: Path
    config: dict = field(default_factory=lambda: {"format": "adcraft-market/1",
                                                  "slots": list(SLOTS), "canvas": [320, 240]})
    tables: dict[str, pd.DataFrame | None] = field(default_factory=lambda: _copy(_BASE))
    table_format: str = "parquet"
    arrow_columns: dict[tuple[str, str], pa.Array] = field(default_factory=dict)
    config_text: str | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for relpath, data in IMAGES.items():
            self.file(relpath, data)

    def file(self, relpath: str, data: bytes) -> Path:
        """Write a file into the market folder now."""
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def set(self, table: str, column: str, row: int, value: object) -> None:
        """Set one cell (the column becomes object dtype so any value fits)."""
        frame = self.tables[table]
        assert frame is not None
        frame[column] = frame[column].astype(object)
        frame.at[row, column] = value

    def arrow_table(self, name: str) -> pa.Table:
        frame = self.tables[name]
        assert frame is not None
        table = pa.Table.from_pandas(frame, preserve_index=False)
        for (table_name, column), array in self.arrow_columns.items():
            if table_name == name:
                table = table.set_column(table.column_names.index(column), column, array)
        return table

    def write(self) -> Path:
        """Write market.json and the tables (Parquet or CSV) into ``root``; return ``root``."""
        text = self.config_text if self.config_text is not None else json.dumps(self.config)
        (self.root / "market.json").write_text(text)
        for name, frame in self.tables.items():
            if frame is None:
                continue
            if self.table_format == "parquet":
                pq.write_table(self.arrow_table(name), self.root / f"{name}.parquet")
            else:
                csv_frame = frame.copy()
                for column in csv_frame.columns:
                    if csv_frame[column].map(lambda v: isinstance(v, list)).any():
                        csv_frame[column] = csv_frame[column].map(
                            lambda v: json.dumps(v) if isinstance(v, list) else v)
                csv_frame.to_csv(self.root / f"{name}.csv", index=False)
        return self.root

    def market(self) -> Market:
        """The draft as a ``Market`` built in memory (no files read), with ``root`` for images."""
        frames = {}
        for name, frame in self.tables.items():
            if frame is not None and any(key[0] == name for key in self.arrow_columns):
                frame = self.arrow_table(name).to_pandas()
            frames[name] = frame
        config = MarketConfig(slots=tuple(self.config["slots"]),
                              canvas=tuple(self.config.get("canvas", (512, 512))),
                              format=self.config["format"])
        return Market(root=self.root, config=config, **frames)
