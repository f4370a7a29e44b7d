"""Scoring many creatives with a trained reward network without recomputing per-element work per row.

The machinery is here; each model's scorer lives beside its network (``MILScorer`` in ``rewards.mil``,
``CTRScorer`` in ``rewards.ctr``).

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

import numpy as np
import pandas as pd
import torch
from torch import nn

from adcraft.errors import InputError
from adcraft.rewards.encoding import UNKNOWN, CreativeBatch, CreativeTower, CreativeVocabulary, EncodingConfig

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


def slot_sum(gathered: torch.Tensor) -> torch.Tensor:
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


def row_chunks(n: int) -> range:
    return range(0, n, CHUNK_ROWS)


def context_terms(indexer: RowIndexer, n: int, contexts: Sequence[str] | None,
             traffic: Sequence[tuple[str, float]]) -> list[tuple[np.ndarray, list[str], float]]:
    """(codes, distinct contexts, weight) per term: the rows' own contexts, or each traffic context in turn."""
    if contexts is not None:
        if len(contexts) != n:
            raise InputError("product_ids, combos and contexts must have the same length")
        codes, distinct = indexer.contexts(contexts)
        return [(codes, distinct, 1.0)]
    zeros = np.zeros(n, dtype=np.int64)
    return [(zeros, [context], weight) for context, weight in traffic]


def distinct_keys(keys: torch.Tensor, bound: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted distinct keys, position of each key among them) of integer keys in [0, bound), without sorting."""
    present = torch.zeros(bound, dtype=torch.bool)
    present[keys] = True
    unique = present.nonzero().squeeze(1)
    position = torch.zeros(bound, dtype=torch.long)
    position[unique] = torch.arange(len(unique))
    return unique, position[keys]


def flat_table(table: torch.Tensor) -> torch.Tensor:
    """(S, N + 1, ...) per-(slot, element) table as (S * (N + 1), ...), rows gathered by ``flat_index``."""
    return table.reshape(table.shape[0] * table.shape[1], *table.shape[2:])


def flat_index(elements: torch.Tensor, per_slot: int) -> torch.Tensor:
    """Row of (slot s, element e) in a ``flat_table`` table: s * (N + 1) + e."""
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
