from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from adcraft.errors import InputError
from adcraft.learning.training import TrainConfig
from adcraft.market import load_market
from adcraft.market.click_log import SplitConfig, click_log, creative_outcomes, time_split
from adcraft.rewards.encoding import EncodingConfig, creative_image_features
from adcraft.rewards.pairwise import (
    PAIR_COLUMNS,
    PairConfig,
    PairwiseConfig,
    PairwiseModel,
    PairwiseTrainer,
    bayes_optimal_accuracy,
    build_pairs,
    impression_threshold,
    pair_split,
    pairwise_loss,
    probability_from_logit,
    reviewed_pairs,
)
from adcraft.simulator import GroundTruth, SimulatorConfig, simulate_market

# Tiny data: low impression threshold, and no upper bound on the CTR ratio so that the large gaps of
# the test market make pairs whose labels mostly agree with the truth.
FAST = PairwiseConfig(
    encoding=EncodingConfig(text_backbone="tiny", image_backbone="tiny", embedding_dim=8),
    pairs=PairConfig(min_impressions="auto", max_ratio=None),
    train=TrainConfig(epochs=30, batch_size=32, patience=5),
)


@pytest.fixture(scope="module")
def gap_market(tmp_path_factory):
    """(market, truth) whose creatives differ a lot in CTR and share the traffic evenly."""
    root = tmp_path_factory.mktemp("pairwise")
    config = SimulatorConfig(
        seed=4, n_products=8, n_impressions=30_000, creatives_per_product=5, element_effect_scale=0.6,
        base_ctr=0.06, exploration=1.0, canvas=(256, 256), photo_size=160,
    )
    sim = simulate_market(config, root / "market")
    return load_market(sim.market_dir), GroundTruth.load(sim.truth_dir)


@pytest.fixture(scope="module")
def trained(gap_market, tmp_path_factory):
    market, _ = gap_market
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADCRAFT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return PairwiseTrainer(FAST).fit(market)


def outcomes(rows: list[tuple[str, str, int, int]]) -> pd.DataFrame:
    """A creative_outcomes frame from (creative, product, clicks, trials) rows."""
    frame = pd.DataFrame(rows, columns=["creative_id", "product_id", "clicks", "trials"])
    frame["elements"] = [[c, "bg"] for c in frame["creative_id"]]
    frame["ctr"] = frame["clicks"] / frame["trials"]
    return frame[["creative_id", "product_id", "elements", "clicks", "trials", "ctr"]]


def unordered(pairs: pd.DataFrame) -> set[frozenset[str]]:
    return {frozenset(p) for p in zip(pairs["creative_first"], pairs["creative_second"])}


def test_pairs_follow_the_rules():
    frame = outcomes([
        ("a1", "A", 100, 1000),  # ctr 0.100
        ("a2", "A", 110, 1000),  # 0.110: 1.10 x a1
        ("a3", "A", 120, 1000),  # 0.120: 1.20 x a1 (inclusive bound), 1.09 x a2
        ("a4", "A", 150, 1000),  # 0.150: 1.25 x a3, too far from all
        ("a5", "A", 102, 1000),  # 0.102: 1.02 x a1, too close; 1.078 x a2, 1.176 x a3
        ("a6", "A", 12, 100),    # 0.120 but too few impressions
        ("a7", "A", 0, 5000),    # no click
        ("b1", "B", 105, 1000),  # same CTRs as product A's, but another product
        ("b2", "B", 105, 1000),  # a tie: neither is better
    ])
    pairs = build_pairs(frame, PairConfig(min_impressions=1000))
    assert list(pairs.columns) == list(PAIR_COLUMNS)
    expected = {("a1", "a2"), ("a1", "a3"), ("a2", "a3"), ("a2", "a5"), ("a3", "a5")}
    assert unordered(pairs) == {frozenset(p) for p in expected}
    assert (pairs["product_id"] == "A").all()
    better_first = pairs["ctr_first"] > pairs["ctr_second"]
    np.testing.assert_array_equal(better_first.to_numpy(), pairs["first_is_better"].to_numpy().astype(bool))
    ctr = frame.set_index("creative_id")["ctr"]
    np.testing.assert_array_equal(pairs["ctr_first"].to_numpy(), ctr[pairs["creative_first"]].to_numpy())
    np.testing.assert_array_equal(pairs["ctr_second"].to_numpy(), ctr[pairs["creative_second"]].to_numpy())
    assert pairs["elements_first"].map(lambda e: e[0]).tolist() == pairs["creative_first"].tolist()


