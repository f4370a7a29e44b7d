from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from adcraft.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def cli_market(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "market"
    result = runner.invoke(
        app, ["simulate", "--out", str(out), "--seed", "5", "--products", "3", "--impressions", "400",
              "--creatives-per-product", "2"],
    )
    assert result.exit_code == 0, result.output
    return out


def test_every_verb_has_help():
    for verb in ("env", "validate", "simulate", "render", "demo"):
        result = runner.invoke(app, [verb, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, verb


def test_env_prints_versions():
    result = runner.invoke(app, ["env"])
    assert result.exit_code == 0
    assert "adcraft 0.1.0" in result.output and "torch 2.13.0" in result.output


def test_validate_good_market_exits_zero(cli_market):
    result = runner.invoke(app, ["validate", str(cli_market)])
    assert result.exit_code == 0, result.output
    assert "valid market" in result.output


def test_validate_bad_market_exits_two_naming_file_row_column(cli_market, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(cli_market, bad)
    stats = pd.read_parquet(bad / "creative_stats.parquet")
    stats.loc[1, "clicks"] = stats.loc[1, "impressions"] + 1
    stats.to_parquet(bad / "creative_stats.parquet", index=False)
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "creative_stats" in result.output and "clicks" in result.output


def test_render_writes_a_canvas_sized_png(cli_market, tmp_path):
    creatives = pd.read_parquet(cli_market / "creatives.parquet")
    row = creatives.iloc[0]
    target = tmp_path / "x.png"
    result = runner.invoke(
        app, ["render", "--market", str(cli_market), "--product", row["product_id"],
              "--elements", ",".join(row["elements"]), "--out", str(target)],
    )
    assert result.exit_code == 0, result.output
    with Image.open(target) as im:
        assert im.size == (512, 512)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda ids: ids[:-1],                       # too few elements
        lambda ids: ["nope"] + ids[1:],             # unknown element
        lambda ids: [ids[1], ids[0]] + ids[2:],     # wrong slot order
    ],
)
def test_render_refuses_bad_combinations_and_writes_nothing(cli_market, tmp_path, mutate):
    row = pd.read_parquet(cli_market / "creatives.parquet").iloc[0]
    target = tmp_path / "x.png"
    result = runner.invoke(
        app, ["render", "--market", str(cli_market), "--product", row["product_id"],
              "--elements", ",".join(mutate(list(row["elements"]))), "--out", str(target)],
    )
    assert result.exit_code == 2, result.output
    assert "error" in result.output
    assert not target.exists()


def test_simulate_refuses_bad_settings(tmp_path):
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "m"), "--products", "1"])
    assert result.exit_code == 2
    assert not (tmp_path / "m").exists()
