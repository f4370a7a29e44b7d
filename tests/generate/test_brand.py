"""Brand guardrails: the contrast formula, the refusals of a brand file, and proposals that keep to the brand."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from adcraft.cli import app
from adcraft.errors import InputError
from adcraft.evaluate.evidence import EvidenceConfig
from adcraft.generate.brand import Brand, BrandConfig, BrandViolation, RequiredElements, colour_contrast, load_brand
from adcraft.generate.combo import ComboTrainer
from adcraft.generate.combo_policy import PolicyBatch, beam_search, rollout
from adcraft.market import load_market
from adcraft.pipeline.optimize import OptimizeConfig, _render_within_brand
from adcraft.render.from_market import MarketRenderer
from adcraft.simulator import SimulatorConfig, simulate_market

runner = CliRunner()
SMOKE = OptimizeConfig.smoke()


@pytest.fixture(scope="module")
def market_dir(tmp_path_factory) -> Path:
    config = SimulatorConfig(seed=21, n_products=6, n_impressions=8000, creatives_per_product=4,
                             canvas=(192, 192), photo_size=128)
    return simulate_market(config, tmp_path_factory.mktemp("brand") / "market").market_dir


@pytest.fixture(scope="module")
def market(market_dir):
    return load_market(market_dir)


@pytest.fixture(scope="module")
def generator(market):
    """The smoke settings' combination policy, behaviour cloning only (it ranks by its own probability)."""
    return ComboTrainer(SMOKE.combo).fit(market, None)


def shared(market, slot: str) -> list[str]:
    """Ids of the elements of ``slot`` that every product may use."""
    table = market.elements
    return table[(table["slot"] == slot) & table["product_id"].isna()]["element_id"].tolist()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "brand.yaml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------- contrast


def test_wcag_contrast_ratio_known_values():
    assert colour_contrast("#000000", "#FFFFFF") == pytest.approx(21.0)
    assert colour_contrast("#FFFFFF", "#000000") == pytest.approx(21.0)
    assert colour_contrast("#3A7BD5", "#3A7BD5") == pytest.approx(1.0)
    # WCAG's own example pair: #767676 on white is just above 4.5:1
    assert colour_contrast("#767676", "#FFFFFF") == pytest.approx(4.54, abs=0.01)
    # a background in words is judged by the colours the renderer paints: navy reads with white, not black
    assert colour_contrast("#FFFFFF", "navy blue studio backdrop") > 7 > colour_contrast("#000000", "navy blue studio")


def test_a_gradient_background_is_judged_by_its_worst_colour():
    white_on_gradient = colour_contrast("#FFFFFF", "pale blue to white gradient")
    assert white_on_gradient == pytest.approx(colour_contrast("#FFFFFF", "#FFFFFF"))


# ---------------------------------------------------------------------------- refusals of the file itself


@pytest.mark.parametrize(("settings", "message"), [
    ({"allowed_elements": ["a", "b"], "forbidden_elements": ["b"]}, "both in allowed_elements and in forbidden"),
    ({"forbidden_elements": ["h00"], "required_elements": [{"slot": "highlight", "any_of": ["h00"]}]},
     "also in forbidden_elements"),
    ({"allowed_elements": ["h01"], "required_elements": [{"slot": "highlight", "any_of": ["h00"]}]},
     "not in allowed_elements"),
    ({"required_elements": [{"slot": "highlight", "any_of": ["h00"]}, {"slot": "highlight", "any_of": ["h01"]}]},
     "twice"),
    ({"required_elements": [{"slot": "highlight", "any_of": []}]}, "lists no element"),
    ({"text_colours": []}, "would allow nothing"),
    ({"text_colours": ["white"]}, "#RRGGBB"),
    ({"text_colours": ["#777777"], "background_colours": ["#888888"], "min_contrast": 4.5}, "reached by no pair"),
    ({"min_contrast": 22}, "[1, 21]"),
    ({"min_contrast": 0.5}, "[1, 21]"),
    ({"max_title_length": 0}, "at least 1"),
    ({"protected_product_area": 1.5}, "(0, 1]"),
    ({"forbidden_elements": "bg00"}, "expected a list"),
])
def test_a_brand_that_contradicts_itself_is_refused(settings, message, market, tmp_path):
    import yaml

    path = write(tmp_path, yaml.safe_dump(settings))
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("(", r"\(")) as error:
        load_brand(path, market)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(("text", "message"), [
    ("forbidden_elements: [bg00]\ncolour: red\n", "unknown setting"),
    ("forbidden_elements: [bg00]\nforbidden_elements: [bg01]\n", "given twice"),
    ("x: &a [bg00]\nforbidden_elements: *a\n", "anchors and aliases"),
    ("forbidden_elements: [no-such-element]\n", "does not have"),
    ("required_elements: [{slot: badge, any_of: [h00]}]\n", "does not use"),
    ("required_elements: [{slot: highlight, any_of: [bg00]}]\n", "belongs to slot 'background'"),
])
def test_a_bad_brand_file_is_refused_naming_the_file(text, message, market, tmp_path):
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=message) as error:
        load_brand(path, market)
    assert str(path) in str(error.value)