def test_zero_ctr_creatives_pair_only_when_allowed_and_unbounded():
    frame = outcomes([("a1", "A", 100, 1000), ("a7", "A", 0, 5000)])
    with pytest.raises(InputError):
        build_pairs(frame, PairConfig(min_impressions=1000, max_ratio=None))
    pairs = build_pairs(frame, PairConfig(min_impressions=1000, max_ratio=None, require_positive_ctr=False))
    assert unordered(pairs) == {frozenset(("a1", "a7"))}


def test_better_side_is_randomised_and_roughly_balanced():
    rows = []
    for i in range(400):
        rows += [(f"c{i}_lo", f"p{i}", 100, 1000), (f"c{i}_hi", f"p{i}", 110, 1000)]
    frame = outcomes(rows)
    pairs = build_pairs(frame, PairConfig(min_impressions=10, seed=1))
    assert len(pairs) == 400
    assert 0.4 < pairs["first_is_better"].mean() < 0.6
    assert pairs["creative_first"].str.endswith("_hi").tolist() == pairs["first_is_better"].astype(bool).tolist()
    again = build_pairs(frame, PairConfig(min_impressions=10, seed=1))
    other = build_pairs(frame, PairConfig(min_impressions=10, seed=2))
    pd.testing.assert_frame_equal(pairs, again)
    assert (pairs["first_is_better"] != other["first_is_better"]).any()


def test_auto_threshold_is_the_lower_quartile_between_fifty_and_the_papers_thousand():
    assert PairConfig().min_impressions == "auto"  # the default adapts to the market
    many = outcomes([(f"c{i}", "A", 1, 100 * (i + 1)) for i in range(8)])  # 100 ... 800 impressions
    expected = int(np.ceil(np.quantile(many["trials"], 0.25)))
    assert impression_threshold(many, PairConfig(min_impressions="auto")) == expected
    busy = outcomes([(f"c{i}", "A", 100 + 3 * i, 10_000 * (i + 1)) for i in range(8)])  # traffic allows 1000
    assert impression_threshold(busy, PairConfig()) == 1000
    pairs = build_pairs(busy, PairConfig(max_ratio=None))
    assert pairs.attrs["min_impressions"] == 1000
    few = outcomes([(f"c{i}", "A", 1, 10 + i) for i in range(8)])
    assert impression_threshold(few, PairConfig(min_impressions="auto")) == 50
    assert impression_threshold(few, PairConfig(min_impressions=7)) == 7


def test_no_qualifying_pair_names_the_counts():
    frame = outcomes([("a1", "A", 10, 100), ("a2", "A", 11, 100), ("a3", "A", 30, 2000), ("b1", "B", 1, 50)])
    with pytest.raises(InputError) as error:
        build_pairs(frame, PairConfig(min_impressions=1000))
    message = str(error.value)
    assert "1 of 4 creatives have at least 1000 impressions" in message
    assert "0 products" in message and "min_impressions" in message


@pytest.mark.parametrize(
    "bad", [{"min_impressions": -1}, {"min_impressions": "many"}, {"min_ratio": 0.9}, {"min_ratio": 1.3}]
)
def test_bad_pair_settings_are_refused(bad):
    with pytest.raises(InputError):
        PairConfig(**bad)


def test_bayes_optimal_accuracy_scores_truth_against_observed_labels():
    pairs = pd.DataFrame({"first_is_better": [1, 0, 1, 0]})
    # truth agrees on pairs 0 and 1, disagrees on pair 2, ties on pair 3
    assert bayes_optimal_accuracy(pairs, [0.2, 0.1, 0.1, 0.3], [0.1, 0.2, 0.2, 0.3]) == pytest.approx(2.5 / 4)


def test_probabilities_of_opposite_logits_sum_to_exactly_one():
    logits = np.concatenate([np.linspace(-40, 40, 1001), np.random.default_rng(0).normal(0, 3, 1000)])
    assert np.all(probability_from_logit(logits) + probability_from_logit(-logits) == 1.0)
    np.testing.assert_allclose(probability_from_logit(logits), 1 / (1 + np.exp(-logits)), rtol=1e-12, atol=1e-15)


def test_validation_pairs_use_only_later_impressions(gap_market):
    market, _ = gap_market
    log = click_log(market)
    train_pairs, valid_pairs = pair_split(log, FAST)
    _, valid = time_split(log, FAST.split)
    later = creative_outcomes(valid).set_index("creative_id")["trials"]
    for side in ("first", "second"):
        np.testing.assert_array_equal(valid_pairs[f"trials_{side}"], later[valid_pairs[f"creative_{side}"]])
    assert len(train_pairs) > len(valid_pairs) > 10


