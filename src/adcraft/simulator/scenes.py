"""Scenes a background shows, and how well each product category sits in each: the semantic truth.

A background prompt names its scene in words ("sunny beach, sand to sky blue gradient"); the scene
vector of a prompt is the share of its scene words that name each scene (zero when it names none), so
a text encoder that reads the prompt can partly know what the truth rewards. How much a category gains
from a scene is the hand-written affinity table below (-1 avoid, 0 neutral, 1 fits, 2 belongs there):
sunglasses belong on a beach, a chair in a living room, a mug in a kitchen or an office.

The relevance term of the click logit is ``relevance_scale * <affinity[category], scene(prompt)>``.
Categories the table does not know (photos from a folder) get an affinity row drawn at random when the
market is simulated (saved with the truth).
"""

from __future__ import annotations

import re

import numpy as np

SCENES: tuple[str, ...] = (
    "beach", "living_room", "kitchen", "bedroom", "office", "garden", "city", "mountain", "bathroom", "studio",
)

SCENE_WORDS: dict[str, frozenset[str]] = {
    "beach": frozenset({"beach", "sea", "seaside", "ocean", "surf", "shore", "coast"}),
    "living_room": frozenset({"living", "sofa", "couch", "lounge", "fireplace"}),
    "kitchen": frozenset({"kitchen", "counter", "breakfast", "dining", "cafe"}),
    "bedroom": frozenset({"bedroom", "bed", "pillow", "pillows", "nightstand"}),
    "office": frozenset({"office", "desk", "workspace", "workplace", "laptop"}),
    "garden": frozenset({"garden", "patio", "plants", "lawn", "flowers", "terrace"}),
    "city": frozenset({"city", "street", "urban", "downtown", "sidewalk"}),
    "mountain": frozenset({"mountain", "mountains", "alpine", "snowy", "hiking", "trail", "forest"}),
    "bathroom": frozenset({"bathroom", "spa", "bath", "vanity", "shower"}),
    "studio": frozenset({"studio", "backdrop"}),
}

# Backgrounds of the simulated markets: each names a scene and a drawable look (colours, textures).
SCENE_BACKGROUNDS: tuple[str, ...] = (
    "sunny beach, sand to sky blue gradient",
    "cosy living room sofa, warm beige linen",
    "bright kitchen counter, white marble",
    "calm bedroom pillows, pale lilac linen",
    "office desk, light wooden table, soft shadow",
    "garden patio, sage green paper",
    "city street at night, dark charcoal concrete",
    "snowy mountain, pale blue to white gradient",
    "spa bathroom, mint green tiles",
    "warm beige studio, soft shadow",
    "navy blue studio backdrop, spotlight",
    "pastel pink marble",
)

_A = {  # category -> scene -> affinity; absent pairs are 0
    "mug": {"kitchen": 2, "office": 1, "living_room": 1, "beach": -1, "city": -1},
    "bottle": {"mountain": 2, "beach": 1, "kitchen": 1, "bedroom": -1},
    "sneaker": {"city": 2, "mountain": 1, "beach": -1, "bedroom": -1, "bathroom": -1},
    "t-shirt": {"city": 1, "beach": 1, "studio": 1, "kitchen": -1},
    "handbag": {"city": 2, "studio": 1, "mountain": -1, "kitchen": -1},
    "watch": {"office": 1, "city": 1, "studio": 2, "beach": -1},
    "lamp": {"living_room": 2, "bedroom": 2, "office": 1, "beach": -1, "mountain": -1},
    "headphones": {"office": 1, "city": 2, "bathroom": -1},
    "backpack": {"mountain": 2, "city": 1, "bedroom": -1, "bathroom": -1},
    "dress": {"beach": 1, "garden": 2, "city": 1, "office": -1, "kitchen": -1},
    "sunglasses": {"beach": 2, "city": 1, "mountain": 1, "bedroom": -1, "office": -1},
    "vase": {"living_room": 2, "garden": 1, "kitchen": 1, "city": -1},
    "perfume": {"bathroom": 2, "bedroom": 1, "studio": 1, "mountain": -1, "kitchen": -1},
    "chair": {"living_room": 2, "office": 1, "garden": 1, "beach": -1, "bathroom": -1},
}
CATEGORY_SCENE_AFFINITY: dict[str, tuple[float, ...]] = {
    category: tuple(float(row.get(scene, 0)) for scene in SCENES) for category, row in _A.items()
}

_WORD = re.compile(r"[a-z]+")


def scene_vector(prompt: str | None) -> list[float]:
    """Share of a prompt's scene words naming each scene of ``SCENES`` (all zero if it names none)."""
    words = _WORD.findall((prompt or "").lower())
    counts = np.array([sum(w in SCENE_WORDS[scene] for w in words) for scene in SCENES], dtype=float)
    total = counts.sum()
    return [float(v) for v in (counts / total if total else counts)]


def category_affinity(category: str, rng: np.random.Generator | None = None) -> list[float]:
    """The table's affinity row of a category; for an unknown one a row drawn from ``rng`` (zeros without)."""
    known = CATEGORY_SCENE_AFFINITY.get(str(category).strip().lower())
    if known is not None:
        return list(known)
    if rng is None:
        return [0.0] * len(SCENES)
    return [float(v) for v in rng.choice([-1.0, 0.0, 0.0, 1.0, 2.0], size=len(SCENES))]
