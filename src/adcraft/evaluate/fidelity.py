"""Product fidelity of rendered creatives: the product's own pixels must reach the picture unaltered.

A creative may change everything around the product, never the product. For every rendered proposal the
check recomputes the cut-out exactly as the compositor pastes it (same photo, same template box, same
resampling) and compares the creative's pixels where that cut-out is fully opaque: the proposal passes
when its recorded ``product_bbox`` is the cut-out's box and no opaque product pixel differs by more than
``tolerance`` (8-bit units; PNG is lossless, so 0 is expected).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from adcraft.market import Market
from adcraft.render.compositor import placements_of
from adcraft.render.from_market import MarketRenderer

FIDELITY_COLUMNS = ("product_id", "rank", "passed", "max_abs_diff", "opaque_pixels", "bbox_matches")


def product_fidelity(
    market: Market, proposals: pd.DataFrame, out_dir: Path, tolerance: int = 2,
    renderer: MarketRenderer | None = None,
) -> pd.DataFrame:
    """One row per proposal (``FIDELITY_COLUMNS``): whether the rendered PNG under ``out_dir`` kept the product
    (placed as the row's ``PLACEMENT_COLUMNS`` say, where the table has them)."""
    renderer = renderer or MarketRenderer(market)
    canvas = tuple(market.config.canvas)
    rows = []
    placements = placements_of(proposals)
    for pid, rank, combo, image, box, placement in zip(proposals["product_id"], proposals["rank"],
                                                       proposals["elements"], proposals["image"],
                                                       proposals["product_bbox"], placements):
        spec = renderer.spec(pid, list(combo), placement)
        cut, bbox = renderer.compositor.product_cutout_resized(spec, canvas)
        left, top, right, bottom = bbox
        with Image.open(Path(out_dir) / image) as opened:
            shown = np.asarray(opened.convert("RGB"), dtype=np.int16)[top:bottom, left:right]
        cut_pixels = np.asarray(cut, dtype=np.int16)
        opaque = cut_pixels[..., 3] == 255
        diff = int(np.abs(shown[opaque] - cut_pixels[..., :3][opaque]).max()) if opaque.any() else 0
        matches = [int(v) for v in box] == [int(v) for v in bbox]
        rows.append((pid, int(rank), bool(matches and diff <= tolerance and opaque.any()), diff,
                     int(opaque.sum()), matches))
    return pd.DataFrame(rows, columns=list(FIDELITY_COLUMNS))
