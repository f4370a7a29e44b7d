"""Preference optimisation of the background prompt model: DPO and CAIG's PCPO, in rounds judged by a reward model.

DPO (Rafailov et al. 2023, "Direct Preference Optimization", eq. 7), per pair of a chosen prompt
y_w and a rejected prompt y_l for product x, with the frozen reference model pi_ref:

    L_DPO = -log sigmoid(beta * [(log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) - log pi_ref(y_l|x))])

PCPO (CAIG, arXiv 2502.06823, WWW 2025: product-centric preference optimisation) adds, with weight
``pcpo_weight``, a DPO-form term whose rejected side is the chosen prompt under a corrupted product
condition x':

    L_PCPO = L_DPO + w * -log sigmoid(beta * [(log pi(y_w|x) - log pi_ref(y_w|x))
                                              - (log pi(y'|x') - log pi_ref(y'|x'))])

where, with equal chance (as in the released code), either (a) x' is the product with 75% of the
32x32 patches of its photo blanked (to black, after compositing transparency onto white) and
y' = y_w; or (b) x' is this product's photo with another product's title, and y' is that other
product's chosen prompt. Both terms use beta = 0.5; sequence log-probabilities are sums over tokens.
Without image features only (b) is possible.

A round (CAIG runs 5): sample two prompts per product at temperature 1 (the first two different
ones of ``resample`` draws; a product whose draws are all the same sits the round out), let the
judge say which is better (``P(a better) >= 0.5`` makes a the chosen one), then train for
``epochs`` passes over that round's pairs against the reference, which stays the supervised model
for every round.

Reviewers teach the rounds too: ``reviewed`` pairs (``ReviewedPrompt``: per product, the background prompt of a
creative reviewers approved over that of one they rejected) join every round's judged pairs with
P(chosen better) = 1, in the same DPO/PCPO loss (their PCPO term corrupts the approved prompt like any chosen
one). A pair whose product the model does not know, or whose prompts use words outside its vocabulary, is
left out and counted (``PreferenceHistory.reviewed_left_out``).

A judge is any ``Judge``: ``(product_ids, prompts_a, prompts_b) -> P(a better)``.
``PairwiseJudge`` builds one from a reward model: it renders both prompts on the product's current
best combination (the other elements and the product's placement fixed) and asks the model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.nn import functional as F

from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.features.preprocess import to_rgb
from adcraft.generate.prompt import (
    BACKGROUND_SLOT,
    BackgroundPromptModel,
    normalize_prompt,
    pad_targets,
    product_image_encoder,
)
from adcraft.learning.training import TrainConfig, fit, torch_threads
from adcraft.market import Market
from adcraft.rewards.registry import require

Judge = Callable[[Sequence[str], Sequence[str], Sequence[str]], np.ndarray]
"""``judge(product_ids, prompts_a, prompts_b)``: P(prompt a makes the better creative), one per product."""

Method = Literal["dpo", "pcpo"]
METHODS: tuple[str, ...] = get_args(Method)
JUDGE_ELEMENT_PREFIX = "judged-bg-"


# -- losses ----------------------------------------------------------------------------------------


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float = 0.5,
) -> torch.Tensor:
    """Per-pair DPO loss (Rafailov et al. 2023, eq. 7) from sequence log-probabilities."""
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    return -F.logsigmoid(beta * margin)


def pcpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    policy_corrupted: torch.Tensor,
    reference_corrupted: torch.Tensor,
    beta: float = 0.5,
    weight: float | torch.Tensor = 1.0,
) -> torch.Tensor:
    """Per-pair PCPO loss: DPO plus ``weight`` times the DPO form against the corrupted condition.

    ``policy_corrupted``/``reference_corrupted`` are log-probabilities of y' under x' (module
    docstring); ``weight`` may be a per-pair tensor (0 where a pair has no corruption).
    """
    preference = dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta)
    conditional = dpo_loss(policy_chosen, policy_corrupted, reference_chosen, reference_corrupted, beta)
    return preference + weight * conditional


# -- corruption (a): blanked photo patches -----------------------------------------------------------


def mask_patches(
    image: Image.Image, fraction: float = 0.75, patch: int = 32, rng: np.random.Generator | None = None
) -> Image.Image:
    """The photo (transparency composited onto white) with ``floor(fraction * n)`` of its n patches black.

    Patches are ``patch`` x ``patch`` squares on a grid from the top-left corner (edge patches may be
    smaller); which ones are blanked is drawn without replacement from ``rng``.
    """
    if not 0.0 <= fraction <= 1.0:
        raise InputError(f"mask fraction must be in [0, 1], got {fraction}")
    if patch < 1:
        raise InputError(f"patch must be at least 1 pixel, got {patch}")
    rng = rng or np.random.default_rng(0)
    pixels = np.array(to_rgb(image))
    rows, cols = -(-pixels.shape[0] // patch), -(-pixels.shape[1] // patch)
    blanked = rng.choice(rows * cols, size=int(fraction * rows * cols), replace=False)
    for index in blanked:
        r, c = divmod(int(index), cols)
        pixels[r * patch : (r + 1) * patch, c * patch : (c + 1) * patch] = 0
    return Image.fromarray(pixels)


class PhotoMasker:
    """Image features of product photos with patches blanked (PCPO corruption (a)).

    Uses the prompt model's own image encoder, so the corrupted features are comparable to the ones
    the model was conditioned on.
    """

    def __init__(self, market: Market, model: BackgroundPromptModel) -> None:
        self.market = market
        self.encoder = product_image_encoder(model.config)
        if self.encoder is None:
            raise InputError("the prompt model reads no product image: there is no photo to mask")
        self._photo_path = dict(zip(market.products["product_id"], market.products["image"]))
        self._photos: dict[str, Image.Image] = {}

    def photo(self, product_id: str) -> Image.Image:
        if product_id not in self._photos:
            self._photos[product_id] = self.market.open_image(self._photo_path[product_id])
        return self._photos[product_id]

    def features(
        self, product_ids: Sequence[str], fraction: float, patch: int, rng: np.random.Generator
    ) -> np.ndarray:
        """(n, image_dim) features of each product's photo under a fresh random mask."""
        images = [mask_patches(self.photo(p), fraction, patch, rng) for p in product_ids]
        return self.encoder.encode(images) if images else np.zeros((0, self.encoder.dim), dtype=np.float32)


