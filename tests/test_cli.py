from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import typer
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
    verbs = ("env", "validate", "simulate", "render", "demo", "train", "score", "ope", "abtest", "optimize",
             "rank-images", "edit", "generate", "features", "serve", "export")
    for verb in verbs:
        result = runner.invoke(app, [verb, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, verb
    result = runner.invoke(app, ["generate", "backgrounds", "--help"])
    assert result.exit_code == 0 and "elements.parquet" in result.output


def test_optimize_refuses_a_broken_market_with_exit_2_and_writes_nothing(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "market.json").write_text('{"format": "adcraft-market/1", "slots": ["title"]}')
    result = runner.invoke(app, ["optimize", "--market", str(broken), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "out").exists()


def test_optimize_runs_from_the_command_line_with_a_yaml_config(cli_market, tmp_path):
    config = tmp_path / "fast.yaml"
    config.write_text(
        "top_k: 2\nn_bootstrap: 20\n"
        "reward: {encoding: {text_backbone: tiny}, train: {epochs: 2}}\n"
        "combo: {policy: {encoding: {text_backbone: tiny}}, bc: {epochs: 3}, rl: {steps: 3}}\n"
    )
    result = runner.invoke(app, ["optimize", "--market", str(cli_market), "--out", str(tmp_path / "out"),
                                 "--config", str(config), "--top-k", "1"])
    assert result.exit_code == 0, result.output
    assert "report:" in result.output and (tmp_path / "out" / "report.html").is_file()
    import pandas as pd

    assert (pd.read_parquet(tmp_path / "out" / "creatives.parquet")["rank"] == 1).all()


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


def test_render_places_the_photo_as_asked_and_refuses_a_placement_out_of_range_or_for_many(cli_market, tmp_path):
    row = pd.read_parquet(cli_market / "creatives.parquet").iloc[0]
    base = ["render", "--market", str(cli_market), "--product", row["product_id"],
            "--elements", ",".join(row["elements"])]
    boxes = []
    for name, extra in (("default", []), ("small", ["--photo-scale", "0.5", "--photo-y", "1"])):
        result = runner.invoke(app, [*base, "--out", str(tmp_path / f"{name}.png"), *extra])
        assert result.exit_code == 0, result.output
        boxes.append([int(v) for v in re.search(r"product bbox \[(.*?)\]", result.output).group(1).split(", ")])
    (x0, y0, x1, y1), (u0, v0, u1, v1) = boxes
    assert abs((u1 - u0) - 0.5 * (x1 - x0)) <= 1 and v1 >= y1  # half as wide, down to the box's bottom
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "bad.png"), "--photo-scale", "2"])
    assert result.exit_code == 2 and "scale" in result.output and not (tmp_path / "bad.png").exists()
    many = ["render", "--market", str(cli_market), "--out", str(tmp_path / "many"), "--photo-scale", "0.7"]
    result = runner.invoke(app, many)  # one placement for a whole table would be silently ambiguous: refused
    assert result.exit_code == 2 and "product_scale" in result.output and not (tmp_path / "many").exists()


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


