from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from adcraft.errors import InputError
from adcraft.generate.preference import (
    JUDGE_ELEMENT_PREFIX,
    PairwiseJudge,
    PhotoMasker,
    PreferenceBatch,
    PreferenceConfig,
    PreferencePairs,
    PreferenceTrainer,
    ReviewedPrompt,
    corrupt,
    dpo_loss,
    judged_pairs,
    mask_patches,
    pcpo_loss,
    reviewed_pairs,
)
from adcraft.generate.prompt import PromptModelConfig, PromptTrainer, background_prompts, tokenize
from adcraft.rewards.judge import Capabilities

TINY = PromptModelConfig(text_backbone="tiny", image_backbone="tiny", epochs=150, hidden=64, seed=0)
WORD = "shadow"


@pytest.fixture(scope="module")
def supervised(generator_market):
    return PromptTrainer(TINY).fit(generator_market[0])


def prefers_word(product_ids, prompts_a, prompts_b) -> np.ndarray:
    """A judge that likes backgrounds with the word WORD, and is indifferent otherwise."""
    a = np.array([WORD in tokenize(p) for p in prompts_a], dtype=float)
    b = np.array([WORD in tokenize(p) for p in prompts_b], dtype=float)
    return 0.5 + 0.5 * (a - b)


def word_probability(model, market) -> float:
    """Mean over products of the probability the model gives the market's prompts with WORD."""
    prompts = [p for p in background_prompts(market) if WORD in tokenize(p)]
    products = model.product_ids
    logp = model.log_prob([p for p in products for _ in prompts], prompts * len(products))
    return float(np.exp(logp).reshape(len(products), len(prompts)).sum(axis=1).mean())


def test_dpo_loss_is_the_hand_computation_and_log_two_at_the_reference():
    pc, pr, rc, rr = (torch.tensor(v) for v in ([-2.0, -1.0], [-3.0, -0.5], [-2.5, -1.5], [-2.0, -1.0]))
    expected = [-math.log(1 / (1 + math.exp(-0.5 * ((-2.0 + 2.5) - (-3.0 + 2.0))))),
                -math.log(1 / (1 + math.exp(-0.5 * ((-1.0 + 1.5) - (-0.5 + 1.0)))))]
    np.testing.assert_allclose(dpo_loss(pc, pr, rc, rr, beta=0.5).numpy(), expected, rtol=1e-6)
    same = dpo_loss(pc, pr, pc, pr, beta=0.5)
    np.testing.assert_allclose(same.numpy(), math.log(2.0), rtol=1e-6)


def test_pcpo_loss_adds_a_weighted_dpo_term_against_the_corrupted_condition():
    pc, pr, rc, rr, pk, rk = (torch.tensor([v]) for v in (-2.0, -3.0, -2.5, -2.0, -4.0, -3.0))
    plain = dpo_loss(pc, pr, rc, rr, 0.5)
    assert torch.equal(pcpo_loss(pc, pr, rc, rr, pk, rk, 0.5, weight=0.0), plain)
    both = pcpo_loss(pc, pr, rc, rr, pk, rk, 0.5, weight=1.0)
    torch.testing.assert_close(both, plain + dpo_loss(pc, pk, rc, rk, 0.5))


def test_mask_patches_blanks_three_quarters_of_the_patches():
    photo = Image.new("RGBA", (256, 192), (200, 30, 30, 255))
    masked = np.asarray(mask_patches(photo, 0.75, 32, np.random.default_rng(1)))
    patches = masked.reshape(6, 32, 8, 32, 3).transpose(0, 2, 1, 3, 4).reshape(48, -1)
    black = (patches == 0).all(axis=1)
    untouched = (patches.reshape(48, -1, 3) == (200, 30, 30)).all(axis=(1, 2))
    assert black.sum() == 36 and (black | untouched).all()
    # a grid that does not divide the image: edge patches count too, transparency turns white first
    odd = np.asarray(mask_patches(Image.new("RGBA", (70, 40), (0, 0, 0, 0)), 0.5, 32, np.random.default_rng(0)))
    cells = [odd[r : r + 32, c : c + 32] for r in (0, 32) for c in (0, 32, 64)]
    assert odd.shape == (40, 70, 3) and sum((cell == 0).all() for cell in cells) == 3
    assert all((cell == 0).all() or (cell == 255).all() for cell in cells)


