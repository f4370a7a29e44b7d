"""``bench/contrastive.py --worlds`` on a tiny world: the control ranking, the paired intervals, the section."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import contrastive  # noqa: E402
import intervals  # noqa: E402

from adcraft.features import ImageEncoderConfig, TextEncoderConfig  # noqa: E402
from adcraft.rewards.contrastive import ContrastiveConfig, ContrastiveModel, ContrastiveTrainConfig  # noqa: E402
from adcraft.rewards.utility import UtilityConfig  # noqa: E402

SEEDS = [1, 2]
PRODUCTS, CREATIVES = 12, 4
# Tiny towers, a fixed α (no search) so that the control differs from the standard ranking, and h fitted
# on logit CTR (a tiny market has too few demand rows for the default target).
TINY_UA = ContrastiveConfig(
    image=ImageEncoderConfig(backbone="tiny"),
    text=TextEncoderConfig(backbone="tiny"),
    demand=UtilityConfig(target="logit_ctr"),
    validation_share=0.3,
    alpha=0.5,
    retrieval_tolerance=None,
    train=ContrastiveTrainConfig(epochs=10, patience=5),
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("contrastive-worlds")


@pytest.fixture(scope="module")
def pair(workdir):
    """(market, standard, ua) of the first seed's visual market (reused by the worlds run below)."""
    market, _, _ = contrastive.simulated(SEEDS[0], workdir, PRODUCTS, CREATIVES, "visual")
    ids = market.products["product_id"].tolist()
    held = contrastive.held_out_products(ids, contrastive.HELD_OUT, SEEDS[0])
    standard, ua, _ = contrastive.train_pair(contrastive.product_subset(market, set(ids) - held), SEEDS[0], TINY_UA)
    return market, standard, ua


def test_the_control_is_the_standard_cosine_plus_the_ua_prior(pair):
    market, standard, ua = pair
    images = [market.open_image(p) for p in market.creatives["image"][:6]]
    title = str(market.products["title"].iloc[0])
    control = contrastive.control_model(standard, ua)
    expected = ua.config.alpha * ua.utility(images) + ua.config.beta * standard.consistency(images, title)
    np.testing.assert_allclose(control.score(images, title), expected, atol=1e-5)
    np.testing.assert_allclose(control.consistency(images, title), standard.consistency(images, title), atol=1e-6)
    assert not np.allclose(control.score(images, title), standard.score(images, title))

    # With α = 0 the control is the standard ranking itself.
    no_prior = ContrastiveModel(dataclasses.replace(ua.config, alpha=0.0), ua.network, ua.demand_model,
                                ua.utility_mean, ua.utility_scale, ua.history, ua.validation)
    np.testing.assert_allclose(contrastive.control_model(standard, no_prior).score(images, title),
                               standard.score(images, title), atol=1e-6)


def test_t_interval_matches_the_t_table():
    mean, low, high = contrastive.t_interval([1.0, 2.0, 3.0])  # sd 1, n 3: half-width 4.303 / √3
    assert mean == 2.0 and high - mean == pytest.approx(4.303 / np.sqrt(3), rel=1e-4) and mean - low == high - mean
    assert intervals.t_quantile_975(4) == pytest.approx(2.776, abs=5e-4)
    assert intervals.t_quantile_975(60) == pytest.approx(2.0003, abs=2e-4)
    assert contrastive.interval_text([0.5]) == "0.50"


def test_paired_differences_decompose_and_are_per_seed():
    means = pd.DataFrame({"world": ["w"] * 3, "seed": [1, 2, 3], "standard": [10.0, 20.0, 30.0],
                          "control": [11.0, 21.0, 32.0], "ua": [12.0, 23.0, 33.0],
                          "random": [9.0, 20.0, 31.0]})
    row = contrastive.paired_differences(means).iloc[0]
    assert row["seeds"] == 3
    two = pd.concat([means, means.assign(world="v", ua=means["ua"] + 3.0)], ignore_index=True)
    pooled = contrastive.paired_differences(two).iloc[-1]
    assert pooled["world"].startswith("all 2 worlds") and pooled["seeds"] == 3  # worlds averaged within a seed
    assert pooled["ua − standard"].startswith("4.17 [")
    assert row["ua − standard"].startswith("2.67 [")
    assert row["control − standard"].startswith("1.33 [")
    assert row["ua − control"].startswith("1.33 [")


