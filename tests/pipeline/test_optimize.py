from __future__ import annotations

import dataclasses
import json
import re

import pandas as pd
import pytest
from PIL import Image

from adcraft.errors import InputError
from adcraft.evaluate.evidence import EvidenceConfig
from adcraft.market import load_market, write_market
from adcraft.market.market import MarketConfig
from adcraft.market.outputs import read_proposals
from adcraft.pipeline.optimize import OptimizeConfig, RunRecord, optimize
from adcraft.pipeline.run_record import FidelityCheck
from adcraft.rewards.mil import MILTrainer
from adcraft.simulator import SimulatorConfig, simulate_market

FAST = OptimizeConfig.smoke()


@pytest.fixture(scope="module")
def market_dir(tmp_path_factory):
    config = SimulatorConfig(seed=21, n_products=6, n_impressions=8000, creatives_per_product=4,
                             canvas=(192, 192), photo_size=128)
    return simulate_market(config, tmp_path_factory.mktemp("opt") / "market").market_dir


@pytest.fixture(scope="module")
def run(market_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    return optimize(market_dir, out, FAST), out


def test_do_no_harm_marks_rank_one_kept_exactly_where_the_evidence_says_keep(run, market_dir):
    result, out = run
    creatives = pd.read_parquet(out / "creatives.parquet")
    products = pd.read_parquet(out / "products.parquet").set_index("product_id")
    first = creatives[creatives["rank"] == 1].set_index("product_id")
    assert first["kept"].tolist() == products.loc[first.index, "keep_current"].tolist()
    assert not creatives.loc[creatives["rank"] > 1, "kept"].any()
    market = load_market(market_dir)
    outcomes = market.impressions.merge(market.creatives, on="creative_id").groupby(
        ["product_id", "creative_id"])["click"].agg(clicks="sum", n="size").reset_index()
    pooled = outcomes.groupby("product_id")[["clicks", "n"]].transform("sum")
    m = FAST.prior_impressions
    outcomes["shrunk"] = (outcomes["clicks"] + m * pooled["clicks"] / pooled["n"]) / (outcomes["n"] + m)
    best = outcomes.sort_values(["product_id", "shrunk", "creative_id"], ascending=[True, False, True])
    best = best.drop_duplicates("product_id").set_index("product_id")["creative_id"]
    elements = market.creatives.set_index("creative_id")["elements"]
    assert first["kept"].any()  # the smoke market keeps some products
    for pid in first.index[first["kept"]]:  # the kept row shows the product's best logged creative (shrunk CTR)
        assert list(first.loc[pid, "elements"]) == list(elements[best[pid]])
    run_json = json.loads((out / "run.json").read_text())
    if first["kept"].all():  # nothing launched: no lift, exactly
        assert run_json["evidence"]["lift"]["estimate"] == 0.0
    assert "proposals_lift" in run_json["evidence"]
    report = (out / "report.html").read_text()
    assert ("kept: nothing is launched" in report) == bool(first["kept"].any())



def test_the_current_creative_and_the_proposals_are_predicted_by_the_same_judge(market_dir, tmp_path):
    # The additive judge, not the multi-instance reward model, chooses here: the current creative's predicted CTR
    # (the base of every "predicted lift vs now") must be that judge's too.
    out = tmp_path / "out"
    optimize(market_dir, out, OptimizeConfig.smoke(judge="additive"))
    creatives = pd.read_parquet(out / "creatives.parquet")
    current = pd.read_parquet(out / "products.parquet").set_index("product_id")
    kept = creatives[(creatives["rank"] == 1) & creatives["kept"]].set_index("product_id")
    assert len(kept)  # a kept rank 1 shows the current creative, predicted by the judge
    for pid, row in kept.iterrows():
        assert list(row["elements"]) == list(current.loc[pid, "current_elements"])
        assert row["predicted_ctr"] == pytest.approx(current.loc[pid, "current_predicted_ctr"], rel=1e-6)

def test_outputs_follow_the_contract(run, market_dir):
    result, out = run
    market = load_market(market_dir)
    proposals = read_proposals(out)
    assert sorted(proposals["product_id"].unique()) == sorted(market.products["product_id"])
    for pid, group in proposals.groupby("product_id"):
        assert sorted(group["rank"]) == list(range(1, len(group) + 1)) and len(group) <= FAST.top_k
        assert len({tuple(e) for e in group["elements"]}) == len(group)  # distinct proposals
        for combo in group["elements"]:
            for slot, element in zip(market.config.slots, combo):
                assert element in set(market.usable_elements(pid, slot)["element_id"])
    for image, box in zip(proposals["image"], proposals["product_bbox"]):
        with Image.open(out / image) as im:
            assert im.size == tuple(market.config.canvas)
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= im.size[0] and 0 <= y0 < y1 <= im.size[1]
    assert proposals["predicted_ctr"].between(0, 1).all()


def test_run_json_and_report_tell_what_was_done(run):
    result, out = run
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["top_k"] == FAST.top_k and meta["seeds"]["combo"] == FAST.combo.seed
    assert {"torch", "numpy", "adcraft", "python"} <= set(meta["versions"])
    assert meta["timings"]["total"] >= meta["timings"]["reward model (multi-instance)"] > 0
    assert meta["ope"]["possible"] is True and meta["ope"]["impressions"] > 0
    page = (out / "report.html").read_text()
    images = re.findall(r"src='([^']+)'", page)
    # proposals + best logged + the backtest plot
    assert len(images) == len(result.proposals) + result.record.counts.products + 1
    assert all((out / rel).is_file() for rel in images)
    assert "estimated lift" in page and "<svg" in page
    assert "combination policy training" in page  # the RL curve table
    assert not list(out.parent.glob(".*partial*"))  # staging folder moved into place


def test_run_json_report_and_products_lead_with_the_cross_fitted_evidence(run, market_dir):
    result, out = run
    evidence = json.loads((out / "run.json").read_text())["evidence"]
    assert evidence["possible"] is True
    lift = evidence["lift"]
    assert lift["level"] == 0.9 and lift["low"] <= lift["estimate"] <= lift["high"]
    assert evidence["scheme"]["folds"] == 2 and evidence["scheme"]["seconds"] > 0
    market = load_market(market_dir)
    assert evidence["backtest"]["creatives"] == len(market.creatives)  # every logged creative predicted once
    assert evidence["backtest"]["impressions"] == len(market.impressions)
    assert 0 <= evidence["supported"]["impression_share"] <= 1
    plan = evidence["launch_plan"]
    assert plan["control_share"] == 0.5 and plan["alpha"] == 0.05 and plan["power"] == 0.8
    assert (plan["impressions_per_arm"] is None) == (not lift["low"] > 0)
    every, every_lift = evidence["proposals_launch_plan"], evidence["proposals_lift"]
    assert (every["impressions_per_arm"] is None) == (not every_lift["low"] > 0)
    products = pd.read_parquet(out / "products.parquet")
    assert products["keep_current"].tolist() == (~(products["lift_low"] > 0)).tolist()
    assert evidence["products_to_keep"] == int(products["keep_current"].sum())
    page = (out / "report.html").read_text()
    assert (out / "backtest.png").is_file()
    assert f"fitted calibration line (slope {evidence['backtest']['calibration_slope']:.2f})" in page
    assert page.index("lower bound") < page.index("graded by the judge that chose")
    assert f"{every_lift['estimate']:+.1%} [{every_lift['low']:+.1%}, {every_lift['high']:+.1%}]" in page
    set_test = "a live test of every proposal against what runs now needs"
    assert (set_test in page) == (every["impressions_per_arm"] is not None and evidence["products_to_keep"] == len(
        products))


def test_a_market_without_propensities_gets_evidence_and_do_no_harm_but_no_off_policy_estimate(market_dir, tmp_path):
    market = load_market(market_dir)
    bare = dataclasses.replace(market, impressions=market.impressions.drop(columns=["propensity"]))
    write_market(bare, tmp_path / "bare", check_images=False)
    result = optimize(tmp_path / "bare", tmp_path / "out", FAST)
    assert result.record.ope.possible is False and result.record.ope.value is None
    assert "propensit" in result.record.ope.reason
    run_json = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run_json["ope"] == {"possible": False, "reason": result.record.ope.reason}
    evidence = run_json["evidence"]
    assert evidence["possible"] is True and evidence["supported"]["weighted"] is False
    assert evidence["supported"]["dr"] is None and evidence["scheme"]["uncalibrated_lift"] is None
    creatives = pd.read_parquet(tmp_path / "out" / "creatives.parquet")
    products = pd.read_parquet(tmp_path / "out" / "products.parquet").set_index("product_id")
    first = creatives[creatives["rank"] == 1].set_index("product_id")
    assert first["kept"].tolist() == products.loc[first.index, "keep_current"].tolist()
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Off-policy estimation was not possible" in page and "The logs carry no propensities" in page


def kept_everywhere(out) -> bool:
    """Whether every product's rank 1 is a kept row (nothing launched) and no other row is."""
    creatives = pd.read_parquet(out / "creatives.parquet")
    first = creatives["rank"] == 1
    return bool(creatives.loc[first, "kept"].all()) and not creatives.loc[~first, "kept"].any()


def test_without_evidence_nothing_is_launched_and_the_report_says_why(market_dir, tmp_path, monkeypatch):
    off = optimize(market_dir, tmp_path / "off", OptimizeConfig.smoke(evidence=EvidenceConfig(enabled=False)))
    assert off.record.evidence.possible is False and kept_everywhere(tmp_path / "off")
    assert "evidence is switched off" in (tmp_path / "off" / "report.html").read_text()
    products = pd.read_parquet(tmp_path / "off" / "products.parquet")
    assert products["keep_current"].all()
    assert products["estimated_lift"].isna().all()  # no judge's grade of its own picks stands in for evidence

    def impossible(*args, **kwargs):
        raise InputError("these logs cannot be split")

    monkeypatch.setattr("adcraft.pipeline.optimize.proposal_evidence", impossible)
    failed = optimize(market_dir, tmp_path / "failed", FAST)
    assert failed.record.evidence.possible is False and kept_everywhere(tmp_path / "failed")
    page = (tmp_path / "failed" / "report.html").read_text()
    assert "Cross-fitted evidence was not possible: these logs cannot be split" in page
    assert "no cross-fitted evidence could be computed" in page


def test_a_product_without_logs_has_nothing_to_keep_and_its_proposal_is_marked_untested(market_dir, tmp_path):
    market = load_market(market_dir)
    new = market.products["product_id"].iloc[0]
    logged = set(market.creatives.loc[market.creatives["product_id"] != new, "creative_id"])

    def only(table):
        return None if table is None else table[table["creative_id"].isin(logged)].reset_index(drop=True)

    write_market(dataclasses.replace(market, creatives=only(market.creatives), impressions=only(market.impressions),
                                     creative_stats=only(market.creative_stats)), tmp_path / "new", check_images=False)
    result = optimize(tmp_path / "new", tmp_path / "out", FAST)
    creatives = pd.read_parquet(tmp_path / "out" / "creatives.parquet")
    products = pd.read_parquet(tmp_path / "out" / "products.parquet").set_index("product_id")
    first = creatives[creatives["rank"] == 1].set_index("product_id")
    assert not first.loc[new, "kept"] and not products.loc[new, "keep_current"]
    assert pd.isna(products.loc[new, "current_creative_id"])
    assert first["kept"].tolist() == products.loc[first.index, "keep_current"].tolist()
    assert result.record.evidence.detail["products_to_keep"] == int(first["kept"].sum())
    assert f"No logged creative for 1 of the products ({new})" in (tmp_path / "out" / "report.html").read_text()


def test_a_market_logged_only_as_creative_stats_gets_evidence_and_do_no_harm(market_dir, tmp_path):
    market = load_market(market_dir)
    per = market.impressions.groupby("creative_id")["click"].agg(impressions="size", clicks="sum").reset_index()
    write_market(dataclasses.replace(market, impressions=None, creative_stats=per), tmp_path / "stats",
                 check_images=False)
    result = optimize(tmp_path / "stats", tmp_path / "out", FAST)
    assert result.record.evidence.possible is True
    assert result.record.evidence.detail["backtest"]["impressions"] == len(market.impressions)
    creatives = pd.read_parquet(tmp_path / "out" / "creatives.parquet")
    products = pd.read_parquet(tmp_path / "out" / "products.parquet").set_index("product_id")
    first = creatives[creatives["rank"] == 1].set_index("product_id")
    assert first["kept"].tolist() == products.loc[first.index, "keep_current"].tolist()


def test_a_csv_market_with_a_subset_of_slots(market_dir, tmp_path):
    market = load_market(market_dir)
    keep = ["background", "title", "template"]  # another order and a subset of the standard slots
    index = [market.config.slots.index(s) for s in keep]
    creatives = market.creatives.assign(elements=[[combo[i] for i in index] for combo in market.creatives["elements"]])
    subset = dataclasses.replace(
        market,
        config=MarketConfig(slots=tuple(keep), canvas=market.config.canvas),
        elements=market.elements[market.elements["slot"].isin(keep)].reset_index(drop=True),
        creatives=creatives,
    )
    write_market(subset, tmp_path / "subset", table_format="csv", check_images=False)
    assert (tmp_path / "subset" / "elements.csv").is_file()
    result = optimize(tmp_path / "subset", tmp_path / "out", FAST)
    proposals = read_proposals(tmp_path / "out")
    assert all(len(e) == 3 for e in proposals["elements"])
    assert set(proposals["product_id"]) == set(market.products["product_id"])
    assert result.record.ope.possible is True


def test_a_refused_market_writes_nothing(market_dir, tmp_path):
    market = load_market(market_dir)
    broken = tmp_path / "broken"
    write_market(market, broken, check_images=False)
    pd.DataFrame({"product_id": ["x"], "title": ["t"]}).to_parquet(broken / "products.parquet")
    with pytest.raises(InputError):
        optimize(broken, tmp_path / "out", FAST)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out*"))


def test_a_market_without_logs_is_refused_before_anything_is_written(market_dir, tmp_path):
    market = load_market(market_dir)
    quiet = dataclasses.replace(market, impressions=None, creative_stats=None)
    write_market(quiet, tmp_path / "quiet", check_images=False)
    with pytest.raises(InputError, match="no logs"):
        optimize(tmp_path / "quiet", tmp_path / "out", FAST)
    assert not (tmp_path / "out").exists()


def test_every_proposal_keeps_the_product_pixels_and_models_are_saved(run, market_dir):
    result, out = run
    assert result.record.fidelity == FidelityCheck(checked=len(result.proposals), passed=len(result.proposals))
    assert (out / "models" / "reward" / "model.safetensors").is_file()
    assert (out / "models" / "combo" / "model.safetensors").is_file()


def test_extra_elements_are_checked_and_may_be_combined(market_dir, tmp_path):
    market = load_market(market_dir)
    pid = market.products["product_id"].iloc[0]
    best_bg = market.elements[market.elements["slot"] == "background"].iloc[0]
    extra = pd.DataFrame({"element_id": ["new-bg-1"], "slot": ["background"], "product_id": [pid], "text": [None],
                          "value": [str(best_bg["value"]) + ", spotlight"], "image": [None]})
    extra.to_parquet(tmp_path / "elements.parquet")
    result = optimize(market_dir, tmp_path / "out", FAST, extra_elements=tmp_path)
    used = {e for combo in result.proposals["elements"] for e in combo}
    written = tmp_path / "out" / "elements.parquet"
    assert written.is_file() == ("new-bg-1" in used)
    clash = extra.assign(element_id=[best_bg["element_id"]])
    clash.to_parquet(tmp_path / "clash.parquet")
    with pytest.raises(InputError, match="already in the market"):
        optimize(market_dir, tmp_path / "out2", FAST, extra_elements=tmp_path / "clash.parquet")
    assert not (tmp_path / "out2").exists()


@pytest.mark.slow
def test_optimize_with_generated_backgrounds(market_dir, tmp_path):
    from adcraft.generate.backgrounds import BackgroundsConfig
    from adcraft.generate.preference import PreferenceConfig
    from adcraft.generate.prompt import PromptModelConfig
    from adcraft.pipeline.optimize import BackgroundStep

    generator = BackgroundsConfig(
        prompt=PromptModelConfig(text_backbone="tiny", image_backbone="tiny", epochs=5),
        preference=PreferenceConfig(rounds=1, epochs=1), per_product=2, samples=8,
    )
    config = dataclasses.replace(FAST, backgrounds=BackgroundStep(enabled=True, generator=generator))
    result = optimize(market_dir, tmp_path / "out", config)
    market = load_market(market_dir)
    assert result.record.counts.products == len(market.products)
    steps = dict(result.record.timings.stages)
    assert any("background" in name for name in steps) or any("Background" in n for n in result.record.notes)


def test_products_table_names_the_current_creative_and_the_lift(run, market_dir):
    result, out = run
    market = load_market(market_dir)
    products = pd.read_parquet(out / "products.parquet")
    assert sorted(products["product_id"]) == sorted(market.products["product_id"])
    logged_ids = set(market.creatives["creative_id"])
    for _, row in products.iterrows():
        assert row["current_creative_id"] in logged_ids
        assert (out / row["current_image"]).is_file()
        assert len(row["current_elements"]) == len(market.config.slots)
        assert 0 < row["current_predicted_ctr"] < 1
        if row["lift_impressions"] > 0:
            assert row["lift_low"] <= row["estimated_lift"] <= row["lift_high"]
    assert (products["lift_impressions"] > 0).any()


def test_a_diffusion_backend_without_weights_is_refused_before_anything_is_written(market_dir, tmp_path):
    from adcraft.render.backend import RenderConfig
    from adcraft.render.diffusion import DiffusionConfig

    config = dataclasses.replace(FAST, render=RenderConfig(
        backend="diffusion", diffusion=DiffusionConfig(weights_dir=str(tmp_path / "no-weights"))))
    with pytest.raises(InputError, match="no-weights"):
        optimize(market_dir, tmp_path / "out", config)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_optimize_renders_with_the_diffusion_backend_and_keeps_the_product(market_dir, tmp_path):
    from adcraft.render.backend import RenderConfig
    from adcraft.render.diffusion import DiffusionConfig
    from adcraft.render.tiny_diffusion import write_tiny_diffusion_weights

    weights = write_tiny_diffusion_weights(tmp_path / "weights")
    config = dataclasses.replace(FAST, top_k=1, render=RenderConfig(
        backend="diffusion", diffusion=DiffusionConfig(weights_dir=str(weights), steps=2, resolution=64)))
    result = optimize(market_dir, tmp_path / "out", config)
    assert result.record.fidelity.passed == result.record.fidelity.checked == len(result.proposals)
    compositor = optimize(market_dir, tmp_path / "compositor", dataclasses.replace(FAST, top_k=1))
    diffused = Image.open(tmp_path / "out" / result.proposals["image"].iloc[0])
    drawn = Image.open(tmp_path / "compositor" / compositor.proposals["image"].iloc[0])
    assert diffused.size == drawn.size
    assert result.proposals["elements"].iloc[0] == compositor.proposals["elements"].iloc[0]
    assert diffused.convert("RGB").tobytes() != drawn.convert("RGB").tobytes()  # the background was painted


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["market", "parent", "inside", "unrelated", "staging-is-market",
                                   "foreign-staging"])
