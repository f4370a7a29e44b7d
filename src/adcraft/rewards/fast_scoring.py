"""Scoring many creatives with a trained reward network without recomputing per-element work per row.

A reward network's forward pass recomputes, for every row and slot, the element vector
``T[s, e] = E_id[e] + slot_s + W_text t_e`` (``CreativeTower.element_vectors``; the text projection
of a 384-d embedding dominates) and everything linear in it. Those depend only on (slot position,
element), the product or the context, so a scorer computes them once per set of weights and scores
rows by gathering table rows:

- multi-instance model (``rewards.mil``): the element MLP's first layer splits by input block,
  ``W_1 [v; p; x] + b_1 = W_v T[s, e] + (W_p p + b_1) + W_x x``, and so do the attention logits
  ``a = w . [v; p; x]`` and the interaction projections ``V T[s, e]``; the gathered parts go through
  the model's own ``bag_logit`` pooling;
- point-wise CTR model (``rewards.ctr``): ``W_1 [v_1; ...; v_S; p; c; i] = sum_s W_{1,s} v_s + W_{1,p} p
  + W_{1,c} c + W_{1,i} i``.

Predictions equal the networks' forward passes up to float32 rounding (tests assert a max absolute
difference below 1e-6). Every product of a row with weights is computed by ``fixed_order_matmul``, not
by BLAS: a BLAS kernel, and so its order of summation, depends on how many rows are multiplied together
and on the thread count, which made a row's score differ in its last bits between a Ray worker (one
thread) and the caller (two), or between chunks of different sizes. Here a row's score is the same bits
whatever it is scored with, on one thread or many.

A scorer remembers which weights it was built from (every tensor object and its
in-place version counter) and is rebuilt when any of them is replaced or changed in place; writes through
``tensor.data`` bypass the version counter and are not seen.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from adcraft.errors import InputError
from adcraft.rewards.encoding import UNKNOWN, CreativeBatch, CreativeTower, CreativeVocabulary, EncodingConfig

if TYPE_CHECKING:
    from adcraft.rewards.ctr import CTRNetwork
    from adcraft.rewards.mil import MILNetwork

CHUNK_ROWS = 16_384  # rows scored per gather pass; bounds the (rows, slots, hidden) intermediate
TABLE_VALUES = 1 << 22  # floats per block of (product, context) x (slot, element) hidden activations


class WeightsStamp:
    """Which weights a scorer was built from: every tensor of the network (held, so no storage is reused
    while the stamp lives) with its in-place version counter, and the vocabulary object."""

    def __init__(self, network: nn.Module, vocab: CreativeVocabulary) -> None:
        self.vocab = vocab
        self.tensors = [(t, t._version) for _, t in itertools.chain(network.named_parameters(),
                                                                    network.named_buffers())]

    def matches(self, network: nn.Module, vocab: CreativeVocabulary) -> bool:
        """True when ``network`` holds the very same, unmodified tensors and ``vocab`` is the same object."""
        current = list(itertools.chain(network.named_parameters(), network.named_buffers()))
        return vocab is self.vocab and len(current) == len(self.tensors) and all(
            tensor is held and tensor._version == version for (_, tensor), (held, version) in zip(current, self.tensors)
        )


def _unique_index(ids: Sequence[str]) -> pd.Index | None:
    """A hash index of ``ids`` for vectorised lookups; None when an id repeats (lookups then go one by one)."""
    return pd.Index(ids, dtype=object) if len(set(ids)) == len(ids) else None


class RowIndexer:
    """Vectorised id -> index lookups of a vocabulary (0 for unknown ids), as ``make_batch`` builds them."""

    def __init__(self, vocab: CreativeVocabulary) -> None:
        self.vocab = vocab
        self._elements = _unique_index(vocab.elements)
        self._products = _unique_index(vocab.products)

    def elements(self, combos: Sequence[Sequence[str]]) -> np.ndarray:
        """(n, S) element indices; raises ``InputError`` for a combination without one element per slot."""
        slots = len(self.vocab.slots)
        lengths = np.fromiter(map(len, combos), dtype=np.int64, count=len(combos))
        if np.any(lengths != slots) or self._elements is None:
            return self.vocab.element_indices(combos)  # raises the vocabulary's own message on a bad combination
        flat = list(itertools.chain.from_iterable(combos))
        return (self._elements.get_indexer(flat) + 1).reshape(len(combos), slots)  # -1 (unknown) -> 0

    def products(self, product_ids: Sequence[str]) -> np.ndarray:
        """(n,) product indices; the category index follows from the product (see ``product_table``)."""
        if self._products is None:
            return self.vocab.product_indices(product_ids)[0]
        return self._products.get_indexer(list(product_ids)) + 1

    def contexts(self, contexts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """(codes (n,), distinct contexts) with ``distinct[codes[i]] == contexts[i]``."""
        codes, distinct = pd.factorize(np.asarray(list(contexts), dtype=object))
        return codes.astype(np.int64), [str(c) for c in distinct]


def fixed_order_matmul(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ weight`` for ``x`` (..., k) and ``weight`` (k, m) or (k,), each output summed over k in
    index order by elementwise operations: the result of a row does not depend on the other rows, the
    thread count or memory alignment (a BLAS product's summation order does; module docstring)."""
    vector = weight.ndim == 1
    columns = weight.unsqueeze(1) if vector else weight
    out = x[..., 0:1] * columns[0]
    for i in range(1, columns.shape[0]):
        out = out + x[..., i:i + 1] * columns[i]
    return out.squeeze(-1) if vector else out