def test_a_palette_empty_after_the_forbidden_elements_is_refused(market, tmp_path):
    white = [e for e in shared(market, "text_color") if market.element_content(e).upper() == "#FFFFFF"]
    path = write(tmp_path, f"text_colours: ['#FFFFFF']\nforbidden_elements: {json.dumps(white)}\n")
    with pytest.raises(InputError, match="allows no element of slot 'text_color'"):
        load_brand(path, market)


def test_a_min_contrast_no_allowed_pair_reaches_is_refused(market, tmp_path):
    with pytest.raises(InputError, match="reached by no allowed text colour and background"):
        load_brand(write(tmp_path, "min_contrast: 20.5\n"), market)


def test_a_brand_that_leaves_a_product_without_a_title_is_refused(market, tmp_path):
    product = market.products["product_id"].iloc[0]
    titles = market.elements[(market.elements["slot"] == "title") & (market.elements["product_id"] == product)]
    path = write(tmp_path, f"forbidden_elements: {json.dumps(titles['element_id'].tolist())}\n")
    with pytest.raises(InputError, match=f"product '{product}' has no element of slot 'title'"):
        load_brand(path, market)


def test_a_title_limit_no_title_of_a_product_meets_is_refused(market, tmp_path):
    shortest = min(len(t) for t in market.elements[market.elements["slot"] == "title"]["text"])
    with pytest.raises(InputError, match="max_title_length"):
        load_brand(write(tmp_path, f"max_title_length: {shortest - 1}\n"), market)


# ---------------------------------------------------------------------------- checks


def test_combination_problems_name_each_broken_rule(market):
    brand = Brand(BrandConfig(forbidden_elements=("bg00",), fonts=("DejaVu Serif",), min_contrast=4.5,
                              required_elements=(RequiredElements("highlight", ("h01",)),)))
    slots = list(market.slots)
    combo = {"title": "t_p0000_0", "highlight": "h00", "background": "bg00", "template": "tpl00",
             "font": "font00", "text_color": "tc00"}  # tc00 is white, bg00 a pale beach
    problems = brand.combination_problems(market, "p0000", [combo[s] for s in slots])
    text = " | ".join(problems)
    assert "forbidden_elements" in text and "not in fonts" in text and "must hold one of ['h01']" in text
    assert "min_contrast" in text
    with pytest.raises(BrandViolation, match="forbidden_elements"):
        brand.check_combination(market, "p0000", [combo[s] for s in slots])
    fine = {**combo, "highlight": "h01", "background": "bg10", "font": "font01"}  # white on navy
    assert brand.combination_problems(market, "p0000", [fine[s] for s in slots]) == ()


def test_rendered_problems_check_the_product_area_and_the_title():
    brand = Brand(BrandConfig(protected_product_area=0.25, max_title_length=10))
    assert brand.rendered_problems([0, 0, 100, 100], (200, 200), "short") == ()
    problems = brand.rendered_problems([0, 0, 50, 100], (200, 200), "a title far too long")
    assert len(problems) == 2 and "12.5%" in problems[0] and "20 characters" in problems[1]


# ---------------------------------------------------------------------------- the generator keeps to the brand


