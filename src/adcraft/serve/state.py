"""What the server holds in memory: the run, its market and models, loaded once, and the caches over them.

Creative ids in ``/v1/creatives/{id}.png`` resolve in this order (``ServedRun.creative_png``):

1. the run's proposals: the file stem of ``creatives.parquet``'s ``image`` column (``P001-1``);
2. the market's logged creatives (``creative_id``): the market's image of it when it has one, else the run's
   ``current_image`` when it is the product's current creative;
3. creatives rendered live by ``/v1/propose`` (``live-...``), kept in a bounded in-memory cache.

Ids must match ``CREATIVE_ID`` (no ``/``, no ``..``) and every file is resolved with
``market.images.resolve_inside`` so that nothing outside the run or market folder is ever served.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from PIL import Image

from adcraft.errors import InputError
from adcraft.market import Market, load_market
from adcraft.market.images import resolve_inside
from adcraft.market.outputs import read_proposals
from adcraft.render.backend import RenderConfig
from adcraft.rewards.judge import Capability
from adcraft.serve.config import ServeConfig

CREATIVE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.~-]{0,199}")
# CREATIVE_ID without '..', as the OpenAPI schema states it (JSON Schema has no lookahead to say "no '..'").
CREATIVE_ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 200,
                      "pattern": r"^[A-Za-z0-9][A-Za-z0-9_~-]*(\.[A-Za-z0-9_~-]+)*\.?$"}
LIVE_PREFIX = "live-"
CTR_MODEL_MISSING = ("scoring an uploaded image needs a point-wise CTR model: train one with `adcraft train ctr "
                     "--market MARKET --out DIR` and start the server with --ctr-model DIR (or score a combination "
                     "with a JSON body)")
CONTRASTIVE_MODEL_MISSING = ("editing needs a contrastive model: train one with `adcraft train contrastive "
                             "--market MARKET --out DIR` and start the server with --contrastive-model DIR")


class NotFound(LookupError):
    """A product or creative id that names nothing served here (404)."""


class ModelMissing(LookupError):
    """A route needs a model the server was not started with (409); the message says how to get one."""


def check_creative_id(creative_id: str) -> str:
    """``creative_id`` if it is a plain id (``CREATIVE_ID``, no ``..``), else ``InputError``."""
    if not CREATIVE_ID.fullmatch(creative_id) or ".." in creative_id:
        raise InputError(f"{creative_id[:80]!r} is not a valid creative id (letters, digits, '_', '.', '~', '-'; "
                         "no '..')")
    return creative_id


class LRUCache:
    """A thread-safe mapping that keeps at most ``size`` entries, dropping the least recently used."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> object | None:
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def put(self, key: Hashable, value: object) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


@dataclass(frozen=True)
class ScoredCombination:
    product_id: str
    elements: list[str]
    context: str | None
    predicted_ctr: float
    logit: float
    baseline: float
    attributions: list[tuple[str, str, float]]  # (slot, element_id, contribution)


@dataclass(frozen=True)
class LiveCreative:
    id: str
    rank: int
    elements: list[str]
    predicted_ctr: float
    product_bbox: list[int]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def run_render_config(run_dir: Path) -> RenderConfig:
    """The renderer a run used (``run.json``'s ``config.render``), so live proposals look like the run's own;
    the default renderer for a run that does not record one."""
    from adcraft.serve.run_view import recorded_render_config

    config = recorded_render_config(run_dir)
    config.check_available()
    return config


