from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from adcraft.errors import InputError
from adcraft.market import load_market
from adcraft.market.click_log import click_log, context_distribution
from adcraft.rewards.ctr import CTRConfig, PointwiseCTRModel
from adcraft.rewards.ctr import _network as ctr_network
from adcraft.rewards.encoding import CreativeVocabulary, EncodingConfig, element_text_matrix, make_batch
from adcraft.rewards.mil import MILConfig, MILModel
from adcraft.rewards.mil import _network as mil_network

ENCODING = EncodingConfig(text_backbone="tiny", embedding_dim=8)
TOLERANCE = 1e-6  # max abs difference in click probability between the fast path and the network's forward pass


@pytest.fixture(scope="module")
def market(tiny_market_dir):
    return load_market(tiny_market_dir)


@pytest.fixture(scope="module")
def vocab_and_text(market):
    log = click_log(market)
    vocab = CreativeVocabulary.from_market(market, log)
    return vocab, element_text_matrix(vocab, ENCODING), context_distribution(log)


def randomised(network: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every weight redrawn, so no table the fast path builds is zero by initialisation."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
    return network.eval()


def rows(market, n: int, seed: int) -> tuple[list[str], list[list[str]], list[str]]:
    """``n`` random (product, usable combination, logged context) rows, with an unknown product and element."""
    rng = np.random.default_rng(seed)
    products = market.products["product_id"].tolist()
    contexts = click_log(market)["context"].unique().tolist() + ['{"device": "fridge"}']
    pids, combos = [], []
    for i in range(n):
        pid = products[i % len(products)]
        usable = [market.usable_elements(pid, s)["element_id"].tolist() for s in market.config.slots]
        pids.append(pid)
        combos.append([str(u[rng.integers(len(u))]) for u in usable])
    pids[0] = "no-such-product"
    combos[1][0] = "no-such-element"
    return pids, combos, [contexts[i] for i in rng.integers(0, len(contexts), n)]


def reference(model, pids, combos, contexts, traffic, images=None) -> np.ndarray:
    """The networks' own forward pass, context by context (the slow path the fast one must reproduce)."""
    mixture = [(contexts, 1.0)] if contexts is not None else [([c] * len(pids), w) for c, w in traffic]
    out = np.zeros(len(pids))
    with torch.no_grad():
        for row_contexts, weight in mixture:
            batch = make_batch(model.vocab, model.config.encoding, pids, combos, row_contexts, images)
            out += weight * torch.sigmoid(model.network(batch)).numpy()
    return out


MIL_CONFIGS = [
    MILConfig(encoding=ENCODING),
    MILConfig(encoding=ENCODING, pooling="attention"),
    MILConfig(encoding=ENCODING, pooling="noisy_or"),
    MILConfig(encoding=ENCODING, use_context=False),
    MILConfig.per_element(encoding=ENCODING),
]


@pytest.mark.parametrize("config", MIL_CONFIGS, ids=["sum", "attention", "noisy_or", "no-context", "per-element"])
@pytest.mark.parametrize("n", [5, 600], ids=["per-row", "per-product-tables"])
def test_mil_fast_predictions_match_the_network(market, vocab_and_text, config, n):
    vocab, text, traffic = vocab_and_text
    model = MILModel(config, vocab, randomised(mil_network(config, vocab, text), 1), traffic, [])
    pids, combos, contexts = rows(market, n, seed=n)
    mixture = model._contexts(None)
    assert np.abs(model.predict(pids, combos) - reference(model, pids, combos, None, mixture)).max() < TOLERANCE
    assert np.abs(model.predict(pids, combos, contexts) - reference(model, pids, combos, contexts, [])).max() \
        < TOLERANCE


@pytest.mark.parametrize("image_dim", [0, 5], ids=["no-images", "images"])
def test_ctr_fast_predictions_match_the_network(market, vocab_and_text, image_dim):
    vocab, text, traffic = vocab_and_text
    config = CTRConfig(encoding=ENCODING, hidden=16)
    network = randomised(ctr_network(config, vocab, text, image_dim), 2)
    mean_image = np.linspace(-1, 1, image_dim, dtype=np.float32) if image_dim else None
    model = PointwiseCTRModel(config, vocab, network, traffic, mean_image)
    pids, combos, contexts = rows(market, 300, seed=3)
    images = np.random.default_rng(0).normal(size=(300, image_dim)).astype(np.float32) if image_dim else None
    expected = reference(model, pids, combos, None, traffic, model._images(300, images))
    assert np.abs(model.predict(pids, combos, images=images) - expected).max() < TOLERANCE
    expected = reference(model, pids, combos, contexts, [], model._images(300, None))
    assert np.abs(model.predict(pids, combos, contexts) - expected).max() < TOLERANCE


def test_tables_follow_changed_weights_and_new_elements(market, vocab_and_text):
    vocab, text, traffic = vocab_and_text
    config = MILConfig(encoding=ENCODING)
    model = MILModel(config, vocab, randomised(mil_network(config, vocab, text), 4), traffic, [])
    pids, combos, _ = rows(market, 40, seed=5)
    before = model.predict(pids, combos)
    with torch.no_grad():
        model.network.tower.slot.add_(0.5)  # an in-place change the cached tables must notice
    after = model.predict(pids, combos)
    assert np.abs(after - before).max() > 1e-4
    assert np.abs(after - reference(model, pids, combos, None, traffic)).max() < TOLERANCE
    slot = market.config.slots[0]
    grown = model.with_elements(pd.DataFrame({"element_id": ["fresh"], "slot": [slot], "text": ["brand new words"],
                                              "value": [None]}))
    combos[2][0] = "fresh"
    assert np.abs(grown.predict(pids, combos) - reference(grown, pids, combos, None, traffic)).max() < TOLERANCE


def test_bad_rows_are_refused_with_a_message(market, vocab_and_text):
    vocab, text, traffic = vocab_and_text
    config = MILConfig(encoding=ENCODING)
    model = MILModel(config, vocab, mil_network(config, vocab, text), traffic, [])
    pids, combos, contexts = rows(market, 4, seed=6)
    with pytest.raises(InputError, match="one element per slot"):
        model.predict(pids, [combos[0][:-1]] + combos[1:])
    with pytest.raises(InputError, match="same length"):
        model.predict(pids, combos, contexts[:2])


@pytest.mark.parametrize("kind", ["ctr", "mil", "mil-attention"])
def test_a_rows_score_is_the_same_bits_in_any_batch_and_on_any_thread_count(market, vocab_and_text, kind):
    # A BLAS product sums in an order that depends on the rows multiplied together and on the threads; the
    # scorers sum in a fixed order, so that Ray workers (one thread) and the caller agree bit for bit.
    from adcraft.learning.training import torch_threads

    vocab, text, traffic = vocab_and_text
    images = None
    if kind == "ctr":
        config = CTRConfig(encoding=ENCODING, hidden=64)
        model = PointwiseCTRModel(config, vocab, randomised(ctr_network(config, vocab, text, 40), 4), traffic,
                                  np.zeros(40, dtype=np.float32))
        images = np.random.default_rng(1).normal(size=(300, 40)).astype(np.float32)
    else:
        config = MILConfig(encoding=ENCODING, pooling="attention" if kind == "mil-attention" else "sum")
        model = MILModel(config, vocab, randomised(mil_network(config, vocab, text), 4), traffic, [])
    pids, combos, contexts = rows(market, 300, seed=5)

    def scored(threads: int, size: int, with_contexts: bool) -> bytes:
        parts = []
        with torch_threads(threads):
            for start in range(0, 300, size):
                part = slice(start, start + size)
                arguments = {"images": images[part]} if images is not None else {}
                parts.append(model.predict(pids[part], combos[part], contexts[part] if with_contexts else None,
                                           **arguments))
        return np.concatenate(parts).tobytes()

    for with_contexts in (False, True):
        whole = scored(2, 300, with_contexts)
        for threads, size in [(1, 300), (1, 7), (2, 64), (1, 1)]:
            assert scored(threads, size, with_contexts) == whole, (threads, size, with_contexts)