def test_the_mask_keeps_sampling_and_beam_search_off_forbidden_elements(market, generator):
    """Forbid what the unmasked policy likes best: the mask still never lets it through."""
    inputs = generator.inputs()
    rows = torch.arange(len(inputs.product_ids))
    batch = PolicyBatch.of(inputs, rows)
    paths, _ = beam_search(generator.network, inputs, batch, 1)
    favourite = {inputs.element_ids[int(inputs.candidates[t][r, paths[r, 0, t]])] for r in rows.tolist()
                 for t in (2, 4, 5)}  # background, font, text colour
    brand = Brand(BrandConfig(forbidden_elements=tuple(sorted(favourite))))
    mask = brand.candidate_mask(inputs, market)
    paths, scores = beam_search(generator.network, inputs, batch, 8, mask)
    drawn = rollout(generator.network, inputs, PolicyBatch.of(inputs, rows.repeat_interleave(50)),
                    generator=torch.Generator().manual_seed(0), mask=mask).actions
    picked = set()
    for r in rows.tolist():
        for w in range(paths.shape[1]):
            if torch.isfinite(scores[r, w]):
                picked |= {inputs.element_ids[int(inputs.candidates[t][r, paths[r, w, t]])] for t in range(6)}
    for i, r in enumerate(rows.repeat_interleave(50).tolist()):
        picked |= {inputs.element_ids[int(inputs.candidates[t][r, drawn[i, t]])] for t in range(6)}
    assert favourite and not picked & favourite


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_generator_never_proposes_what_the_brand_refuses(market, generator, data):
    forbidden = []
    for slot in ("highlight", "background", "template", "font", "text_color"):
        ids = shared(market, slot)
        forbidden += data.draw(st.lists(st.sampled_from(ids), max_size=len(ids) - 1, unique=True), label=slot)
    contrast = data.draw(st.sampled_from([None, 3.0, 4.5, 7.0]), label="min_contrast")
    try:
        brand = Brand(BrandConfig(forbidden_elements=tuple(forbidden), min_contrast=contrast)).check(market)
    except InputError:
        return  # a brand the market cannot meet is refused, which is also keeping to it
    proposals = generator.propose(k=3, brand=brand)
    assert sorted(proposals["product_id"].unique()) == sorted(market.products["product_id"])
    for product, elements in zip(proposals["product_id"], proposals["elements"]):
        assert not set(elements) & set(forbidden)
        assert brand.combination_problems(market, product, list(elements)) == ()


def test_a_brand_changes_the_proposals_it_has_to(market, generator):
    plain = generator.propose(k=2)
    favourite = sorted({e for combo in plain["elements"] for e in combo[2:]})  # background .. text colour
    keep = {slot: shared(market, slot)[-1] for slot in ("background", "template", "font", "text_color")}
    forbidden = tuple(e for e in favourite if e not in keep.values())
    brand = Brand(BrandConfig(forbidden_elements=forbidden)).check(market)
    branded = generator.propose(k=2, brand=brand)
    assert forbidden and not {e for combo in branded["elements"] for e in combo} & set(forbidden)


# ---------------------------------------------------------------------------- after rendering


def test_a_proposal_refused_once_rendered_is_replaced_by_the_next(market, tmp_path):
    renderer = MarketRenderer(market)
    product = market.products["product_id"].iloc[0]
    base = ["t_p0000_0", "h00", "bg10", None, "font00", "tc00"]
    shares = {}
    for template in shared(market, "template"):
        box = renderer.render(product, [*base[:3], template, *base[4:]]).product_bbox
        shares[template] = (box[2] - box[0]) * (box[3] - box[1]) / (192 * 192)
    small, large = min(shares, key=shares.get), max(shares, key=shares.get)
    assert shares[small] < shares[large]
    brand = Brand(BrandConfig(protected_product_area=(shares[small] + shares[large]) / 2))
    proposals = pd.DataFrame({"product_id": [product, product], "rank": [1, 2],
                              "elements": [[*base[:3], small, *base[4:]], [*base[:3], large, *base[4:]]],
                              "predicted_ctr": [0.2, 0.1]})
    kept = _render_within_brand(renderer, proposals, brand, 1, tmp_path, progress=False)
    assert kept["elements"].tolist() == [[*base[:3], large, *base[4:]]] and kept["rank"].tolist() == [1]
    assert kept["brand_compliant"].tolist() == [True] and (tmp_path / kept["image"].iloc[0]).is_file()
    alone = _render_within_brand(renderer, proposals.iloc[:1], brand, 1, tmp_path / "alone", progress=False)
    assert alone["brand_compliant"].tolist() == [False]  # the product keeps a row, marked with the reason
    assert "protected_product_area" in alone["brand_problems"].iloc[0]


# ---------------------------------------------------------------------------- the command line


