from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from adcraft.configuration import from_mapping
from adcraft.errors import InputError
from adcraft.market import load_market
from adcraft.pipeline.optimize import OptimizeConfig, load_run_reward, optimize
from adcraft.pipeline.reviews import (
    ReviewerConfig,
    ReviewerPreference,
    approvals,
    background_pairs,
    fit_reviewer_preference,
    latest_decisions,
    read_decisions,
    read_rejections,
)
from adcraft.serve.decisions import _metadata, decisions_table
from adcraft.simulator import SimulatorConfig, simulate_market

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def write_decisions(path, rows) -> str:
    """An SQLite file with the review page's own decisions table, holding ``rows``
    (product, elements, decision, minutes after NOW)."""
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    _metadata.create_all(engine)
    with engine.begin() as connection:
        for k, (product, elements, decision, minutes) in enumerate(rows):
            connection.execute(decisions_table.insert().values(
                product_id=product, creative_id=f"c{k}", decision=decision, note="", rank=1,
                decided_at=NOW + timedelta(minutes=minutes), elements=elements, predicted_ctr=0.02,
                image="creatives/x.png", run_id="run-a"))
    engine.dispose()
    return url


def test_the_latest_decision_on_a_combination_counts(tmp_path):
    url = write_decisions(tmp_path / "d.sqlite", [
        ("p1", ["t1", "b1"], "reject", 0),
        ("p1", ["t2", "b1"], "reject", 0),
        ("p1", ["t2", "b1"], "approve", 5),  # changed mind: no longer excluded
        ("p2", ["t1", "b1"], "approve", 0),
        ("p2", ["t1", "b1"], "reject", 9),
    ])
    assert read_rejections(url) == {"p1": {("t1", "b1")}, "p2": {("t1", "b1")}}
    assert read_rejections(str(tmp_path / "d.sqlite")) == read_rejections(url)  # a file path works too
    assert approvals(read_decisions(url)) == {"p1": {("t2", "b1")}}  # p2's approval was overturned


def test_unusable_databases_are_refused_with_the_reason(tmp_path):
    with pytest.raises(InputError, match="no such database file"):
        read_rejections(str(tmp_path / "missing.sqlite"))
    empty = tmp_path / "empty.sqlite"
    sa.create_engine(f"sqlite:///{empty}").connect().close()
    with pytest.raises(InputError, match="no decisions table"):
        read_rejections(str(empty))


# ---------------------------------------------------------------------------------------------- the learned reviewer


def decision_rows(combos_by_product: dict[str, list[tuple[list[str], str]]]) -> list:
    """``write_decisions`` rows from per-product (elements, decision) lists, a minute apart."""
    rows, minute = [], 0
    for product, decided in combos_by_product.items():
        for elements, decision in decided:
            rows.append((product, elements, decision, minute))
            minute += 1
    return rows


def test_the_learned_reviewer_ranks_an_approved_kind_above_a_rejected_kind(tmp_path):
    # Reviewers reject every creative on the "bg-dark" background and approve the others, on five products.
    decided = {f"p{i}": [([f"t{i}", "bg-light", f"f{j}"], "approve") for j in range(3)]
               + [([f"t{i}", "bg-dark", f"f{j}"], "reject") for j in range(3)] for i in range(5)}
    url = write_decisions(tmp_path / "d.sqlite", decision_rows(decided))
    preference = fit_reviewer_preference(read_decisions(url), ReviewerConfig(min_decisions=10))
    assert isinstance(preference, ReviewerPreference)
    assert (preference.decisions, preference.approved, preference.pairs) == (30, 15, 5 * 3 * 3)
    # A product no reviewer has seen, with a font no reviewer has seen either.
    light, dark = preference.approval(["p-new", "p-new"], [["t-new", "bg-light", "f9"], ["t-new", "bg-dark", "f9"]])
    assert light > 0.6 > 0.4 > dark
    steered = preference.steer(lambda products, combos: np.full(len(products), 0.02))
    assert steered(["p0", "p0"], [["t0", "bg-light", "f0"], ["t0", "bg-dark", "f0"]]).tolist() == pytest.approx(
        [0.02 * a for a in preference.approval(["p0", "p0"], [["t0", "bg-light", "f0"], ["t0", "bg-dark", "f0"]])])
    # a combination reviewers approved last is not predicted: its P(approve) is 1, on its own product only
    known = preference.steer(lambda products, combos: np.full(len(products), 0.02),
                             approved={"p0": {("t0", "bg-light", "f0")}})
    light_p0, light_p1 = preference.approval(["p0", "p1"], [["t0", "bg-light", "f0"], ["t0", "bg-light", "f0"]])
    assert light_p0 < 1.0
    assert known(["p0", "p1"], [["t0", "bg-light", "f0"], ["t0", "bg-light", "f0"]]).tolist() == pytest.approx(
        [0.02, 0.02 * light_p1])


