"""GenCO combination generator (arXiv 2508.09730, stage 1): behaviour cloning, then RL on a reward model.

The policy (``combo_policy``) builds a creative slot by slot for a product. Training has two parts:

1. Behaviour cloning (warm start) on the logged creatives, each product's creatives weighted by their
   share of its impressions (w_pc, sum_c w_pc = 1) and every product weighing the same, with label
   smoothing eps towards the uniform distribution over the usable elements U_pt (so that elements never
   shown keep some probability for RL to explore)::

       L_BC = -(1/P) sum_p sum_c w_pc sum_t [(1 - eps) log pi(e_t | p, e_<t)
                                              + (eps/|U_pt|) sum_{e in U_pt} log pi(e | p, e_<t)]

2. Policy gradient with a group baseline (GRPO-style, no ratio clipping: one on-policy step per batch).
   Each step draws K combinations c_1..c_K ~ pi_theta(. | p) for each of a batch of products, scores
   them with the reward R (a callable, e.g. the multi-instance model's predicted CTR) and minimises::

       A_k = (R(p, c_k) - mean_j R(p, c_j)) / std_j R(p, c_j)          (division optional)
       L = -(1/N) sum A_k log pi_theta(c_k | p) + beta (1/N) sum KL_k - alpha (1/N) sum H_k
       KL_k = sum_t KL(pi_theta(. | p, c_k,<t) || pi_ref(. | p, c_k,<t)),   H_k = sum_t H(pi_theta(. | p, c_k,<t))

   pi_ref is the frozen behaviour-cloning policy. KL_k and H_k are the exact per-slot divergences and
   entropies at the sampled prefixes, whose expectations are KL(pi_theta || pi_ref) and H(pi_theta) of the
   whole combination distributions (chain rule), so the loss ascends E[R] - beta KL + alpha H (the
   dependence of the prefixes on theta is left out of the KL and entropy gradients, as is usual). Each
   distinct (product, combination[, context]) is sent to the reward once per run (``CachedReward``).

Proposals (``ComboGenerator.propose``): candidates per product are the policy's ``beam_width`` most
probable combinations (beam search; the first is the greedy decode), ``samples`` draws at
``temperature`` and, with ``neighbours``, the combinations one slot away from the greedy one (in each
slot, the ``neighbours_per_slot`` alternatives the policy finds most probable there). They are
deduplicated and ranked by the reward (by the policy's probability when no reward is given). The top K
is then chosen down the ranking under a diversity rule: proposals differ in at least
``min_distinct_slots`` slots, and at most ceil(max_share K) of them share the element of the pivot slot,
the slot whose elements' mean candidate reward varies most (so the set does not bet every proposal on one
choice where the choice matters most). If the cap leaves fewer than K, the best skipped ones fill in; a
product with fewer than K distinct combinations gets those that exist. With brand guardrails
(``generate.brand``), beam search and sampling draw only what the brand allows (its ``CandidateMask``) and
every candidate it refuses is dropped before ranking; training is the same with or without a brand.

Contexts (``policy.use_context``): the policy also reads the impression context, behaviour cloning uses
each creative's impressions per context, and RL draws one context per group, half the time from the
log's context distribution and otherwise none (so that proposing without a context gives the
traffic-wide choice); the reward is then called as ``reward(product_ids, combos, contexts=...)`` for
the rows that have one.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from adcraft.configuration import check_config, from_mapping, to_mapping
from adcraft.errors import AdcraftError, InputError
from adcraft.generate.brand import Brand
from adcraft.generate.combo_policy import (
    CandidateMask,
    ComboPolicyNetwork,
    PolicyBatch,
    PolicyInputs,
    beam_search,
    rollout,
)
from adcraft.generate.combo_search import (
    NO_CONTEXT,
    PROPOSAL_COLUMNS,
    CachedReward,
    RewardFn,
    best_combinations,
    check_k,
    combination_space_sizes,
    diverse_top_k,
    elementwise_greedy_proposals,
    logged_combinations,
    most_shown_combinations,
    proposals_frame,
)
from adcraft.learning.artifacts import load_artifact, save_artifact
from adcraft.learning.checkpoint import (
    Checkpoint,
    array_digest,
    fingerprint,
    load_checkpoint,
    module_tensors,
    optimiser_tensors,
    restore_optimiser,
    save_checkpoint,
    tensor_digest,
)
from adcraft.learning.training import LoopState, TrainConfig, TrainHistory, fit, progress_bar, torch_threads
from adcraft.market import Market
from adcraft.market.click_log import context_distribution
from adcraft.rewards.encoding import CreativeVocabulary, EncodingConfig

__all__ = [
    "PROPOSAL_COLUMNS",
    "BehaviourCloningConfig",
    "BehaviourCloningData",
    "CachedReward",
    "ComboConfig",
    "ComboGenerator",
    "ComboHistory",
    "ComboTrainer",
    "PolicyConfig",
    "ProposalConfig",
    "RLConfig",
    "RewardFn",
    "behaviour_cloning_proposals",
    "best_combinations",
    "combination_space_sizes",
    "diverse_top_k",
    "elementwise_greedy_proposals",
    "group_advantages",
    "logged_combinations",
    "most_shown_combinations",
]

KIND = "combo"


@dataclass(frozen=True)
class PolicyConfig:
    """The policy's inputs and size. ``encoding.text_backbone`` is the frozen text encoder of element
    words and product titles/categories; ``product_dropout`` hides the product id of that share of the
    training rows, so the policy also learns to act from a product's category and title alone (what it
    has for products added after training). ``use_context`` conditions the policy on the impression
    context (reward then called with ``contexts=``)."""

    encoding: EncodingConfig = field(default_factory=lambda: EncodingConfig(embedding_dim=32))
    hidden: int = 64
    use_context: bool = False
    product_dropout: float = 0.1

    def __post_init__(self) -> None:
        check_config(self)
        if self.hidden < 1:
            raise InputError("policy.hidden must be at least 1")
        if not 0.0 <= self.product_dropout < 1.0:
            raise InputError(f"policy.product_dropout must be in [0, 1), got {self.product_dropout}")
        if self.encoding.image_backbone != "none":
            raise InputError("the combination policy reads element words, not images: "
                             "set policy.encoding.image_backbone to 'none'")


@dataclass(frozen=True)
class BehaviourCloningConfig:
    """Warm start on the logged creatives (module docstring, L_BC)."""

    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 0.01
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        check_config(self)
        if self.epochs < 0 or self.batch_size < 1 or not self.learning_rate > 0:
            raise InputError("bc: epochs must be >= 0, batch_size >= 1 and learning_rate > 0")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise InputError(f"bc.label_smoothing must be in [0, 1), got {self.label_smoothing}")


@dataclass(frozen=True)
class RLConfig:
    """Policy gradient with a group baseline (module docstring, L). ``kl_coef`` is beta, ``entropy_coef``
    alpha, ``samples_per_product`` K."""

    steps: int = 150
    samples_per_product: int = 8
    products_per_step: int = 64
    learning_rate: float = 0.003
    kl_coef: float = 0.05
    entropy_coef: float = 0.01
    normalise_advantage: bool = True
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        check_config(self)
        if self.steps < 0 or self.samples_per_product < 2 or self.products_per_step < 1:
            raise InputError("rl: steps must be >= 0, samples_per_product >= 2 (a group needs two samples) "
                             "and products_per_step >= 1")
        if not self.learning_rate > 0 or self.kl_coef < 0 or self.entropy_coef < 0 or not self.max_grad_norm > 0:
            raise InputError("rl: learning_rate and max_grad_norm must be > 0, kl_coef and entropy_coef >= 0")


@dataclass(frozen=True)
class ProposalConfig:
    """How ``propose`` gathers candidates and picks a diverse top K (module docstring)."""

    samples: int = 64
    temperature: float = 1.0
    beam_width: int = 8
    neighbours: bool = True
    # Alternatives per slot tried around the greedy combination: the policy's most probable ones at the
    # greedy prefix, so a slot offering thousands of shared elements adds this many candidates, not all.
    neighbours_per_slot: int = 32
    min_distinct_slots: int = 1
    min_slots_from_first: int = 2  # proposals 2..K change this many slots of rank 1 where candidates allow
    max_share: float = 0.5

    def __post_init__(self) -> None:
        check_config(self)
        if self.samples < 0 or self.beam_width < 1 or not self.temperature > 0:
            raise InputError("proposals: samples must be >= 0, beam_width >= 1 and temperature > 0")
        if self.neighbours_per_slot < 1:
            raise InputError(f"proposals.neighbours_per_slot must be at least 1, got {self.neighbours_per_slot}")
        if self.min_distinct_slots < 1 or self.min_slots_from_first < 1 or not 0.0 < self.max_share <= 1.0:
            raise InputError("proposals: min_distinct_slots and min_slots_from_first must be >= 1 and max_share "
                             "in (0, 1]")


@dataclass(frozen=True)
class ComboConfig:
    """Settings of the combination generator; a YAML file's keys are these fields (nested mappings for
    ``policy``, ``bc``, ``rl`` and ``proposals``)."""

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    bc: BehaviourCloningConfig = field(default_factory=BehaviourCloningConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    seed: int = 0
    # The policy's tensors are small (hundreds of rows, tens of columns): torch's intra-op threads cost
    # more in synchronisation than they save, badly so on a busy machine. None keeps torch's setting.
    threads: int | None = 1
    # With a checkpoint folder, the training state is saved every this many BC epochs and RL steps.
    checkpoint_every: int = 10

    def __post_init__(self) -> None:
        check_config(self)
        if self.threads is not None and self.threads < 1:
            raise InputError(f"threads must be at least 1 (or null to keep torch's setting), got {self.threads}")
        if self.checkpoint_every < 1:
            raise InputError(f"checkpoint_every must be at least 1, got {self.checkpoint_every}")


@dataclass
class ComboHistory:
    """Training curves: behaviour-cloning loss per epoch; per RL step the mean reward of the sampled
    combinations, the mean KL to the reference and the mean entropy (both summed over slots), measured
    before that step's update; and how many distinct rows the reward was asked for."""

    bc_loss: list[float] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)
    reward_evaluations: int = 0

    def to_json(self) -> dict:
        return {"bc_loss": self.bc_loss, "reward": self.reward, "kl": self.kl, "entropy": self.entropy,
                "reward_evaluations": self.reward_evaluations}