def test_a_validation_part_without_pairs_is_refused(gap_market):
    market, _ = gap_market
    config = PairwiseConfig(pairs=PairConfig(min_impressions=200), split=SplitConfig(valid_fraction=0.05))
    with pytest.raises(InputError, match="validation part"):
        pair_split(click_log(market), config)


def test_comparison_is_antisymmetric(trained, gap_market):
    market, _ = gap_market
    creatives = market.creatives
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(creatives), 50), rng.integers(0, len(creatives), 50)
    products = creatives["product_id"].iloc[a].tolist()
    combos_a, combos_b = creatives["elements"].iloc[a].tolist(), creatives["elements"].iloc[b].tolist()
    images = rng.normal(size=(50, trained.mean_image.shape[0])).astype(np.float32)
    p_ab = trained.prob_first_better(products, combos_a, combos_b, images_a=images)
    p_ba = trained.prob_first_better(products, combos_b, combos_a, images_b=images)
    assert np.all(p_ab + p_ba == 1.0)
    assert np.all(trained.prob_first_better(products, combos_a, combos_a) == 0.5)
    assert p_ab.std() > 0.01  # not trivially 1/2


def test_training_loss_decreases(trained):
    history = trained.history
    assert history.train_loss[-1] < 0.8 * history.train_loss[0]
    assert 0 <= history.best_epoch < len(history.valid_loss)


def test_validation_accuracy_beats_chance(trained, gap_market):
    market, truth = gap_market
    _, valid_pairs = pair_split(click_log(market), FAST)
    assert trained.n_valid_pairs == len(valid_pairs)
    assert trained.valid_accuracy > 0.65
    true_ctr = truth.creatives.set_index("creative_id")["true_ctr"]
    ceiling = bayes_optimal_accuracy(
        valid_pairs, true_ctr[valid_pairs["creative_first"]], true_ctr[valid_pairs["creative_second"]]
    )
    assert trained.valid_accuracy > ceiling - 0.2


def test_missing_images_use_the_mean_training_feature(trained, gap_market):
    market, _ = gap_market
    creatives = market.creatives.head(6)
    products, combos = creatives["product_id"].tolist(), creatives["elements"].tolist()
    mean = np.repeat(trained.mean_image[None, :], 6, axis=0)
    partly = mean.copy()
    partly[:3] = np.nan
    without = trained.predict_ctr(products, combos)
    np.testing.assert_array_equal(without, trained.predict_ctr(products, combos, images=mean))
    np.testing.assert_array_equal(without, trained.predict_ctr(products, combos, images=partly))
    with pytest.raises(InputError, match="shape"):
        trained.predict_ctr(products, combos, images=mean[:, :3])


def test_point_head_ranks_creatives_like_the_truth(trained, gap_market, tmp_path, monkeypatch):
    market, truth = gap_market
    monkeypatch.setenv("ADCRAFT_CACHE_DIR", str(tmp_path))
    creatives = market.creatives
    features = creative_image_features(market, creatives["creative_id"].tolist(), FAST.encoding)
    images = np.stack([features[c] for c in creatives["creative_id"]])
    predicted = trained.predict_ctr(creatives["product_id"].tolist(), creatives["elements"].tolist(), images)
    true_ctr = truth.creatives.set_index("creative_id")["true_ctr"][creatives["creative_id"]].to_numpy()
    ranks = pd.DataFrame({"p": predicted, "t": true_ctr}).rank()
    assert np.corrcoef(ranks["p"], ranks["t"])[0, 1] > 0.5
    assert np.all((predicted > 0) & (predicted < 1))


def test_save_and_load_give_identical_outputs(trained, gap_market, tmp_path):
    market, _ = gap_market
    trained.save(tmp_path / "model")
    loaded = PairwiseModel.load(tmp_path / "model")
    creatives = market.creatives
    products, combos = creatives["product_id"].tolist(), creatives["elements"].tolist()
    shuffled = creatives["elements"].sample(frac=1, random_state=0).tolist()
    np.testing.assert_array_equal(
        trained.prob_first_better(products, combos, shuffled), loaded.prob_first_better(products, combos, shuffled)
    )
    np.testing.assert_array_equal(trained.predict_ctr(products, combos), loaded.predict_ctr(products, combos))
    assert loaded.config == trained.config
    assert (loaded.n_train_pairs, loaded.n_valid_pairs, loaded.valid_accuracy) == (
        trained.n_train_pairs, trained.n_valid_pairs, trained.valid_accuracy
    )
    assert loaded.history.train_loss == trained.history.train_loss