def test_optimize_with_a_bad_brand_file_exits_2_with_one_line_and_writes_nothing(market_dir, tmp_path):
    brand = write(tmp_path, "allowed_elements: [bg00]\nforbidden_elements: [bg00]\n")
    result = runner.invoke(app, ["optimize", "--market", str(market_dir), "--out", str(tmp_path / "out"),
                                 "--brand", str(brand)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0 and "error:" in result.output and str(brand) in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brand.yaml"]  # no out, no .out.partial


def test_render_refuses_a_creative_the_brand_refuses(market_dir, tmp_path):
    brand = write(tmp_path, "forbidden_elements: [bg00]\n")
    elements = "t_p0000_0,h00,bg00,tpl00,font00,tc01"
    out = tmp_path / "one.png"
    result = runner.invoke(app, ["render", "--market", str(market_dir), "--out", str(out), "--product", "p0000",
                                 "--elements", elements, "--brand", str(brand)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0 and "forbidden_elements" in result.output
    assert not out.exists()
    ok = runner.invoke(app, ["render", "--market", str(market_dir), "--out", str(out), "--product", "p0000",
                             "--elements", elements.replace("bg00", "bg01"), "--brand", str(brand)])
    assert ok.exit_code == 0, ok.output and out.is_file()


def test_render_marks_many_creatives_for_the_brand(market_dir, market, tmp_path):
    logged = market.creatives.iloc[0]
    background = list(logged["elements"])[2]
    brand = write(tmp_path, f"forbidden_elements: [{background}]\n")
    result = runner.invoke(app, ["render", "--market", str(market_dir), "--out", str(tmp_path / "many"),
                                 "--brand", str(brand)])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "many" / "rendered.parquet")
    uses = table["elements"].map(lambda e: background in list(e))
    assert uses.any() and (table["brand_compliant"] == ~uses).all()
    assert table.loc[uses, "brand_problems"].str.contains("forbidden_elements").all()


@pytest.mark.slow
def test_optimize_with_a_brand_keeps_every_proposal_to_it(market_dir, market, tmp_path):
    brand_file = write(tmp_path, "forbidden_elements: [bg00, bg09, tc00, font00]\nmin_contrast: 4.5\n"
                                 "protected_product_area: 0.05\n")
    from adcraft.pipeline.optimize import optimize

    result = optimize(market_dir, tmp_path / "out", SMOKE, brand=brand_file)
    table = pd.read_parquet(tmp_path / "out" / "creatives.parquet")
    assert table["brand_compliant"].all() and (table["brand_problems"] == "").all()
    assert sorted(table["product_id"].unique()) == sorted(market.products["product_id"])
    brand = load_brand(brand_file, market)
    for product, elements, box in zip(table["product_id"], table["elements"], table["product_bbox"]):
        assert not {"bg00", "bg09", "tc00", "font00"} & set(elements)
        assert brand.creative_problems(market, product, list(elements), list(box)) == ()
    assert any("Brand guardrails" in note for note in result.record.notes)
    assert "keep to the brand" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.slow
def test_a_product_whose_logged_creatives_the_brand_all_refuses_is_named_and_not_kept(market_dir, market, tmp_path):
    from adcraft.pipeline.optimize import optimize

    product = market.products["product_id"].iloc[0]
    slots = list(market.config.slots)
    logged = market.creatives.loc[market.creatives["product_id"] == product, "elements"]
    backgrounds = sorted({combo[slots.index("background")] for combo in logged})
    brand_file = write(tmp_path, f"forbidden_elements: [{', '.join(backgrounds)}]\n")
    # without evidence every product keeps what runs now, where the brand allows some of it
    config = OptimizeConfig.smoke(evidence=EvidenceConfig(enabled=False))
    result = optimize(market_dir, tmp_path / "out", config, brand=brand_file)
    table = pd.read_parquet(tmp_path / "out" / "creatives.parquet")
    first = table[table["rank"] == 1].set_index("product_id")
    assert not first.loc[product, "kept"]  # nothing the brand allows runs now for it
    assert table["brand_compliant"].all()
    refused = [p for p, combos in market.creatives.groupby("product_id")["elements"]
               if all(combo[slots.index("background")] in backgrounds for combo in combos)]
    assert first.loc[refused, "kept"].sum() == 0 and first.drop(index=refused)["kept"].all()
    assert any(f"No logged creative that the brand allows for {len(refused)} of the products ({product}" in note
               for note in result.record.notes)