# -- configuration and history ---------------------------------------------------------------------


@dataclass(frozen=True)
class PreferenceConfig:
    """Settings of the preference rounds (module docstring).

    method: "dpo" or "pcpo". rounds: sample -> judge -> train rounds (5 in CAIG).
    beta: DPO temperature of both terms (0.5 in CAIG). pcpo_weight: weight of the PCPO term (1).
    mask_fraction, patch: corruption (a), blank this share of ``patch``-pixel squares (0.75, 32).
    mask_share: probability of corruption (a) rather than (b) for a pair (0.5).
    temperature: sampling temperature of the two prompts (1). resample: draws per product to find
        two different prompts.
    learning_rate, epochs, batch_size: Adam over each round's pairs (``fit``; every epoch runs: a round
        has no held-out pairs). max_grad_norm: clip the gradient's norm before each step.
    seed: sampling, corruption, order.
    """

    method: Method = "pcpo"
    rounds: int = 5
    beta: float = 0.5
    pcpo_weight: float = 1.0
    mask_fraction: float = 0.75
    patch: int = 32
    mask_share: float = 0.5
    temperature: float = 1.0
    resample: int = 4
    learning_rate: float = 0.001
    epochs: int = 4
    batch_size: int = 64
    max_grad_norm: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_config(self)
        if self.method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("rounds", "epochs", "batch_size", "patch"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.resample < 2:
            raise InputError(f"resample must be at least 2 (two prompts per product), got {self.resample}")
        for name in ("beta", "learning_rate", "temperature", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")
        if self.pcpo_weight < 0:
            raise InputError(f"pcpo_weight must be >= 0, got {self.pcpo_weight}")
        for name in ("mask_fraction", "mask_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass
class RoundRecord:
    """What one round did: pairs judged, reviewer pairs trained on beside them, the chosen prompts' mean judge
    reward (judged pairs only), the last epoch's mean loss and (PCPO) its conditional term alone, the match
    rate after the round (when a callback measures it) and its duration."""

    round: int
    pairs: int
    chosen_reward: float
    loss: float
    conditional_loss: float | None
    match_rate: float | None
    seconds: float
    reviewed_pairs: int = 0


@dataclass
class PreferenceHistory:
    """Per-round records; ``initial_match_rate`` is the supervised model's (when measured)."""

    rounds: list[RoundRecord] = field(default_factory=list)
    initial_match_rate: float | None = None
    reviewed_left_out: int = 0  # reviewer pairs the model could not learn from (unknown product or word)

    def to_json(self) -> dict:
        return {"rounds": [asdict(r) for r in self.rounds], "initial_match_rate": self.initial_match_rate,
                "reviewed_left_out": self.reviewed_left_out}

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.rounds])


@dataclass
class PreferenceResult:
    """The optimised policy, the frozen reference it was trained against and the round history."""

    policy: BackgroundPromptModel
    reference: BackgroundPromptModel
    history: PreferenceHistory


# -- one round's data ------------------------------------------------------------------------------


@dataclass
class PreferencePairs:
    """A round's judged pairs (rows aligned): products, chosen and rejected prompts as token ids."""

    product_ids: list[str]
    chosen: list[list[int]]
    rejected: list[list[int]]
    chosen_prompts: list[str]
    prob_chosen: np.ndarray  # the judge's P(chosen better than rejected)

    def __len__(self) -> int:
        return len(self.product_ids)


def judged_pairs(
    policy: BackgroundPromptModel,
    judge: Judge,
    product_ids: Sequence[str],
    config: PreferenceConfig,
    generator: torch.Generator,
) -> PreferencePairs:
    """Sample two different prompts per product and let the judge pick the chosen one."""
    draws = policy.sample_ids([p for p in product_ids for _ in range(config.resample)], config.temperature, generator)
    kept, first, second = [], [], []
    for i, pid in enumerate(product_ids):
        options: dict[str, list[int]] = {}
        for seq in draws[i * config.resample : (i + 1) * config.resample]:
            options.setdefault(policy.vocab.decode(seq), seq)
            if len(options) == 2:
                break
        if len(options) == 2:
            (a, b) = options.values()
            kept.append(pid)
            first.append(a)
            second.append(b)
    if not kept:
        return PreferencePairs([], [], [], [], np.zeros(0))
    texts_a = [policy.vocab.decode(s) for s in first]
    texts_b = [policy.vocab.decode(s) for s in second]
    p = checked_judgement(judge(kept, texts_a, texts_b), len(kept))
    a_wins = p >= 0.5
    return PreferencePairs(
        product_ids=kept,
        chosen=[a if w else b for a, b, w in zip(first, second, a_wins)],
        rejected=[b if w else a for a, b, w in zip(first, second, a_wins)],
        chosen_prompts=[a if w else b for a, b, w in zip(texts_a, texts_b, a_wins)],
        prob_chosen=np.where(a_wins, p, 1.0 - p),
    )


@dataclass(frozen=True)
class ReviewedPrompt:
    """A reviewer's preference between two background prompts of one product: ``approved`` is the background
    of a creative reviewers approved, ``rejected`` that of one they rejected."""

    product_id: str
    approved: str
    rejected: str


def reviewed_pairs(policy: BackgroundPromptModel, reviewed: Sequence[ReviewedPrompt]) -> tuple[PreferencePairs, int]:
    """The reviewer pairs the policy can learn from as ``PreferencePairs`` (P(chosen better) = 1), and how many
    were left out: a product the model does not know, a prompt with a word outside its vocabulary, or two
    prompts that normalise to the same one."""
    known = set(policy.product_ids)
    kept: list[ReviewedPrompt] = []
    for pair in reviewed:
        approved, rejected = normalize_prompt(pair.approved), normalize_prompt(pair.rejected)
        if (pair.product_id in known and approved != rejected and policy.vocab.covers(approved)
                and policy.vocab.covers(rejected)):
            kept.append(ReviewedPrompt(pair.product_id, approved, rejected))
    pairs = PreferencePairs(
        product_ids=[p.product_id for p in kept],
        chosen=[policy.vocab.encode(p.approved) for p in kept],
        rejected=[policy.vocab.encode(p.rejected) for p in kept],
        chosen_prompts=[p.approved for p in kept],
        prob_chosen=np.ones(len(kept)),
    )
    return pairs, len(reviewed) - len(kept)


def joined_pairs(first: PreferencePairs, second: PreferencePairs) -> PreferencePairs:
    """Two sets of pairs as one (rows of ``first``, then of ``second``)."""
    return PreferencePairs(
        product_ids=first.product_ids + second.product_ids,
        chosen=first.chosen + second.chosen,
        rejected=first.rejected + second.rejected,
        chosen_prompts=first.chosen_prompts + second.chosen_prompts,
        prob_chosen=np.concatenate([first.prob_chosen, second.prob_chosen]),
    )


def checked_judgement(p: Any, n: int) -> np.ndarray:
    """A judge's answer as n probabilities; ``InputError`` when it is not."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if p.shape != (n,) or not np.all((p >= 0) & (p <= 1)):
        raise InputError(f"a judge must return {n} probabilities in [0, 1], got shape {p.shape}")
    return p


@dataclass
class Corruption:
    """PCPO's corrupted condition x' and sequence y' per pair; ``weight`` 0 where a pair has none."""

    text: torch.Tensor
    image: torch.Tensor
    targets: torch.Tensor
    weight: torch.Tensor


def corrupt(
    policy: BackgroundPromptModel,
    pairs: PreferencePairs,
    masker: PhotoMasker | None,
    config: PreferenceConfig,
    rng: np.random.Generator,
) -> Corruption:
    """Draw (a) or (b) for each pair (module docstring); (a) needs a masker, (b) another pair."""
    text, image = (t.clone() for t in policy.condition_tensors(pairs.product_ids))
    sequences = list(pairs.chosen)
    weight = torch.ones(len(pairs))
    n = len(pairs)
    use_mask = rng.random(n) < config.mask_share if masker is not None else np.zeros(n, dtype=bool)
    if n < 2:
        use_mask[:] = masker is not None
    masked = [i for i in range(n) if use_mask[i]]
    if masked:
        features = masker.features([pairs.product_ids[i] for i in masked], config.mask_fraction, config.patch, rng)
        image[masked] = torch.from_numpy(np.asarray(features, dtype=np.float32))
    for i in range(n):
        if use_mask[i]:
            continue
        if n < 2:
            weight[i] = 0.0
            continue
        other = int(rng.integers(n - 1))
        other += other >= i
        text[i] = policy.condition_tensors([pairs.product_ids[other]])[0][0]
        sequences[i] = pairs.chosen[other]
    return Corruption(text, image, pad_targets(sequences), weight)


@dataclass(frozen=True)
class PreferenceBatch:
    """A round's pairs as the loss reads them (rows aligned): each product's condition, the chosen and
    rejected prompts as targets, the frozen reference's log-probabilities of both and, for PCPO, the
    corruption with the reference's log-probability of y' under x'."""

    text: torch.Tensor
    image: torch.Tensor
    chosen: torch.Tensor
    rejected: torch.Tensor
    reference_chosen: torch.Tensor
    reference_rejected: torch.Tensor
    corruption: Corruption | None = None
    reference_corrupted: torch.Tensor | None = None

    @classmethod
    def of(cls, policy: BackgroundPromptModel, reference: BackgroundPromptModel, pairs: PreferencePairs,
           corruption: Corruption | None) -> PreferenceBatch:
        text, image = policy.condition_tensors(pairs.product_ids)
        chosen, rejected = pad_targets(pairs.chosen), pad_targets(pairs.rejected)
        with torch.no_grad():
            ref_chosen = reference.network.log_prob(text, image, chosen)
            ref_rejected = reference.network.log_prob(text, image, rejected)
            ref_corrupted = (None if corruption is None else
                             reference.network.log_prob(corruption.text, corruption.image, corruption.targets))
        return cls(text, image, chosen, rejected, ref_chosen, ref_rejected, corruption, ref_corrupted)

    def __len__(self) -> int:
        return len(self.chosen)


# -- the trainer -----------------------------------------------------------------------------------


class PreferenceTrainer:
    """Runs ``config.rounds`` rounds of DPO or PCPO on a copy of a supervised prompt model."""

    def __init__(self, config: PreferenceConfig | None = None) -> None:
        self.config = config or PreferenceConfig()

    def fit(
        self,
        model: BackgroundPromptModel,
        judge: Judge,
        product_ids: Sequence[str] | None = None,
        masker: PhotoMasker | None = None,
        baseline: Mapping[str, str] | None = None,
        match_rate: Callable[[BackgroundPromptModel], float] | None = None,
        progress: bool = False,
        reviewed: Sequence[ReviewedPrompt] = (),
    ) -> PreferenceResult:
        """Optimise a copy of ``model`` (which stays the frozen reference).

        product_ids: the products to write for (default: all the model knows).
        masker: corruption (a) for PCPO; without one, PCPO corrupts by title swap (b) only.
        baseline: each product's current background prompt; a round's ``chosen_reward`` is then the
            mean judge P(chosen beats the baseline), else the mean P(chosen beats rejected).
        match_rate: called with the policy before the first round and after each round.
        reviewed: reviewer pairs that join every round's judged pairs (module docstring).
        """
        from rich.progress import Progress

        config = self.config
        reference = model
        policy = model.copy()
        products = list(product_ids) if product_ids is not None else model.product_ids
        model.conditions.rows(products)  # every product must be known
        torch.manual_seed(config.seed)
        optimiser = torch.optim.Adam(policy.network.parameters(), lr=config.learning_rate)
        shuffle = torch.Generator().manual_seed(config.seed)  # the pairs' order in every round's epochs
        rng = np.random.default_rng(config.seed)  # the corruptions
        taught, left_out = reviewed_pairs(model, reviewed)
        history = PreferenceHistory(initial_match_rate=None if match_rate is None else float(match_rate(policy)),
                                    reviewed_left_out=left_out)
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task(f"{config.method.upper()} rounds", total=config.rounds)
            for number in range(1, config.rounds + 1):
                started = time.perf_counter()
                generator = torch.Generator().manual_seed(config.seed * 100_003 + number)
                judged = judged_pairs(policy, judge, products, config, generator)
                pairs = joined_pairs(judged, taught)
                loss, conditional = float("nan"), None
                if len(pairs):
                    corruption = corrupt(policy, pairs, masker, config, rng) if config.method == "pcpo" else None
                    batch = PreferenceBatch.of(policy, reference, pairs, corruption)
                    with torch_threads(policy.config.num_threads):
                        loss, conditional = self._train_round(policy, batch, optimiser, shuffle)
                reward = self._chosen_reward(judge, judged, baseline)
                seconds = round(time.perf_counter() - started, 3)  # the callback's time is not the round's
                history.rounds.append(RoundRecord(
                    round=number,
                    pairs=len(judged),
                    chosen_reward=reward,
                    loss=loss,
                    conditional_loss=conditional,
                    match_rate=None if match_rate is None else float(match_rate(policy)),
                    seconds=seconds,
                    reviewed_pairs=len(taught),
                ))
                bar.advance(task)
        return PreferenceResult(policy, reference, history)

    @staticmethod
    def _chosen_reward(judge: Judge, pairs: PreferencePairs, baseline: Mapping[str, str] | None) -> float:
        if not len(pairs):
            return float("nan")
        if baseline is None:
            return float(np.mean(pairs.prob_chosen))
        rows = [i for i, p in enumerate(pairs.product_ids) if p in baseline]
        if not rows:
            return float(np.mean(pairs.prob_chosen))
        ids = [pairs.product_ids[i] for i in rows]
        p = judge(ids, [pairs.chosen_prompts[i] for i in rows], [baseline[pid] for pid in ids])
        return float(np.mean(checked_judgement(p, len(rows))))

    def _train_round(
        self,
        policy: BackgroundPromptModel,
        batch: PreferenceBatch,
        optimiser: torch.optim.Optimizer,
        generator: torch.Generator,
    ) -> tuple[float, float | None]:
        """``epochs`` passes of ``fit`` over the round's pairs (no validation: every epoch runs), with the
        optimiser and shuffling generator that persist over the rounds; the last epoch's mean loss per
        pair and PCPO term."""
        config = self.config
        network = policy.network
        corruption = batch.corruption
        conditional_total = 0.0

        def before_epoch(epoch: int) -> None:
            nonlocal conditional_total
            conditional_total = 0.0

        def train_loss(i: torch.Tensor) -> torch.Tensor:
            nonlocal conditional_total
            pi_chosen = network.log_prob(batch.text[i], batch.image[i], batch.chosen[i])
            pi_rejected = network.log_prob(batch.text[i], batch.image[i], batch.rejected[i])
            if corruption is None:
                return dpo_loss(pi_chosen, pi_rejected, batch.reference_chosen[i], batch.reference_rejected[i],
                                config.beta).mean()
            pi_corrupted = network.log_prob(corruption.text[i], corruption.image[i], corruption.targets[i])
            losses = pcpo_loss(
                pi_chosen, pi_rejected, batch.reference_chosen[i], batch.reference_rejected[i], pi_corrupted,
                batch.reference_corrupted[i], config.beta, config.pcpo_weight * corruption.weight[i],
            )
            conditional = dpo_loss(pi_chosen, pi_corrupted, batch.reference_chosen[i], batch.reference_corrupted[i],
                                   config.beta)
            conditional_total += float((conditional.detach() * corruption.weight[i]).sum())
            return losses.mean()

        train = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
                            weight_decay=0.0, seed=config.seed)
        history = fit(network, len(batch), train_loss, None, train, description=f"{config.method} round",
                      before_epoch=before_epoch, generator=generator, optimiser=optimiser,
                      row_weights=torch.ones(len(batch)), max_grad_norm=config.max_grad_norm)
        if corruption is None:
            return history.train_loss[-1], None
        return history.train_loss[-1], conditional_total / max(1.0, float(corruption.weight.sum()))