def test_loading_another_kind_of_model_is_refused(tmp_path):
    from adcraft.learning.artifacts import save_artifact

    save_artifact(tmp_path / "other", "ctr", {}, {"w": np.zeros(2, dtype=np.float32)})
    with pytest.raises(InputError, match="pairwise"):
        PairwiseModel.load(tmp_path / "other")


def test_score_market_uses_the_point_head_for_every_past_creative(trained, gap_market):
    market, _ = gap_market
    scores = trained.score_market(market)
    assert sorted(scores["creative_id"]) == sorted(market.creatives["creative_id"])
    assert scores["predicted_ctr"].between(0, 1).all() and scores["predicted_ctr"].nunique() > 1


def test_lambda_point_is_chosen_among_the_candidates_by_inner_validation(trained):
    selection = trained.lambda_point_selection
    assert set(selection) == set(FAST.lambda_point_candidates)
    assert all(np.isfinite(loss) and loss > 0 for loss in selection.values())
    assert trained.config.lambda_point == min(selection, key=selection.get)


def test_lambda_point_choice_never_sees_the_validation_part(gap_market, tmp_path, monkeypatch):
    monkeypatch.setenv("ADCRAFT_CACHE_DIR", str(tmp_path / "cache"))
    market, _ = gap_market
    log = click_log(market)
    _, valid = time_split(log, FAST.split)
    cutoff = valid["time"].min()
    imp = market.impressions.copy()
    later = imp["ts"].to_numpy() // 86400 * 86400 >= cutoff
    imp.loc[later, "click"] = 1 - imp.loc[later, "click"]  # the held-out part says the opposite
    flipped = dataclasses.replace(market, impressions=imp)
    trainer = PairwiseTrainer(FAST)
    config, losses = trainer._chosen_config(market, log)
    config_flipped, losses_flipped = trainer._chosen_config(flipped, click_log(flipped))
    assert config_flipped.lambda_point == config.lambda_point
    assert losses_flipped == pytest.approx(losses, rel=1e-6)


def test_without_candidates_lambda_point_is_kept(gap_market, tmp_path, monkeypatch):
    monkeypatch.setenv("ADCRAFT_CACHE_DIR", str(tmp_path / "cache"))
    market, _ = gap_market
    model = PairwiseTrainer(dataclasses.replace(FAST, lambda_point=0.7, lambda_point_candidates=())).fit(market)
    assert model.lambda_point_selection is None
    assert model.config.lambda_point == 0.7


@pytest.mark.parametrize("candidates", [(-1.0,), (float("nan"), 1.0), (float("inf"),)])
def test_bad_lambda_point_candidates_are_refused(candidates):
    with pytest.raises(InputError, match="lambda_point_candidates"):
        PairwiseConfig(lambda_point_candidates=candidates)


# -- reviewers' pairs ----------------------------------------------------------------------------------------


def swapped(combo, slot: int, element: str) -> list[str]:
    out = list(combo)
    out[slot] = element
    return out


def background_swaps(market, worse: str, better: str) -> pd.DataFrame:
    """A reviewer's pair per logged creative: its combination with background ``better`` approved over the same
    combination with background ``worse``."""
    slot = market.config.slots.index("background")
    creatives = market.creatives
    return pd.DataFrame({
        "product_id": creatives["product_id"],
        "approved": [swapped(c, slot, better) for c in creatives["elements"]],
        "rejected": [swapped(c, slot, worse) for c in creatives["elements"]],
    })