def test_a_preference_round_moves_probability_toward_the_judges_choice(generator_market, supervised):
    market = generator_market[0]
    before = word_probability(supervised, market)
    for method in ("dpo", "pcpo"):
        config = PreferenceConfig(method=method, rounds=3, epochs=4, learning_rate=0.003, resample=6, seed=1)
        measure = lambda m: word_probability(m, market)  # noqa: E731
        result = PreferenceTrainer(config).fit(supervised, prefers_word, match_rate=measure)
        after = word_probability(result.policy, market)
        assert after > before + 0.05, method
        assert word_probability(result.reference, market) == pytest.approx(before)  # the reference is frozen
        history = result.history
        assert [r.round for r in history.rounds] == [1, 2, 3] and history.initial_match_rate == pytest.approx(before)
        assert history.rounds[-1].match_rate == pytest.approx(after)
        assert all(0.5 <= r.chosen_reward <= 1.0 for r in history.rounds if r.pairs)


def test_corruptions_swap_titles_or_mask_photos(generator_market, supervised):
    ids = supervised.product_ids[:4]
    elements = generator_market[0].elements
    prompts = elements.loc[elements["slot"] == "background", "value"].iloc[:4]  # four of the market's own
    chosen = [supervised.vocab.encode(p) for p in prompts]
    pairs = PreferencePairs(ids, chosen, chosen[::-1], ["x"] * 4, np.full(4, 0.9))
    text, image = supervised.condition_tensors(ids)
    rng = np.random.default_rng(0)
    swapped = corrupt(supervised, pairs, None, PreferenceConfig(mask_share=0.0), rng)
    assert torch.equal(swapped.image, image) and torch.all(swapped.weight == 1)
    for i in range(4):  # (b): another product's title, and that product's chosen prompt
        others = [j for j in range(4) if j != i and torch.equal(swapped.text[i], text[j])]
        assert len(others) == 1
        j = others[0]
        assert swapped.targets[i, : len(chosen[j])].tolist() == chosen[j]
    masker = PhotoMasker(generator_market[0], supervised)
    masked = corrupt(supervised, pairs, masker, PreferenceConfig(mask_share=1.0), rng)
    assert torch.equal(masked.text, text)  # (a): own title and prompt, blanked photo
    assert not torch.allclose(masked.image, image)
    assert masked.targets[0, : len(chosen[0])].tolist() == chosen[0]


class FakeRewardModel:
    """Stands in for a reward model: records what it was asked, prefers the first element id alphabetically."""

    capabilities = Capabilities(adds_elements=True, compares_pairs=True)

    def __init__(self, known=()):
        self.known = set(known)

    def with_elements(self, elements):
        grown = FakeRewardModel(self.known | set(elements["element_id"]))
        grown.added = elements
        return grown

    def prob_first_better(self, product_ids, combos_a, combos_b, images_a=None, images_b=None):
        self.asked = (combos_a, combos_b)
        return np.array([0.8 if a < b else 0.2 for a, b in zip(combos_a, combos_b)])


def test_pairwise_judge_turns_prompts_into_background_elements(generator_market):
    market = generator_market[0]
    creatives = market.creatives.drop_duplicates("product_id")
    base = dict(zip(creatives["product_id"], creatives["elements"]))
    judge = PairwiseJudge(FakeRewardModel(), market, base)
    slot = market.config.slots.index("background")
    pid = creatives["product_id"].iloc[0]
    known_id = market.usable_elements(pid, "background")["element_id"].iloc[0]
    known_prompt = market.element_content(known_id)
    new_prompt = "teal studio, soft shadow"
    p = judge([pid, pid], [known_prompt.upper(), new_prompt], [new_prompt, known_prompt])
    assert p.shape == (2,)
    combos_a, combos_b = judge.model.asked
    assert combos_a[0][slot] == known_id  # a prompt the product already has is its own element
    new_id = combos_b[0][slot]
    assert new_id.startswith(JUDGE_ELEMENT_PREFIX) and new_id == combos_a[1][slot]
    for a, b in zip(combos_a, combos_b):  # only the background differs from the base combination
        assert [x for k, x in enumerate(a) if k != slot] == [x for k, x in enumerate(base[pid]) if k != slot]
        assert [x for k, x in enumerate(b) if k != slot] == [x for k, x in enumerate(base[pid]) if k != slot]
    added = judge.model.added
    assert added["value"].tolist() == ["teal studio, soft shadow"] and added["product_id"].isna().all()
    assert judge.incumbent_prompts()[pid] == market.element_content(base[pid][slot])


def test_a_model_without_with_elements_cannot_judge(generator_market):
    with pytest.raises(InputError, match="with_elements"):
        PairwiseJudge(object(), generator_market[0], {})


def test_bad_preference_settings_are_refused():
    with pytest.raises(InputError, match="method"):
        PreferenceConfig(method="ppo")
    with pytest.raises(InputError, match="resample"):
        PreferenceConfig(resample=1)
    with pytest.raises(InputError, match="mask_fraction"):
        PreferenceConfig(mask_fraction=1.5)


def test_a_judge_returning_garbage_is_refused(supervised):
    with pytest.raises(InputError, match="probabilities"):
        PreferenceTrainer(PreferenceConfig(rounds=1)).fit(supervised, lambda p, a, b: np.full(len(p) + 1, 0.5))