def test_optimize_never_replaces_a_folder_it_did_not_write(market_dir, tmp_path, where, monkeypatch):
    home = tmp_path / "home"
    market = home / "market"
    write_market(load_market(market_dir), market, check_images=False)
    unrelated = home / "photos"
    unrelated.mkdir()
    (unrelated / "holiday.jpg").write_bytes(b"\xff\xd8 keep")
    if where == "staging-is-market":
        market = market.rename(home / ".out.partial")
    if where == "foreign-staging":
        (home / ".out.partial").mkdir()
        (home / ".out.partial" / "draft.txt").write_text("mine")
    out = {"market": market, "parent": home, "inside": market / "out", "unrelated": unrelated,
           "staging-is-market": home / "out", "foreign-staging": home / "out"}[where]
    trained = []
    monkeypatch.setattr(MILTrainer, "fit", lambda *a, **k: trained.append(1))
    before = _tree(home)
    with pytest.raises(InputError) as refused:
        optimize(market, out, FAST)
    assert "\n" not in str(refused.value)
    assert _tree(home) == before and trained == []  # refused before any work, nothing touched


def test_optimize_replaces_its_own_earlier_output(market_dir, tmp_path):
    out = tmp_path / "out"
    optimize(market_dir, out, FAST)
    assert (out / ".adcraft-output").is_file()
    (out / "creatives.parquet").write_bytes(b"stale")
    optimize(market_dir, out, dataclasses.replace(FAST, top_k=1))
    assert (read_proposals(out)["rank"] == 1).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or old copy is left