def test_the_latest_decision_per_run_counts_and_one_kind_of_decision_fits_nothing(tmp_path):
    rows = [("p1", ["t1", "b1"], "reject", 0), ("p1", ["t1", "b1"], "approve", 5)]
    decisions = read_decisions(write_decisions(tmp_path / "d.sqlite", rows))
    assert latest_decisions(decisions, ["run_id", "product_id", "elements"])["decision"].tolist() == ["approve"]
    reason = fit_reviewer_preference(decisions, ReviewerConfig(min_decisions=1))
    assert reason == "all 1 decisions are approvals"
    assert "fewer than reviewers.min_decisions" in fit_reviewer_preference(decisions, ReviewerConfig())


@pytest.mark.parametrize("change", [{"strength": -0.5}, {"strength": 21.0}, {"l2": 0.0}, {"l2": float("nan")},
                                    {"min_decisions": 0}, {"product_intercept_decisions": 0}, {"strength": "high"}])
def test_a_reviewer_config_out_of_range_is_refused(change):
    with pytest.raises(InputError, match="strength|l2|min_decisions|product_intercept_decisions"):
        ReviewerConfig(**change)


def test_a_reviewer_config_is_read_from_the_optimize_settings():
    config = from_mapping(OptimizeConfig, {"reviewers": {"strength": 2.0}})
    assert config.reviewers == ReviewerConfig(strength=2.0)
    with pytest.raises(InputError, match="reviewers"):
        from_mapping(OptimizeConfig, {"reviewers": {"strenght": 2.0}})


@pytest.fixture(scope="module")
def tiny_market(tmp_path_factory):
    config = SimulatorConfig(seed=21, n_products=6, n_impressions=8000, creatives_per_product=4,
                             canvas=(192, 192), photo_size=128)
    return simulate_market(config, tmp_path_factory.mktemp("reviews") / "market").market_dir


def proposed(result) -> pd.DataFrame:
    """The proposals of a run that are not what runs now (do no harm's kept rows are not proposals)."""
    frame = result.proposals
    return frame[~frame["kept"]] if "kept" in frame else frame


def test_proposals_avoid_an_element_reviewers_reject_everywhere(tiny_market, tmp_path):
    before = optimize(tiny_market, tmp_path / "before", OptimizeConfig.smoke())
    slot = load_market(tiny_market).config.slots.index("background")
    backgrounds = pd.Series([e[slot] for e in proposed(before)["elements"]]).value_counts()
    disliked = backgrounds.index[0]  # the background the run proposes most
    assert backgrounds.iloc[0] >= 3
    # Reviewers reject every creative they see on that background (the run's proposals and the logged
    # creatives) and approve every other one.
    market = load_market(tiny_market)
    seen = list(zip(before.proposals["product_id"], before.proposals["elements"]))
    seen += list(zip(market.creatives["product_id"], market.creatives["elements"]))
    decided: dict[str, list] = {}
    for product, elements in seen:
        decided.setdefault(product, []).append((list(elements), "reject" if disliked in elements else "approve"))
    database = write_decisions(tmp_path / "d.sqlite", decision_rows(decided))

    after = optimize(tiny_market, tmp_path / "after", OptimizeConfig.smoke(), decisions=database)
    assert not any(disliked in elements for elements in proposed(after)["elements"])
    note = next(n for n in after.record.notes if "learned reviewer preference" in n)
    assert f"fitted on {len({(p, tuple(e)) for p, e in seen})} decisions" in note  # one per product and combination
    assert any(note in n for n in json.loads((tmp_path / "after" / "run.json").read_text())["notes"])

    # Without the learned preference only the rejected combinations are masked, and the background comes back.
    masked = optimize(tiny_market, tmp_path / "masked", OptimizeConfig.smoke(reviewers=ReviewerConfig(strength=0.0)),
                      decisions=database)
    assert any(disliked in elements for elements in proposed(masked)["elements"])


def test_a_combination_reviewers_approved_joins_the_candidates_and_wins_where_it_scores_best(tiny_market, tmp_path):
    config = OptimizeConfig.smoke(judge="mil")  # the judge the run saves, so the test can score every combination
    before = optimize(tiny_market, tmp_path / "before", config)
    market, judge = load_run_reward(tmp_path / "before", load_market(tiny_market))

    def judges_best(product: str) -> list[str]:
        space = [list(c) for c in itertools.product(*(market.usable_elements(product, s)["element_id"].tolist()
                                                      for s in market.config.slots))]
        return space[int(np.argmax(judge.predict([product] * len(space), space)))]

    # A product whose judge's best combination the policy does not find on its own.
    shown = set(zip(before.proposals["product_id"], before.proposals["elements"].map(tuple)))
    found = ((p, judges_best(p)) for p in market.products["product_id"])
    product, best = next((p, b) for p, b in found if (p, tuple(b)) not in shown)
    # Reviewers approved it, and two combinations the market no longer allows (an element it lacks, a
    # product it lacks); all approvals, so no preference is learned and the judge alone ranks.
    gone = [*best[:-1], "element-no-longer-there"]
    database = write_decisions(tmp_path / "d.sqlite", [(product, best, "approve", 0), (product, gone, "approve", 1),
                                                       ("p-no-longer-there", best, "approve", 2)])

    after = optimize(tiny_market, tmp_path / "after", config, decisions=database)
    mine = proposed(after)[proposed(after)["product_id"] == product]
    assert list(mine["elements"].iloc[0]) == best  # the first proposal, after what runs now if that is kept
    assert mine["predicted_ctr"].iloc[0] > before.proposals.loc[before.proposals["product_id"] == product,
                                                                "predicted_ctr"].max()
    assert not any(list(e) == gone for e in after.proposals["elements"])
    note = "1 of 3 combinations approved last by reviewers joined the candidates of 1 products"
    assert any(note in n and "1 of them are among the proposals" in n for n in after.record.notes)