def fixed_order_linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` through ``fixed_order_matmul``."""
    out = fixed_order_matmul(x, layer.weight.T)
    return out if layer.bias is None else out + layer.bias


def click_probability(logit: torch.Tensor) -> np.ndarray:
    """sigmoid(logit) in float64 as 1 / (1 + exp(-logit)): torch's CPU sigmoid takes a vector path for most
    elements and a scalar one for the tail, whose results differ in the last bits, so a row's value
    would depend on its place in the batch; exp gives the same bits in either path."""
    return (1.0 / (1.0 + torch.exp(-logit.double()))).numpy()


def _slot_sum(gathered: torch.Tensor) -> torch.Tensor:
    """(n, S, ...) summed over slots in slot order."""
    out = gathered[:, 0]
    for s in range(1, gathered.shape[1]):
        out = out + gathered[:, s]
    return out


def element_table(tower: CreativeTower) -> torch.Tensor:
    """(S, N + 1, d) element vectors ``T[s, e]`` of every (slot position, element), as ``element_vectors``."""
    per_element = tower.element_id.weight + fixed_order_linear(tower.text_proj, tower.text)
    return per_element.unsqueeze(0) + tower.slot.unsqueeze(1)


def product_table(tower: CreativeTower, vocab: CreativeVocabulary) -> torch.Tensor:
    """(P + 1, d) product vectors (id + category embedding) by product index; row 0 is an unknown product."""
    products, categories = vocab.product_indices(vocab.products)
    index = torch.from_numpy(np.concatenate([[UNKNOWN], products]))
    category = torch.from_numpy(np.concatenate([[UNKNOWN], categories]))
    return tower.product(index) + tower.category(category)


def context_table(tower: CreativeTower, vocab: CreativeVocabulary, config: EncodingConfig,
                  contexts: Sequence[str]) -> torch.Tensor:
    """(K, d) context vectors of ``contexts`` (mean of their known token embeddings), as ``context_vector``."""
    tokens = torch.from_numpy(vocab.context_indices(list(contexts), config.max_context_tokens))
    unused = torch.zeros(len(contexts), dtype=torch.long)
    batch = CreativeBatch(unused.unsqueeze(1), unused, unused, tokens, None)
    return tower.context_vector(batch)


def _chunks(n: int) -> range:
    return range(0, n, CHUNK_ROWS)


def _mixture(indexer: RowIndexer, n: int, contexts: Sequence[str] | None,
             traffic: Sequence[tuple[str, float]]) -> list[tuple[np.ndarray, list[str], float]]:
    """(codes, distinct contexts, weight) per term: the rows' own contexts, or each traffic context in turn."""
    if contexts is not None:
        if len(contexts) != n:
            raise InputError("product_ids, combos and contexts must have the same length")
        codes, distinct = indexer.contexts(contexts)
        return [(codes, distinct, 1.0)]
    zeros = np.zeros(n, dtype=np.int64)
    return [(zeros, [context], weight) for context, weight in traffic]


def _distinct(keys: torch.Tensor, bound: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted distinct keys, position of each key among them) of integer keys in [0, bound), without sorting."""
    present = torch.zeros(bound, dtype=torch.bool)
    present[keys] = True
    unique = present.nonzero().squeeze(1)
    position = torch.zeros(bound, dtype=torch.long)
    position[unique] = torch.arange(len(unique))
    return unique, position[keys]


def _flat(table: torch.Tensor) -> torch.Tensor:
    """(S, N + 1, ...) per-(slot, element) table as (S * (N + 1), ...), rows gathered by ``_flat_index``."""
    return table.reshape(table.shape[0] * table.shape[1], *table.shape[2:])


def _flat_index(elements: torch.Tensor, per_slot: int) -> torch.Tensor:
    """Row of (slot s, element e) in a ``_flat`` table: s * (N + 1) + e."""
    return elements + torch.arange(elements.shape[1]) * per_slot


class TableScorer:
    """What both scorers share: the weights they were built from, the id lookups, and reuse while those hold."""

    def __init__(self, network: nn.Module, vocab: CreativeVocabulary, config: EncodingConfig) -> None:
        self.stamp = WeightsStamp(network, vocab)
        self.network, self.vocab, self.config = network, vocab, config
        self.indexer = RowIndexer(vocab)

    @classmethod
    def for_network(cls, previous: TableScorer | None, network: nn.Module, vocab: CreativeVocabulary,
                    config: EncodingConfig):
        """``previous`` if it was built from these very weights, else a new scorer."""
        if isinstance(previous, cls) and previous.network is network and previous.stamp.matches(network, vocab):
            return previous
        return cls(network, vocab, config)


class MILScorer(TableScorer):
    """Bag click probabilities of a ``MILNetwork`` from per-element tables (module docstring)."""

    def __init__(self, network: MILNetwork, vocab: CreativeVocabulary, config: EncodingConfig) -> None:
        super().__init__(network, vocab, config)
        tower = network.tower
        d = tower.element_id.embedding_dim
        with torch.no_grad():
            elements = element_table(tower)
            self.per_slot = elements.shape[1]
            products = product_table(tower, vocab)
            self.element_bias = network.element_bias.weight[:, 0].clone()
            self.base = network.bias + network.product_bias.weight[:, 0]
            self.mlp = None
            if network.element_mlp is not None:
                first, last = network.element_mlp[0], network.element_mlp[2]
                self.mlp = (_flat(fixed_order_matmul(elements, first.weight[:, :d].T)),
                            fixed_order_matmul(products, first.weight[:, d:2 * d].T) + first.bias,
                            first.weight[:, 2 * d:].T, last.weight[0], last.bias[0])
            self.attention = None
            if network.attention is not None:
                w = network.attention.weight[0]
                self.attention = (_flat(fixed_order_matmul(elements, w[:d])),
                                  fixed_order_matmul(products, w[d:2 * d]) + network.attention.bias[0], w[2 * d:])
            self.pairs = (None if network.pair_projection is None
                          else _flat(fixed_order_linear(network.pair_projection, elements)))

    def _element_parts(self, elements: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """What of a bag does not depend on the product or the context: gathered once per chunk of rows."""
        index = _flat_index(elements, self.per_slot)
        pairs = None
        if self.pairs is not None:
            projected = self.pairs[index]  # (n, S, r)
            pairs = projected[:, :, None, 0] * projected[:, None, :, 0]  # (n, S, S), summed over r in order
            for r in range(1, projected.shape[2]):
                pairs = pairs + projected[:, :, None, r] * projected[:, None, :, r]
            pairs = pairs * (1.0 - torch.eye(elements.shape[1], dtype=pairs.dtype))
        return {
            "index": index,
            "bias": self.element_bias[elements],
            "attention": None if self.attention is None else self.attention[0][index],
            "pairs": pairs,
        }

    def _context_parts(self, contexts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per context vector (K, d): its part of the element MLP's first layer (K, H) and attention logit (K,)."""
        use_context = self.network.use_context
        mlp = torch.zeros(len(contexts), 0)
        if self.mlp is not None:
            mlp = (fixed_order_matmul(contexts, self.mlp[2]) if use_context
                   else torch.zeros(len(contexts), self.mlp[1].shape[1]))
        attention = None
        if self.attention is not None:
            attention = fixed_order_matmul(contexts, self.attention[2]) if use_context else torch.zeros(len(contexts))
        return mlp, attention

    def _score_tables(self, products: torch.Tensor, codes: torch.Tensor,
                      contexts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Element-MLP outputs of every (slot, element) for each (product, context) pair of the rows, and each
        row's pair, when that is less work than evaluating the MLP per row and slot; otherwise None."""
        per_element, per_product, _, out_weight, _ = self.mlp
        unique, inverse = _distinct(products * len(contexts) + codes, len(per_product) * len(contexts))
        if len(unique) * per_element.shape[0] >= len(products) * self.network.tower.n_slots:
            return None
        rows = per_product[unique // len(contexts)] + contexts[unique % len(contexts)]  # (m, H)
        step = max(1, TABLE_VALUES // per_element.numel())
        tables = torch.cat([fixed_order_matmul(F.relu(per_element + r.unsqueeze(1)), out_weight)
                            for r in rows.split(step)])
        return tables, inverse

    def _logits(self, parts: dict[str, torch.Tensor | None], products: torch.Tensor, codes: torch.Tensor,
                contexts: tuple[torch.Tensor, torch.Tensor | None],
                tables: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """Bag logits (n,) from ``_element_parts``, product indices (n,), context ``codes`` into the
        ``_context_parts`` and, when given, the rows' ``_score_tables``."""
        from adcraft.rewards.mil import BagParts, bag_logit

        index = parts["index"]
        scores = parts["bias"]
        if self.mlp is not None:
            per_element, per_product, _, out_weight, out_bias = self.mlp
            if tables is not None:
                table, pair = tables
                scores = scores + (table.reshape(-1)[pair.unsqueeze(1) * per_element.shape[0] + index] + out_bias)
            else:
                if "mlp" not in parts:
                    parts["mlp"] = per_element[index]
                row = per_product[products] + contexts[0][codes]
                scores = scores + (fixed_order_matmul(F.relu(parts["mlp"] + row.unsqueeze(1)), out_weight) + out_bias)
        weights = None
        if self.attention is not None:
            row = self.attention[1][products] + contexts[1][codes]
            weights = torch.softmax(parts["attention"] + row.unsqueeze(1), dim=1)
        return bag_logit(self.network.pooling, BagParts(scores, weights, parts["pairs"], self.base[products]))

    def predict(self, product_ids: Sequence[str], combos: Sequence[Sequence[str]], contexts: Sequence[str] | None,
                traffic: Sequence[tuple[str, float]]) -> np.ndarray:
        """Click probabilities; without ``contexts``, the ``traffic``-weighted mean over its contexts."""
        n = len(product_ids)
        if len(combos) != n:
            raise InputError("product_ids, combos and contexts must have the same length")
        elements = torch.from_numpy(self.indexer.elements(combos))
        products = torch.from_numpy(self.indexer.products(product_ids))
        out = np.zeros(n)
        with torch.no_grad():
            terms = []
            for codes, distinct, weight in _mixture(self.indexer, n, contexts, traffic):
                codes = torch.from_numpy(codes)
                parts = self._context_parts(context_table(self.network.tower, self.vocab, self.config, distinct))
                tables = None if self.mlp is None else self._score_tables(products, codes, parts[0])
                terms.append((codes, parts, tables, weight))
            for start in _chunks(n):
                rows = slice(start, start + CHUNK_ROWS)
                parts = self._element_parts(elements[rows])
                for codes, context_parts, tables, weight in terms:
                    chunk = None if tables is None else (tables[0], tables[1][rows])
                    logit = self._logits(parts, products[rows], codes[rows], context_parts, chunk)
                    out[rows] += weight * click_probability(logit)
        return out


class CTRScorer(TableScorer):
    """Click probabilities of a ``CTRNetwork`` (eval mode) from per-element tables (module docstring)."""

    def __init__(self, network: CTRNetwork, vocab: CreativeVocabulary, config: EncodingConfig) -> None:
        super().__init__(network, vocab, config)
        tower = network.tower
        d, slots = tower.element_id.embedding_dim, tower.n_slots
        first, last = network.mlp[0], network.mlp[-1]
        with torch.no_grad():  # tables of plain tensors: no autograd graph held (or copied with the model)
            blocks = first.weight.split(d, dim=1)  # v_1..v_S, p, c[, i]: every block is d wide
            elements = element_table(tower)
            self.per_slot = elements.shape[1]
            self.per_element = _flat(torch.stack([fixed_order_matmul(elements[s], blocks[s].T)
                                                  for s in range(slots)]))  # S(N + 1) x H
            self.per_product = fixed_order_matmul(product_table(tower, vocab), blocks[slots].T) + first.bias
            self.product_bias = network.bias + network.product_bias.weight[:, 0]
            self.element_bias = network.element_bias.weight[:, 0].clone()
            self.context_weight = blocks[slots + 1]
            self.image_weight = blocks[slots + 2] if tower.image_proj is not None else None
            self.out_weight, self.out_bias = last.weight[0], last.bias[0]

    def predict(self, product_ids: Sequence[str], combos: Sequence[Sequence[str]], contexts: Sequence[str] | None,
                traffic: Sequence[tuple[str, float]], images: np.ndarray | None) -> np.ndarray:
        """Click probabilities; without ``contexts``, the ``traffic``-weighted mean over its contexts."""
        n = len(product_ids)
        if len(combos) != n:
            raise InputError("product_ids, combos and contexts must have the same length")
        elements = torch.from_numpy(self.indexer.elements(combos))
        products = torch.from_numpy(self.indexer.products(product_ids))
        pixels = None if images is None else torch.from_numpy(np.asarray(images, dtype=np.float32))
        out = np.zeros(n)
        with torch.no_grad():
            terms = [(torch.from_numpy(codes),
                      fixed_order_matmul(context_table(self.network.tower, self.vocab, self.config, distinct),
                                         self.context_weight.T),
                      weight) for codes, distinct, weight in _mixture(self.indexer, n, contexts, traffic)]
            for start in _chunks(n):
                rows = slice(start, start + CHUNK_ROWS)
                chunk, chosen = products[rows], elements[rows]
                # W_1 [v_1; ...; v_S; p; i] + b_1 and the additive biases: the same for every context
                first = _slot_sum(self.per_element[_flat_index(chosen, self.per_slot)]) + self.per_product[chunk]
                if self.image_weight is not None and pixels is not None:
                    image = fixed_order_linear(self.network.tower.image_proj, pixels[rows])
                    first = first + fixed_order_matmul(image, self.image_weight.T)
                additive = self.product_bias[chunk] + _slot_sum(self.element_bias[chosen])
                for codes, projected, weight in terms:
                    hidden = F.relu(first + projected[codes[rows]])
                    logit = additive + (fixed_order_matmul(hidden, self.out_weight) + self.out_bias)
                    out[rows] += weight * click_probability(logit)
        return out