def test_a_full_disk_while_opening_the_staging_folder_leaves_nothing(market_dir, tmp_path, monkeypatch):
    import errno

    import adcraft.pipeline.optimize as module

    def full_disk(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(module, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        optimize(market_dir, tmp_path / "out", FAST)
    assert list(tmp_path.iterdir()) == []


def test_every_output_file_has_the_mode_of_an_ordinary_file(run, tmp_path):
    # Files written through a private temporary file (mkstemp: 0600) must end with the umask's mode, as
    # a plain open() gives, so that the people and services that read a run's output can.
    _, out = run
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    expected = plain.stat().st_mode & 0o777
    modes = {str(path.relative_to(out)): path.stat().st_mode & 0o777 for path in out.rglob("*") if path.is_file()}
    assert "creatives.parquet" in modes
    assert {name: mode for name, mode in modes.items() if mode != expected} == {}


STAGES = ["validate market", "reward model (multi-instance)",
          "combination policy (behaviour cloning + policy gradient)", "proposals", "off-policy estimate",
          "cross-fitted evidence", "render settings (best-of-N)", "render", "report"]


def test_run_json_is_the_runs_record_with_the_time_of_each_stage(run):
    result, out = run
    loaded = RunRecord.load(out / "run.json")
    assert loaded.config == FAST and loaded.counts == result.record.counts
    assert loaded.ope.value.lift == pytest.approx(result.record.ope.value.lift)
    assert loaded.ope.value.proposals == result.record.ope.value.proposals
    assert [name for name, _ in loaded.timings.stages] == STAGES  # every stage, in the order it ran
    assert loaded.timings.total >= sum(seconds for _, seconds in loaded.timings.stages) > 0
    assert loaded.notes == result.record.notes and loaded.resumed_from == {}


def test_the_command_prints_the_time_of_each_stage(market_dir, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from adcraft.cli import app
    from adcraft.configuration import to_mapping

    config = tmp_path / "smoke.yaml"
    config.write_text(yaml.safe_dump(to_mapping(FAST)))
    printed = CliRunner().invoke(app, ["optimize", "--market", str(market_dir), "--out", str(tmp_path / "out"),
                                       "--config", str(config)])
    assert printed.exit_code == 0, printed.output
    record = RunRecord.load(tmp_path / "out" / "run.json")
    lines = [line.split() for line in printed.output.splitlines()]
    for name, seconds in record.timings.stages:
        assert [f"{seconds:.1f}", "s", *name.split()] in lines


def test_extra_elements_join_the_market_the_proposals_draw_on(run, market_dir):
    from adcraft.market.click_log import click_log
    from adcraft.pipeline.optimize import RunInputs, RunState, extend_market
    from adcraft.rewards.mil import MILModel

    _, out = run
    market = load_market(market_dir)
    pid = market.products["product_id"].iloc[0]
    extra = pd.DataFrame({"element_id": ["new-bg-1"], "slot": ["background"], "product_id": [pid], "text": [None],
                          "value": ["sunlit loft, linen drapes"], "image": [None]})
    inputs = RunInputs(market_dir, out, market, click_log(market), extra)
    model = MILModel.load(out / "models" / "reward")
    state = RunState(inputs, FAST, out, resume=None, progress=False, reward_model=model,
                     judge=model)  # backgrounds are not generated
    extended = extend_market(state)
    assert "new-bg-1" in set(extended.market.usable_elements(pid, "background")["element_id"])
    assert len(extended.market.elements) == len(market.elements) + 1 and extended.new_elements is extra
    combo = list(market.creatives[market.creatives["product_id"] == pid]["elements"].iloc[0])
    combo[market.config.slots.index("background")] = "new-bg-1"
    assert 0 < extended.reward_model.predict([pid], [combo])[0] < 1  # the reward model scores it by its words


def test_combinations_reviewers_rejected_are_not_proposed_again(run, market_dir, tmp_path):
    import sqlalchemy as sa

    from adcraft.serve.decisions import _metadata, decisions_table

    _, out = run
    creatives = pd.read_parquet(out / "creatives.parquet")
    proposed = creatives[~creatives["kept"]] if "kept" in creatives else creatives
    pid = sorted(proposed["product_id"])[0]
    rejected = [list(e) for e in proposed.loc[proposed["product_id"] == pid, "elements"]]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'decisions.sqlite'}")
    _metadata.create_all(engine)
    with engine.begin() as connection:
        for k, elements in enumerate(rejected):
            connection.execute(decisions_table.insert().values(
                product_id=pid, creative_id=f"{pid}-{k}", decision="reject", note="no", rank=k + 1,
                decided_at=pd.Timestamp("2026-12-01", tz="UTC").to_pydatetime(), elements=elements,
                predicted_ctr=0.02, image="creatives/x.png", run_id="run-a"))
    engine.dispose()
    again = optimize(market_dir, tmp_path / "again", FAST, decisions=str(tmp_path / "decisions.sqlite"))
    now = again.proposals[again.proposals["product_id"] == pid]
    now = now[~now["kept"]] if "kept" in now else now
    assert len(now) and not ({tuple(e) for e in now["elements"]} & {tuple(e) for e in rejected})
    assert any("not proposed again" in note for note in again.record.notes)


def test_the_render_settings_search_runs_and_says_what_it_did(run, market_dir, tmp_path):
    from adcraft.generate.placement import PlacementSearchConfig
    from adcraft.render.compositor import Placement, placements_of

    _, out = run
    assert placements_of(read_proposals(out)) == [Placement()] * len(read_proposals(out))  # off by default
    config = dataclasses.replace(FAST, placement=PlacementSearchConfig(enabled=True, z=0.0, holdout=0.3))
    result = optimize(market_dir, tmp_path / "placed", config)
    notes = [n for n in result.record.notes if n.startswith("Render settings:")]
    assert len(notes) == 1
    placed = read_proposals(tmp_path / "placed")
    assert all(p.is_default for p, kept in zip(placements_of(placed), placed["kept"]) if kept)


def test_every_proposal_records_its_placement_and_renders_again_exactly_from_it(market_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from adcraft.cli import app
    from adcraft.generate.placement import PlacementChoice
    from adcraft.pipeline import optimize as optimize_module
    from adcraft.render.compositor import Placement, placements_of
    from adcraft.render.from_market import MarketRenderer

    moved = Placement(0.7, 0.2, 1.0)

    def choose(market, log, proposals, render, config, progress=False):  # every proposal not kept is moved
        placements = tuple(Placement() if kept else moved for kept in proposals["kept"])
        return PlacementChoice(placements, True, "fixed by the test", moved=sum(not k for k in proposals["kept"]))

    monkeypatch.setattr(optimize_module, "choose_placements", choose)
    optimize(market_dir, tmp_path / "placed", FAST)
    placed = read_proposals(tmp_path / "placed")
    assert placements_of(placed) == [Placement() if kept else moved for kept in placed["kept"]]
    report = (tmp_path / "placed" / "report.html").read_text()
    assert report.count("photo at 70% of the largest that fits") == int((~placed["kept"]).sum())
    renderer = MarketRenderer(load_market(market_dir))
    for row, placement in zip(placed.itertuples(), placements_of(placed)):
        again = renderer.render(row.product_id, list(row.elements), placement)
        with Image.open(tmp_path / "placed" / row.image) as image:
            assert image.convert("RGB").tobytes() == again.image.tobytes()
        assert list(row.product_bbox) == list(again.product_bbox)
    # the command a reader would use: adcraft render --creatives OUT/creatives.parquet
    printed = CliRunner().invoke(app, ["render", "--market", str(market_dir), "--creatives",
                                       str(tmp_path / "placed" / "creatives.parquet"),
                                       "--out", str(tmp_path / "again")])
    assert printed.exit_code == 0, printed.output
    index = pd.read_parquet(tmp_path / "again" / "rendered.parquet")
    assert [list(b) for b in index["product_bbox"]] == [list(b) for b in placed["product_bbox"]]
    for drawn, shown in zip(index["image"], placed["image"]):
        with Image.open(tmp_path / "again" / drawn) as a, Image.open(tmp_path / "placed" / shown) as b:
            assert a.convert("RGB").tobytes() == b.convert("RGB").tobytes()
