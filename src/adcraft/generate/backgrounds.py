"""New background elements for a market, written by CAIG's prompt model after DPO or PCPO rounds.

``generate_backgrounds(market)`` runs the whole method:

1. fit the prompt model to the logged backgrounds (``PromptTrainer``, supervised);
2. build the judge: a given ``Judge`` as it is, or a reward model (trained here, CAIG's pairwise
   model, when none is given, with reviewers' approved-over-rejected creative pairs, ``reviewed_creatives``,
   among its training pairs: ``rewards.pairwise.reviewed_pairs``) behind ``PairwiseJudge``, on each
   product's current best combination (``current_best_combinations``);
3. run the preference rounds (``PreferenceTrainer``; PCPO by default), with reviewers' approved-over-rejected
   prompt pairs (``reviewed``) joining every round's judged pairs;
4. write ``per_product`` new prompts per product (``propose_backgrounds``): from the policy's beam
   and ``samples`` draws, drop duplicates and prompts that draw the same as a background the product
   can already use (the same words, commas and case aside) or that repeat a word (a sampling slip),
   and keep the most probable under the policy (or, with ``judged`` > 0, the judge's favourites
   among the ``judged`` most probable).

The result is a table in the market's elements-table columns: one background element per new prompt,
owned by its product (``product_id`` set), ``value`` the prompt, ``text`` and ``image`` null, and an id
``id_prefix`` + a short hash of (product, prompt) that never clashes with the market's ids.

Match of product and background without a ground truth: ``prompt_product_similarity`` (cosine of the
prompt's and the product's "title, category" text embeddings) and ``text_background_match`` (the
prompt is closer to its own product than to the market's average product).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.generate.preference import (
    Judge,
    PairwiseJudge,
    PhotoMasker,
    PreferenceConfig,
    PreferenceResult,
    PreferenceTrainer,
    ReviewedPrompt,
    checked_judgement,
)
from adcraft.generate.prompt import (
    BACKGROUND_SLOT,
    BackgroundPromptModel,
    PromptModelConfig,
    PromptTrainer,
    product_text,
    prompt_key,
    repeats_a_word,
)
from adcraft.market import Market
from adcraft.market.click_log import best_logged_creatives, click_log
from adcraft.rewards.judge import declared_capabilities
from adcraft.rewards.pairwise import PairConfig, PairwiseConfig

ELEMENT_COLUMNS = ("element_id", "slot", "product_id", "text", "value", "image")
PRIOR_IMPRESSIONS = 200.0  # strength of the shrinkage of a creative's CTR toward its product's mean


@dataclass(frozen=True)
class BackgroundsConfig:
    """Settings of ``generate_backgrounds`` (module docstring).

    prompt: the prompt model and its supervised fit. preference: the DPO/PCPO rounds.
    reward: the pairwise reward model trained as the judge when none is given; its pairs need only
        10 impressions per creative and a CTR gap of at least 5% with no upper bound, so that markets
        with a few hundred impressions per creative still give pairs to train and validate on.
    per_product: new prompts per product. samples: draws per product to choose them from (plus the
        ``per_product`` best of a beam search), at ``temperature``.
    judged: re-rank this many of each product's most probable new prompts by the judge's P(beats
        the current background) before keeping ``per_product`` (0: rank by the policy alone; each
        judged prompt costs a render and an image encoding with an image-reading reward model).
    id_prefix: start of the new elements' ids.
    """

    prompt: PromptModelConfig = field(default_factory=PromptModelConfig)
    preference: PreferenceConfig = field(default_factory=PreferenceConfig)
    reward: PairwiseConfig = field(
        default_factory=lambda: PairwiseConfig(pairs=PairConfig(min_impressions=10, max_ratio=None))
    )
    per_product: int = 3
    samples: int = 32
    temperature: float = 1.0
    judged: int = 0
    id_prefix: str = "gen-bg-"

    def __post_init__(self) -> None:
        check_config(self)
        if self.per_product < 1 or self.samples < 1:
            raise InputError("per_product and samples must be at least 1")
        if self.judged < 0:
            raise InputError(f"judged must be >= 0, got {self.judged}")
        if not self.temperature > 0:
            raise InputError(f"temperature must be positive, got {self.temperature}")
        if not self.id_prefix.strip():
            raise InputError("id_prefix must not be empty")


def current_best_combinations(market: Market) -> dict[str, list[str]]:
    """Each product's current best combination: its past creative with the best shrunk CTR.

    A creative's CTR is ``(clicks + m * c_p) / (impressions + m)`` with c_p its product's pooled CTR and
    ``m = PRIOR_IMPRESSIONS``, so a creative shown a few times does not win on luck. Products without
    logged creatives take their first past creative, or else the first element they may use per slot.
    """
    best: dict[str, list[str]] = {}
    creatives = market.creatives
    if creatives is not None and not creatives.empty:
        try:
            top = best_logged_creatives(click_log(market), PRIOR_IMPRESSIONS)
        except InputError:  # no usable logs: every product takes its first past creative
            top = None
        if top is not None:
            best.update({pid: list(combo) for pid, combo in zip(top.index, top["elements"])})
        for pid, combo in zip(creatives["product_id"], creatives["elements"]):
            best.setdefault(pid, list(combo))
    for pid in market.products["product_id"]:
        if pid not in best:
            best[pid] = [market.usable_elements(pid, slot)["element_id"].iloc[0] for slot in market.config.slots]
    return best


def build_judge(
    market: Market, judge: Judge | Any | None, config: BackgroundsConfig, progress: bool = False,
    reviewed_creatives: pd.DataFrame | None = None,
) -> tuple[Judge, dict[str, str] | None]:
    """(judge, each product's current background prompt or None) from what ``generate_backgrounds`` got.

    None trains ``config.reward`` (CAIG's pairwise model) on the market, with ``reviewed_creatives`` (reviewers'
    approved-over-rejected pairs, ``pipeline.reviews.preference_pairs``) among its training pairs; a judge
    that is given is used as it is, and ``reviewed_creatives`` is then not read. A reward model (anything that
    declares its capabilities: ``rewards.judge``) is wrapped in a ``PairwiseJudge``, which refuses one that
    cannot learn new elements; any other callable is used as it is.
    """
    if judge is None:
        from adcraft.rewards.pairwise import PairwiseTrainer

        judge = PairwiseTrainer(config.reward).fit(market, progress=progress, reviewed=reviewed_creatives)
    if declared_capabilities(judge) is not None:
        wrapped = PairwiseJudge(judge, market, current_best_combinations(market))
        return wrapped, wrapped.incumbent_prompts()
    if not callable(judge):
        raise InputError(f"a judge must be a reward model or a callable, got {type(judge).__name__}")
    return judge, None


@dataclass
class PromptRun:
    """What ``optimise_prompt_model`` made: the preference result, the judge it used and each
    product's current background prompt (None for a judge given as a plain callable)."""

    result: PreferenceResult
    judge: Judge
    baseline: dict[str, str] | None

    @property
    def policy(self) -> BackgroundPromptModel:
        return self.result.policy


def optimise_prompt_model(
    market: Market,
    config: BackgroundsConfig | None = None,
    judge: Judge | Any | None = None,
    match_rate: Callable[[BackgroundPromptModel], float] | None = None,
    progress: bool = False,
    reviewed: Sequence[ReviewedPrompt] = (),
    reviewed_creatives: pd.DataFrame | None = None,
) -> PromptRun:
    """Steps 1-3 of the module docstring: the supervised model, then DPO/PCPO rounds against the judge, with
    reviewers' approved-over-rejected prompt pairs (``reviewed``) joining every round and their creative pairs
    (``reviewed_creatives``) the training pairs of the pairwise judge trained here."""
    config = config or BackgroundsConfig()
    reference = PromptTrainer(config.prompt).fit(market, progress=progress)
    resolved, baseline = build_judge(market, judge, config, progress, reviewed_creatives)
    masker = PhotoMasker(market, reference) if config.prompt.image_backbone != "none" else None
    result = PreferenceTrainer(config.preference).fit(
        reference, resolved, masker=masker, baseline=baseline, match_rate=match_rate, progress=progress,
        reviewed=reviewed,
    )
    return PromptRun(result, resolved, baseline)


def propose_backgrounds(
    policy: BackgroundPromptModel,
    market: Market,
    per_product: int = 3,
    samples: int = 32,
    temperature: float = 1.0,
    id_prefix: str = "gen-bg-",
    seed: int = 0,
    judge: Judge | None = None,
    baseline: Mapping[str, str] | None = None,
    judged: int = 0,
) -> pd.DataFrame:
    """Up to ``per_product`` new background elements per product (module docstring, step 4).

    With a ``judge``, each product's current prompt in ``baseline`` and ``judged`` > 0, the ``judged``
    most probable candidates of each product are re-ranked by the judge's P(beats the current
    background), and the best ``per_product`` of them are kept.
    """
    products = [p for p in market.products["product_id"] if p in set(policy.product_ids)]
    drawn = policy.sample(products, n=samples, temperature=temperature, seed=seed)
    beams = policy.beam_search(products, width=per_product)
    shortlist: dict[str, list[str]] = {}
    for pid, draws, beam in zip(products, drawn, beams):
        seen = {prompt_key(v) for v in market.usable_elements(pid, BACKGROUND_SLOT)["value"] if isinstance(v, str)}
        candidates = []
        for prompt in [b for b, _ in beam] + draws:
            key = prompt_key(prompt)
            if key and key not in seen and not repeats_a_word(prompt):
                seen.add(key)
                candidates.append(prompt)
        if candidates:
            scores = policy.log_prob([pid] * len(candidates), candidates)
            order = np.argsort(-scores, kind="stable")
            shortlist[pid] = [candidates[int(i)] for i in order]
    use_judge = judge is not None and baseline is not None and judged > 0
    if use_judge:
        shortlist = _judged_order(shortlist, judge, baseline, judged)
    taken = set(market.elements["element_id"])
    rows = []
    for pid, prompts in shortlist.items():
        for prompt in prompts[:per_product]:
            element_id = _fresh_id(id_prefix, pid, prompt, taken)
            taken.add(element_id)
            rows.append((element_id, BACKGROUND_SLOT, pid, None, prompt, None))
    return pd.DataFrame(rows, columns=list(ELEMENT_COLUMNS)).astype(object)


def _judged_order(
    shortlist: Mapping[str, list[str]], judge: Judge, baseline: Mapping[str, str], judged: int
) -> dict[str, list[str]]:
    """Each product's first ``judged`` prompts, best first by the judge's P(beats the baseline)."""
    pairs = [(pid, prompt) for pid, prompts in shortlist.items() if pid in baseline for prompt in prompts[:judged]]
    if not pairs:
        return dict(shortlist)
    ids = [pid for pid, _ in pairs]
    p = checked_judgement(judge(ids, [q for _, q in pairs], [baseline[pid] for pid in ids]), len(pairs))
    ranked: dict[str, list[tuple[float, str]]] = {}
    for (pid, prompt), value in zip(pairs, p):
        ranked.setdefault(pid, []).append((float(value), prompt))
    out = dict(shortlist)
    for pid, scored in ranked.items():
        out[pid] = [prompt for _, prompt in sorted(scored, key=lambda item: -item[0])]
    return out


def _fresh_id(prefix: str, product_id: str, prompt: str, taken: set[str]) -> str:
    digest = hashlib.sha1(f"{product_id}\n{prompt}".encode()).hexdigest()
    for width in range(10, len(digest) + 1):
        candidate = prefix + digest[:width]
        if candidate not in taken:
            return candidate
    raise InputError(f"cannot find an element id with prefix {prefix!r} that the market does not use")


def generate_backgrounds(
    market: Market,
    config: BackgroundsConfig | None = None,
    judge: Judge | Any | None = None,
    progress: bool = False,
    reviewed: Sequence[ReviewedPrompt] = (),
    reviewed_creatives: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """New background elements for every product of ``market`` (module docstring).

    ``judge``: None (train CAIG's pairwise reward model on the market), a trained reward model that learns
    new elements (``adds_elements``), or any ``Judge`` callable. ``reviewed``: reviewers' prompt pairs that
    join every preference round; ``reviewed_creatives``: their creative pairs, which join the training pairs of
    the pairwise judge trained when ``judge`` is None.
    """
    config = config or BackgroundsConfig()
    run = optimise_prompt_model(market, config, judge, progress=progress, reviewed=reviewed,
                                reviewed_creatives=reviewed_creatives)
    return propose_backgrounds(
        run.policy, market, config.per_product, config.samples, config.temperature, config.id_prefix,
        config.preference.seed, run.judge, run.baseline, config.judged,
    )


def write_backgrounds(out: Path, elements: pd.DataFrame, market: Market | None = None) -> Path:
    """Write generated elements to ``OUT/elements.parquet`` (the output layout), atomically; its path.

    The rows are first checked against the elements table's rules (types, unique non-empty ids, and,
    given the ``market``, products that exist); a ``ValueError`` names the problems and nothing is
    written.
    """
    import pyarrow.parquet as pq

    from adcraft.atomic import write_bytes
    from adcraft.market.coerce import typed_frame
    from adcraft.market.schema import ELEMENTS
    from adcraft.market.tables import to_arrow
    from adcraft.market.validate import table_problems

    typed = typed_frame(ELEMENTS, elements, "elements.parquet")
    problems = [str(p) for p in typed.problems + table_problems(None, {"elements": typed}, None, check_images=False)]
    if market is not None and "product_id" in elements:
        unknown = sorted(set(elements["product_id"].dropna()) - set(market.products["product_id"]))
        if unknown:
            problems.append(f"elements.parquet: column product_id names products the market lacks: {unknown[:5]}")
    if problems:
        raise ValueError("; ".join(problems))
    buffer = io.BytesIO()
    pq.write_table(to_arrow(typed.frame, ELEMENTS), buffer)
    return write_bytes(Path(out) / "elements.parquet", buffer.getvalue())


# -- product-background match without a ground truth ------------------------------------------------


def prompt_product_similarity(
    market: Market, product_ids: Sequence[str], prompts: Sequence[str], backbone: str = "minilm"
) -> np.ndarray:
    """(n, n_products) cosine similarity of each prompt with every product's "title, category" text.

    Columns follow ``market.products``; the text encoder is ``backbone`` ("minilm" or "tiny").
    """
    from adcraft.features.cache import FeatureCache, default_cache_dir, encode_texts
    from adcraft.features.text_encoder import TextEncoderConfig, build_text_encoder

    if len(product_ids) != len(prompts):
        raise InputError(f"got {len(prompts)} prompts for {len(product_ids)} products")
    encoder = build_text_encoder(TextEncoderConfig(backbone=backbone))
    cache = FeatureCache(default_cache_dir())
    products = market.products
    texts = [product_text(t, c) for t, c in zip(products["title"], products["category"])]
    product_vectors = encode_texts(encoder, texts, cache)
    prompt_vectors = encode_texts(encoder, list(prompts), cache)
    return prompt_vectors @ product_vectors.T  # both unit length


def text_background_match(
    market: Market, product_ids: Sequence[str], prompts: Sequence[str], backbone: str = "minilm"
) -> np.ndarray:
    """Per (product, prompt): is the prompt more similar to its own product than to the average product?

    The text-only stand-in for CAIG's product-background match rate on data without a ground truth.
    """
    similarity = prompt_product_similarity(market, product_ids, prompts, backbone)
    column = {p: j for j, p in enumerate(market.products["product_id"])}
    unknown = [p for p in product_ids if p not in column]
    if unknown:
        raise InputError(f"unknown products {unknown[:5]}")
    own = similarity[np.arange(len(prompts)), [column[p] for p in product_ids]]
    return own > similarity.mean(axis=1)


__all__ = [
    "BackgroundsConfig",
    "ELEMENT_COLUMNS",
    "PromptRun",
    "build_judge",
    "current_best_combinations",
    "generate_backgrounds",
    "optimise_prompt_model",
    "prompt_product_similarity",
    "propose_backgrounds",
    "text_background_match",
    "write_backgrounds",
]
