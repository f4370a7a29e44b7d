"""Where ``simulate`` may write: new or empty folders, or with ``overwrite`` its own earlier market and truth;
never a folder it did not write, nor the photos folder it reads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from adcraft.atomic import OUTPUT_MARKER, written_by
from adcraft.cli import app
from adcraft.errors import InputError
from adcraft.simulator import SimulatorConfig, simulate_market

SMALL = SimulatorConfig(n_products=2, n_impressions=60, creatives_per_product=2, titles_per_product=1,
                        photo_size=48)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _foreign(folder: Path) -> Path:
    (folder / "notes").mkdir(parents=True)
    (folder / "notes" / "thesis.txt").write_text("not a market")
    return folder


def test_overwrite_replaces_an_earlier_simulated_market_and_its_truth(tmp_path):
    first = simulate_market(SMALL, tmp_path / "m")
    assert written_by(first.market_dir, "simulate") and written_by(first.truth_dir, "simulate")
    before = _tree(tmp_path)
    with pytest.raises(InputError, match="pass --overwrite"):
        simulate_market(SimulatorConfig(**{**SMALL.__dict__, "n_impressions": 80}), tmp_path / "m")
    assert _tree(tmp_path) == before

    second = simulate_market(SimulatorConfig(**{**SMALL.__dict__, "n_impressions": 80}), tmp_path / "m",
                             overwrite=True)
    assert len(pd.read_parquet(second.market_dir / "impressions.parquet")) == 80
    assert written_by(second.market_dir, "simulate") and written_by(second.truth_dir, "simulate")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "m-truth"]  # no staging or old folder left


@pytest.mark.parametrize("foreign", ["market", "truth"])
def test_overwrite_never_replaces_a_folder_simulate_did_not_write(tmp_path, foreign):
    market, truth = tmp_path / "m", tmp_path / "t"
    _foreign(market if foreign == "market" else truth)
    before = _tree(tmp_path)
    with pytest.raises(InputError, match="not an earlier output of `adcraft simulate`.*left untouched"):
        simulate_market(SMALL, market, truth, overwrite=True)
    assert _tree(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m" if foreign == "market" else "t"]


def test_a_marker_of_another_command_does_not_count(tmp_path):
    out = _foreign(tmp_path / "m")
    (out / OUTPUT_MARKER).write_text('{"command": "optimize"}\n')
    with pytest.raises(InputError, match="not an earlier output"):
        simulate_market(SMALL, out, overwrite=True)
    assert (out / "notes" / "thesis.txt").read_text() == "not a market"


def test_an_empty_folder_and_a_truth_folder_in_a_new_place_are_used_without_overwrite(tmp_path):
    (tmp_path / "m").mkdir()
    result = simulate_market(SMALL, tmp_path / "m", tmp_path / "new" / "place" / "truth")
    assert (result.market_dir / "market.json").is_file() and (result.truth_dir / "click_model.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "new"]


@pytest.mark.parametrize("where", ["home/photos", "home/photos/market", "home"])
@pytest.mark.parametrize("which", ["market", "truth"])
def test_no_output_is_holds_or_lies_inside_the_photos_folder(tmp_path, where, which):
    photos = tmp_path / "home" / "photos"
    photos.mkdir(parents=True)
    for i, colour in enumerate(("red", "blue")):
        Image.new("RGBA", (40, 40), colour).save(photos / f"p{i}.png")
    for folder in (photos, photos.parent):  # as if simulate had written them: only the photos rule is left
        (folder / OUTPUT_MARKER).write_text('{"command": "simulate"}\n')
    before = _tree(tmp_path)
    target = tmp_path / where
    market, truth = (target, tmp_path / "t") if which == "market" else (tmp_path / "m", target)
    config = SimulatorConfig(**{**SMALL.__dict__, "photos": photos})
    with pytest.raises(InputError, match="input folder .*photos"):
        simulate_market(config, market, truth, overwrite=True)
    assert _tree(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_the_command_refuses_a_foreign_folder_with_exit_2_and_one_line(tmp_path):
    out = _foreign(tmp_path / "m")
    result = CliRunner().invoke(app, ["simulate", "--out", str(out), "--products", "2", "--impressions", "60",
                                      "--creatives-per-product", "2", "--overwrite"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0 and result.output.startswith("error:")
    assert _tree(out) == {"notes/thesis.txt": b"not a market"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