def _in_configured_threads(method: Callable) -> Callable:
    """Run a generator method with ``config.threads`` torch threads (see ``ComboConfig``)."""

    @functools.wraps(method)
    def wrapper(self: ComboGenerator, *args, **kwargs):
        with torch_threads(self.config.threads):
            return method(self, *args, **kwargs)

    return wrapper


class ComboGenerator:
    """A trained combination policy with its behaviour-cloning reference: proposes creatives for products."""

    def __init__(
        self,
        config: ComboConfig,
        vocab: CreativeVocabulary,
        network: ComboPolicyNetwork,
        reference: ComboPolicyNetwork,
        market: Market,
        contexts: list[tuple[str, float]] | None = None,
        reward: RewardFn | None = None,
        history: ComboHistory | None = None,
    ) -> None:
        self.config = config
        self.vocab = vocab
        self.network = network.eval()
        self.reference = reference.eval()
        self.market = market
        self.contexts = contexts or []
        self.reward = reward
        self.history = history or ComboHistory()
        self._inputs: tuple[tuple, PolicyInputs] | None = None
        self._mask: tuple[PolicyInputs, Brand, CandidateMask] | None = None

    def inputs(self, market: Market | None = None) -> PolicyInputs:
        """The policy's view of ``market`` (default: its own), rebuilt when the tables were replaced
        (for example after elements were added)."""
        market = market or self.market
        key = (market.config, market.products, market.elements)
        if self._inputs is None or any(a is not b for a, b in zip(self._inputs[0], key)):
            self._inputs = (key, PolicyInputs.build(market, self.vocab, self.config.policy.encoding))
        return self._inputs[1]

    def _batch(self, inputs: PolicyInputs, rows: torch.Tensor, context: str | None) -> PolicyBatch:
        if context is not None and not self.config.policy.use_context:
            raise InputError("this generator was trained without contexts (policy.use_context is false): "
                             "propose without a context")
        tokens = None
        if context is not None:
            tokens = _context_tokens(self.vocab, [context] * len(rows), self.config.policy.encoding)
        return PolicyBatch.of(inputs, rows, tokens)

    def _products(self, inputs: PolicyInputs, product_ids: Sequence[str] | None) -> list[str]:
        if isinstance(product_ids, str):
            raise InputError("product_ids must be a list of product ids, not a single string")
        chosen = list(inputs.product_ids if product_ids is None else product_ids)
        inputs.rows(chosen)  # InputError for an unknown product
        return list(dict.fromkeys(chosen))

    @_in_configured_threads
    def log_prob(
        self, product_ids: Sequence[str], combos: Sequence[Sequence[str]], context: str | None = None,
        reference: bool = False, market: Market | None = None,
    ) -> np.ndarray:
        """log pi(c | p[, x]) of each (product, combination) under the policy (or the BC reference)."""
        inputs = self.inputs(market)
        rows = inputs.rows(list(product_ids))
        network = self.reference if reference else self.network
        with torch.no_grad():
            result = rollout(network, inputs, self._batch(inputs, rows, context), inputs.positions(rows, combos))
        return result.log_prob.numpy().astype(np.float64)

    @_in_configured_threads
    def most_probable(
        self, product_ids: Sequence[str] | None = None, k: int = 1, *, reference: bool = False,
        reward: RewardFn | None = None, context: str | None = None, market: Market | None = None,
    ) -> pd.DataFrame:
        """The policy's k most probable combinations per product (beam search; k=1 is its greedy mode),
        ranked by probability; ``reward`` filled in when a reward function is known."""
        check_k(k)
        inputs = self.inputs(market)
        products = self._products(inputs, product_ids)
        rows = inputs.rows(products)
        network = self.reference if reference else self.network
        paths, scores = beam_search(network, inputs, self._batch(inputs, rows, context), k)
        out = []
        for i, product in enumerate(products):
            keep = torch.isfinite(scores[i])
            combos = inputs.combinations(rows[i].repeat(int(keep.sum())), paths[i][keep])
            out += [(product, combo, float(s)) for combo, s in zip(combos, scores[i][keep].tolist())]
        rewards = _rewards(reward or self.reward, out, context)
        return proposals_frame(
            [(p, rank, c, r, lp) for (p, c, lp), r, rank in zip(out, rewards, _ranks([p for p, _, _ in out]))]
        )

    def brand_mask(self, brand: Brand | None, market: Market | None = None) -> CandidateMask | None:
        """The policy's mask of ``brand`` over ``market`` (default: its own), built once per brand and market."""
        if brand is None:
            return None
        inputs = self.inputs(market)
        if self._mask is None or self._mask[0] is not inputs or self._mask[1] is not brand:
            self._mask = (inputs, brand, brand.candidate_mask(inputs, market or self.market))
        return self._mask[2]

    @_in_configured_threads
    def propose(
        self, product_ids: Sequence[str] | None = None, k: int = 5, *, reward: RewardFn | None = None,
        context: str | None = None, market: Market | None = None, brand: Brand | None = None,
        exclude: Mapping[str, set[tuple[str, ...]]] | None = None,
        include: Mapping[str, set[tuple[str, ...]]] | None = None,
    ) -> pd.DataFrame:
        """A diverse top-k of combinations per product (module docstring), columns ``PROPOSAL_COLUMNS``.

        ``reward`` defaults to the one the generator was trained with (none after ``load`` unless given):
        without a reward, candidates are ranked by the policy's probability and ``reward`` is NaN.
        ``market`` may be a later version of the training market (new elements, new products).
        With ``brand``, beam search and sampling draw only what it allows (``Brand.candidate_mask``) and
        every candidate it refuses (a neighbour of the greedy one, say) is dropped before ranking.
        ``exclude`` maps a product to combinations (element ids in slot order) never to propose for it, such as
        the ones reviewers rejected, unless nothing else is left. ``include`` maps a product to combinations
        that join its candidates whatever the policy thinks of them, such as the ones reviewers approved, so that
        they are ranked by ``reward`` like the rest; only those ``allowed_combinations`` keeps join, and
        ``exclude`` wins over ``include``.
        """
        check_k(k)
        settings = self.config.proposals
        inputs = self.inputs(market)
        mask = self.brand_mask(brand, market)
        products = self._products(inputs, product_ids)
        rows = inputs.rows(products)
        included = self.allowed_combinations(include, market, brand) if include else {}
        with torch.no_grad():
            found_paths = [beam_search(self.network, inputs, self._batch(inputs, rows[part], context),
                                       settings.beam_width, mask)
                           for part in _row_chunks(inputs, len(rows), settings.beam_width)]
            paths, scores = torch.cat([p for p, _ in found_paths]), torch.cat([s for _, s in found_paths])
            sampled = None
            if settings.samples:
                generator = torch.Generator().manual_seed(self.config.seed)
                repeated = rows.repeat_interleave(settings.samples)
                sampled = torch.cat([
                    rollout(self.network, inputs, self._batch(inputs, repeated[part], context),
                            generator=generator, temperature=settings.temperature, mask=mask).actions
                    for part in _row_chunks(inputs, len(repeated))])
            alternatives = likeliest = None
            if settings.neighbours:
                alternatives, likeliest = self._alternatives(inputs, rows, paths[:, 0], context)
        candidates: list[list[tuple[int, ...]]] = []
        for i in range(len(products)):
            found = [tuple(a) for a, s in zip(paths[i].tolist(), scores[i].tolist()) if math.isfinite(s)]
            if sampled is not None:
                found += [tuple(a) for a in sampled[i * settings.samples:(i + 1) * settings.samples].tolist()]
            if alternatives is not None and found:
                found += _neighbours(found[0], [slot[i] for slot in alternatives])
                found += _pair_neighbours(found[0], [slot[i] for slot in likeliest])
            if included.get(products[i]):
                joined = inputs.positions(rows[i].repeat(len(included[products[i]])), included[products[i]])
                found += [tuple(a) for a in joined.tolist()]
            found = list(dict.fromkeys(found))
            banned = exclude.get(products[i], set()) if exclude else set()
            if brand is not None or banned:
                found = _allowed(found, inputs, int(rows[i]), products[i], brand, market or self.market, banned)
            candidates.append(found)
        flat_rows = torch.cat([rows[i].repeat(len(c)) for i, c in enumerate(candidates)])
        flat_actions = torch.tensor([a for c in candidates for a in c], dtype=torch.long)
        with torch.no_grad():
            log_probs = torch.cat([
                rollout(self.network, inputs, self._batch(inputs, flat_rows[part], context),
                        flat_actions[part]).log_prob
                for part in _row_chunks(inputs, len(flat_rows))])
        combos = inputs.combinations(flat_rows, flat_actions)
        pids = [products[i] for i, c in enumerate(candidates) for _ in c]
        rewards = _rewards(reward or self.reward, list(zip(pids, combos)), context)
        out, start = [], 0
        for i, group in enumerate(candidates):
            if not group:  # nothing the brand allows (a market changed since the brand was checked)
                continue
            stop = start + len(group)
            group_rewards, group_lp = rewards[start:stop], log_probs[start:stop].numpy()
            ranking = group_lp if np.isnan(group_rewards).all() else group_rewards
            chosen = diverse_top_k(np.array(group), ranking, group_lp, k, settings.min_distinct_slots,
                                   settings.max_share, settings.min_slots_from_first)
            for rank, j in enumerate(chosen, start=1):
                out.append((products[i], rank, combos[start + j], group_rewards[j], float(group_lp[j])))
            start = stop
        return proposals_frame(out)

    def allowed_combinations(
        self, combos: Mapping[str, Iterable[Sequence[str]]], market: Market | None = None, brand: Brand | None = None,
    ) -> dict[str, list[tuple[str, ...]]]:
        """Of ``combos`` (per product, element ids in slot order), those ``market`` (default: the policy's own)
        still allows, in a stable order: a product it has, one element per slot, each usable for the product in
        its slot, and with ``brand`` a combination the brand allows. Products left with none are left out."""
        inputs, market = self.inputs(market), market or self.market
        out: dict[str, list[tuple[str, ...]]] = {}
        for product, found in combos.items():
            row = inputs.product_row.get(product)
            if row is None:
                continue
            usable = [set(inputs.element_ids[e] for e in inputs.candidates[t][row][inputs.valid[t][row]].tolist())
                      for t in range(inputs.n_slots)]
            kept = [tuple(c) for c in sorted({tuple(c) for c in found})
                    if len(c) == inputs.n_slots and all(e in usable[t] for t, e in enumerate(c))
                    and (brand is None or not brand.combination_problems(market, product, list(c)))]
            if kept:
                out[product] = kept
        return out

    def _alternatives(self, inputs: PolicyInputs, rows: torch.Tensor, greedy: torch.Tensor,
                      context: str | None) -> tuple[list[list[list[int]]], list[list[list[int]]]]:
        """Per slot, per product row: the candidate positions tried in place of the greedy element, the
        ``neighbours_per_slot`` most probable under the policy at the greedy prefix, in position order; and
        the ``PAIR_ALTERNATIVES`` most probable of them, most probable first (for two-slot changes)."""
        limit = self.config.proposals.neighbours_per_slot
        per_slot: list[list[list[int]]] = [[] for _ in range(inputs.n_slots)]
        likeliest: list[list[list[int]]] = [[] for _ in range(inputs.n_slots)]
        for part in _row_chunks(inputs, len(rows)):
            result = rollout(self.network, inputs, self._batch(inputs, rows[part], context), greedy[part],
                             keep_slot_log_probs=True)
            for t, log_p in enumerate(result.slot_log_probs):
                valid = inputs.valid[t][rows[part]]
                log_p = log_p.masked_fill(~valid, float("-inf"))
                log_p[torch.arange(len(log_p)), greedy[part, t]] = float("-inf")  # the greedy element itself
                keep = min(limit, log_p.shape[1])
                top = log_p.topk(keep, dim=1)
                for values, positions in zip(top.values.tolist(), top.indices.tolist()):
                    possible = [m for m, v in zip(positions, values) if v > float("-inf")]  # most probable first
                    per_slot[t].append(sorted(possible))
                    likeliest[t].append(possible[:PAIR_ALTERNATIVES])
        return per_slot, likeliest

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write ``config.json`` + ``model.safetensors`` (policy and reference weights, vocabulary, history)."""
        tensors = {f"policy.{k}": v for k, v in self.network.state_dict().items()}
        tensors.update({f"reference.{k}": v for k, v in self.reference.state_dict().items()})
        save_artifact(folder, KIND, to_mapping(self.config), tensors, extra={
            "vocab": self.vocab.to_json(),
            "text_dim": int(self.network.element_words.in_features),
            "contexts": [[c, w] for c, w in self.contexts],
            "history": self.history.to_json(),
        })

    @classmethod
    def load(
        cls, folder: str | os.PathLike[str], market: Market, reward: RewardFn | None = None
    ) -> ComboGenerator:
        """A saved generator, proposing for ``market`` (the slots must be those it was trained on)."""
        artifact = load_artifact(folder, expected_kind=KIND)
        config = from_mapping(ComboConfig, artifact.config, where=f"{folder}/config.json")
        extra = artifact.extra or {}
        vocab = CreativeVocabulary.from_json(extra["vocab"])
        networks = []
        for prefix in ("policy.", "reference."):
            network = _network(config, vocab, int(extra["text_dim"]))
            network.load_state_dict({k.removeprefix(prefix): v for k, v in artifact.tensors.items()
                                     if k.startswith(prefix)})
            networks.append(network)
        generator = cls(config, vocab, networks[0], networks[1], market,
                        [(str(c), float(w)) for c, w in extra.get("contexts", [])], reward,
                        ComboHistory(**extra.get("history", {})))
        generator.inputs()  # refuse a market with other slots now, not at the first proposal
        return generator


def _context_tokens(vocab: CreativeVocabulary, contexts: Sequence[str], encoding: EncodingConfig) -> torch.Tensor:
    """(n, max_context_tokens) token indices of the impression contexts."""
    return torch.from_numpy(vocab.context_indices(list(contexts), encoding.max_context_tokens))


def _network(config: ComboConfig, vocab: CreativeVocabulary, text_dim: int) -> ComboPolicyNetwork:
    """A freshly initialised policy network, seeded by ``config.seed`` (the caller's RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return ComboPolicyNetwork(vocab, text_dim, config.policy.encoding.embedding_dim, config.policy.hidden)


def _ranks(products: Sequence[str]) -> list[int]:
    """1, 2, ... within each run of equal product ids."""
    out, previous, rank = [], None, 0
    for product in products:
        rank = rank + 1 if product == previous else 1
        out.append(rank)
        previous = product
    return out


def _rewards(reward: RewardFn | None, rows: Sequence[tuple], context: str | None) -> np.ndarray:
    """Reward of (product, combination, ...) rows, NaN without a reward function."""
    if reward is None:
        return np.full(len(rows), np.nan)
    cached = CachedReward(reward)
    contexts = None if context is None else [context] * len(rows)
    return cached([r[0] for r in rows], [r[1] for r in rows], contexts)


def _allowed(found: list[tuple[int, ...]], inputs: PolicyInputs, row: int, product_id: str, brand: Brand | None,
             market: Market, banned: set[tuple[str, ...]]) -> list[tuple[int, ...]]:
    """The candidates (candidate positions of the product at ``row``) whose combination the brand allows and
    that are not ``banned`` (element ids in slot order); the banned ones stay when nothing else would."""
    sets = [inputs.candidates[t][row].tolist() for t in range(inputs.n_slots)]
    ids = [tuple(inputs.element_ids[sets[t][m]] for t, m in enumerate(a)) for a in found]
    allowed = [(a, c) for a, c in zip(found, ids)
               if brand is None or not brand.combination_problems(market, product_id, list(c))]
    return [a for a, c in allowed if c not in banned] or [a for a, _ in allowed]


def _neighbours(actions: tuple[int, ...], alternatives: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """The combinations that differ from ``actions`` in exactly one slot t, taking there each of
    ``alternatives[t]`` (candidate positions)."""
    return [actions[:t] + (m,) + actions[t + 1:] for t, others in enumerate(alternatives) for m in others]


PAIR_ALTERNATIVES = 3  # per slot, the most probable alternatives combined in two-slot changes of rank 1


def _pair_neighbours(actions: tuple[int, ...], alternatives: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """The combinations that differ from ``actions`` in exactly two slots t < u, taking there each pair of
    ``alternatives[t]`` x ``alternatives[u]``: candidates a reviewer sees as a different creative (at most
    ``C(S, 2) PAIR_ALTERNATIVES^2`` per product)."""
    out = []
    for t, u in itertools.combinations(range(len(actions)), 2):
        for m in alternatives[t]:
            for n in alternatives[u]:
                changed = list(actions)
                changed[t], changed[u] = m, n
                out.append(tuple(changed))
    return out


ROLLOUT_VALUES = 1 << 22  # candidate scores a no-grad pass over many rows holds per slot (bounds its memory)


def _row_chunks(inputs: PolicyInputs, n: int, beams: int = 1) -> list[slice]:
    """Slices of ``n`` rows for passes of the policy over them (``beams`` rows each in a beam search), so
    that a pass holds about ``ROLLOUT_VALUES`` candidate scores: one slice for a small market."""
    widest = max(candidates.shape[1] for candidates in inputs.candidates) * beams
    step = max(1, ROLLOUT_VALUES // widest)
    return [slice(start, start + step) for start in range(0, n, step)]


CHECKPOINT_FILE = "combo.safetensors"


@dataclass(frozen=True)
class BehaviourCloningData:
    """The logged creatives as behaviour cloning reads them (rows aligned): each creative's product row,
    its elements as candidate positions per slot, its context's tokens and its weight w_pc (module
    docstring, L_BC)."""

    rows: torch.Tensor  # (n,) product rows of ``PolicyInputs``
    actions: torch.Tensor  # (n, slots) candidate positions
    tokens: torch.Tensor  # (n, max_context_tokens) context tokens
    weights: torch.Tensor  # (n,) float32

    @classmethod
    def of(cls, inputs: PolicyInputs, vocab: CreativeVocabulary, logged: pd.DataFrame,
           encoding: EncodingConfig) -> BehaviourCloningData:
        rows = inputs.rows(logged["product_id"].tolist())
        return cls(rows, inputs.positions(rows, logged["elements"].tolist()),
                   _context_tokens(vocab, logged["context"].tolist(), encoding),
                   torch.tensor(logged["weight"].to_numpy(dtype=np.float32)))

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class _PolicyRun:
    """What both phases of a ``ComboTrainer`` run work on: the policy's view of the market, the policy,
    the one generator both phases draw from (shuffles, hidden products, samples), the history and the
    checkpoint."""

    inputs: PolicyInputs
    vocab: CreativeVocabulary
    network: ComboPolicyNetwork
    generator: torch.Generator
    history: ComboHistory
    saver: _ComboCheckpoint
    contexts: list[tuple[str, float]]


class ComboTrainer:
    """Fits a ``ComboGenerator``: behaviour cloning on the market's logs, then RL on ``reward``."""

    def __init__(self, config: ComboConfig | None = None) -> None:
        self.config = config or ComboConfig()

    def fit(
        self, market: Market, reward: RewardFn | None, progress: bool = False, *, checkpoint: Path | None = None,
        on_checkpoint: Callable[[str, int], None] | None = None,
    ) -> ComboGenerator:
        """Behaviour cloning, then ``rl.steps`` policy-gradient steps on ``reward`` (none without a reward:
        the result is the behaviour-cloning policy).

        ``checkpoint``: a folder where the training state (policy, reference, optimiser, generator state,
        history, RL's product queue and reward cache) is saved every ``config.checkpoint_every`` BC epochs
        and RL steps; a run that finds a checkpoint of the same run there continues from it to bitwise the
        same policy as an uninterrupted run (given the same ``reward`` function). ``on_checkpoint(phase,
        done)`` is called after each save ("bc" epochs or "rl" steps done).
        """
        with torch_threads(self.config.threads):
            return self._fit(market, reward, progress, _ComboCheckpoint(checkpoint, on_checkpoint))

    def _fit(self, market: Market, reward: RewardFn | None, progress: bool, saver: _ComboCheckpoint
             ) -> ComboGenerator:
        config = self.config
        logged = logged_combinations(market, config.policy.use_context)
        vocab = CreativeVocabulary.from_market(market, logged if config.policy.use_context else None)
        inputs = PolicyInputs.build(market, vocab, config.policy.encoding)
        network = _network(config, vocab, int(inputs.element_text.shape[1]))
        contexts = context_distribution(logged) if config.policy.use_context and len(logged) else []
        contexts = [(c, w) for c, w in contexts if c != NO_CONTEXT]
        saver.open(config, network, inputs, logged, reward is not None)
        run = _PolicyRun(inputs, vocab, network, torch.Generator().manual_seed(config.seed), ComboHistory(), saver,
                         contexts)
        if saver.phase != "rl":
            self._clone(run, logged, progress)
        reference = copy.deepcopy(network).eval().requires_grad_(False)
        if reward is not None and config.rl.steps:
            self._reinforce(run, reference, CachedReward(reward), progress)
        return ComboGenerator(config, vocab, network, reference, market, contexts, reward, run.history)

    def _hide_products(self, products: torch.Tensor, groups: int, generator: torch.Generator) -> torch.Tensor:
        """Product indices with ``product_dropout`` of the groups set to unknown (index 0)."""
        hidden = torch.rand(groups, generator=generator) < self.config.policy.product_dropout
        return products.masked_fill(hidden.repeat_interleave(len(products) // groups), 0)

    def _clone(self, run: _PolicyRun, logged: pd.DataFrame, progress: bool) -> None:
        """Behaviour cloning (module docstring, L_BC): ``fit`` over the logged creatives, all ``bc.epochs``
        epochs (there is no validation split of the log), AdamW, the run's generator shared by the shuffle
        and the hidden products."""
        settings = self.config.bc
        if logged.empty or settings.epochs == 0:
            return
        data = BehaviourCloningData.of(run.inputs, run.vocab, logged, self.config.policy.encoding)
        inputs, network, generator, smoothing = run.inputs, run.network, run.generator, settings.label_smoothing

        def loss(index: torch.Tensor) -> torch.Tensor:
            products = self._hide_products(inputs.products[data.rows[index]], len(index), generator)
            result = rollout(network, inputs, PolicyBatch(data.rows[index], products, data.tokens[index]),
                             data.actions[index])
            target = (1.0 - smoothing) * result.log_prob + smoothing * result.uniform_log_prob
            return -(data.weights[index] * target).sum() / data.weights[index].sum()

        train = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size,
                            learning_rate=settings.learning_rate, weight_decay=settings.weight_decay,
                            seed=self.config.seed)
        checkpoint = None if run.saver.path is None else _CloningCheckpoint(run.saver, settings.epochs,
                                                                            self.config.checkpoint_every)
        history = fit(network, len(data), loss, None, train, progress, "behaviour cloning", checkpoint=checkpoint,
                      generator=generator, row_weights=data.weights)
        run.history.bc_loss = history.train_loss

    def _reinforce(self, run: _PolicyRun, reference: ComboPolicyNetwork, reward: CachedReward,
                   progress: bool) -> None:
        """``rl.steps`` policy-gradient steps (module docstring, L).

        Not ``fit``'s loop: a step is not a mini-batch of a fixed data set but a fresh on-policy sample
        (K combinations for each of a batch of products, scored by the reward), so there are no epochs
        to shuffle, no loss of the same data to validate and no best epoch to restore.
        """
        settings, inputs, network = self.config.rl, run.inputs, run.network
        generator, history = run.generator, run.history
        k = settings.samples_per_product
        n_products = len(inputs.product_ids)
        per_step = min(settings.products_per_step, n_products)
        optimiser = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
        done, queue = run.saver.restore_rl(run, reference, optimiser, reward)
        with progress_bar(progress) as bar:
            task = bar.add_task("policy gradient", total=settings.steps, completed=done, status="")
            network.train()
            for step in range(done, settings.steps):
                if len(queue) < per_step:  # every product once per pass, in a fresh random order
                    queue = torch.cat([queue, torch.randperm(n_products, generator=generator)])
                groups, queue = queue[:per_step], queue[per_step:]
                rows = groups.repeat_interleave(k)
                context_names = self._sample_contexts(run.contexts, per_step, generator)
                batch = PolicyBatch(rows, self._hide_products(inputs.products[rows], per_step, generator),
                                    _context_tokens(run.vocab, [c for c in context_names for _ in range(k)],
                                                    self.config.policy.encoding))
                result = rollout(network, inputs, batch, generator=generator, reference=reference)
                combos = inputs.combinations(rows, result.actions)
                pids = [inputs.product_ids[r] for r in rows.tolist()]
                values = reward(pids, combos, [c for c in context_names for _ in range(k)])
                advantage = torch.from_numpy(
                    group_advantages(values.reshape(per_step, k), settings.normalise_advantage).reshape(-1)
                ).float()
                loss = (-(advantage * result.log_prob).mean() + settings.kl_coef * result.kl.mean()
                        - settings.entropy_coef * result.entropy.mean())
                if not torch.isfinite(loss.detach()):
                    raise AdcraftError(f"policy gradient: the loss became {float(loss)}")
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(network.parameters(), settings.max_grad_norm)
                optimiser.step()
                history.reward.append(float(values.mean()))
                history.kl.append(float(result.kl.detach().mean()))
                history.entropy.append(float(result.entropy.detach().mean()))
                history.reward_evaluations = reward.evaluations
                if (step + 1) % self.config.checkpoint_every == 0 or step + 1 == settings.steps:
                    run.saver.save_rl(run, step + 1, settings.steps, reference, optimiser, reward, queue)
                bar.update(task, advance=1, status=f"reward {history.reward[-1]:.4g}  kl {history.kl[-1]:.3f}")
        network.eval()

    def _sample_contexts(self, contexts, groups: int, generator: torch.Generator) -> list[str]:
        """A context per group: none without contexts; with them, none (the traffic-wide reward) half
        the time and otherwise one drawn from the log's context distribution."""
        if not contexts:
            return [NO_CONTEXT] * groups
        weights = torch.tensor([w for _, w in contexts], dtype=torch.float64)
        picks = torch.multinomial(weights, groups, replacement=True, generator=generator).tolist()
        free = (torch.rand(groups, generator=generator) < 0.5).tolist()
        return [NO_CONTEXT if f else contexts[i][0] for i, f in zip(picks, free)]


@dataclass
class _CloningCheckpoint:
    """The behaviour-cloning phase of a ``_ComboCheckpoint`` as ``fit`` saves and restores it (a
    ``LoopCheckpoint``): every ``every`` epochs and after the last, in the combination policy's file."""

    combo: _ComboCheckpoint
    epochs: int
    every: int

    def restore(self, model: ComboPolicyNetwork, optimiser: torch.optim.Optimizer, generator: torch.Generator
                ) -> LoopState | None:
        if self.combo.phase != "bc":
            return None
        history = ComboHistory()
        self.combo.restore_common(model, optimiser, generator, history)
        return LoopState(TrainHistory(train_loss=history.bc_loss), epochs=int(self.combo.saved.state["done"]))

    def save(self, model: ComboPolicyNetwork, optimiser: torch.optim.Optimizer, generator: torch.Generator,
             state: LoopState) -> None:
        if state.epochs % self.every == 0 or state.epochs == self.epochs:
            self.combo.save_bc(state.epochs, self.epochs, model, optimiser, generator,
                               ComboHistory(bc_loss=list(state.history.train_loss)))


class _ComboCheckpoint:
    """Saves and restores a ``ComboTrainer`` run in ``folder/combo.safetensors`` (a no-op without a folder).

    A behaviour-cloning checkpoint holds the policy, AdamW's state, the generator state and the history;
    an RL checkpoint also the frozen reference, Adam's state, the queue of products still to visit in
    this pass and the reward cache (a row's reward is asked once per run, and the cached values and the
    count of evaluations are part of the result).
    """

    def __init__(self, folder: Path | None, on_checkpoint: Callable[[str, int], None] | None) -> None:
        self.path = None if folder is None else Path(folder) / CHECKPOINT_FILE
        self.on_checkpoint = on_checkpoint
        self.run = ""
        self.saved: Checkpoint | None = None

    @property
    def phase(self) -> str | None:
        """"bc" or "rl": the phase of the checkpoint this run resumes from; None for a fresh run."""
        return None if self.saved is None else self.saved.state["phase"]

    def open(self, config: ComboConfig, network: ComboPolicyNetwork, inputs: PolicyInputs, logged: pd.DataFrame,
             has_reward: bool) -> None:
        """Fingerprint the run (settings without ``checkpoint_every``, the policy's inputs, the logged
        creatives, the initial weights) and load a checkpoint of it, if there is one."""
        if self.path is None:
            return
        settings = to_mapping(config)
        settings.pop("checkpoint_every")
        data = array_digest(inputs.products, inputs.categories, inputs.product_text, inputs.elements,
                            inputs.element_slots, inputs.element_text, *inputs.candidates, *inputs.valid)
        rows = logged[["product_id", "elements", "context", "weight"]].astype(str).to_numpy().tolist()
        self.run = fingerprint("combo", settings, has_reward, inputs.product_ids, inputs.element_ids, data, rows,
                               tensor_digest(network.state_dict().items()))
        self.saved = load_checkpoint(self.path, self.run, "combination policy")

    def restore_rl(self, run: _PolicyRun, reference: ComboPolicyNetwork, optimiser: torch.optim.Optimizer,
                   reward: CachedReward) -> tuple[int, torch.Tensor]:
        """(RL steps done, product queue): (0, empty) for a run that starts RL now; restores their state."""
        if self.phase != "rl":
            return 0, torch.empty(0, dtype=torch.long)
        saved = self.saved
        self.restore_common(run.network, optimiser, run.generator, run.history)
        reference.load_state_dict(saved.module_state("reference."))
        reward.values = {(p, tuple(c), x): float(v) for p, c, x, v in saved.state["reward_cache"]}
        return int(saved.state["done"]), saved.tensors["queue"].clone()

    def restore_common(self, network, optimiser, generator: torch.Generator, history: ComboHistory) -> None:
        """Load the policy, optimiser and generator of the checkpoint and copy its history into ``history``."""
        saved = self.saved
        network.load_state_dict(saved.module_state("policy."))
        restore_optimiser(optimiser, saved, "optimiser.")
        generator.set_state(saved.tensors["generator"])
        restored = ComboHistory(**saved.state["history"])
        for name in ("bc_loss", "reward", "kl", "entropy", "reward_evaluations"):
            setattr(history, name, getattr(restored, name))

    def save_bc(self, done: int, total: int, network, optimiser, generator: torch.Generator,
                history: ComboHistory) -> None:
        self._save("bc", done, f"behaviour cloning epoch {done} of {total}", network, optimiser, generator,
                   history)

    def save_rl(self, run: _PolicyRun, done: int, total: int, reference: ComboPolicyNetwork,
                optimiser: torch.optim.Optimizer, reward: CachedReward, queue: torch.Tensor) -> None:
        cache = [[p, list(c), x, v] for (p, c, x), v in reward.values.items()]
        self._save("rl", done, f"policy-gradient step {done} of {total}", run.network, optimiser, run.generator,
                   run.history, {**module_tensors("reference.", reference), "queue": queue}, {"reward_cache": cache})

    def _save(self, phase: str, done: int, where: str, network, optimiser, generator: torch.Generator,
              history: ComboHistory, tensors: dict | None = None, state: dict | None = None) -> None:
        if self.path is None:
            return
        tensors = {**module_tensors("policy.", network), **optimiser_tensors("optimiser.", optimiser),
                   "generator": generator.get_state(), **(tensors or {})}
        state = {"phase": phase, "done": done, "position": where, "history": history.to_json(), **(state or {})}
        save_checkpoint(self.path, self.run, state, tensors)
        if self.on_checkpoint is not None:
            self.on_checkpoint(phase, done)


def group_advantages(rewards: np.ndarray, normalise: bool = True) -> np.ndarray:
    """A = r - mean over the group (rows of ``rewards``), divided by the group's std when ``normalise``
    (a group whose rewards are all equal gets zero advantage)."""
    centred = rewards - rewards.mean(axis=1, keepdims=True)
    if not normalise:
        return centred
    std = rewards.std(axis=1, keepdims=True)
    scale = np.maximum(std, 1e-8 * (np.abs(rewards).mean(axis=1, keepdims=True) + 1e-12))
    return np.where(std > 0, centred / scale, 0.0)


def behaviour_cloning_proposals(
    generator: ComboGenerator, product_ids: Sequence[str] | None = None, k: int = 5,
    reward: RewardFn | None = None, context: str | None = None, market: Market | None = None,
) -> pd.DataFrame:
    """The behaviour-cloning policy's k most probable combinations per product (no RL, no reward search),
    ranked by its probability; ``reward`` only fills in the reward column."""
    return generator.most_probable(product_ids, k, reference=True, reward=reward, context=context,
                                   market=market)
