"""The GenCO combination policy (arXiv 2508.09730, stage 1): a slot-by-slot distribution over combinations.

A combination c = (e_1, ..., e_S) has one element per slot, in market.json's slot order, and the policy
factorises over the slots (autoregressive)::

    pi(c | p, x) = prod_t pi(e_t | p, x, e_<t)

with, for the product p, the optional context x and every element e,

    product vector   v_p = E_prod[p] + E_cat[category(p)] + W_p [text(title); text(category)]
    context vector   v_x = mean of E_tok over the context's key=value tokens (zero without a context)
    element vector   u_e = E_el[e] + E_slot[slot(e)] + W_e text(e)
    state            h_0 = tanh(W_0 [v_p; v_x] + b_0),      h_t = GRU(u_{e_t}, h_{t-1})
    slot scores      logit_t(e) = <Q_t h_{t-1} + q_t + C_t v_x, u_e> + b[e]   if e is usable for p in slot t,
                     -inf otherwise

The context also enters each slot's query directly (C_t v_x), so a context can move a choice that
the product alone settles. ``text(.)`` are frozen features of a text encoder (cached;
``EncodingConfig.text_backbone``), so an element the policy never saw (a new background prompt added to
the elements table later) is scored from its words, and a product never seen from its title and
category: ids unknown at training map to index 0, whose embeddings and bias are zero.

Masking is structural: a slot's candidates are the product's usable elements (its own and those for
every product), nothing else can be drawn, and a slot with one usable element has probability 1. A
``CandidateMask`` (brand guardrails, ``generate.brand``) narrows what sampling and beam search may pick
further, per element and per pair of elements of two slots; the log-probabilities returned stay those of
the policy itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from adcraft.errors import InputError
from adcraft.features.cache import default_cache_dir
from adcraft.market import Market
from adcraft.rewards.encoding import UNKNOWN, CreativeVocabulary, EncodingConfig, element_text

Combination = list[str]


def slot_candidates(market: Market) -> dict[str, list[list[str]]]:
    """Each product's usable element ids per slot, in market.json's slot order and table order within a
    slot: the sets of ``Market.usable_elements`` for every (product, slot), computed in one pass.

    Raises ``InputError`` when a product has no usable element for a slot.
    """
    slot_index = {slot: t for t, slot in enumerate(market.slots)}
    products = market.products["product_id"].tolist()
    table: dict[str, list[list[str]]] = {p: [[] for _ in market.slots] for p in products}
    elements = market.elements
    for element_id, slot, product_id in zip(elements["element_id"], elements["slot"], elements["product_id"]):
        t = slot_index.get(slot)
        if t is None:
            continue
        if isinstance(product_id, str):
            if product_id in table:
                table[product_id][t].append(element_id)
        else:
            for sets in table.values():
                sets[t].append(element_id)
    for product_id, sets in table.items():
        for slot, usable in zip(market.slots, sets):
            if not usable:
                raise InputError(f"product {product_id!r} has no usable element for slot {slot!r}: "
                                 "every product needs at least one per slot")
    return table


def text_features(texts: Sequence[str | None], backbone: str) -> np.ndarray:
    """(n, d) frozen features of ``texts`` through the feature cache; zero rows for None or empty texts."""
    if backbone == "none":
        return np.zeros((len(texts), 1), dtype=np.float32)
    from adcraft.features.cache import FeatureCache, encode_texts
    from adcraft.features.text_encoder import TextEncoderConfig, build_text_encoder

    encoder = build_text_encoder(TextEncoderConfig(backbone=backbone))
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    rows = [i for i, text in enumerate(texts) if isinstance(text, str) and text.strip()]
    if rows:
        out[rows] = encode_texts(encoder, [texts[i] for i in rows], FeatureCache(default_cache_dir()))
    return out


@dataclass
class PolicyInputs:
    """A market's products and elements as the policy's input tensors, and each product's candidates.

    ``candidates[t]`` is (P, M_t): rows of the element arrays usable for each product in slot t, padded
    (with row 0) to the slot's largest set; ``valid[t]`` marks the real entries.
    """

    product_ids: list[str]
    product_row: dict[str, int]
    products: torch.Tensor  # (P,) vocabulary index
    categories: torch.Tensor  # (P,)
    product_text: torch.Tensor  # (P, 2 * text_dim): title and category features
    element_ids: list[str]
    elements: torch.Tensor  # (N,) vocabulary index
    element_slots: torch.Tensor  # (N,) slot index
    element_text: torch.Tensor  # (N, text_dim)
    candidates: list[torch.Tensor]
    valid: list[torch.Tensor]

    @classmethod
    def build(cls, market: Market, vocab: CreativeVocabulary, encoding: EncodingConfig) -> PolicyInputs:
        if tuple(market.slots) != tuple(vocab.slots):
            raise InputError(
                f"the market's slots {list(market.slots)} differ from the policy's slots {vocab.slots}: "
                "a combination policy works on markets with the slots it was trained on"
            )
        slot_index = {slot: i for i, slot in enumerate(vocab.slots)}
        table = market.elements[market.elements["slot"].isin(slot_index)]
        element_ids = table["element_id"].tolist()
        element_index = {e: i + 1 for i, e in enumerate(vocab.elements)}
        category_index = {c: i + 1 for i, c in enumerate(vocab.categories)}
        product_index = {p: i + 1 for i, p in enumerate(vocab.products)}
        words = [element_text(s, t, v) for s, t, v in zip(table["slot"], table["text"], table["value"])]
        products = market.products
        n = len(products)
        features = text_features(products["title"].tolist() + products["category"].tolist() + words,
                                 encoding.text_backbone)
        titles, category_words, element_words = features[:n], features[n:2 * n], features[2 * n:]
        row_of = {e: i for i, e in enumerate(element_ids)}
        per_product = slot_candidates(market)
        candidates, valid = [], []
        for t in range(len(vocab.slots)):
            sets = [[row_of[e] for e in per_product[p][t]] for p in products["product_id"]]
            width = max(1, max(len(s) for s in sets))
            index = np.zeros((len(sets), width), dtype=np.int64)
            mask = np.zeros((len(sets), width), dtype=bool)
            for i, rows in enumerate(sets):
                index[i, : len(rows)] = rows
                mask[i, : len(rows)] = True
            candidates.append(torch.from_numpy(index))
            valid.append(torch.from_numpy(mask))
        product_ids = products["product_id"].tolist()
        return cls(
            product_ids=product_ids,
            product_row={p: i for i, p in enumerate(product_ids)},
            products=torch.tensor([product_index.get(p, UNKNOWN) for p in product_ids], dtype=torch.long),
            categories=torch.tensor([category_index.get(c, UNKNOWN) for c in products["category"]],
                                    dtype=torch.long),
            product_text=torch.from_numpy(np.concatenate([titles, category_words], axis=1)),
            element_ids=element_ids,
            elements=torch.tensor([element_index.get(e, UNKNOWN) for e in element_ids], dtype=torch.long),
            element_slots=torch.tensor([slot_index[s] for s in table["slot"]], dtype=torch.long),
            element_text=torch.from_numpy(element_words),
            candidates=candidates,
            valid=valid,
        )

    @property
    def n_slots(self) -> int:
        return len(self.candidates)

    def rows(self, product_ids: Sequence[str]) -> torch.Tensor:
        """Row of each product; ``InputError`` naming the first product the market does not have."""
        missing = [p for p in product_ids if p not in self.product_row]
        if missing:
            raise InputError(f"unknown product {missing[0]!r}: it is not in the market's products table")
        return torch.tensor([self.product_row[p] for p in product_ids], dtype=torch.long)

    def space_sizes(self) -> np.ndarray:
        """(P,) number of usable combinations of each product (product of its slot set sizes)."""
        sizes = np.ones(len(self.product_ids), dtype=np.float64)
        for mask in self.valid:
            sizes *= mask.sum(dim=1).numpy()
        return sizes

    def positions(self, rows: torch.Tensor, combos: Sequence[Sequence[str]]) -> torch.Tensor:
        """(n, S) candidate positions of each combination's elements; ``InputError`` for an element
        that is not usable for the product in its slot (or a combination of the wrong length)."""
        out = torch.zeros((len(combos), self.n_slots), dtype=torch.long)
        lookup: dict[tuple[int, int], dict[str, int]] = {}
        for i, (row, combo) in enumerate(zip(rows.tolist(), combos)):
            if len(combo) != self.n_slots:
                raise InputError(f"combination {list(combo)} does not have one element per slot")
            for t, element in enumerate(combo):
                if (row, t) not in lookup:
                    ids = self.candidates[t][row][self.valid[t][row]].tolist()
                    lookup[row, t] = {self.element_ids[e]: m for m, e in enumerate(ids)}
                position = lookup[row, t].get(element)
                if position is None:
                    raise InputError(
                        f"element {element!r} is not usable for product {self.product_ids[row]!r} "
                        f"in slot {t + 1}"
                    )
                out[i, t] = position
        return out

    def combinations(self, rows: torch.Tensor, actions: torch.Tensor) -> list[Combination]:
        """Element ids of candidate positions ``actions`` (n, S) of products ``rows``."""
        picked = torch.stack(
            [self.candidates[t][rows, actions[:, t]] for t in range(self.n_slots)], dim=1
        ).tolist()
        return [[self.element_ids[e] for e in combo] for combo in picked]


class ComboPolicyNetwork(nn.Module):
    """The autoregressive slot policy of the module docstring (parameters only; inputs come from
    ``PolicyInputs``)."""

    def __init__(
        self, vocab: CreativeVocabulary, text_dim: int, embedding_dim: int, hidden: int
    ) -> None:
        super().__init__()
        d, slots = embedding_dim, len(vocab.slots)
        self.element_id = nn.Embedding(len(vocab.elements) + 1, d, padding_idx=UNKNOWN)
        self.element_bias = nn.Embedding(len(vocab.elements) + 1, 1, padding_idx=UNKNOWN)
        self.slot = nn.Parameter(torch.zeros(slots, d))
        self.element_words = nn.Linear(text_dim, d, bias=False)
        self.product = nn.Embedding(len(vocab.products) + 1, d, padding_idx=UNKNOWN)
        self.category = nn.Embedding(len(vocab.categories) + 1, d, padding_idx=UNKNOWN)
        self.product_words = nn.Linear(2 * text_dim, d, bias=False)
        self.context = nn.Embedding(len(vocab.context_tokens) + 1, d, padding_idx=UNKNOWN)
        self.start = nn.Linear(2 * d, hidden)
        self.cell = nn.GRUCell(d, hidden)
        self.query = nn.Parameter(torch.randn(slots, hidden, d) / hidden**0.5)
        self.query_bias = nn.Parameter(torch.zeros(slots, d))
        self.context_query = nn.Parameter(torch.randn(slots, d, d) / d**0.5)
        for emb in (self.element_id, self.product, self.category, self.context):
            nn.init.normal_(emb.weight, std=0.05)
            with torch.no_grad():
                emb.weight[UNKNOWN].zero_()
        nn.init.zeros_(self.element_bias.weight)

    def element_vectors(self, inputs: PolicyInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, d) vectors u_e and (N,) biases b[e] of the market's elements."""
        vectors = self.element_id(inputs.elements) + self.slot[inputs.element_slots]
        vectors = vectors + self.element_words(inputs.element_text)
        return vectors, self.element_bias(inputs.elements).squeeze(-1)

    def context_vector(self, batch: PolicyBatch) -> torch.Tensor:
        """(B, d) mean embedding of each row's context tokens (zero without a context)."""
        mask = (batch.contexts != UNKNOWN).float().unsqueeze(-1)
        return (self.context(batch.contexts) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def initial_state(self, inputs: PolicyInputs, batch: PolicyBatch) -> torch.Tensor:
        """(B, hidden) h_0 from the product and context vectors."""
        rows = batch.rows
        product = self.product(batch.products) + self.category(inputs.categories[rows])
        product = product + self.product_words(inputs.product_text[rows])
        return torch.tanh(self.start(torch.cat([product, self.context_vector(batch)], dim=1)))

    def slot_logits(
        self, t: int, state: torch.Tensor, vectors: torch.Tensor, biases: torch.Tensor, candidates: torch.Tensor,
        valid: torch.Tensor, context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, M) masked scores of slot t's candidates (-inf where not usable)."""
        query = state @ self.query[t] + self.query_bias[t]
        if context is not None:
            query = query + context @ self.context_query[t]
        if vectors.shape[0] <= candidates.shape[1] * vectors.shape[1]:
            # A slot offered to every product (a shared library): score every element once per row,
            # (B, N) values, rather than gather a (B, M, d) copy of the candidates' vectors.
            scores = (query @ vectors.T).gather(1, candidates)
        else:
            scores = torch.einsum("bd,bmd->bm", query, vectors[candidates])
        return (scores + biases[candidates]).masked_fill(~valid, float("-inf"))


@dataclass(frozen=True)
class PairRule:
    """Which elements of slot ``first`` may go with which of slot ``second`` (``first < second``):
    ``compatible[first_code[e], second_code[f]]`` for element rows e, f; code 0 (an element the rule
    does not concern) is compatible with everything."""

    first: int
    second: int
    first_code: torch.Tensor  # (N,) long
    second_code: torch.Tensor  # (N,) long
    compatible: torch.Tensor  # (A + 1, B + 1) bool

    def allows(self, first_elements: torch.Tensor, second_elements: torch.Tensor) -> torch.Tensor:
        """(B, M) whether each row's element of slot ``first`` (B,) goes with each of ``second_elements``
        (B, M), both element rows."""
        return self.compatible[self.first_code[first_elements].unsqueeze(1), self.second_code[second_elements]]


@dataclass(frozen=True)
class CandidateMask:
    """What proposals may draw beyond the structural mask: ``allowed[t]`` (P, M_t) marks the candidates of
    slot t each product may use, and each ``PairRule`` refuses pairs of elements of two slots. Every
    element left in ``allowed`` of a rule's first slot has a partner in its second slot, so sampling and
    beam search never reach a slot with nothing to pick."""

    allowed: list[torch.Tensor]
    pairs: tuple[PairRule, ...] = ()

    def slot_allowed(self, t: int, rows: torch.Tensor, candidates: torch.Tensor,
                     chosen: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B, M) the candidates of slot t that rows may pick, given the element rows ``chosen[s]`` (B,)
        already picked in the earlier slots s < t."""
        allowed = self.allowed[t][rows]
        for rule in self.pairs:
            if rule.second == t:
                allowed = allowed & rule.allows(chosen[rule.first], candidates)
        return allowed


@dataclass
class PolicyBatch:
    """Rows of products to act for: market rows, product vocabulary indices (0 where the id is hidden
    or unknown) and context tokens (B, T), zero when there is no context."""

    rows: torch.Tensor
    products: torch.Tensor
    contexts: torch.Tensor

    @classmethod
    def of(cls, inputs: PolicyInputs, rows: torch.Tensor, contexts: torch.Tensor | None = None) -> PolicyBatch:
        if contexts is None:
            contexts = torch.zeros((len(rows), 1), dtype=torch.long)
        return cls(rows, inputs.products[rows], contexts)


@dataclass
class Rollout:
    """Combinations (as candidate positions) with their log-probability, and per-combination sums over
    slots, at the visited prefixes, of: the mean log-probability of the usable elements (the uniform
    target of label smoothing), the policy's entropy and KL(policy || reference)."""

    actions: torch.Tensor  # (B, S)
    log_prob: torch.Tensor  # (B,)
    uniform_log_prob: torch.Tensor  # (B,)
    entropy: torch.Tensor  # (B,)
    kl: torch.Tensor  # (B,)
    slot_log_probs: list[torch.Tensor] | None = None  # per slot (B, M_t) log pi(. | h_t), when asked for


def _categorical_terms(logits: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log-probabilities (masked entries 0) and entropy of masked categorical distributions."""
    log_p = F.log_softmax(logits, dim=-1).masked_fill(~valid, 0.0)
    entropy = -(log_p.exp() * log_p).sum(dim=-1)
    return log_p, entropy


def rollout(
    network: ComboPolicyNetwork,
    inputs: PolicyInputs,
    batch: PolicyBatch,
    actions: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    reference: ComboPolicyNetwork | None = None,
    keep_slot_log_probs: bool = False,
    mask: CandidateMask | None = None,
) -> Rollout:
    """Run the policy over the slots: sample each element (``actions`` None) or score given ``actions``.

    Sampling draws from softmax(logit / temperature); the returned log-probabilities are always those of
    the policy itself (temperature 1). With ``reference``, ``kl`` sums over slots the exact
    KL(pi(.|h_t) || pi_ref(.|h_t)) of the slot distributions at the visited prefix (the chain rule
    makes its expectation the KL of the whole combination distributions); else it is zero.
    ``keep_slot_log_probs`` also returns every slot's log-probabilities over its candidates at the visited
    prefix (e.g. to rank the alternatives to a combination's elements). With ``mask``, sampling draws only
    what the mask allows (the policy's probabilities renormalised over it).
    """
    vectors, biases = network.element_vectors(inputs)
    state, context = network.initial_state(inputs, batch), network.context_vector(batch)
    if reference is not None:
        with torch.no_grad():
            ref_vectors, ref_biases = reference.element_vectors(inputs)
            ref_state, ref_context = reference.initial_state(inputs, batch), reference.context_vector(batch)
    n = len(batch.rows)
    chosen = torch.zeros((n, inputs.n_slots), dtype=torch.long)
    log_prob, uniform, entropy, kl = torch.zeros(n), torch.zeros(n), torch.zeros(n), torch.zeros(n)
    kept: list[torch.Tensor] | None = [] if keep_slot_log_probs else None
    elements: list[torch.Tensor] = []  # element rows picked in each slot so far
    for t in range(inputs.n_slots):
        candidates, valid = inputs.candidates[t][batch.rows], inputs.valid[t][batch.rows]
        logits = network.slot_logits(t, state, vectors, biases, candidates, valid, context)
        log_p, slot_entropy = _categorical_terms(logits, valid)
        if kept is not None:
            kept.append(log_p)
        if actions is not None:
            pick = actions[:, t]
        else:
            with torch.no_grad():
                drawn = logits.detach()
                if mask is not None:
                    drawn = drawn.masked_fill(~mask.slot_allowed(t, batch.rows, candidates, elements), float("-inf"))
                probs = torch.softmax(drawn / temperature, dim=-1)
                pick = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        chosen[:, t] = pick
        log_prob = log_prob + log_p.gather(1, pick[:, None]).squeeze(1)
        uniform = uniform + log_p.sum(dim=1) / valid.sum(dim=1)
        entropy = entropy + slot_entropy
        picked = candidates.gather(1, pick[:, None]).squeeze(1)
        elements.append(picked)
        if reference is not None:
            with torch.no_grad():
                ref_logits = reference.slot_logits(t, ref_state, ref_vectors, ref_biases, candidates, valid,
                                                   ref_context)
                ref_log_p, _ = _categorical_terms(ref_logits, valid)
                ref_state = reference.cell(ref_vectors[picked], ref_state)
            kl = kl + (log_p.exp() * (log_p - ref_log_p)).sum(dim=-1)
        state = network.cell(vectors[picked], state)
    return Rollout(chosen, log_prob, uniform, entropy, kl, kept)


@torch.no_grad()
def beam_search(
    network: ComboPolicyNetwork, inputs: PolicyInputs, batch: PolicyBatch, width: int,
    mask: CandidateMask | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``width`` most probable combinations per row by beam search: actions (B, W, S) and their
    log-probabilities (B, W), best first, -inf where a product has fewer than W combinations (fewer
    than W that ``mask`` allows, with a mask).

    Width 1 is greedy decoding (the policy's mode, slot by slot).
    """
    vectors, biases = network.element_vectors(inputs)
    n = len(batch.rows)
    state = network.initial_state(inputs, batch).unsqueeze(1)  # (B, 1, H)
    context = network.context_vector(batch)
    scores = torch.zeros((n, 1))
    paths = torch.zeros((n, 1, 0), dtype=torch.long)
    chosen = torch.zeros((n, 1, 0), dtype=torch.long)  # element rows of the paths
    for t in range(inputs.n_slots):
        beams = state.shape[1]
        candidates = inputs.candidates[t][batch.rows].unsqueeze(1).expand(-1, beams, -1)
        valid = inputs.valid[t][batch.rows].unsqueeze(1).expand(-1, beams, -1)
        flat = network.slot_logits(
            t, state.reshape(n * beams, -1), vectors, biases,
            candidates.reshape(n * beams, -1), valid.reshape(n * beams, -1), context.repeat_interleave(beams, 0),
        )
        log_p = F.log_softmax(flat, dim=-1).reshape(n, beams, -1)
        log_p = log_p.masked_fill(~valid, float("-inf"))
        if mask is not None:
            allowed = mask.slot_allowed(t, batch.rows.repeat_interleave(beams), candidates.reshape(n * beams, -1),
                                        list(chosen.reshape(n * beams, t).T))
            log_p = log_p.masked_fill(~allowed.reshape(n, beams, -1), float("-inf"))
        total = (scores.unsqueeze(2) + log_p).reshape(n, -1)
        keep = min(width, total.shape[1])
        scores, flat_index = total.topk(keep, dim=1)
        width_m = log_p.shape[2]
        beam, pick = flat_index // width_m, flat_index % width_m
        paths = torch.cat([paths.gather(1, beam.unsqueeze(2).expand(-1, -1, t)), pick.unsqueeze(2)], dim=2)
        elements = candidates.gather(1, beam.unsqueeze(2).expand(-1, -1, candidates.shape[2]))
        elements = elements.gather(2, pick.unsqueeze(2)).squeeze(2)
        chosen = torch.cat([chosen.gather(1, beam.unsqueeze(2).expand(-1, -1, t)), elements.unsqueeze(2)], dim=2)
        previous = state.gather(1, beam.unsqueeze(2).expand(-1, -1, state.shape[2]))
        state = network.cell(vectors[elements].reshape(n * keep, -1), previous.reshape(n * keep, -1))
        state = state.reshape(n, keep, -1)
    return paths, scores