@pytest.mark.parametrize("database", ["missing.sqlite", "garbage.sqlite", "empty.sqlite"])
def test_optimize_refuses_an_unreadable_decisions_database_in_one_line(tiny_market, tmp_path, database):
    from typer.testing import CliRunner

    from adcraft.cli import app

    (tmp_path / "garbage.sqlite").write_bytes(b"not a database at all" * 100)
    sa.create_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}").connect().close()
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["optimize", "--market", str(tiny_market), "--out", str(out),
                                      "--decisions", str(tmp_path / database)])
    assert result.exit_code == 2, result.output
    assert "--decisions" in result.output and "Traceback" not in result.output
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def background_decisions(market_dir, tmp_path):
    """Reviewers' decisions on one product: an approved and a rejected creative that differ only in their
    background, a rejected one that differs only in its first slot (no background pair), and a rejected one on
    a background the market lacks; the database's URL and the expected (product, approved, rejected) prompts."""
    market = load_market(market_dir)
    slot = market.config.slots.index("background")
    product = market.products["product_id"].iloc[0]
    combo = list(market.creatives.loc[market.creatives["product_id"] == product, "elements"].iloc[0])
    backgrounds = market.usable_elements(product, "background")
    other = next(e for e in backgrounds["element_id"] if e != combo[slot])
    first = next(e for e in market.usable_elements(product, market.config.slots[0])["element_id"] if e != combo[0])
    swapped, retitled, missing = list(combo), list(combo), list(combo)
    swapped[slot], retitled[0], missing[slot] = other, first, "bg-no-longer-there"
    url = write_decisions(tmp_path / "bg.sqlite", [(product, combo, "approve", 0), (product, swapped, "reject", 1),
                                                    (product, retitled, "reject", 2), (product, missing, "reject", 3)])
    value = dict(zip(market.elements["element_id"], market.elements["value"]))
    return url, (product, value[combo[slot]], value[other])


def test_background_pairs_are_the_prompts_of_approved_over_rejected_backgrounds(tiny_market, tmp_path):
    url, expected = background_decisions(tiny_market, tmp_path)
    pairs = background_pairs(read_decisions(url), load_market(tiny_market))
    assert [(p.product_id, p.approved, p.rejected) for p in pairs] == [expected]


def test_reviewed_backgrounds_are_noted_as_unused_when_background_generation_is_off(tiny_market, tmp_path):
    url, _ = background_decisions(tiny_market, tmp_path)
    result = optimize(tiny_market, tmp_path / "out", OptimizeConfig.smoke(), decisions=url)
    note = "Review decisions: 1 pair(s) of background prompts (approved over rejected) were not learned from"
    assert any(n.startswith(note) for n in result.record.notes)


@pytest.mark.slow
def test_reviewed_backgrounds_join_the_preference_rounds_of_the_background_step(tiny_market, tmp_path):
    from adcraft.generate.backgrounds import BackgroundsConfig
    from adcraft.generate.preference import PreferenceConfig
    from adcraft.generate.prompt import PromptModelConfig
    from adcraft.pipeline.optimize import BackgroundStep

    url, _ = background_decisions(tiny_market, tmp_path)
    generator = BackgroundsConfig(prompt=PromptModelConfig(text_backbone="tiny", image_backbone="tiny", epochs=5),
                                  preference=PreferenceConfig(rounds=1, epochs=1), per_product=2, samples=8)
    config = OptimizeConfig.smoke(backgrounds=BackgroundStep(enabled=True, generator=generator))
    result = optimize(tiny_market, tmp_path / "out", config, decisions=url)
    note = ("Review decisions: 1 pair(s) of background prompts (approved over rejected) joined every preference "
            "round")
    assert any(n.startswith(note) for n in result.record.notes)
    # the approved creative over each of the three rejected ones; the one on a background the market lacks is out
    judge = ("Review decisions: 2 of 3 approved-over-rejected creative pair(s) joined the training pairs of the "
             "pairwise reward model")
    assert any(n.startswith(judge) for n in result.record.notes)
