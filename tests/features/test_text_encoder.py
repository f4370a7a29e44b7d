import os

import numpy as np
import pytest

from adcraft.errors import InputError
from adcraft.features.text_encoder import TextEncoderConfig, build_text_encoder

TINY = TextEncoderConfig(backbone="tiny", tiny_dim=64)
QUERY, PARAPHRASE, UNRELATED = "red summer dress", "a red dress for summer", "usb charging cable"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_tiny_vectors_have_shape_and_unit_length() -> None:
    encoder = build_text_encoder(TINY)
    vectors = encoder.encode([QUERY, PARAPHRASE, UNRELATED, "Ünïcode ✓ 100%"])
    assert vectors.shape == (4, 64) == (4, encoder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert encoder.encode([]).shape == (0, 64)


def test_tiny_text_without_words_is_the_zero_vector() -> None:
    vectors = build_text_encoder(TINY).encode(["", "   ", "!!!"])
    assert not vectors.any()


def test_tiny_similar_texts_are_closer_than_unrelated_ones() -> None:
    query, paraphrase, unrelated = build_text_encoder(TINY).encode([QUERY, PARAPHRASE, UNRELATED])
    assert cosine(query, paraphrase) > cosine(query, unrelated) + 0.2


def test_tiny_is_deterministic_batch_independent_and_seeded() -> None:
    texts = [QUERY, PARAPHRASE, UNRELATED, "blue denim jacket"]
    first = build_text_encoder(TINY).encode(texts)
    again = build_text_encoder(TextEncoderConfig(backbone="tiny", tiny_dim=64, batch_size=1))
    np.testing.assert_array_equal(first, again.encode(texts))
    np.testing.assert_array_equal(first[2:3], again.encode([texts[2]]))
    other = build_text_encoder(TextEncoderConfig(backbone="tiny", tiny_dim=64, seed=1))
    assert other.identity != again.identity
    assert not np.allclose(first, other.encode(texts))


def test_case_and_punctuation_do_not_change_tiny_vectors() -> None:
    a, b = build_text_encoder(TINY).encode(["Red, Summer DRESS!", "red summer dress"])
    np.testing.assert_allclose(a, b)


def test_bad_inputs_raise_input_error() -> None:
    with pytest.raises(InputError, match="backbone: 'bert' .*not one of 'minilm', 'tiny'"):
        TextEncoderConfig(backbone="bert")
    with pytest.raises(InputError):
        TextEncoderConfig(batch_size=0)
    with pytest.raises(InputError, match="single string"):
        build_text_encoder(TINY).encode(QUERY)
    with pytest.raises(InputError, match="expected str"):
        build_text_encoder(TINY).encode(["ok", 3])  # type: ignore[list-item]


@pytest.mark.slow
def test_minilm_gives_unit_384d_vectors_that_rank_paraphrases_first() -> None:
    encoder = build_text_encoder(TextEncoderConfig(backbone="minilm", batch_size=2))
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    vectors = encoder.encode([QUERY, PARAPHRASE, UNRELATED])
    assert vectors.shape == (3, 384) and encoder.dim == 384 and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-4)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
    np.testing.assert_allclose(encoder.encode([UNRELATED])[0], vectors[2], atol=1e-5)
    assert "all-minilm-l6-v2" in encoder.identity and "weights=" in encoder.identity
