from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from adcraft.evaluate.fidelity import product_fidelity
from adcraft.market import load_market
from adcraft.render.compositor import Placement
from adcraft.render.from_market import MarketRenderer


def rendered(market, folder) -> pd.DataFrame:
    renderer, rows = MarketRenderer(market), []
    for k, (pid, combo) in enumerate(zip(market.creatives["product_id"][:3], market.creatives["elements"][:3])):
        creative = renderer.render(pid, list(combo))
        creative.image.save(folder / f"{k}.png")
        rows.append((pid, 1, list(combo), f"{k}.png", list(creative.product_bbox)))
    return pd.DataFrame(rows, columns=["product_id", "rank", "elements", "image", "product_bbox"])


def test_untouched_renders_pass_and_a_retouched_product_fails(tiny_market_dir, tmp_path):
    market = load_market(tiny_market_dir)
    proposals = rendered(market, tmp_path)
    assert product_fidelity(market, proposals, tmp_path)["passed"].all()
    # brighten a patch in the middle of the first product
    x0, y0, x1, y1 = proposals["product_bbox"][0]
    with Image.open(tmp_path / "0.png") as opened:
        pixels = np.asarray(opened.convert("RGB")).copy()
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    pixels[cy - 3:cy + 3, cx - 3:cx + 3] = 255 - pixels[cy - 3:cy + 3, cx - 3:cx + 3]
    Image.fromarray(pixels).save(tmp_path / "0.png")
    checked = product_fidelity(market, proposals, tmp_path)
    assert checked["passed"].tolist() == [False, True, True]
    assert checked["max_abs_diff"][0] > 2


def test_a_wrong_bounding_box_fails(tiny_market_dir, tmp_path):
    market = load_market(tiny_market_dir)
    proposals = rendered(market, tmp_path)
    proposals.at[1, "product_bbox"] = [0, 0, 10, 10]
    checked = product_fidelity(market, proposals, tmp_path)
    assert checked["passed"].tolist() == [True, False, True] and not checked["bbox_matches"][1]


def test_a_placed_photo_passes_where_the_row_records_its_placement_and_fails_where_it_does_not(tiny_market_dir,
                                                                                              tmp_path):
    market = load_market(tiny_market_dir)
    renderer, rows = MarketRenderer(market), []
    placement = Placement(0.6, 0.0, 1.0)
    for k, (pid, combo) in enumerate(zip(market.creatives["product_id"][:2], market.creatives["elements"][:2])):
        creative = renderer.render(pid, list(combo), placement)
        creative.image.save(tmp_path / f"{k}.png")
        rows.append((pid, 1, list(combo), f"{k}.png", list(creative.product_bbox)))
    proposals = pd.DataFrame(rows, columns=["product_id", "rank", "elements", "image", "product_bbox"])
    assert not product_fidelity(market, proposals, tmp_path)["passed"].any()  # checked as if drawn by default
    placed = proposals.assign(**{k: [v, v] for k, v in placement.as_columns().items()})
    assert product_fidelity(market, placed, tmp_path)["passed"].all()
