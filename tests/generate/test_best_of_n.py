"""Best-of-N: images and rendered candidate creatives ranked by the utility-aware score."""

from __future__ import annotations

import numpy as np
import pytest

from adcraft.errors import InputError
from adcraft.generate.best_of_n import best_of_n_creatives, rank_images, sample_combinations


@pytest.fixture(scope="module")
def model(ua_model):
    return ua_model


def creative_paths(market, n):
    return [market.resolve(path) for path in market.creatives["image"].iloc[:n]]


def test_rank_images_orders_by_the_score_and_reports_its_parts(generator_market, model) -> None:
    market, _ = generator_market
    images = [market.open_image(path) for path in market.creatives["image"].iloc[:6]]
    text = market.products["title"].iloc[0]
    rows = rank_images(model, images, text)
    scores = model.score(images, text)
    assert [row["rank"] for row in rows] == list(range(1, 7))
    assert [row["image"] for row in rows] == list(np.argsort(-scores, kind="stable"))
    assert [row["score"] for row in rows] == sorted(scores, reverse=True)
    utility, consistency = model.utility(images), model.consistency(images, text)
    for row in rows:
        assert row["demand"] == pytest.approx(utility[row["image"]], abs=1e-6)
        assert row["consistency"] == pytest.approx(consistency[row["image"]], abs=1e-6)
        assert row["score"] == pytest.approx(0.5 * row["demand"] + row["consistency"], abs=1e-5)


def test_rank_images_reads_files_and_keeps_labels(generator_market, model) -> None:
    market, _ = generator_market
    paths = creative_paths(market, 4)
    rows = rank_images(model, paths, "a red bag")
    assert sorted(row["image"] for row in rows) == sorted(str(path) for path in paths)
    labelled = rank_images(model, paths, "a red bag", labels=["a", "b", "c", "d"])
    order = [[str(path) for path in paths].index(row["image"]) for row in rows]
    assert [row["image"] for row in labelled] == ["abcd"[i] for i in order]


def test_rank_images_refuses_bad_input(generator_market, model, tmp_path) -> None:
    market, _ = generator_market
    paths = creative_paths(market, 2)
    with pytest.raises(InputError, match="no images"):
        rank_images(model, [], "a bag")
    with pytest.raises(InputError, match="single one"):
        rank_images(model, paths[0], "a bag")
    with pytest.raises(InputError, match="does not exist"):
        rank_images(model, [tmp_path / "missing.png"], "a bag")
    with pytest.raises(InputError, match="labels"):
        rank_images(model, paths, "a bag", labels=["only one"])
    with pytest.raises(InputError, match="empty"):
        rank_images(model, paths, "")


def test_sample_combinations_are_distinct_and_usable(generator_market) -> None:
    market, _ = generator_market
    product = market.products["product_id"].iloc[1]
    combinations = sample_combinations(market, product, 6, seed=3)
    assert len(combinations) == 6 and len({tuple(c) for c in combinations}) == 6
    for combination in combinations:
        for slot, element in zip(market.slots, combination):
            assert element in set(market.usable_elements(product, slot)["element_id"])
    assert sample_combinations(market, product, 6, seed=3) == combinations
    with pytest.raises(InputError, match="unknown product"):
        sample_combinations(market, "no-such-product", 2)


def test_best_of_n_renders_every_candidate_and_puts_the_highest_score_first(generator_market, model) -> None:
    market, _ = generator_market
    product = market.products["product_id"].iloc[2]
    combinations = sample_combinations(market, product, 4, seed=0)
    ranked = best_of_n_creatives(model, market, product, combinations)
    assert sorted(c.elements for c in ranked) == sorted(tuple(c) for c in combinations)
    scores = [c.score for c in ranked]
    assert scores == sorted(scores, reverse=True)
    title = market.products.set_index("product_id").loc[product, "title"]
    rescored = model.score([c.image for c in ranked], title)
    np.testing.assert_allclose(rescored, scores, atol=1e-5)
    assert ranked[0].image.size == tuple(market.config.canvas)
    with pytest.raises(InputError, match="no candidate"):
        best_of_n_creatives(model, market, product, [])


def test_rank_images_command_prints_one_json_line_per_image_best_first(ua_model, generator_market, tmp_path):
    import json

    from typer.testing import CliRunner

    from adcraft.cli import app

    market, _ = generator_market
    ua_model.save(tmp_path / "ua")
    paths = [str(market.resolve(p)) for p in market.creatives["image"].iloc[:3]]
    result = CliRunner().invoke(app, ["rank-images", "--model", str(tmp_path / "ua"), "--text", "Linen shirt",
                                      "--out", str(tmp_path / "ranking.json"), *paths])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert sorted(r["image"] for r in rows) == sorted(paths)
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert json.loads((tmp_path / "ranking.json").read_text())[0]["image"] == rows[0]["image"]