@pytest.fixture(scope="module")
def logged_cli_market(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli-logs") / "market"
    result = runner.invoke(
        app, ["simulate", "--out", str(out), "--seed", "2", "--products", "6", "--impressions", "6000",
              "--creatives-per-product", "3"],
    )
    assert result.exit_code == 0, result.output
    return out


def test_train_ctr_then_score_writes_the_spec_tables(logged_cli_market, tmp_path, monkeypatch):
    monkeypatch.setenv("ADCRAFT_CACHE_DIR", str(tmp_path / "cache"))
    config = tmp_path / "ctr.yaml"
    config.write_text("encoding: {text_backbone: tiny, image_backbone: none}\ntrain: {epochs: 3}\n")
    model = tmp_path / "model"
    result = runner.invoke(
        app, ["train", "ctr", "--market", str(logged_cli_market), "--out", str(model), "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((model / "metrics.json").read_text())
    assert 0.0 <= metrics["validation"]["auc"] <= 1.0 and metrics["kind"] == "ctr"
    assert (model / "model.safetensors").is_file() and (model / "config.json").is_file()
    result = runner.invoke(app, ["score", "--model", str(model), "--market", str(logged_cli_market),
                                 "--out", str(tmp_path / "scores")])
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(tmp_path / "scores" / "scores.parquet")
    creatives = pd.read_parquet(logged_cli_market / "creatives.parquet")
    assert list(scores.columns) == ["creative_id", "predicted_ctr"]
    assert sorted(scores["creative_id"]) == sorted(creatives["creative_id"])


def test_train_utility_reports_peaks(logged_cli_market, tmp_path):
    config = tmp_path / "u.yaml"
    config.write_text("target: logit_ctr\nattributes: [brightness, colourfulness]\nmin_rows: 10\n")
    model = tmp_path / "utility"
    result = runner.invoke(
        app, ["train", "utility", "--market", str(logged_cli_market), "--out", str(model), "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((model / "metrics.json").read_text())
    assert set(metrics["attributes"]) == {"brightness", "colourfulness"}
    assert "peak" in metrics["attributes"]["brightness"]
    result = runner.invoke(app, ["score", "--model", str(model), "--market", str(logged_cli_market),
                                 "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "does not predict CTR" in result.output
    assert not (tmp_path / "s").exists()
    result = runner.invoke(app, ["ope", "--market", str(logged_cli_market), "--proposals", str(tmp_path),
                                 "--estimator", "dm", "--model", str(model)])
    assert result.exit_code == 2 and "does not predict CTR" in result.output
    assert "use a ctr, pairwise, mil model" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "ctr", "--config", "{config}"], "unknown setting"),
        (["train", "ctr", "--market", "{empty}"], "market"),
        (["score", "--model", "{empty}"], "config.json"),
    ],
)
def test_train_and_score_refuse_bad_input(logged_cli_market, tmp_path, args, message):
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("epoch: 3\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    full = {"--market": str(logged_cli_market), "--out": str(tmp_path / "o"), "--model": str(tmp_path / "nomodel")}
    argv = [a.format(config=bad_config, empty=empty) for a in args]
    for flag, value in full.items():
        if flag not in argv and (flag != "--model" or argv[0] == "score"):
            argv += [flag, value]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("kind", ["mil", "pairwise"])
def test_train_and_score_other_click_models(logged_cli_market, tmp_path, kind):
    config = tmp_path / f"{kind}.yaml"
    text = "encoding: {text_backbone: tiny, image_backbone: none}\ntrain: {epochs: 2}\n"
    if kind == "pairwise":
        text += "pairs: {min_impressions: 5, max_ratio: null, min_ratio: 1.0}\n"
    config.write_text(text)
    model = tmp_path / kind
    result = runner.invoke(
        app, ["train", kind, "--market", str(logged_cli_market), "--out", str(model), "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((model / "metrics.json").read_text())["kind"] == kind
    result = runner.invoke(app, ["score", "--model", str(model), "--market", str(logged_cli_market),
                                 "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(tmp_path / "s" / "scores.parquet")) == len(
        pd.read_parquet(logged_cli_market / "creatives.parquet")
    )
    proposals = tmp_path / "run"
    write_first_creatives(logged_cli_market, proposals)
    result = runner.invoke(app, ["ope", "--market", str(logged_cli_market), "--proposals", str(proposals),
                                 "--estimator", "dm", "--model", str(model), "--bootstrap", "20"])
    assert result.exit_code == 0, result.output  # every kind that scores combinations serves the direct method
    assert json.loads((proposals / "ope.json").read_text())["proposals"]["estimator"] == "dm"


def write_first_creatives(market: Path, out: Path) -> None:
    """A proposal set of each product's first logged creative."""
    from adcraft.market import write_proposals

    creatives = pd.read_parquet(market / "creatives.parquet")
    first = creatives.groupby("product_id").head(1)
    write_proposals(out, pd.DataFrame(
        {
            "product_id": first["product_id"], "rank": 1, "elements": first["elements"].map(list),
            "image": first["image"], "product_bbox": [[0, 0, 10, 10]] * len(first), "predicted_ctr": 0.02,
        }
    ))


def test_ope_estimates_a_proposal_set_and_refuses_logs_without_propensities(logged_cli_market, tmp_path):
    from adcraft.market import write_proposals

    creatives = pd.read_parquet(logged_cli_market / "creatives.parquet")
    first = creatives.groupby("product_id").head(1)
    proposals = pd.DataFrame(
        {
            "product_id": first["product_id"], "rank": 1, "elements": first["elements"].map(list),
            "image": first["image"], "product_bbox": [[0, 0, 10, 10]] * len(first), "predicted_ctr": 0.02,
        }
    )
    out = tmp_path / "run"
    write_proposals(out, proposals)
    result = runner.invoke(app, ["ope", "--market", str(logged_cli_market), "--proposals", str(out),
                                 "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "ope.json").read_text())
    assert report["proposals"]["ci_low"] <= report["proposals"]["value"] <= report["proposals"]["ci_high"]
    assert report["matched_impressions"] > 0

    bare = tmp_path / "bare"
    shutil.copytree(logged_cli_market, bare)
    impressions = pd.read_parquet(bare / "impressions.parquet").drop(columns=["propensity"])
    impressions.to_parquet(bare / "impressions.parquet", index=False)
    (out / "ope.json").unlink()
    result = runner.invoke(app, ["ope", "--market", str(bare), "--proposals", str(out)])
    assert result.exit_code == 2 and "propensit" in result.output
    assert not (out / "ope.json").exists()


def test_abtest_runs_a_proposal_set_against_the_logging_policy(logged_cli_market, tmp_path):
    from adcraft.market import write_proposals

    creatives = pd.read_parquet(logged_cli_market / "creatives.parquet")
    last = creatives.groupby("product_id").tail(1)
    proposals = pd.DataFrame(
        {
            "product_id": last["product_id"], "rank": 1, "elements": last["elements"].map(list),
            "image": "missing.png", "product_bbox": [[0, 0, 10, 10]] * len(last), "predicted_ctr": 0.02,
        }
    )
    out = tmp_path / "run"
    write_proposals(out, proposals)
    result = runner.invoke(app, ["abtest", "--market", str(logged_cli_market), "--proposals", str(out),
                                 "--impressions", "20000"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "abtest.json").read_text())
    assert report["impressions_per_arm"] == 20000
    assert report["diff_ci_low"] <= report["absolute_diff"] <= report["diff_ci_high"]
    result = runner.invoke(app, ["abtest", "--market", str(logged_cli_market), "--proposals", str(out),
                                 "--truth", str(tmp_path)])
    assert result.exit_code == 2 and "truth" in result.output


def test_render_refuses_a_diffusion_config_without_weights(tiny_market_dir, tmp_path):
    config = tmp_path / "render.yaml"
    config.write_text(f"backend: diffusion\ndiffusion:\n  weights_dir: {tmp_path / 'missing'}\n")
    result = runner.invoke(app, ["render", "--market", str(tiny_market_dir), "--out", str(tmp_path / "x.png"),
                                 "--product", "p", "--elements", "a", "--config", str(config)])
    assert result.exit_code == 2 and "missing" in result.output
    assert not (tmp_path / "x.png").exists()


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "args",
    [
        ["optimize", "--market", "{market}", "--out", "{market}"],
        ["optimize", "--market", "{market}", "--out", "{home}"],
        ["optimize", "--market", "{market}", "--out", "{photos}"],
        ["train", "ctr", "--market", "{market}", "--out", "{market}"],
        ["train", "ctr", "--market", "{market}", "--out", "{photos}"],
        ["render", "--market", "{market}", "--out", "{home}"],
        ["render", "--market", "{market}", "--out", "{photos}"],
        ["features", "--market", "{market}", "--out", "{market}/features"],
        ["generate", "backgrounds", "--market", "{market}", "--out", "{market}"],
        ["simulate", "--out", "{home}/sim", "--truth", "{home}/sim/truth"],
        ["render", "--market", "{market}", "--product", "{product}", "--elements", "{elements}",
         "--out", "{image}"],
        ["train", "ctr", "--market", "{market}", "--out", "{home}/model", "--fresh"],  # .model.partial is not ours
        ["optimize", "--market", "{market}", "--out", "{home}/model", "--fresh"],
    ],
)
def test_commands_refuse_to_write_over_what_adcraft_did_not_write(cli_market, tmp_path, args):
    home = tmp_path / "home"
    shutil.copytree(cli_market, home / "market")
    (home / "photos").mkdir()
    (home / "photos" / "holiday.jpg").write_bytes(b"\xff\xd8 keep")
    (home / ".model.partial").mkdir()
    (home / ".model.partial" / "draft.txt").write_text("mine")
    before = _tree(home)
    row = pd.read_parquet(cli_market / "creatives.parquet").iloc[0]
    image = home / "market" / row["image"]  # rendering over the market's own image would change the market
    argv = [a.format(market=home / "market", home=home, photos=home / "photos", product=row["product_id"],
                     elements=",".join(row["elements"]), image=image) for a in args]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0 and "error:" in result.output  # one line, no traceback
    assert _tree(home) == before
    assert sorted(p.name for p in home.iterdir()) == [".model.partial", "market", "photos"]


@pytest.mark.parametrize("command", [["optimize"], ["train", "mil"], ["train", "ctr"]])
@pytest.mark.parametrize(
    "text",
    [
        "top_k: 2\ntop_k: 3\n",
        "big: &big [1, 2]\nseed: *big\n",
        "combo: {threads: 1000000}\n",
        "train: {seed: 1180591620717411303424}\n",
        "encoding: {embedding_dim: 100000000}\n",
        b"estimator: 'd\xe9'\n",
    ],
)
def test_every_bad_config_exits_2_with_one_line_and_writes_nothing(cli_market, tmp_path, command, text):
    config = tmp_path / "cfg.yaml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = runner.invoke(app, [*command, "--market", str(cli_market), "--out", str(tmp_path / "out"),
                                 "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0 and "error:" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml"]  # no out, no .out.partial


FAST_OPTIMIZE = ("top_k: 1\nn_bootstrap: 20\nreward: {encoding: {text_backbone: tiny}, train: {epochs: 2}}\n"
                 "combo: {policy: {encoding: {text_backbone: tiny}}, bc: {epochs: 2}, rl: {steps: 2}}\n")


@pytest.mark.parametrize("code, status", [(errno.ENOSPC, 1), (errno.EACCES, 2), (errno.EROFS, 2)])
def test_a_disk_or_permission_error_while_writing_is_one_line(cli_market, tmp_path, monkeypatch, code, status):
    import adcraft.atomic

    def refuse(path, data):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(adcraft.atomic, "write_bytes", refuse)
    row = pd.read_parquet(cli_market / "creatives.parquet").iloc[0]
    result = runner.invoke(app, ["render", "--market", str(cli_market), "--product", row["product_id"],
                                 "--elements", ",".join(row["elements"]), "--out", str(tmp_path / "x.png")])
    assert result.exit_code == status, result.output
    assert result.output.strip().count("\n") == 0 and "x.png" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow  # a whole (tiny) optimize run
def test_optimize_that_cannot_move_its_output_into_place_says_so_and_leaves_nothing(cli_market, tmp_path,
                                                                                      monkeypatch):
    import adcraft.pipeline.optimize

    def full_disk(staging, out):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out))

    monkeypatch.setattr(adcraft.pipeline.optimize, "move_into_place", full_disk)
    config = tmp_path / "fast.yaml"
    config.write_text(FAST_OPTIMIZE)
    result = runner.invoke(app, ["optimize", "--market", str(cli_market), "--out", str(tmp_path / "out"),
                                 "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "no space left" in result.output.splitlines()[-1] and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fast.yaml"]


def test_a_programming_error_keeps_its_traceback(cli_market, tmp_path, monkeypatch):
    import adcraft.atomic

    def broken(path, data):
        raise OSError("no errno: a fault in adcraft, not the user's disk")

    monkeypatch.setattr(adcraft.atomic, "write_bytes", broken)
    row = pd.read_parquet(cli_market / "creatives.parquet").iloc[0]
    result = runner.invoke(app, ["render", "--market", str(cli_market), "--product", row["product_id"],
                                 "--elements", ",".join(row["elements"]), "--out", str(tmp_path / "x.png")])
    assert isinstance(result.exception, OSError) and result.exit_code == 1


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_parent_is_one_line_and_exit_2(cli_market, tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("this file system ignores the read-only mode")
        row = pd.read_parquet(cli_market / "creatives.parquet").iloc[0]
        result = runner.invoke(app, ["render", "--market", str(cli_market), "--product", row["product_id"],
                                     "--elements", ",".join(row["elements"]), "--out", str(parent / "x.png")])
    finally:
        parent.chmod(0o755)
    assert result.exit_code == 2, result.output
    assert "permission denied" in result.output and result.output.strip().count("\n") == 0
    assert list(parent.iterdir()) == []


def test_error_lines_and_messages_print_user_data_verbatim(capsys):
    # Rich would turn ':thumbs_up:' into an emoji and read '[red]x[/red]' as markup.
    from adcraft.cli import out, reports_errors
    from adcraft.errors import InputError

    quoted = "element ':thumbs_up:' in row '[red]x[/red]' of [bold]elements.parquet"

    @reports_errors
    def refuse() -> None:
        raise InputError(f"unknown {quoted}")

    with pytest.raises(typer.Exit) as stopped:
        refuse()
    assert stopped.value.exit_code == 2
    assert capsys.readouterr().err == f"error: unknown {quoted}\n"
    out.print(f"wrote {quoted}")
    assert capsys.readouterr().out == f"wrote {quoted}\n"


def test_serve_takes_the_serving_policy_from_a_file_and_refuses_a_bad_one(tmp_path, monkeypatch):
    import adcraft.serve.app

    started = []
    monkeypatch.setattr(adcraft.serve.app, "run_server", started.append)
    monkeypatch.setenv("ADCRAFT_API_TOKEN", "a-token-for-the-test")
    command = ["serve", "--run", str(tmp_path), "--market", str(tmp_path), "--policy", str(tmp_path / "policy.yaml")]
    (tmp_path / "policy.yaml").write_text("epsilon: 0.2\ncarry_over: true\n")
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert (started[0].policy.epsilon, started[0].policy.carry_over) == (0.2, True)
    for bad in ("epsilon: 0\n", "carry_ovr: true\n"):  # no floor; a key the policy does not have
        (tmp_path / "policy.yaml").write_text(bad)
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and "error" in result.output, result.output
    assert len(started) == 1