def test_reviewer_pairs_keep_what_the_market_knows_and_put_the_approved_side_by_a_coin(gap_market):
    market, _ = gap_market
    backgrounds = sorted(market.elements.loc[market.elements["slot"] == "background", "element_id"])
    reviewed = background_swaps(market, backgrounds[0], backgrounds[1])
    unknown_product = reviewed.iloc[:1].assign(product_id="no-such-product")
    unknown_element = reviewed.iloc[:1].assign(approved=[swapped(reviewed["approved"].iloc[0], 0, "no-such-title")])
    short = reviewed.iloc[:1].assign(rejected=[reviewed["rejected"].iloc[0][:-1]])
    pairs = reviewed_pairs(pd.concat([reviewed, unknown_product, unknown_element, short], ignore_index=True),
                           market, weight=2.5, seed=3)
    assert len(pairs) == len(reviewed) and pairs.attrs["left_out"] == 3
    assert set(PAIR_COLUMNS) <= set(pairs.columns)
    first_approved = [a == f for a, f in zip(reviewed["approved"], pairs["elements_first"])]
    assert np.array_equal(np.asarray(first_approved), pairs["first_is_better"].to_numpy() == 1)
    assert 0 < pairs["first_is_better"].mean() < 1  # the side is a coin, not always first
    assert (pairs["pair_weight"] == 2.5).all() and (pairs["point_weight"] == 0).all()
    with pytest.raises(InputError, match="preference_pairs"):
        reviewed_pairs(reviewed.drop(columns="rejected"), market)


def test_reviewer_pairs_enter_the_pair_term_only():
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(0)
    outputs = tuple(torch.randn(6, generator=generator) for _ in range(3))
    label = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    first, second = torch.randn(6, generator=generator), torch.randn(6, generator=generator)
    ones = torch.ones(6)
    plain = pairwise_loss(outputs, label, first, second, FAST)
    assert float(pairwise_loss(outputs, label, first, second, FAST, ones, ones)) == pytest.approx(float(plain))
    point = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    moved_first, moved_second = first.clone(), second.clone()
    moved_first[3:] += 100.0
    moved_second[3:] -= 100.0  # a reviewer's pair has no CTR: its point targets are never read
    base = pairwise_loss(outputs, label, first, second, FAST, ones, point)
    assert float(pairwise_loss(outputs, label, moved_first, moved_second, FAST, ones, point)) == float(base)
    heavier = ones.clone()
    heavier[3:] = 3.0
    assert float(pairwise_loss(outputs, label, first, second, FAST, heavier, point)) > float(base)


def test_reviewers_teach_the_judge_a_preference_the_clicks_do_not_show(gap_market, tmp_path, monkeypatch):
    monkeypatch.setenv("ADCRAFT_CACHE_DIR", str(tmp_path / "cache"))
    market, _ = gap_market
    config = dataclasses.replace(FAST, lambda_point_candidates=())
    clicks_only = PairwiseTrainer(config).fit(market)
    slot = market.config.slots.index("background")
    backgrounds = sorted(market.elements.loc[market.elements["slot"] == "background", "element_id"])
    creatives = market.creatives
    products, combos = creatives["product_id"].tolist(), creatives["elements"].tolist()

    def beats(model, better: str, worse: str) -> float:
        """Mean P(a logged creative with ``better`` beats it with ``worse``) over the logged creatives."""
        return float(np.mean(model.prob_first_better(products, [swapped(c, slot, better) for c in combos],
                                                     [swapped(c, slot, worse) for c in combos])))

    # the pair of backgrounds that the clicks alone order most clearly; reviewers say the opposite
    preferred, other = max(((a, b) for a in backgrounds for b in backgrounds if a != b),
                           key=lambda pair: beats(clicks_only, *pair))
    assert beats(clicks_only, other, preferred) < 0.5
    reviewed = background_swaps(market, worse=preferred, better=other)
    taught = PairwiseTrainer(dataclasses.replace(config, reviewed_weight=3.0)).fit(market, reviewed=reviewed)
    lighter = PairwiseTrainer(dataclasses.replace(config, reviewed_weight=0.3)).fit(market, reviewed=reviewed)
    # measured: 0.32 from the clicks alone, 0.51 with the light reviewers' weight, 0.63 with the heavy one
    assert beats(taught, other, preferred) > 0.55
    assert beats(taught, other, preferred) > beats(clicks_only, other, preferred) + 0.2
    assert beats(clicks_only, other, preferred) < beats(lighter, other, preferred) < beats(taught, other, preferred)
    assert taught.reviewed_pairs == {"used": len(creatives), "left_out": 0}
    assert taught.n_train_pairs == clicks_only.n_train_pairs  # the count of logged pairs, as before
    assert taught.n_valid_pairs == clicks_only.n_valid_pairs  # validation stays on logged pairs
    assert taught.metrics(market)["pairwise"]["reviewed_pairs"] == taught.reviewed_pairs
    taught.save(tmp_path / "taught")
    assert PairwiseModel.load(tmp_path / "taught").reviewed_pairs == taught.reviewed_pairs


def test_bad_reviewed_weight_is_refused():
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InputError, match="reviewed_weight"):
            PairwiseConfig(reviewed_weight=bad)
