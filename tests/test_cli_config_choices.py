"""A typo in any choice of an ``optimize`` or ``train`` config file: exit 2 before the market is read,
one line that names the setting and lists its valid values, and no output folder."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

import pytest
import yaml
from typer.testing import CliRunner

from adcraft.cli import app
from adcraft.pipeline.optimize import OptimizeConfig
from adcraft.rewards.contrastive import ContrastiveConfig
from adcraft.rewards.ctr import CTRConfig
from adcraft.rewards.mil import MILConfig
from adcraft.rewards.pairwise import PairwiseConfig
from adcraft.rewards.utility import UtilityConfig

runner = CliRunner()

TRAIN_CONFIGS = {"ctr": CTRConfig, "pairwise": PairwiseConfig, "mil": MILConfig, "utility": UtilityConfig,
                 "contrastive": ContrastiveConfig}


def choice_settings(cls: type, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], tuple[Any, ...]]]:
    """(setting path, choices) of every ``Literal`` field of ``cls`` and of the configs nested in it."""
    found = []
    for name, kind in typing.get_type_hints(cls).items():
        members = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)
        for member in members:
            if typing.get_origin(member) is Literal:
                found.append(((*path, name), typing.get_args(member)))
            elif dataclasses.is_dataclass(member):
                found += choice_settings(member, (*path, name))
    return found


def typo_of(choices: tuple[Any, ...]) -> str:
    word = str(choices[0])
    return next(t for t in (word[:-1], word + "x") if t not in choices)


CASES = [pytest.param(["optimize"], path, choices, id="optimize:" + ".".join(path))
         for path, choices in choice_settings(OptimizeConfig)]
CASES += [pytest.param(["train", kind], path, choices, id=f"train-{kind}:" + ".".join(path))
          for kind, cls in TRAIN_CONFIGS.items() for path, choices in choice_settings(cls)]


def test_the_cases_reach_the_nested_choices():
    ids = {case.id for case in CASES}
    assert {"optimize:estimator", "optimize:policy", "optimize:reward.pooling", "optimize:render.backend",
            "optimize:render.diffusion.dtype", "optimize:combo.policy.encoding.text_backbone",
            "optimize:backgrounds.generator.preference.method",
            "optimize:backgrounds.generator.reward.pairs.min_impressions",
            "train-pairwise:point_target", "train-contrastive:image.backbone", "train-contrastive:utility",
            "train-utility:controls", "train-mil:encoding.image_runtime"} <= ids


@pytest.fixture
def market_never_read(monkeypatch):
    """Reading the market is the first work of both jobs; a refused config must come before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("the market was read before the config was checked")

    monkeypatch.setattr("adcraft.pipeline.optimize.load_market", refuse)
    monkeypatch.setattr("adcraft.pipeline.reward_jobs.load_market", refuse)


@pytest.mark.parametrize("command, path, choices", CASES)
def test_a_typo_in_any_choice_exits_2_listing_the_valid_values(tiny_market_dir, tmp_path, market_never_read,
                                                               command, path, choices):
    typo: Any = typo_of(choices)
    for key in reversed(path):
        typo = {key: typo}
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(typo))
    result = runner.invoke(app, [*command, "--market", str(tiny_market_dir), "--out", str(tmp_path / "out"),
                                 "--config", str(config)])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and line.startswith("error:"), line
    assert f"{config}: {'.'.join(path)}: " in line, line  # the setting named in full
    assert all(repr(choice) in line for choice in choices), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml"]  # no out, no .out.partial


def test_estimator_drr_is_refused_before_any_work(tiny_market_dir, tmp_path, market_never_read):
    config = tmp_path / "cfg.yaml"
    config.write_text("estimator: drr\n")
    result = runner.invoke(app, ["optimize", "--market", str(tiny_market_dir), "--out", str(tmp_path / "out"),
                                 "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (f"error: {config}: estimator: 'drr' (text) is not one of 'ips', 'snips', "
                                     "'dr', 'switch-dr', 'dm'")
    assert not (tmp_path / "out").exists()


def test_the_markets_reader_is_what_the_jobs_call_first(tiny_market_dir, tmp_path, market_never_read):
    """The guard of the tests above bites: with a valid config, the jobs reach the market and stop there."""
    for command in (["optimize"], ["train", "ctr"]):
        result = runner.invoke(app, [*command, "--market", str(tiny_market_dir), "--out", str(tmp_path / "out")])
        assert isinstance(result.exception, AssertionError), result.output
        assert "market was read" in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_a_typo_is_refused_even_where_no_market_exists(tmp_path):
    config = tmp_path / "cfg.yaml"
    config.write_text("encoding:\n  text_backbone: minil\n")
    result = runner.invoke(app, ["train", "mil", "--market", str(tmp_path / "none"), "--out", str(tmp_path / "o"),
                                 "--config", str(config)])
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: {config}: encoding.text_backbone: 'minil' (text) is not one of "
                                     "'minilm', 'tiny', 'none'")
