"""The utility-aware contrastive image–text encoder (UA-InfoNCE; arXiv 2605.28733).

A CLIP-style dual encoder (Radford et al. 2021) over frozen offline towers: EfficientNet-Lite0 image
features and MiniLM text features (both read through the content-addressed ``FeatureCache``, as are
the training images' visual attributes), each standardised per dimension and mapped by a trainable
linear projection to a shared space. The score
of an image ``v`` and a text ``t`` is

    US(v, t) = α · h̃(v) + β · s(v, t),        s(v, t) = cos(f(v), g(t)),

where ``f``, ``g`` are the projections and ``h̃`` is the image's visual demand utility, standardised:

    h̃(v) = (h(v) − m_h) / s_h,

``h`` the demand regression of :mod:`adcraft.rewards.utility` on the image's visual attributes (each
attribute clipped to the range the regression observed, so the quadratic never extrapolates) and
``m_h``, ``s_h`` its mean and standard deviation over the training images (stored with the model).
With this choice α reads as "cosine units per standard deviation of demand utility". (The paper's
secondary sources quote α = 0.5 or 1 with ``h`` in its own log-demand units; on the standardised scale
that would let demand outweigh the whole range of the cosine.)

α trades demand against matching: in a text's ranking of images the prior α·h̃ reorders images of
similar consistency (what best-of-N wants) but, once it is as large as the cosine gap between a
matching and a non-matching image, it also ranks well-selling images of other products above the
matching one (what retrieval penalises). How large that gap is depends on the market, so by default
α is chosen on the validation products (``retrieval_tolerance``): besides the standard model (α = 0)
the trainer fits one model per candidate ``alpha · f`` (f in ``alpha_fractions``) and keeps the
largest candidate whose validation recall@5 in both directions, ranked by ``US``, is within
``retrieval_tolerance`` of the standard model's (:func:`select_alpha`); when none is, the smallest.
``retrieval_tolerance=None`` trains with ``alpha`` as given.

Training minimises the symmetric InfoNCE loss with the logits ``US(v_i, t_j) / τ`` (see
:func:`ua_infonce_loss`); τ is learned (CLIP's logit scale, clamped at 100), α and β are fixed:
every image is the positive of exactly one text, so a learned α would only be pushed toward the
value that makes the per-image prior useless for matching.

``utility: "head"`` replaces the fixed ``h̃`` by a linear head on the (unnormalised) image embedding,
initialised by least squares to ``h̃`` on the training images and held near it by
``utility_weight · mean((head(v) − h̃(v))²)``; the InfoNCE gradient then reaches the representation
through the utility term too.

Training pairs come from a market: each product photo with the product's title, and each past
creative's image with its words (its title element, then its highlight). Products are split into
training and validation products; training stops early on the validation loss.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from adcraft.configuration import check_config, from_mapping, to_mapping
from adcraft.errors import InputError
from adcraft.features.attributes import ATTRIBUTE_NAMES, attribute_matrix, compute_attributes
from adcraft.features.cache import (
    FeatureCache,
    content_key,
    default_cache_dir,
    encode_image_files,
    encode_texts,
    file_sha256,
)
from adcraft.features.image_encoder import ImageEncoder, ImageEncoderConfig, build_image_encoder
from adcraft.features.preprocess import check_images
from adcraft.features.text_encoder import TextEncoder, TextEncoderConfig, build_text_encoder
from adcraft.learning.artifacts import load_artifact, save_artifact
from adcraft.learning.training import TrainConfig, TrainHistory, fit
from adcraft.market import Market
from adcraft.rewards.judge import Capabilities, refuse_resuming
from adcraft.rewards.utility import DemandUtilityModel, UtilityConfig, utility_table

if TYPE_CHECKING:
    from adcraft.learning.distributed import DataParallel

KIND = "contrastive"
UtilityMode = Literal["fixed", "head"]
UTILITY_MODES: tuple[str, ...] = get_args(UtilityMode)
MAX_LOGIT_SCALE = 100.0  # CLIP's clamp on 1/τ
RECALL_AT = (1, 5)
SELECTION_RECALLS = ("i2t_r@5", "t2i_r@5")  # what select_alpha compares


@dataclass(frozen=True)
class ContrastiveTrainConfig(TrainConfig):
    """Optimiser settings of the contrastive encoder (``TrainConfig`` with defaults for a few hundred pairs)."""

    epochs: int = 200
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    patience: int = 10


@dataclass(frozen=True)
class ContrastiveConfig:
    """Settings of the UA-InfoNCE encoder (see the module docstring for the formulas).

    - ``image``, ``text``: the frozen towers (``backbone`` "efficientnet-lite0"/"tiny", "minilm"/"tiny").
    - ``embedding_dim``: size of the shared space the projections map to.
    - ``alpha``, ``beta``: weights of the standardised utility and of the cosine in ``US``; α = 0 is
      standard CLIP InfoNCE. With ``retrieval_tolerance`` set, ``alpha`` is the largest weight tried.
    - ``retrieval_tolerance``: choose α on the validation products, the largest of ``alpha · f`` for f in
      ``alpha_fractions`` whose validation recall@5 (image→text and text→image, by ``US``) is at most this
      much below the standard model's (see the module docstring); ``None``: use ``alpha`` as given.
    - ``temperature``: initial τ; ``learn_temperature``: learn it (as CLIP's log logit scale).
    - ``utility``: "fixed" (the regression's h̃) or "head" (a trainable head kept near h̃ with
      weight ``utility_weight``).
    - ``demand``: the demand regression fitted on the market (attributes must be ones
      ``compute_attributes`` returns); ``fall_back_to_ctr``: when the market has no demand table,
      fit it on the logit CTR of the past creatives instead of the configured ``log_demand``.
    - ``product_photos``: also train on each product photo paired with the product's title.
    - ``validation_share``: share of products held out for early stopping and validation metrics.
    """

    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    embedding_dim: int = 64
    alpha: float = 0.1
    retrieval_tolerance: float | None = 0.02
    alpha_fractions: tuple[float, ...] = (0.2, 0.5, 1.0)
    beta: float = 1.0
    temperature: float = 0.07
    learn_temperature: bool = True
    utility: UtilityMode = "fixed"
    utility_weight: float = 1.0
    demand: UtilityConfig = field(default_factory=UtilityConfig)
    fall_back_to_ctr: bool = True
    product_photos: bool = True
    validation_share: float = 0.2
    train: ContrastiveTrainConfig = field(default_factory=ContrastiveTrainConfig)

    def __post_init__(self) -> None:
        check_config(self)
        if self.utility not in UTILITY_MODES:
            raise InputError(f"utility must be one of {', '.join(UTILITY_MODES)}, got {self.utility!r}")
        if self.embedding_dim < 1:
            raise InputError(f"embedding_dim must be at least 1, got {self.embedding_dim}")
        for name in ("alpha", "beta", "utility_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
        tolerance = self.retrieval_tolerance
        if tolerance is not None and not (isinstance(tolerance, (int, float)) and 0 <= tolerance < 1):
            raise InputError(f"retrieval_tolerance must be a share in [0, 1) or null, got {tolerance!r}")
        fractions = self.alpha_fractions
        if not fractions or not all(isinstance(f, (int, float)) and 0 < f <= 1 for f in fractions):
            raise InputError(f"alpha_fractions must be one or more numbers in (0, 1], got {fractions!r}")
        if not 1.0 / MAX_LOGIT_SCALE <= self.temperature <= 10.0:
            raise InputError(f"temperature must lie in [{1 / MAX_LOGIT_SCALE}, 10], got {self.temperature}")
        if not 0.0 < self.validation_share < 1.0:
            raise InputError(f"validation_share must lie in (0, 1), got {self.validation_share}")
        unknown = [name for name in self.demand.attributes if name not in ATTRIBUTE_NAMES]
        if unknown:
            raise InputError(
                f"demand attributes {unknown} cannot be computed from an image; choose from {list(ATTRIBUTE_NAMES)}"
            )


# ---------------------------------------------------------------------------------------- loss


def ua_infonce_directions(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    utility: torch.Tensor,
    alpha: float,
    beta: float,
    logit_scale: torch.Tensor | float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two directions of UA-InfoNCE: (image→text loss, text→image loss), each a batch mean.

    With ``ℓ_ij = (α h(v_i) + β s(v_i, t_j)) / τ`` for the N matched pairs ``(v_i, t_i)`` of a batch:

        L_v→t = −(1/N) Σ_i log( exp ℓ_ii / Σ_j exp ℓ_ij )     softmax over the texts of image i
        L_t→v = −(1/N) Σ_j log( exp ℓ_jj / Σ_i exp ℓ_ij )     softmax over the images of text j

    In ``L_v→t`` the term α h(v_i) is the same for every candidate text and cancels; in ``L_t→v`` it
    differs between the candidate images and acts as a per-image prior (a logit adjustment), so a
    text's softmax leans toward high-demand images. A constant added to every h cancels in both.
    """
    if image_emb.ndim != 2 or image_emb.shape != text_emb.shape:
        raise InputError(
            f"image and text embeddings must both be (N, d) with the same shape, got "
            f"{tuple(image_emb.shape)} and {tuple(text_emb.shape)}"
        )
    if utility.shape != (image_emb.shape[0],):
        raise InputError(
            f"utility must have one value per image, shape ({image_emb.shape[0]},), got {tuple(utility.shape)}"
        )
    similarity = image_emb @ text_emb.T  # s(v_i, t_j)
    logits = logit_scale * (alpha * utility[:, None] + beta * similarity)
    targets = torch.arange(image_emb.shape[0], device=image_emb.device)
    return F.cross_entropy(logits, targets), F.cross_entropy(logits.T, targets)


def ua_infonce_loss(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    utility: torch.Tensor,
    alpha: float,
    beta: float,
    logit_scale: torch.Tensor | float,
) -> torch.Tensor:
    """Symmetric UA-InfoNCE loss of a batch of N matched pairs (UA-InfoNCE, arXiv 2605.28733).

    ``image_emb``, ``text_emb``: (N, d) L2-normalised embeddings, row i of each a matched pair;
    ``utility``: (N,) h(v_i); ``logit_scale``: 1/τ. The logit of image i and text j is
    ``US(v_i, t_j)/τ = (α h(v_i) + β s(v_i, t_j))/τ`` and the loss is ``(L_v→t + L_t→v) / 2`` (see
    :func:`ua_infonce_directions`: the α h term cancels image→text and is a per-image prior
    text→image). With α = 0 and β = 1 it is CLIP's symmetric InfoNCE exactly.
    """
    image_to_text, text_to_image = ua_infonce_directions(image_emb, text_emb, utility, alpha, beta, logit_scale)
    return (image_to_text + text_to_image) / 2


def retrieval_recall(scores: np.ndarray, image_text: np.ndarray, ks: Sequence[int] = RECALL_AT) -> dict[str, float]:
    """Image↔text retrieval recall@k from a score matrix.

    ``scores[i, j]``: score of image i with (distinct) text j; ``image_text[i]``: index of image i's own
    text. ``i2t_r@k``: share of images whose text ranks among the k best texts for them;
    ``t2i_r@k``: share of texts (with at least one image) that have one of their images among the k
    best images. A candidate tied with the correct one counts as ranked below it.
    """
    scores = np.asarray(scores, dtype=np.float64)
    image_text = np.asarray(image_text, dtype=np.int64)
    if scores.ndim != 2 or len(image_text) != scores.shape[0]:
        raise InputError(f"scores must be (images, texts) with one text index per image, got {scores.shape}")
    own = scores[np.arange(len(image_text)), image_text]
    image_rank = (scores > own[:, None]).sum(axis=1)  # texts scored above the image's own text
    text_rank = np.full(scores.shape[1], np.iinfo(np.int64).max)
    for j in np.unique(image_text):
        column = scores[:, j]
        mine = np.flatnonzero(image_text == j)
        text_rank[j] = min(int((column > column[i]).sum()) for i in mine)
    texts = np.unique(image_text)
    out = {}
    for k in ks:
        out[f"i2t_r@{k}"] = float(np.mean(image_rank < k))
        out[f"t2i_r@{k}"] = float(np.mean(text_rank[texts] < k))
    return out


# ---------------------------------------------------------------------------------------- network


class DualEncoderHeads(nn.Module):
    """Trainable part of the encoder: per-dimension standardisation and linear projections of the
    frozen features, the learned logit scale 1/τ and, with ``utility_head``, the utility head."""

    def __init__(
        self, image_dim: int, text_dim: int, embedding_dim: int, temperature: float, learn_temperature: bool,
        utility_head: bool,
    ) -> None:
        super().__init__()
        self.register_buffer("image_mean", torch.zeros(image_dim))
        self.register_buffer("image_scale", torch.ones(image_dim))
        self.register_buffer("text_mean", torch.zeros(text_dim))
        self.register_buffer("text_scale", torch.ones(text_dim))
        self.image_projection = nn.Linear(image_dim, embedding_dim)
        self.text_projection = nn.Linear(text_dim, embedding_dim)
        self.log_logit_scale = nn.Parameter(
            torch.tensor(math.log(1.0 / temperature)), requires_grad=learn_temperature
        )
        self.utility_head = nn.Linear(embedding_dim, 1) if utility_head else None

    def standardise_inputs(self, image_features: np.ndarray, text_features: np.ndarray) -> None:
        """Set the input standardisation to the training features' mean and standard deviation."""
        for prefix, features in (("image", image_features), ("text", text_features)):
            values = torch.as_tensor(features, dtype=torch.float32)
            getattr(self, f"{prefix}_mean").copy_(values.mean(dim=0))
            getattr(self, f"{prefix}_scale").copy_(values.std(dim=0, unbiased=False).clamp(min=1e-6))

    def project_images(self, features: torch.Tensor) -> torch.Tensor:
        """Unnormalised image embeddings f(v)."""
        return self.image_projection((features - self.image_mean) / self.image_scale)

    def embed_texts(self, features: torch.Tensor) -> torch.Tensor:
        """L2-normalised text embeddings g(t) / |g(t)|."""
        return F.normalize(self.text_projection((features - self.text_mean) / self.text_scale), dim=-1)

    def head_utility(self, projected: torch.Tensor) -> torch.Tensor:
        assert self.utility_head is not None
        return self.utility_head(projected).squeeze(-1)

    def logit_scale(self) -> torch.Tensor:
        return self.log_logit_scale.clamp(max=math.log(MAX_LOGIT_SCALE)).exp()


# ---------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ImageScores:
    """Per-image parts of the score for one text: ``score = α·utility + β·consistency``."""

    score: np.ndarray
    utility: np.ndarray
    consistency: np.ndarray


@dataclass(frozen=True)
class PairScores:
    """Parts of the score of every image i with every text j: ``score[i, j] = α·utility[i] +
    β·consistency[i, j]``, shapes (images, texts), (images,) and (images, texts)."""

    score: np.ndarray
    utility: np.ndarray
    consistency: np.ndarray


class ContrastiveModel:
    """A trained UA-InfoNCE encoder; build it with :class:`ContrastiveTrainer` or :meth:`load`.

    ``demand_model`` is the fitted demand regression h; ``utility_mean``/``utility_scale`` standardise it
    (``h̃ = (h − mean) / scale``). ``validation`` holds the metrics on the validation products.

    A judge (:class:`adcraft.rewards.judge.Judge`) that scores images against a text; it scores no
    combinations.
    """

    kind: ClassVar[str] = KIND
    config_class: ClassVar[type] = ContrastiveConfig
    capabilities: ClassVar[Capabilities] = Capabilities(scores_images=True)

    def __init__(
        self,
        config: ContrastiveConfig,
        network: DualEncoderHeads,
        demand_model: DemandUtilityModel,
        utility_mean: float,
        utility_scale: float,
        history: TrainHistory,
        validation: dict[str, Any],
    ) -> None:
        self.config = config
        self.network = network.eval()
        self.demand_model = demand_model
        self.utility_mean = float(utility_mean)
        self.utility_scale = float(utility_scale)
        self.history = history
        self.validation = validation
        self._image_encoder: ImageEncoder | None = None
        self._text_encoder: TextEncoder | None = None

    @classmethod
    def train(
        cls, market: Market, config: ContrastiveConfig, *, progress: bool = False, checkpoint: Path | None = None,
        world: DataParallel | None = None,
    ) -> ContrastiveModel:
        """A model fitted on ``market`` by :class:`ContrastiveTrainer`; it trains in one go, so ``checkpoint``
        and ``world`` are refused."""
        refuse_resuming(KIND, checkpoint, world)
        return ContrastiveTrainer(config).fit(market, progress=progress)

    def metrics(self, market: Market) -> dict:
        """The validation metrics of the trainer (without the list of validation products) and the history."""
        return {"validation": {k: v for k, v in self.validation.items() if k != "products"},
                "history": self.history.to_json()}

    # -- encoders ---------------------------------------------------------------------------------
    @property
    def image_encoder(self) -> ImageEncoder:
        if self._image_encoder is None:
            self._image_encoder = build_image_encoder(self.config.image)
        return self._image_encoder

    @property
    def text_encoder(self) -> TextEncoder:
        if self._text_encoder is None:
            self._text_encoder = build_text_encoder(self.config.text)
        return self._text_encoder

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """L2-normalised image embeddings, shape ``(len(images), embedding_dim)``."""
        with torch.no_grad():
            projected = self.network.project_images(self._image_features(images))
            return F.normalize(projected, dim=-1).numpy()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings, shape ``(len(texts), embedding_dim)``."""
        with torch.no_grad():
            return self.network.embed_texts(self._text_features(texts)).numpy()

    # -- scores -----------------------------------------------------------------------------------
    def score_parts(self, images: Sequence[Image.Image], text: str) -> ImageScores:
        """Utility, consistency and ``US`` of each image for ``text``, from one pass over the images."""
        parts = self._pair_scores(images, [_check_text(text)])
        return ImageScores(parts.score[:, 0], parts.utility, parts.consistency[:, 0])

    def consistency(self, images: Sequence[Image.Image], text: str) -> np.ndarray:
        """Cosine similarity s(v, t) of each image with ``text``."""
        return self.score_parts(images, text).consistency

    def utility(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Standardised demand utility h̃(v) of each image (0 = the training images' mean, 1 = one sd)."""
        _check_image_list(images)
        if self.network.utility_head is None:  # the fixed regression needs no embedding
            return self._utility(images, None).numpy().astype(np.float64)
        with torch.no_grad():
            projected = self.network.project_images(self._image_features(images))
            return self._utility(images, projected).numpy().astype(np.float64)

    def score(self, images: Sequence[Image.Image], text: str) -> np.ndarray:
        """The utility-aware score ``US(v, t) = α h̃(v) + β s(v, t)`` of each image for ``text``."""
        return self.score_parts(images, text).score

    def pair_scores(self, images: Sequence[Image.Image], texts: Sequence[str]) -> PairScores:
        """``US(v_i, t_j)`` and its parts for every image i and text j, from one pass over the images."""
        if isinstance(texts, str) or len(texts) == 0:
            raise InputError("expected a non-empty list of texts")
        return self._pair_scores(images, [_check_text(t) for t in texts])

    def score_matrix(self, images: Sequence[Image.Image], texts: Sequence[str]) -> np.ndarray:
        """``US(v_i, t_j)`` for every image i and text j, shape ``(len(images), len(texts))``."""
        return self.pair_scores(images, texts).score

    def _pair_scores(self, images: Sequence[Image.Image], texts: list[str]) -> PairScores:
        _check_image_list(images)
        with torch.no_grad():
            projected = self.network.project_images(self._image_features(images))
            utility = self._utility(images, projected)
            similarity = F.normalize(projected, dim=-1) @ self.network.embed_texts(self._text_features(texts)).T
            scores = self.config.alpha * utility[:, None] + self.config.beta * similarity
        return PairScores(scores.numpy().astype(np.float64), utility.numpy().astype(np.float64),
                          similarity.numpy().astype(np.float64))

    def _utility(self, images: Sequence[Image.Image], projected: torch.Tensor | None) -> torch.Tensor:
        if self.network.utility_head is not None:
            assert projected is not None
            return self.network.head_utility(projected)
        attributes, names = attribute_matrix(images)
        return torch.as_tensor(self.standardised_utility(pd.DataFrame(attributes, columns=names)), dtype=torch.float32)

    def standardised_utility(self, attributes: pd.DataFrame) -> np.ndarray:
        """h̃ of rows of visual attributes (the fixed regression; attributes clipped to its observed range)."""
        return standardised_utility(self.demand_model, attributes, self.utility_mean, self.utility_scale)

    def _image_features(self, images: Sequence[Image.Image]) -> torch.Tensor:
        _check_image_list(images)
        return torch.from_numpy(self.image_encoder.encode(list(images)))

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.from_numpy(self.text_encoder.encode(list(texts)))

    # -- persistence ------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write a "contrastive" artifact: ``config.json`` (config, demand regression settings and fit
        statistics, standardisation, history, validation metrics) and ``model.safetensors`` (the heads'
        weights and the demand regression's arrays). Nothing is pickled."""
        tensors: dict[str, Any] = {f"network.{k}": v for k, v in self.network.state_dict().items()}
        demand_scalars = {}
        for item in dataclasses.fields(self.demand_model):
            value = getattr(self.demand_model, item.name)
            if isinstance(value, np.ndarray):
                tensors[f"demand.{item.name}"] = value
            elif item.name != "config":
                demand_scalars[item.name] = value
        extra = {
            "image_dim": int(self.network.image_mean.shape[0]),
            "text_dim": int(self.network.text_mean.shape[0]),
            "utility_mean": self.utility_mean,
            "utility_scale": self.utility_scale,
            "demand_config": to_mapping(self.demand_model.config),
            "demand": demand_scalars,
            "history": self.history.to_json(),
            "validation": self.validation,
        }
        return save_artifact(folder, KIND, to_mapping(self.config), tensors, extra)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> ContrastiveModel:
        """Read a model written by :meth:`save`; the encoders are rebuilt from the saved backbone names."""
        artifact = load_artifact(folder, expected_kind=KIND)
        config = from_mapping(ContrastiveConfig, artifact.config, where=f"{folder}/config.json")
        extra = artifact.extra or {}
        try:
            network = DualEncoderHeads(
                extra["image_dim"], extra["text_dim"], config.embedding_dim, config.temperature,
                config.learn_temperature, config.utility == "head",
            )
            network.load_state_dict({
                k.removeprefix("network."): v for k, v in artifact.tensors.items() if k.startswith("network.")
            })
            arrays = {
                k.removeprefix("demand."): v.numpy() for k, v in artifact.tensors.items() if k.startswith("demand.")
            }
            demand_config = from_mapping(UtilityConfig, extra["demand_config"], where=f"{folder}/config.json")
            demand_model = DemandUtilityModel(config=demand_config, **arrays, **extra["demand"])
            return cls(
                config, network, demand_model, extra["utility_mean"], extra["utility_scale"],
                TrainHistory(**extra.get("history", {})), extra.get("validation", {}),
            )
        except (KeyError, TypeError, RuntimeError) as error:
            raise InputError(f"{folder} is not a complete contrastive model ({error}); "
                             "save it again with ContrastiveModel.save") from None


def standardised_utility(
    demand_model: DemandUtilityModel, attributes: pd.DataFrame, mean: float = 0.0, scale: float = 1.0
) -> np.ndarray:
    """``(h(x) − mean) / scale`` with each attribute clipped to the range the regression observed."""
    names = list(demand_model.config.attributes)
    x = np.clip(attributes[names].to_numpy(dtype=np.float64), demand_model.observed_min, demand_model.observed_max)
    return (demand_model.predict(x) - mean) / scale


def _check_image_list(images: Sequence[Image.Image]) -> None:
    check_images(images)
    if len(images) == 0:
        raise InputError("no images given: pass at least one image")


def _check_text(text: str) -> str:
    if not isinstance(text, str):
        raise InputError(f"the text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InputError("the text is empty: give the title (and selling point) the image should match")
    return text


# ---------------------------------------------------------------------------------------- data


def creative_text(market: Market, product_id: str, element_ids: Sequence[str]) -> str:
    """The words of a creative: its title element's text (else the product's title), then its highlight."""
    words = dict(zip(market.slots, element_ids))
    if "title" in words:
        title = market.element_content(words["title"])
    else:
        titles = market.products.set_index("product_id")["title"]
        title = str(titles[product_id])
    highlight = market.element_content(words["highlight"]) if "highlight" in words else ""
    return f"{title}. {highlight}" if highlight.strip() else title


def training_pairs(market: Market, product_photos: bool = True) -> pd.DataFrame:
    """One row per (image, text) pair of a market: ``product_id``, ``image`` (relative path), ``text``
    and ``source`` ("photo": a product photo with the product's title; "creative": a past creative's
    image with :func:`creative_text`)."""
    rows = []
    if product_photos:
        for pid, title, image in zip(market.products["product_id"], market.products["title"], market.products["image"]):
            rows.append((pid, image, title, "photo"))
    if market.creatives is not None:
        for pid, elements, image in zip(
            market.creatives["product_id"], market.creatives["elements"], market.creatives["image"]
        ):
            if isinstance(image, str):
                rows.append((pid, image, creative_text(market, pid, elements), "creative"))
    pairs = pd.DataFrame(rows, columns=["product_id", "image", "text", "source"])
    if pairs.empty:
        raise InputError("the market has no images to train on: no past creative has an image"
                         + ("" if product_photos else " (and product_photos is off)"))
    return pairs


def split_products(product_ids: Sequence[str], share: float, seed: int) -> set[str]:
    """The validation products: a seeded random ``share`` of the distinct products (at least one)."""
    distinct = sorted(set(product_ids))
    if len(distinct) < 2:
        raise InputError(f"training needs at least 2 products with images (to hold one out), got {len(distinct)}")
    order = np.random.default_rng(seed).permutation(len(distinct))
    count = min(len(distinct) - 1, max(1, round(share * len(distinct))))
    return {distinct[i] for i in order[:count]}


def fit_demand_utility(market: Market, config: ContrastiveConfig, progress: bool = False) -> DemandUtilityModel:
    """The demand regression h on the market (log demand, or logit CTR when the market has no demand
    table and ``fall_back_to_ctr`` is on)."""
    demand = config.demand
    if demand.target == "log_demand" and config.fall_back_to_ctr and (market.demand is None or market.demand.empty):
        demand = dataclasses.replace(demand, target="logit_ctr")
    return utility_table(market, demand, progress).fit(demand)


# ---------------------------------------------------------------------------------------- trainer


class ContrastiveTrainer:
    """Fits a :class:`ContrastiveModel` on a market's images and words."""

    def __init__(self, config: ContrastiveConfig | None = None) -> None:
        self.config = config or ContrastiveConfig()

    def fit(
        self, market: Market, progress: bool = False, demand_model: DemandUtilityModel | None = None
    ) -> ContrastiveModel:
        """Train on ``market``; ``demand_model`` (optional) is used as h instead of fitting one."""
        config = self.config
        pairs = training_pairs(market, config.product_photos)
        valid_products = split_products(pairs["product_id"], config.validation_share, config.train.seed)
        is_valid = pairs["product_id"].isin(valid_products).to_numpy()
        if is_valid.sum() < 2 or (~is_valid).sum() < 2:
            raise InputError(f"too few image-text pairs to train and validate on ({len(pairs)}): "
                             "the market needs more products with images or past creatives")
        if demand_model is None:
            demand_model = fit_demand_utility(market, config, progress)

        cache = FeatureCache(default_cache_dir())
        paths = [market.resolve(p) for p in pairs["image"]]
        image_features = encode_image_files(build_image_encoder(config.image), paths, cache, progress)
        text_features = encode_texts(build_text_encoder(config.text), pairs["text"].tolist(), cache, progress)
        attributes = _image_attributes(market, pairs["image"].tolist(), cache)
        h = standardised_utility(demand_model, attributes)
        mean, scale = float(h[~is_valid].mean()), float(h[~is_valid].std())
        scale = scale if scale > 0 else 1.0
        h = (h - mean) / scale

        train = _PairTensors.of(image_features[~is_valid], text_features[~is_valid], h[~is_valid])
        valid = _PairTensors.of(image_features[is_valid], text_features[is_valid], h[is_valid])
        valid_texts = pairs[is_valid]["text"].tolist()

        def fit_heads(alpha: float) -> _FittedHeads:
            return _fit_heads(dataclasses.replace(config, alpha=alpha), train, valid, valid_texts, progress)

        search = None
        if config.retrieval_tolerance is not None and config.alpha > 0:
            standard = fit_heads(0.0)
            grid = sorted({round(config.alpha * fraction, 12) for fraction in config.alpha_fractions})
            candidates = {alpha: fit_heads(alpha) for alpha in grid}
            alpha, within = select_alpha(standard.retrieval, {a: c.retrieval for a, c in candidates.items()},
                                         config.retrieval_tolerance)
            fitted = candidates[alpha]
            search = {"tolerance": config.retrieval_tolerance, "standard": _recall_at_5(standard.retrieval),
                      "candidates": [{"alpha": a, **_recall_at_5(c.retrieval)} for a, c in candidates.items()],
                      "alpha": alpha, "within_tolerance": within}
            config = dataclasses.replace(config, alpha=alpha, retrieval_tolerance=None)  # what the model is
        else:
            fitted = fit_heads(config.alpha)
        validation = {
            "pairs": int(is_valid.sum()),
            "train_pairs": int((~is_valid).sum()),
            "products": sorted(valid_products),
            "loss_before": fitted.loss_before,
            "loss": min(fitted.history.valid_loss) if fitted.history.valid_loss else fitted.loss_before,
            "logit_scale": float(fitted.network.logit_scale().detach()),
            "demand_target": demand_model.config.target,
            "demand_r2": float(demand_model.r2),
            **fitted.retrieval,
            **({"alpha_search": search} if search is not None else {}),
        }
        return ContrastiveModel(config, fitted.network, demand_model, mean, scale, fitted.history, validation)


def select_alpha(
    standard: dict[str, float], candidates: dict[float, dict[str, float]], tolerance: float
) -> tuple[float, bool]:
    """The largest candidate α whose validation recall@5 in both directions is at most ``tolerance`` below
    the standard model's, and True; when no candidate is, the smallest α and False.

    ``standard``, ``candidates[α]``: :func:`retrieval_recall` results (``i2t_r@5``, ``t2i_r@5``) of the
    α = 0 model and of the model trained with each α, on the same validation pairs, ranked by ``US``.
    """
    if not candidates:
        raise InputError("select_alpha needs at least one candidate alpha")
    within = [alpha for alpha, recall in candidates.items()
              if all(recall[key] >= standard[key] - tolerance - 1e-9 for key in SELECTION_RECALLS)]
    return (max(within), True) if within else (min(candidates), False)


def _recall_at_5(retrieval: dict[str, float]) -> dict[str, float]:
    return {key: retrieval[key] for key in SELECTION_RECALLS}


@dataclass(frozen=True)
class _FittedHeads:
    network: DualEncoderHeads
    history: TrainHistory
    loss_before: float
    retrieval: dict[str, float]  # recall@k on the validation pairs, ranked by US


def _fit_heads(
    config: ContrastiveConfig, train: _PairTensors, valid: _PairTensors, valid_texts: list[str], progress: bool
) -> _FittedHeads:
    """Train the projection heads (and the utility head in "head" mode) with ``config.alpha``, from the seed."""
    torch.manual_seed(config.train.seed)
    network = DualEncoderHeads(
        train.images.shape[1], train.texts.shape[1], config.embedding_dim, config.temperature,
        config.learn_temperature, config.utility == "head",
    )
    network.standardise_inputs(train.images.numpy(), train.texts.numpy())
    if network.utility_head is not None:
        _initialise_head(network, train)
    loss_before = float(_objective(network, valid, config).detach())

    def train_loss(index: torch.Tensor) -> torch.Tensor:
        return _objective(network, train.take(index), config)

    def valid_loss() -> float:
        return float(_objective(network, valid, config))

    history = fit(network, len(train), train_loss, valid_loss, config.train, progress,
                  f"training UA-InfoNCE encoder (alpha {config.alpha:g})")
    return _FittedHeads(network, history, loss_before, _retrieval(network, valid, valid_texts, config))


@dataclass(frozen=True)
class _PairTensors:
    images: torch.Tensor  # (n, image_dim) frozen features
    texts: torch.Tensor  # (n, text_dim)
    utility: torch.Tensor  # (n,) standardised fixed h̃

    @classmethod
    def of(cls, images: np.ndarray, texts: np.ndarray, utility: np.ndarray) -> _PairTensors:
        return cls(torch.as_tensor(images, dtype=torch.float32), torch.as_tensor(texts, dtype=torch.float32),
                   torch.as_tensor(utility, dtype=torch.float32))

    def take(self, index: torch.Tensor) -> _PairTensors:
        return _PairTensors(self.images[index], self.texts[index], self.utility[index])

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _objective(network: DualEncoderHeads, batch: _PairTensors, config: ContrastiveConfig) -> torch.Tensor:
    """UA-InfoNCE on a batch, plus the head's pull toward the fixed h̃ in "head" mode."""
    projected = network.project_images(batch.images)
    utility = batch.utility if network.utility_head is None else network.head_utility(projected)
    loss = ua_infonce_loss(
        F.normalize(projected, dim=-1), network.embed_texts(batch.texts), utility, config.alpha, config.beta,
        network.logit_scale(),
    )
    if network.utility_head is not None:
        loss = loss + config.utility_weight * F.mse_loss(utility, batch.utility)
    return loss


@torch.no_grad()
def _initialise_head(network: DualEncoderHeads, train: _PairTensors, ridge: float = 1e-3) -> None:
    """Least-squares (lightly ridged) fit of the head to h̃ on the initial training embeddings."""
    projected = network.project_images(train.images).double()
    design = torch.cat([projected, torch.ones(len(train), 1, dtype=torch.float64)], dim=1)
    gram = design.T @ design + ridge * torch.eye(design.shape[1], dtype=torch.float64)
    solution = torch.linalg.solve(gram, design.T @ train.utility.double())
    assert network.utility_head is not None
    network.utility_head.weight.copy_(solution[:-1].float()[None, :])
    network.utility_head.bias.copy_(solution[-1:].float())


@torch.no_grad()
def _retrieval(network: DualEncoderHeads, pairs: _PairTensors, texts: list[str], config: ContrastiveConfig) -> dict:
    """Recall@k on validation pairs with the score US (distinct texts are the candidates)."""
    distinct = sorted(set(texts))
    index = {text: j for j, text in enumerate(distinct)}
    first = [texts.index(text) for text in distinct]
    projected = network.project_images(pairs.images)
    utility = pairs.utility if network.utility_head is None else network.head_utility(projected)
    similarity = F.normalize(projected, dim=-1) @ network.embed_texts(pairs.texts[first]).T
    scores = config.alpha * utility[:, None] + config.beta * similarity
    return retrieval_recall(scores.numpy(), np.array([index[t] for t in texts]))


@functools.cache
def attributes_identity() -> str:
    """Cache identity of the visual attributes: their names and the source of the code computing them,
    so cached attributes are recomputed whenever that code changes."""
    from adcraft.features import attributes, preprocess

    sources = "".join(file_sha256(module.__file__)[:16] for module in (attributes, preprocess))
    return f"attributes/{sources}/{','.join(ATTRIBUTE_NAMES)}"


def _image_attributes(market: Market, relpaths: list[str], cache: FeatureCache) -> pd.DataFrame:
    """Visual attributes of each image, one row per path; each distinct file is computed once and kept
    in the feature cache (float32, like ``attribute_matrix``)."""
    rows = {}
    for relpath in dict.fromkeys(relpaths):
        key = content_key(attributes_identity(), file_sha256(market.resolve(relpath)))
        vector = cache.get(key, len(ATTRIBUTE_NAMES))
        if vector is None:
            values = compute_attributes(market.open_image(relpath))
            vector = np.array([values[name] for name in ATTRIBUTE_NAMES], dtype=np.float32)
            cache.put(key, vector)
        rows[relpath] = vector
    return pd.DataFrame([rows[p] for p in relpaths], columns=list(ATTRIBUTE_NAMES))
