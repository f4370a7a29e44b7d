from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from adcraft.configuration import from_mapping
from adcraft.errors import InputError
from adcraft.generate.combo import (
    BehaviourCloningConfig,
    BehaviourCloningData,
    ComboConfig,
    ComboGenerator,
    ComboTrainer,
    PolicyConfig,
    RLConfig,
    behaviour_cloning_proposals,
    best_combinations,
    combination_space_sizes,
    diverse_top_k,
    elementwise_greedy_proposals,
    group_advantages,
    logged_combinations,
)
from adcraft.generate.combo_policy import ComboPolicyNetwork, PolicyBatch, rollout
from adcraft.market import Market, MarketConfig
from adcraft.rewards.encoding import EncodingConfig

TINY = EncodingConfig(text_backbone="tiny", embedding_dim=16)
FAST = ComboConfig(
    policy=PolicyConfig(encoding=TINY, hidden=32),
    bc=BehaviourCloningConfig(epochs=40),
    rl=RLConfig(steps=120, samples_per_product=8, learning_rate=0.01),
)
SLOTS = ("title", "highlight", "background", "template")
CATEGORIES = {"p0": "lamp", "p1": "lamp", "p2": "mug", "p3": "mug", "p4": "chair", "p5": "chair"}
BACKGROUNDS = ["warm beige studio", "dark concrete wall", "pastel pink marble", "white linen texture",
               "mint green gradient"]
TEMPLATES = ["center", "left", "banner"]
LOGGED = [("0", "h0", "b0", "center", 600), ("1", "h1", "b1", "left", 300), ("0", "h2", "b0", "banner", 100)]