def test_history_is_plain_data(supervised):
    result = PreferenceTrainer(PreferenceConfig(rounds=1, epochs=1)).fit(supervised, prefers_word)
    frame = result.history.frame()
    assert isinstance(frame, pd.DataFrame) and list(frame["round"]) == [1]
    assert set(result.history.to_json()) == {"rounds", "initial_match_rate", "reviewed_left_out"}


def test_a_round_equals_the_hand_written_loop_with_the_same_shuffles(supervised):
    """A round runs through ``fit``: Adam over the round's pairs, clipped gradients, the pairs shuffled by a
    generator seeded once; a loop written out by hand ends with the same weights."""
    config = PreferenceConfig(method="dpo", rounds=1, epochs=3, batch_size=2, resample=6, learning_rate=0.003)
    result = PreferenceTrainer(config).fit(supervised, prefers_word)
    policy = supervised.copy()
    sampling = torch.Generator().manual_seed(config.seed * 100_003 + 1)
    pairs = judged_pairs(policy, prefers_word, policy.product_ids, config, sampling)
    batch = PreferenceBatch.of(policy, supervised, pairs, None)
    network = policy.network.train()
    optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    shuffle = torch.Generator().manual_seed(config.seed)
    for _ in range(config.epochs):
        order, total = torch.randperm(len(batch), generator=shuffle), 0.0
        for start in range(0, len(batch), config.batch_size):
            i = order[start : start + config.batch_size]
            losses = dpo_loss(network.log_prob(batch.text[i], batch.image[i], batch.chosen[i]),
                              network.log_prob(batch.text[i], batch.image[i], batch.rejected[i]),
                              batch.reference_chosen[i], batch.reference_rejected[i], config.beta)
            optimiser.zero_grad()
            losses.mean().backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), config.max_grad_norm)
            optimiser.step()
            total += float(losses.detach().sum())
    assert len(pairs) > config.batch_size
    assert all(torch.equal(v, network.state_dict()[k]) for k, v in result.policy.network.state_dict().items())
    assert result.history.rounds[0].loss == pytest.approx(total / len(pairs), rel=1e-6)


def test_a_non_positive_gradient_clip_is_refused():
    with pytest.raises(InputError, match="max_grad_norm"):
        PreferenceConfig(max_grad_norm=0.0)


def indifferent(product_ids, prompts_a, prompts_b) -> np.ndarray:
    """A judge with no opinion: every pair is a coin it calls for the first prompt."""
    return np.full(len(product_ids), 0.5)


def test_reviewer_pairs_the_model_cannot_read_are_left_out_and_counted(generator_market, supervised):
    prompts = sorted(set(background_prompts(generator_market[0])))
    product = supervised.product_ids[0]
    pairs, left_out = reviewed_pairs(supervised, [
        ReviewedPrompt(product, prompts[0], prompts[1]),
        ReviewedPrompt("no-such-product", prompts[0], prompts[1]),
        ReviewedPrompt(product, prompts[0], "zzqx unknownword"),
        ReviewedPrompt(product, prompts[0], prompts[0].upper()),  # the same prompt once normalised
    ])
    assert left_out == 3 and pairs.product_ids == [product]
    assert pairs.chosen == [supervised.vocab.encode(prompts[0])] and pairs.prob_chosen.tolist() == [1.0]


@pytest.mark.parametrize("method", ["dpo", "pcpo"])
def test_reviewer_pairs_teach_every_round(generator_market, supervised, method):
    """A reviewer who approved prompt A over prompt B for one product: with the pair in the rounds, the policy's
    log pi(A) - log pi(B) for that product rises well above where rounds against a judge without an opinion
    leave it, and above the supervised model's."""
    prompts = sorted(set(background_prompts(generator_market[0])))
    product = supervised.product_ids[0]
    good, bad = prompts[0], prompts[-1]

    def margin(model) -> float:
        logp = model.log_prob([product, product], [good, bad])
        return float(logp[0] - logp[1])

    config = PreferenceConfig(method=method, rounds=3, epochs=4, learning_rate=0.003, resample=6, seed=1)
    alone = PreferenceTrainer(config).fit(supervised, indifferent)
    taught = PreferenceTrainer(config).fit(supervised, indifferent, reviewed=[ReviewedPrompt(product, good, bad)])
    assert [r.reviewed_pairs for r in taught.history.rounds] == [1, 1, 1]
    assert [r.reviewed_pairs for r in alone.history.rounds] == [0, 0, 0]
    assert taught.history.reviewed_left_out == 0
    assert margin(taught.policy) > margin(alone.policy) + 1.0
    assert margin(taught.policy) > margin(supervised) + 1.0