# -- the judge backed by a reward model -----------------------------------------------------------


def _sigmoid_difference(ctr_a: np.ndarray, ctr_b: np.ndarray) -> np.ndarray:
    """Bradley-Terry P(a better) from two point CTRs: sigmoid(logit(ctr_a) - logit(ctr_b))."""
    a, b = (np.clip(np.asarray(x, dtype=np.float64), 1e-9, 1 - 1e-9) for x in (ctr_a, ctr_b))
    return 1.0 / (1.0 + np.exp(-(np.log(a / (1 - a)) - np.log(b / (1 - b)))))


class PairwiseJudge:
    """A ``Judge`` from a trained reward model and each product's current best combination.

    A prompt becomes a background element: the product's own element when one of the elements it may
    use has that value, else a temporary element (id ``judged-bg-`` + hash, usable for every product)
    that the model learns by its words through ``model.with_elements``. The two combinations differ only
    in the background. A model that reads images (``mean_image`` set) gets the image features of both
    creatives rendered by the market's renderer (cached per product and prompt).

    The model answers with ``prob_first_better`` when it declares ``compares_pairs`` (the pairwise model),
    else with the Bradley-Terry probability from its two CTRs (``predict_ctr``); it must declare
    ``adds_elements`` (:class:`adcraft.rewards.judge.Capabilities`).
    """

    def __init__(self, model: Any, market: Market, base_combos: Mapping[str, Sequence[str]]) -> None:
        require(model, "adds_elements", "the model judging new prompts")
        if not model.capabilities.compares_pairs:
            require(model, "scores_combinations", "the model judging new prompts")
        if BACKGROUND_SLOT not in market.config.slots:
            raise InputError(f"the market has no '{BACKGROUND_SLOT}' slot to write prompts for")
        self.market = market
        self.slot = market.config.slots.index(BACKGROUND_SLOT)
        self.base_combos = {p: list(c) for p, c in base_combos.items()}
        self._model = model
        self._temporary: dict[str, str] = {}  # canonical prompt -> temporary element id
        self._own: dict[str, dict[str, str]] = {}  # product -> canonical prompt -> element id
        self._features: dict[tuple[str, str], np.ndarray] = {}
        self._encoder = None
        self._renderer = None
        if self.uses_images:
            from adcraft.features.image_encoder import ImageEncoderConfig, build_image_encoder
            from adcraft.render.from_market import MarketRenderer

            backbone = model.config.encoding.image_backbone
            self._encoder = build_image_encoder(ImageEncoderConfig(backbone=backbone))
            self._renderer = MarketRenderer(market)

    @property
    def uses_images(self) -> bool:
        return self._model.capabilities.reads_image_features and self._model.mean_image is not None

    @property
    def model(self) -> Any:
        """The reward model, grown with every temporary element met so far."""
        return self._model

    def incumbent_prompts(self) -> dict[str, str]:
        """Each product's background value in its base combination."""
        return {p: self.market.element_content(c[self.slot]) for p, c in self.base_combos.items()}

    def element_ids(self, product_ids: Sequence[str], prompts: Sequence[str]) -> list[str]:
        """The background element id of each (product, prompt); new prompts get temporary elements."""
        ids, new = [], {}
        for pid, prompt in zip(product_ids, prompts):
            canonical = normalize_prompt(prompt)
            own = self._own_elements(pid).get(canonical)
            if own is None:
                own = self._temporary.get(canonical)
            if own is None:
                digest = hashlib.sha1(canonical.encode()).hexdigest()[:12]
                own = new.setdefault(canonical, JUDGE_ELEMENT_PREFIX + digest)
            ids.append(own)
        if new:
            rows = pd.DataFrame({"element_id": list(new.values()), "slot": BACKGROUND_SLOT, "product_id": None,
                                 "text": None, "value": list(new.keys()), "image": None})
            self._model = self._model.with_elements(rows)
            self._temporary.update(new)
        return ids

    def _own_elements(self, product_id: str) -> dict[str, str]:
        if product_id not in self._own:
            usable = self.market.usable_elements(product_id, BACKGROUND_SLOT)
            self._own[product_id] = {
                normalize_prompt(v): e for e, v in zip(usable["element_id"], usable["value"]) if isinstance(v, str)
            }
        return self._own[product_id]

    def combos(self, product_ids: Sequence[str], prompts: Sequence[str]) -> list[list[str]]:
        """Each product's base combination with the prompt's element as background."""
        missing = [p for p in dict.fromkeys(product_ids) if p not in self.base_combos]
        if missing:
            raise InputError(f"the judge has no base combination for the products {missing[:5]}")
        out = []
        for pid, element in zip(product_ids, self.element_ids(product_ids, prompts)):
            combo = list(self.base_combos[pid])
            combo[self.slot] = element
            out.append(combo)
        return out

    def image_features(self, product_ids: Sequence[str], prompts: Sequence[str]) -> np.ndarray | None:
        """Image features of each product's base combination rendered with the prompt (None without images)."""
        if not self.uses_images:
            return None
        keys = [(p, normalize_prompt(q)) for p, q in zip(product_ids, prompts)]
        todo = [k for k in dict.fromkeys(keys) if k not in self._features]
        if todo:
            images = [self.render(pid, prompt) for pid, prompt in todo]
            for key, vector in zip(todo, self._encoder.encode(images)):
                self._features[key] = vector
        return np.stack([self._features[k] for k in keys])

    def render(self, product_id: str, prompt: str) -> Image.Image:
        """The product's base combination drawn with ``prompt`` as its background."""
        from adcraft.render.from_market import MarketRenderer

        renderer = self._renderer or MarketRenderer(self.market)
        self._renderer = renderer
        spec = dataclasses.replace(renderer.spec(product_id, self.base_combos[product_id]), background=prompt)
        return renderer.compositor.render(spec, canvas=self.market.config.canvas).image

    def predicted_ctr(self, product_ids: Sequence[str], prompts: Sequence[str]) -> np.ndarray:
        """The model's point-wise CTR of each product's base combination with the prompt."""
        combos = self.combos(product_ids, prompts)
        images = self.image_features(product_ids, prompts)
        return np.asarray(self._model.predict_ctr(list(product_ids), combos, images=images), dtype=np.float64)

    def __call__(self, product_ids: Sequence[str], prompts_a: Sequence[str], prompts_b: Sequence[str]) -> np.ndarray:
        if not len(product_ids) == len(prompts_a) == len(prompts_b):
            raise InputError("a judge needs as many prompts a and b as products")
        if self._model.capabilities.compares_pairs:
            combos_a, combos_b = self.combos(product_ids, prompts_a), self.combos(product_ids, prompts_b)
            images_a = self.image_features(product_ids, prompts_a)
            images_b = self.image_features(product_ids, prompts_b)
            return self._model.prob_first_better(list(product_ids), combos_a, combos_b, images_a, images_b)
        ctr_a, ctr_b = self.predicted_ctr(product_ids, prompts_a), self.predicted_ctr(product_ids, prompts_b)
        return _sigmoid_difference(ctr_a, ctr_b)


__all__ = [
    "Corruption",
    "JUDGE_ELEMENT_PREFIX",
    "Judge",
    "METHODS",
    "PairwiseJudge",
    "PhotoMasker",
    "PreferenceBatch",
    "PreferenceConfig",
    "PreferenceHistory",
    "PreferencePairs",
    "PreferenceResult",
    "PreferenceTrainer",
    "RoundRecord",
    "checked_judgement",
    "corrupt",
    "dpo_loss",
    "judged_pairs",
    "mask_patches",
    "pcpo_loss",
]