class ServedRun:
    """An optimize run with its market and models, ready to answer requests (see the module docstring)."""

    def __init__(self, config: ServeConfig) -> None:
        from adcraft.generate.combo import ComboGenerator
        from adcraft.render.from_market import MarketRenderer
        self.config = config
        self.run_dir = config.run_dir.resolve()
        if not self.run_dir.is_dir():
            raise InputError(f"{config.run_dir}: no such run folder (write one with `adcraft optimize`)")
        from adcraft.pipeline.optimize import load_run_reward

        self.base_market = load_market(config.market_dir)
        market, self.reward = load_run_reward(self.run_dir, self.base_market)
        self.market: Market = market
        self.market_root = Path(config.market_dir).resolve()
        combo = self.run_dir / "models" / "combo"
        if not combo.is_dir():
            raise InputError(f"{combo}: missing; is {config.run_dir} the output of `adcraft optimize`?")
        self.generator = ComboGenerator.load(combo, market, self._reward_fn)
        self.brand = None
        if config.brand_file is not None:
            from adcraft.generate.brand import load_brand

            self.brand = load_brand(config.brand_file, market)
        self.renderer = MarketRenderer(market, config=run_render_config(self.run_dir))
        self.slots = list(market.config.slots)
        self.products = set(market.products["product_id"])
        proposals = read_proposals(self.run_dir)
        products_file = self.run_dir / "products.parquet"
        products = pd.read_parquet(products_file, columns=["product_id", "current_creative_id", "current_image",
                                                            "current_elements"]) if products_file.is_file() else None
        self.proposal_images = self._proposal_images(proposals)
        self.logged_images = self._logged_images(products)
        self.current_elements = self._current_elements(proposals, products)
        self.ctr_model = self._optional_model(config.ctr_model_dir, "reads_image_features", "adds_elements")
        self.contrastive_model = self._optional_model(config.contrastive_model_dir, "scores_images")
        self.scores = LRUCache(config.score_cache_size)
        self.renders = LRUCache(config.render_cache_size)
        self.proposals = LRUCache(max(16, config.render_cache_size // 4))
        self._render_lock = threading.Lock()
        self._propose_lock = threading.Lock()
        self._image_encoder = None

    # ------------------------------------------------------------------ loading

    def _reward_fn(self, product_ids: Sequence[str], combos: Sequence[Sequence[str]],
                   contexts: Sequence[str] | None = None) -> np.ndarray:
        return self.reward.predict_ctr(list(product_ids), [list(c) for c in combos], contexts)

    def _proposal_images(self, proposals: pd.DataFrame) -> dict[str, Path]:
        out = {}
        for relpath in proposals.get("image", pd.Series(dtype=object)):
            if isinstance(relpath, str):
                out[PurePosixPath(relpath).stem] = resolve_inside(self.run_dir, relpath)
        return out

    def _logged_images(self, products: pd.DataFrame | None) -> dict[str, tuple[Path, str]]:
        """creative id -> (root, relative path) of its image: the market's, else the run's current image."""
        out: dict[str, tuple[Path, str]] = {}
        if products is not None:
            for cid, relpath in zip(products["current_creative_id"], products["current_image"]):
                if isinstance(cid, str) and isinstance(relpath, str):
                    out[cid] = (self.run_dir, relpath)
        creatives = self.base_market.creatives
        if creatives is not None:
            images = creatives["image"] if "image" in creatives else [None] * len(creatives)
            for cid, relpath in zip(creatives["creative_id"], images):
                if isinstance(relpath, str):
                    out[cid] = (self.market_root, relpath)
                else:
                    out.setdefault(cid, (self.run_dir, ""))
        return out

    def _current_elements(self, proposals: pd.DataFrame, products: pd.DataFrame | None) -> dict[str, list[str]]:
        """Per product, the combination an uploaded image is scored with: its current creative, else proposal 1."""
        out: dict[str, list[str]] = {}
        table = proposals.sort_values("rank")
        for pid, elements in zip(table["product_id"], table["elements"]):
            out.setdefault(pid, list(elements))
        if products is not None:
            for pid, elements in zip(products["product_id"], products["current_elements"]):
                if elements is not None and len(elements) == len(self.slots):
                    out[pid] = [str(e) for e in elements]
        return out

    @staticmethod
    def _optional_model(folder: Path | None, *needs: Capability):
        """The saved model at ``folder`` (None without one), refused unless its kind declares each of ``needs``."""
        if folder is None:
            return None
        from adcraft.rewards import registry

        return registry.load(folder, *needs)

    def loaded_models(self) -> dict[str, bool]:
        return {"reward": True, "combo": True, "ctr": self.ctr_model is not None,
                "contrastive": self.contrastive_model is not None}

    # ------------------------------------------------------------------ checks

    def check_product(self, product_id: str) -> None:
        if product_id not in self.products:
            raise NotFound(f"unknown product {product_id[:80]!r}: the market has no such product_id")

    def check_combination(self, product_id: str, elements: Sequence[str]) -> None:
        """``InputError`` unless ``elements`` is one usable element per slot of the market, in slot order, that
        the brand allows (``BrandViolation``, with the reasons, when it does not)."""
        self.check_product(product_id)
        self.renderer.check_combination(product_id, elements)
        if self.brand is not None:
            self.brand.check_combination(self.market, product_id, elements)

    # ------------------------------------------------------------------ scoring

    def cached_score(self, product_id: str, elements: Sequence[str], context: str | None) -> ScoredCombination | None:
        return self.scores.get((product_id, tuple(elements), context))  # type: ignore[return-value]

    def score(self, product_id: str, elements: Sequence[str], context: str | None) -> ScoredCombination:
        """Predicted CTR and Shapley attributions of one combination from the multi-instance model (cached)."""
        key = (product_id, tuple(elements), context)
        hit = self.scores.get(key)
        if hit is not None:
            return hit  # type: ignore[return-value]
        self.check_combination(product_id, elements)
        elements = list(elements)
        contexts = None if context is None else [context]
        ctr = float(self.reward.predict_ctr([product_id], [elements], contexts)[0])
        parts = self.reward.decompose(product_id, elements, context)
        result = ScoredCombination(
            product_id, elements, context, ctr, parts.logit, parts.baseline,
            [(slot, element, parts.elements[element]) for slot, element in zip(self.slots, elements)],
        )
        self.scores.put(key, result)
        return result

    def score_upload(self, product_id: str, image: Image.Image, text: str) -> tuple[float, list[str], bool]:
        """CTR of an uploaded image with its text for a product, from the point-wise CTR model.

        The combination is the product's current creative (else its first proposal) with the title slot's
        element replaced by the uploaded text; the image is read through the model's image encoder when the
        model was trained with images (``image_used``), else only the text counts.
        Returns (predicted CTR, elements scored, image_used).
        """
        model = self.ctr_model
        if model is None:
            raise ModelMissing(CTR_MODEL_MISSING)
        self.check_product(product_id)
        elements = list(self.current_elements.get(product_id) or [])
        if len(elements) != len(self.slots):
            raise InputError(f"product {product_id!r} has no current creative or proposal to score the upload with")
        if "title" in self.slots:
            text_id = "upload-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
            frame = pd.DataFrame({"element_id": [text_id], "slot": ["title"], "product_id": [product_id],
                                  "text": [text], "value": [None], "image": [None]})
            model = model.with_elements(frame)
            elements[self.slots.index("title")] = text_id
        features = None
        if model.mean_image is not None:
            features = self._encode_image(model, image)
        ctr = float(model.predict_ctr([product_id], [elements], images=features)[0])
        return ctr, elements, features is not None

    def _encode_image(self, model, image: Image.Image) -> np.ndarray:
        from adcraft.features.image_encoder import ImageEncoderConfig, build_image_encoder

        if self._image_encoder is None:
            encoding = model.config.encoding
            self._image_encoder = build_image_encoder(ImageEncoderConfig(backbone=encoding.image_backbone,
                                                                         runtime=encoding.image_runtime))
        return np.asarray(self._image_encoder.encode([image.convert("RGB")]), dtype=np.float32)

    # ------------------------------------------------------------------ proposing

    def propose(self, product_id: str, k: int, context: str | None = None) -> list[LiveCreative]:
        """The policy's top-``k`` creatives for a product, ranked by the reward model, each rendered and cached;
        with a brand, the first ``k`` of the top 2k that it allows once rendered (``BrandViolation`` when none)."""
        self.check_product(product_id)
        if k > self.config.max_k:
            raise InputError(f"k must be at most {self.config.max_k}, got {k}")
        key = (product_id, k, context)
        hit = self.proposals.get(key)
        if hit is not None:
            return hit  # type: ignore[return-value]
        with self._propose_lock:
            table = self.generator.propose([product_id], k=k if self.brand is None else 2 * k, context=context,
                                           brand=self.brand)
        out, refused = [], []
        for elements, reward in zip(table["elements"], table["reward"]):
            if len(out) == k:
                break
            elements = [str(e) for e in elements]
            creative_id = live_id(product_id, elements)
            bbox = self._render_live(creative_id, product_id, elements)
            if self.brand is not None:
                problems = self.brand.creative_problems(self.market, product_id, elements, bbox)
                if problems:
                    refused.append("; ".join(problems))
                    continue
            out.append(LiveCreative(creative_id, len(out) + 1, elements, float(reward), bbox))
        if not out and refused:
            from adcraft.generate.brand import BrandViolation

            raise BrandViolation(f"the brand guardrails of {self.brand.source} refuse every proposal for "
                                 f"{product_id!r}: {refused[0]}")
        self.proposals.put(key, out)
        return out

    def _render_live(self, creative_id: str, product_id: str, elements: list[str]) -> list[int]:
        cached = self.renders.get(creative_id)
        if cached is not None:
            return cached[1]  # type: ignore[index]
        with self._render_lock:
            creative = self.renderer.render(product_id, elements)
        bbox = [int(v) for v in creative.product_bbox]
        self.renders.put(creative_id, (png_bytes(creative.image), bbox))
        return bbox

    # ------------------------------------------------------------------ creatives

    def creative_file(self, creative_id: str) -> Path | None:
        """The PNG file behind a proposal or logged creative id, or None for a live render."""
        if creative_id in self.proposal_images:
            path = self.proposal_images[creative_id]
            if path.is_file():
                return path
            raise NotFound(f"creative {creative_id!r}: its image file is missing from the run folder")
        if creative_id in self.logged_images:
            root, relpath = self.logged_images[creative_id]
            if not relpath:
                raise NotFound(f"logged creative {creative_id!r} has no image in the market or the run")
            path = resolve_inside(root, relpath)
            if not path.is_file():
                raise NotFound(f"creative {creative_id!r}: its image file is missing")
            return path
        return None

    def creative_png(self, creative_id: str) -> bytes | Path:
        """A creative's PNG: a file to send as is, or bytes (live renders; market images not stored as PNG)."""
        check_creative_id(creative_id)
        path = self.creative_file(creative_id)
        if path is not None:
            if path.suffix.lower() == ".png":
                return path
            converted = self.renders.get(("file", str(path)))
            if converted is None:
                from adcraft.market.images import open_image

                converted = png_bytes(open_image(path, self.base_market.limits))
                self.renders.put(("file", str(path)), converted)
            return converted  # type: ignore[return-value]
        live = self.renders.get(creative_id)
        if live is None:
            raise NotFound(f"no creative {creative_id!r}: not a proposal of this run, not a logged creative and not "
                           "a recent live render (propose again to render it)")
        return live[0]  # type: ignore[index]

    def close(self) -> None:
        self.scores.clear()
        self.renders.clear()
        self.proposals.clear()


def live_id(product_id: str, elements: Sequence[str]) -> str:
    """A stable id of a live render: the same product and combination always get the same id."""
    digest = hashlib.sha256("\x1f".join([product_id, *elements]).encode("utf-8")).hexdigest()[:20]
    return LIVE_PREFIX + digest