def test_worlds_run_writes_its_section_with_the_control(workdir, pair):
    results = workdir / "results.md"
    results.write_text("# Results\n\n## Utility-aware contrastive encoder (bench/contrastive.py)\n\nkept\n")
    args = argparse.Namespace(worlds=["visual"], seeds=SEEDS, workdir=workdir, products=PRODUCTS,
                              creatives=CREATIVES, candidates=3, results=results)
    contrastive.run_worlds(args, TINY_UA)
    text = results.read_text()
    assert "kept" in text  # the default world's section is left alone
    section = text[text.index(contrastive.WORLDS_SECTION):]
    for heading in ("Mean true demand of the picks", "Paired differences per seed", "Per world and seed"):
        assert heading in section
    assert "| visual | 2 |" in section  # the paired-differences row of the world, over both seeds
    assert "control − standard" in section and "ua − control" in section
    assert "Over all 2 markets" in section
    assert len(pd.read_csv(workdir / "worlds-best-of-n.csv")) == len(SEEDS) * round(contrastive.HELD_OUT * PRODUCTS)

    result = contrastive.bench_worlds(args, TINY_UA)  # every market reused: only training and best-of-N again
    bon = result["bon"]
    assert set(bon["world"]) == {"visual"} and set(bon["seed"]) == set(SEEDS)
    assert (result["timings"]["market"] == "reused").all()
    assert result["models"]["same_h"].all() and (result["models"]["alpha"] == 0.5).all()
    for name in (*contrastive.RANKINGS, "random"):
        assert ((bon[name] > 0) & (bon[name] <= bon["oracle"] + 1e-9)).all()
    # A pick that both the control and the UA model make scores the same true demand.
    same = bon["pick_control"] == bon["pick_ua"]
    assert (bon.loc[same, "control"] == bon.loc[same, "ua"]).all()


def synthetic_result(worlds: list[str], seed0: int) -> dict:
    """A worlds result (as ``bench_worlds`` returns it) with drawn demands, 3 products per (world, seed)."""
    rng = np.random.default_rng(seed0)
    rows, models, timings = [], [], []
    for world in worlds:
        for seed in SEEDS:
            for product in range(3):
                values = rng.uniform(40, 90, 5)
                rows.append({"world": world, "seed": seed, "product": product,
                             **dict(zip(("standard", "control", "ua", "random", "oracle"), sorted(values))),
                             **{f"pick_{name}": int(rng.integers(0, 3)) for name in contrastive.RANKINGS}})
            models.append({"world": world, "seed": seed, "alpha": 0.05})
            timings.append({"world": world, "market": "simulated", "simulate_s": 1.0, "train_s": 2.0,
                            "best_of_n_s": 3.0})
    return {"bon": pd.DataFrame(rows), "models": pd.DataFrame(models), "timings": pd.DataFrame(timings)}


def test_merging_worlds_sections_keeps_each_world_and_recomputes_the_rows_over_all_worlds(tmp_path):
    files = {}
    for name, worlds, seed0 in (("mine", ["visual", "semantic"], 1), ("theirs", ["sparse"], 2)):
        args = argparse.Namespace(worlds=worlds, seeds=SEEDS, products=PRODUCTS, creatives=CREATIVES, candidates=3)
        files[name] = tmp_path / f"{name}.md"
        files[name].write_text("# Results\n\n" + contrastive.worlds_report(args, synthetic_result(worlds, seed0), 60.0)
                               + "\n## Next section\n\nkept\n")
    before = files["mine"].read_text()
    merged = contrastive.merge_worlds_sections(files["mine"], files["theirs"])
    text = files["mine"].read_text()
    assert text.endswith("## Next section\n\nkept\n") and merged in text
    per, _ = contrastive.table_under(merged, "### Per world and seed")
    assert list(dict.fromkeys(per["world"])) == ["visual", "semantic", "sparse"]
    means = per.astype({c: float for c in (*contrastive.RANKINGS, "random", "oracle")}).astype({"seed": int})
    paired, _ = contrastive.table_under(merged, "### Paired differences per seed")
    expected = contrastive.paired_differences(means)
    assert paired.iloc[-1].tolist() == expected.iloc[-1].astype(str).tolist()
    assert paired["world"].iloc[-1].startswith("all 3 worlds")
    old_rows, _ = contrastive.table_under(contrastive.section_of(before, contrastive.WORLDS_SECTION),
                                          "### Paired differences per seed")
    assert paired.iloc[:2].values.tolist() == old_rows.iloc[:2].values.tolist()  # each world's row as written
    assert contrastive.decomposition_line(means) in merged and "Over all 6 markets" in merged
    assert "sparse (the same seeds, in a run of their own)" in merged
    with pytest.raises(SystemExit, match="both runs have"):
        contrastive.merge_worlds_sections(files["mine"], files["theirs"])  # sparse is in both now