def synthetic_market() -> Market:
    """6 products x (2 own titles, 4 highlights, 5 backgrounds, 3 templates) = 120 combinations each, plus
    a highlight usable for p0 only; 3 logged creatives per product with impressions 600 / 300 / 100."""
    products = pd.DataFrame({
        "product_id": list(CATEGORIES), "title": [f"{c} number {p[1]}" for p, c in CATEGORIES.items()],
        "category": list(CATEGORIES.values()), "image": "images/p.png", "price": None, "attributes": None,
    })
    rows = [(f"t_{p}_{i}", "title", p, f"Great {c} {i}", None) for p, c in CATEGORIES.items() for i in range(2)]
    rows += [(f"h{i}", "highlight", None, text, None)
             for i, text in enumerate(["Free shipping", "20% off", "Bestseller", "New arrival"])]
    rows += [("h_p0_only", "highlight", "p0", "Exclusive to this lamp", None)]
    rows += [(f"b{i}", "background", None, None, v) for i, v in enumerate(BACKGROUNDS)]
    rows += [(v, "template", None, None, v) for v in TEMPLATES]
    elements = pd.DataFrame(rows, columns=["element_id", "slot", "product_id", "text", "value"]).assign(image=None)
    creatives, stats = [], []
    for p in CATEGORIES:
        for i, (title, h, b, tpl, shown) in enumerate(LOGGED):
            creatives.append((f"c_{p}_{i}", p, [f"t_{p}_{title}", h, b, tpl], None))
            stats.append((f"c_{p}_{i}", None, shown, shown // 20))
    return Market(
        root=None, config=MarketConfig(slots=SLOTS), products=products, elements=elements,
        creatives=pd.DataFrame(creatives, columns=["creative_id", "product_id", "elements", "image"]),
        creative_stats=pd.DataFrame(stats, columns=["creative_id", "date", "impressions", "clicks"]),
    )


def table_reward(values: dict[str, float], bonus: float = 1.5):
    """An additive reward table with one interaction (the mediocre background b3 with the best template,
    left) and a product term (each product prefers its second title when its index is odd)."""

    def reward(product_ids, combos, contexts=None):
        out = []
        for product, combo in zip(product_ids, combos):
            score = sum(values.get(e, 0.0) for e in combo)
            score += 0.7 * (combo[0].endswith("_1") == (int(product[-1]) % 2 == 1))
            score += bonus * ("b3" in combo and "left" in combo)
            out.append(score)
        return np.array(out)

    return reward


VALUES = {"h0": 0.2, "h1": 0.5, "h2": -0.3, "h3": 0.9, "h_p0_only": 50.0,
          "b0": 0.4, "b1": -0.2, "b2": 0.8, "b3": 0.1, "b4": 0.0, "center": 0.3, "left": 0.6, "banner": -0.4}
REWARD = table_reward(VALUES)


@pytest.fixture(scope="module")
def market() -> Market:
    return synthetic_market()


REWARD_CALLS: list[tuple[str, tuple[str, ...]]] = []


def counted_reward(product_ids, combos):
    REWARD_CALLS.extend(zip(product_ids, map(tuple, combos)))
    return REWARD(product_ids, combos)


@pytest.fixture(scope="module")
def trained(market) -> ComboGenerator:
    REWARD_CALLS.clear()
    generator = ComboTrainer(FAST).fit(market, counted_reward)
    generator.reward = REWARD
    return generator


@pytest.fixture(scope="module")
def optimum(market) -> pd.DataFrame:
    return best_combinations(market, REWARD, k=1)


def usable(market: Market, product: str, slot: str) -> set[str]:
    return set(market.usable_elements(product, slot)["element_id"])


def assert_usable(market: Market, proposals: pd.DataFrame) -> None:
    for product, elements in zip(proposals["product_id"], proposals["elements"]):
        assert len(elements) == len(market.slots)
        for slot, element in zip(market.slots, elements):
            assert element in usable(market, product, slot), (product, slot, element)


def test_proposals_and_samples_only_use_elements_usable_for_the_product(trained, market):
    proposals = trained.propose(k=6)
    assert_usable(market, proposals)
    # A highlight usable for p0 alone is worth 50 under the reward, so p0 takes it and no other product does.
    assert all(e[1] == "h_p0_only" for e in proposals.loc[proposals["product_id"] == "p0", "elements"].head(3))
    assert not any("h_p0_only" in e for e in proposals.loc[proposals["product_id"] != "p0", "elements"])
    assert_usable(market, trained.most_probable(k=20))
    assert_usable(market, elementwise_greedy_proposals(market, REWARD, k=4))


def test_masks_hold_on_a_simulated_market(generator_market):
    market, _ = generator_market
    config = dataclasses.replace(FAST, bc=BehaviourCloningConfig(epochs=5), rl=RLConfig(steps=10))
    reward = table_reward({e: (hash(e) % 7) / 7 for e in market.elements["element_id"]})
    generator = ComboTrainer(config).fit(market, reward)
    assert_usable(market, generator.propose(k=4))
    assert_usable(market, behaviour_cloning_proposals(generator, k=3))


def test_behaviour_cloning_raises_the_likelihood_of_logged_combinations(market):
    logged = market.creatives
    untrained = ComboTrainer(dataclasses.replace(FAST, bc=BehaviourCloningConfig(epochs=0))).fit(market, None)
    cloned = ComboTrainer(FAST).fit(market, None)
    before = untrained.log_prob(logged["product_id"], logged["elements"])
    after = cloned.log_prob(logged["product_id"], logged["elements"])
    assert (after > before).all()
    assert cloned.history.bc_loss[-1] < cloned.history.bc_loss[0]
    # The most-shown creative (600 of 1000 impressions) becomes each product's most probable one.
    mode = behaviour_cloning_proposals(cloned, k=1)
    assert [e[1:] for e in mode["elements"]] == [["h0", "b0", "center"]] * len(CATEGORIES)


def test_behaviour_cloning_equals_the_hand_written_loop_it_replaced(market):
    """Behaviour cloning runs through ``fit``; it ends with the same bits as the loop it had of its own:
    AdamW, one generator for the shuffles and the hidden products, the loss weighted by impressions."""
    config = dataclasses.replace(FAST, bc=BehaviourCloningConfig(epochs=3, batch_size=4))
    cloned = ComboTrainer(config).fit(market, None)
    untrained = ComboTrainer(dataclasses.replace(config, bc=BehaviourCloningConfig(epochs=0))).fit(market, None)
    network, inputs, settings = untrained.network, untrained.inputs(), config.bc
    eps = settings.label_smoothing
    data = BehaviourCloningData.of(inputs, untrained.vocab, logged_combinations(market, False), config.policy.encoding)
    optimiser = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    generator, losses = torch.Generator().manual_seed(config.seed), []
    network.train()
    for _ in range(settings.epochs):
        order, total = torch.randperm(len(data), generator=generator), 0.0
        for start in range(0, len(data), settings.batch_size):
            index = order[start:start + settings.batch_size]
            hidden = torch.rand(len(index), generator=generator) < config.policy.product_dropout
            batch = PolicyBatch(data.rows[index], inputs.products[data.rows[index]].masked_fill(hidden, 0),
                                data.tokens[index])
            result = rollout(network, inputs, batch, data.actions[index])
            target = (1.0 - eps) * result.log_prob + eps * result.uniform_log_prob
            loss = -(data.weights[index] * target).sum() / data.weights[index].sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * float(data.weights[index].sum())
        losses.append(total / float(data.weights.sum()))
    assert len(data) > settings.batch_size and config.policy.product_dropout > 0
    assert cloned.history.bc_loss == losses
    assert all(torch.equal(v, network.state_dict()[k]) for k, v in cloned.network.state_dict().items())


def test_rl_raises_the_reward_above_behaviour_cloning_and_nears_the_optimum(trained, market, optimum):
    history = trained.history
    assert np.mean(history.reward[-10:]) > np.mean(history.reward[:10]) + 1.0
    rl = trained.most_probable(k=1)
    bc = behaviour_cloning_proposals(trained, k=1, reward=REWARD)
    best = optimum.set_index("product_id")["reward"]
    assert rl["reward"].mean() > bc["reward"].mean() + 1.0
    # The greedy decode of the RL policy is within 0.1 of the exhaustive optimum on average (the
    # optimum's range over products is about 4 to 53).
    gap = best.loc[rl["product_id"]].to_numpy() - rl["reward"].to_numpy()
    assert (gap >= -1e-9).all() and gap.mean() < 0.1
    top = trained.propose(k=3)
    np.testing.assert_allclose(top.loc[top["rank"] == 1, "reward"], best.loc[top["product_id"].unique()])


def test_kl_is_zero_at_the_start_and_grows_as_the_policy_moves(trained):
    assert trained.history.kl[0] == pytest.approx(0.0, abs=1e-6)
    assert max(trained.history.kl) > 0.1


def final_mean(history: list[float]) -> float:
    return float(np.mean(history[-10:]))


def test_entropy_bonus_keeps_the_entropy_higher(market, trained):
    config = dataclasses.replace(FAST, rl=dataclasses.replace(FAST.rl, entropy_coef=2.0))
    bonus = ComboTrainer(config).fit(market, REWARD).history
    # Normalised advantages are worth about 1 nat each, so only a bonus of that order holds the entropy up
    # (the default 0.01 mostly acts while the policy is still spread out).
    assert final_mean(bonus.entropy) > final_mean(trained.history.entropy) + 1.0


def test_kl_penalty_keeps_the_policy_closer_to_the_reference(market, trained):
    config = dataclasses.replace(FAST, rl=dataclasses.replace(FAST.rl, kl_coef=1.0))
    assert final_mean(ComboTrainer(config).fit(market, REWARD).history.kl) < 0.5 * final_mean(trained.history.kl)


def test_propose_returns_k_distinct_combinations_ranked_by_reward(trained, market):
    k = 6
    proposals = trained.propose(k=k)
    assert list(proposals.columns[:4]) == ["product_id", "rank", "elements", "reward"]
    for product, group in proposals.groupby("product_id"):
        assert group["rank"].tolist() == list(range(1, k + 1))
        assert len({tuple(e) for e in group["elements"]}) == k
        assert (np.diff(group["reward"].to_numpy()) <= 1e-12).all()
        np.testing.assert_allclose(group["reward"], REWARD([product] * k, group["elements"].tolist()))


def test_included_combinations_join_the_candidates_and_are_ranked_like_the_rest(trained, market):
    # The combination the reward table likes least for p1: the policy has no reason to propose it.
    space = [tuple(c) for c in itertools.product(*(sorted(usable(market, "p1", s)) for s in SLOTS))]
    target = min(space, key=lambda c: REWARD(["p1"], [list(c)])[0])

    def prized(product_ids, combos, contexts=None):  # the table, with the target made the best by far
        return REWARD(product_ids, combos) + 100.0 * np.array([tuple(c) == target for c in combos])

    plain = trained.propose(["p1"], k=3, reward=prized)
    assert target not in {tuple(e) for e in plain["elements"]}  # else its prize would have made it rank 1
    joined = trained.propose(["p1"], k=3, reward=prized, include={"p1": {target}})
    assert tuple(joined["elements"].iloc[0]) == target and joined["reward"].iloc[0] > 99
    # Rejected wins over approved; a combination the market no longer allows for the product never joins.
    assert trained.propose(["p1"], k=3, reward=prized, include={"p1": {target}}, exclude={"p1": {target}}
                           )["elements"].map(tuple).tolist() == plain["elements"].map(tuple).tolist()
    foreign = ("t_p0_0",) + target[1:]  # p0's own title
    gone = target[:2] + ("b-gone",) + target[3:]
    assert trained.allowed_combinations({"p1": [foreign, gone, target], "p-gone": [target]}) == {"p1": [target]}
    assert trained.propose(["p1"], k=3, reward=prized, include={"p1": {foreign, gone}}
                           )["elements"].map(tuple).tolist() == plain["elements"].map(tuple).tolist()


def test_diversity_caps_the_proposals_sharing_the_pivot_slots_element():
    # Slot 1 decides the reward (element 0 is worth 10); slot 0 barely matters.
    actions = np.array([[a, b] for a in range(3) for b in range(3)])
    scores = np.array([10.0 * (b == 0) + 0.1 * a for a, b in actions])
    chosen = diverse_top_k(actions, scores, np.zeros(len(actions)), k=4, min_distinct_slots=1, max_share=0.5)
    assert sum(actions[i, 1] == 0 for i in chosen) == 2  # ceil(0.5 * 4)
    assert [scores[i] for i in chosen] == sorted((scores[i] for i in chosen), reverse=True)
    plain = diverse_top_k(actions, scores, np.zeros(len(actions)), k=4, min_distinct_slots=1, max_share=1.0)
    assert sum(actions[i, 1] == 0 for i in plain) == 3
    # Fewer candidates than k: all of them; a cap that leaves too few is filled from the capped ones.
    assert len(diverse_top_k(actions[:2], scores[:2], np.zeros(2), 5, 1, 0.5)) == 2
    assert len(diverse_top_k(actions[actions[:, 1] == 0], scores[actions[:, 1] == 0], np.zeros(3), 3, 1, 0.2)) == 3


def test_by_default_proposals_change_two_slots_of_rank_one_where_candidates_allow(trained):
    proposals = trained.propose(k=3)
    for _, group in proposals.groupby("product_id"):
        first, *rest = [np.array(e) for e in group["elements"]]
        assert rest and all((other != first).sum() >= 2 for other in rest)


def test_rank_one_rule_then_fills_in_with_the_nearest_when_too_few_are_far():
    actions = np.array([[a, b] for a in range(3) for b in range(3)])  # (0, 0) first: 4 candidates differ in both
    scores = -np.arange(9.0)
    chosen = diverse_top_k(actions, scores, np.zeros(9), k=3, min_distinct_slots=1, max_share=1.0,
                           min_slots_from_first=2)
    assert chosen[0] == 0 and all((actions[i] != actions[0]).all() for i in chosen[1:])
    everything = diverse_top_k(actions, scores, np.zeros(9), k=9, min_distinct_slots=1, max_share=1.0,
                               min_slots_from_first=5)  # more than the slots: all of them must differ
    assert sorted(everything) == list(range(9))  # too few far ones: the near ones fill in, best first
    five = diverse_top_k(actions, scores, np.zeros(9), k=5, min_distinct_slots=1, max_share=1.0,
                         min_slots_from_first=2)
    assert five == [0, 4, 5, 7, 8]  # the far ones before better-scored near ones


def test_custom_slots_small_spaces_and_single_element_slots():
    products = pd.DataFrame({"product_id": ["a", "b"], "title": ["Oak desk", "Tea cup"],
                             "category": ["desk", "cup"], "image": "p.png"})
    elements = pd.DataFrame({
        "element_id": ["a_head_0", "a_head_1", "b_head_0", "b_head_1", "b_head_2", "ink"],
        "slot": ["headline", "headline", "headline", "headline", "headline", "ink_colour"],
        "product_id": ["a", "a", "b", "b", "b", None],
        "text": ["Solid oak", "Handmade", "Fine china", "Dishwasher safe", "Set of two", None],
        "value": [None] * 5 + ["#112233"], "image": None,
    })
    market = Market(root=None, config=MarketConfig(slots=("headline", "ink_colour")), products=products,
                    elements=elements)
    values = {"a_head_1": 1.0, "b_head_2": 2.0, "b_head_0": 1.0}

    def reward(product_ids, combos):
        return np.array([sum(values.get(e, 0.0) for e in combo) for combo in combos])
    generator = ComboTrainer(dataclasses.replace(FAST, rl=RLConfig(steps=20))).fit(market, reward)
    proposals = generator.propose(k=5)
    assert proposals.groupby("product_id").size().to_dict() == {"a": 2, "b": 3}
    assert proposals.loc[proposals["rank"] == 1, "elements"].tolist() == [["a_head_1", "ink"], ["b_head_2", "ink"]]
    assert generator.log_prob(["a"], [["a_head_0", "ink"]])[0] > -math.inf
    assert combination_space_sizes(market).to_dict() == {"a": 2, "b": 3}


def test_new_elements_and_products_added_after_training_are_scored_and_proposed(trained, market):
    extra_elements = pd.DataFrame([
        ("b_new", "background", None, None, "warm beige studio with soft shadow", None),
        ("t_p9_0", "title", "p9", "Great lamp 0", None, None),
        ("t_p9_1", "title", "p9", "Great lamp 1", None, None),
    ], columns=market.elements.columns)
    grown = dataclasses.replace(
        market, elements=pd.concat([market.elements, extra_elements], ignore_index=True),
        products=pd.concat([market.products, pd.DataFrame([{
            "product_id": "p9", "title": "lamp number 9", "category": "lamp", "image": "images/p.png"}])],
            ignore_index=True),
    )
    reward = table_reward({**VALUES, "b_new": 3.0})
    proposals = trained.propose(["p1", "p9"], k=3, reward=reward, market=grown)
    assert_usable(grown, proposals)
    assert all(e[2] == "b_new" for e in proposals.loc[proposals["rank"] == 1, "elements"])
    log_prob = trained.log_prob(["p9"], [["t_p9_0", "h0", "b_new", "left"]], market=grown)
    assert np.isfinite(log_prob).all()
    # An unseen element with the same words as a seen one is scored like it (only its id vector is missing).
    similar = trained.log_prob(["p1", "p1"], [["t_p1_0", "h0", b, "left"] for b in ("b0", "b_new")], market=grown)
    others = trained.log_prob(["p1"] * 4, [["t_p1_0", "h0", b, "left"] for b in ("b1", "b2", "b3", "b4")],
                              market=grown)
    assert abs(similar[1] - similar[0]) < np.max(np.abs(others - similar[0]))


def test_save_and_load_give_identical_proposals(trained, market, tmp_path):
    trained.save(tmp_path / "combo")
    loaded = ComboGenerator.load(tmp_path / "combo", market, reward=REWARD)
    pd.testing.assert_frame_equal(trained.propose(k=4), loaded.propose(k=4))
    pd.testing.assert_frame_equal(behaviour_cloning_proposals(trained, k=3), behaviour_cloning_proposals(loaded, k=3))
    assert loaded.history.reward == trained.history.reward
    assert (tmp_path / "combo" / "model.safetensors").is_file()


def test_training_is_deterministic(market):
    config = dataclasses.replace(FAST, rl=dataclasses.replace(FAST.rl, steps=20))
    a, b = ComboTrainer(config).fit(market, REWARD), ComboTrainer(config).fit(market, REWARD)
    assert a.history.reward == b.history.reward
    pd.testing.assert_frame_equal(a.propose(k=3), b.propose(k=3))


def test_reward_is_asked_once_per_distinct_combination(trained):
    assert len(REWARD_CALLS) == len(set(REWARD_CALLS)) == trained.history.reward_evaluations
    assert len(REWARD_CALLS) < FAST.rl.steps * FAST.rl.samples_per_product * len(CATEGORIES) / 4


def test_baselines_and_the_exhaustive_optimum(market, optimum):
    for product, row in optimum.set_index("product_id").iterrows():
        space = [list(c) for c in itertools.product(*[sorted(usable(market, product, s)) for s in SLOTS])]
        assert row["reward"] == pytest.approx(REWARD([product] * len(space), space).max())
    greedy = elementwise_greedy_proposals(market, REWARD, k=3)
    first = greedy[greedy["rank"] == 1].set_index("product_id")
    # p1's most-shown creative is (t_p1_0, h0, b0, center): each slot's best with the rest held there.
    assert first.loc["p1", "elements"] == ["t_p1_1", "h3", "b2", "left"]
    assert (first["reward"] <= optimum.set_index("product_id")["reward"] + 1e-9).all()
    assert best_combinations(market, REWARD, ["p0"], limit=100).empty  # 2 x 5 x 5 x 3 = 150 > 100
    assert len(best_combinations(market, REWARD, ["p1", "p2"], k=4)) == 8


def test_group_advantages():
    rewards = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    np.testing.assert_allclose(group_advantages(rewards, normalise=False), [[-1, 0, 1], [0, 0, 0]])
    np.testing.assert_allclose(group_advantages(rewards)[0], np.array([-1, 0, 1]) / np.std([1, 2, 3]))
    assert (group_advantages(rewards)[1] == 0).all()


def test_logged_combinations_weigh_each_products_impressions_to_one(market):
    logged = logged_combinations(market, use_context=False)
    assert logged.groupby("product_id")["weight"].sum().tolist() == pytest.approx([1.0] * len(CATEGORIES))
    assert logged.loc[logged["elements"].map(lambda e: e[1] == "h0"), "weight"].tolist() == pytest.approx(
        [0.6] * len(CATEGORIES))


def with_device_impressions(market: Market) -> Market:
    """The synthetic market with its creative_stats replaced by impressions on mobile (60%) and desktop."""
    rows = []
    for creative_id, shown in zip(market.creative_stats["creative_id"], market.creative_stats["impressions"]):
        for i in range(shown // 10):
            device = "mobile" if i % 5 < 3 else "desktop"
            rows.append((f"{creative_id}_{i}", 86400 * (i % 7), creative_id, int(i % 20 == 0),
                         json.dumps({"device": device})))
    impressions = pd.DataFrame(rows, columns=["impression_id", "ts", "creative_id", "click", "context"])
    return dataclasses.replace(market, creative_stats=None, impressions=impressions)


def test_contexts_condition_the_policy(market):
    contextual = with_device_impressions(market)
    wanted = {"mobile": "b0", "desktop": "b1"}  # the two logged backgrounds

    def reward(product_ids, combos, contexts=None):
        """1 for the device's background, 0 for the other device's, 0.5 for the rest (traffic mix: 60% mobile)."""
        def value(background, device):
            return 1.0 if background == wanted[device] else 0.0 if background in wanted.values() else 0.5

        if contexts is None:
            return np.array([0.6 * value(c[2], "mobile") + 0.4 * value(c[2], "desktop") for c in combos])
        return np.array([value(c[2], json.loads(x)["device"]) for c, x in zip(combos, contexts)])

    config = dataclasses.replace(FAST, policy=dataclasses.replace(FAST.policy, use_context=True))
    generator = ComboTrainer(config).fit(contextual, reward)
    assert sorted(c for c, _ in generator.contexts) == ['{"device": "desktop"}', '{"device": "mobile"}']
    for context, device in [('{"device": "desktop"}', "desktop"), ('{"device": "mobile"}', "mobile")]:
        modes = generator.most_probable(context=context)["elements"]
        assert [e[2] for e in modes] == [wanted[device]] * len(CATEGORIES)
    assert [e[2] for e in generator.most_probable()["elements"]] == ["b0"] * len(CATEGORIES)


def test_bad_inputs_raise_input_errors(trained, market):
    with pytest.raises(InputError, match="unknown product 'nope'"):
        trained.propose(["p1", "nope"])
    with pytest.raises(InputError, match="unknown product"):
        elementwise_greedy_proposals(market, REWARD, ["nope"])
    with pytest.raises(InputError, match="unknown product"):
        best_combinations(market, REWARD, ["nope"])
    with pytest.raises(InputError, match="k must be"):
        trained.propose(k=0)
    with pytest.raises(InputError, match="without contexts"):
        trained.propose(context='{"device": "mobile"}')
    with pytest.raises(InputError, match="not usable"):
        trained.log_prob(["p1"], [["t_p0_0", "h0", "b0", "left"]])
    with pytest.raises(InputError, match="one finite number per row"):
        trained.propose(["p1"], reward=lambda p, c: np.zeros(len(p) + 1))
    other = dataclasses.replace(market, config=MarketConfig(slots=("title", "highlight", "background")))
    with pytest.raises(InputError, match="slots"):
        trained.propose(market=other)
    with pytest.raises(InputError, match="unknown setting"):
        from_mapping(ComboConfig, {"rl": {"stepz": 3}})
    with pytest.raises(InputError, match="samples_per_product"):
        from_mapping(ComboConfig, {"rl": {"samples_per_product": 1}})
    config = from_mapping(ComboConfig, {"rl": {"steps": 3}, "policy": {"encoding": {"text_backbone": "tiny"}}})
    assert config.rl.steps == 3 and config.policy.encoding.text_backbone == "tiny"


def test_a_shared_library_of_two_thousand_titles_costs_products_times_used_candidates(monkeypatch):
    # 2,000 titles usable for every product: proposing scores the beam, the samples and, per slot, the
    # ``neighbours_per_slot`` likeliest alternatives, never a row per (product, library title).
    base = synthetic_market()
    library = pd.DataFrame({"element_id": [f"lib_{i}" for i in range(2000)], "slot": "title", "product_id": None,
                            "text": [f"Great find number {i}" for i in range(2000)], "value": None, "image": None})
    market = dataclasses.replace(base, elements=pd.concat([base.elements, library], ignore_index=True))
    config = dataclasses.replace(FAST, bc=BehaviourCloningConfig(epochs=2), rl=RLConfig(steps=2, products_per_step=2))
    generator = ComboTrainer(config).fit(market, REWARD)
    shapes: list[tuple[int, int]] = []
    slot_logits = ComboPolicyNetwork.slot_logits

    def recorded(self, *args, **kwargs):
        logits = slot_logits(self, *args, **kwargs)
        shapes.append(tuple(logits.shape))
        return logits

    monkeypatch.setattr(ComboPolicyNetwork, "slot_logits", recorded)
    asked: list[int] = []
    proposals = generator.propose(k=3, reward=lambda p, c: asked.append(len(c)) or REWARD(p, c))
    settings, products = config.proposals, len(CATEGORIES)
    used = settings.beam_width + settings.samples + len(SLOTS) * settings.neighbours_per_slot
    assert sum(asked) <= products * used < products * 2000
    assert max(rows for rows, _ in shapes) <= products * used
    assert max(width for _, width in shapes) == 2002  # two own titles and the library, once per row
    assert_usable(market, proposals)
