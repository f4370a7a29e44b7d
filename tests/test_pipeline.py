from __future__ import annotations

import re

import pytest

from adcraft.pipeline import DemoConfig, run_demo


@pytest.mark.slow
def test_demo_writes_a_page_whose_images_exist(tmp_path):
    result = run_demo(DemoConfig(out=tmp_path / "out", n_products=8, n_impressions=3000, sample=3))
    html = result.page.read_text()
    images = re.findall(r"src='([^']+)'", html)
    assert len(images) == 3 * (8 + 3)  # 8 past creatives per product (default) + 3 new, for 3 products
    for rel in images:
        assert (result.page.parent / rel).is_file(), rel
    # rerunning into the same folder works (make demo twice)
    again = run_demo(DemoConfig(out=tmp_path / "out", n_products=8, n_impressions=3000, sample=3))
    assert again.page == result.page
