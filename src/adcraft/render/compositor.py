"""The default renderer: a product photo and a creative's elements composited into an ad image.

Drawing order: background (from the background prompt) -> soft shadow under the product (if the
prompt asks for one) -> the product cut-out, scaled with its aspect kept (LANCZOS) to fit the
template's product box, alpha-composited -> the text band (``banner``) -> the title -> the
highlight badge (a rounded rectangle whose fill contrasts with what is behind it).

The product's pixels are never altered beyond scaling: the shadow is drawn before the product,
and every box that text, plates, bands or badges are drawn into is disjoint from the product box
(see :mod:`adcraft.render.templates`). Where the cut-out is opaque, the output equals
:meth:`Compositor.product_cutout_resized` exactly.

Without a requested colour, the title is black or white, whichever contrasts more with the pixels
behind it. When the title's colour (requested or not) is unreadable somewhere behind it (contrast
< ``min_contrast`` against the mean, darkest or lightest pixels: a busy texture counts), a
semi-transparent plate is drawn behind the text (:func:`legibility_plate`), inside the title box.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageStat

from adcraft.atomic import write_png
from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.market.limits import MAX_CANVAS_PX, MIN_CANVAS_PX  # the bounds market validation checks
from adcraft.render.background import RGB, draw_background, parse_background, parse_color
from adcraft.render.cutout import CutoutConfig, ensure_cutout
from adcraft.render.templates import PixelBox, get_template, to_pixels
from adcraft.render.text_layout import backdrop_colors, fit_text, legibility_plate, legible_color

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompositorConfig:
    """Settings of the compositor; every size is in pixels unless it says it is a fraction.

    min_font_px / max_title_px / max_badge_px: the range of font sizes text is fitted in.
    product_margin: fraction of the product box's width/height left free on each side.
    shadow_strength: opacity (0-1) of the soft shadow under the product; 0 never draws it.
    badge_fill / badge_text_color: colour words or hex codes; None picks contrasting ones.
    badge_corner: corner radius as a fraction of half the badge's height (1 = pill).
    band_opacity: opacity of the tint over the ``banner`` template's text band.
    text_padding_px: free space between a text box's edge and the text (and its plate).
    min_contrast: WCAG contrast below which a requested text colour gets a plate.
    seed: seed of the procedural background textures.
    """

    min_font_px: int = 14
    max_title_px: int = 56
    max_badge_px: int = 26
    title_bold: bool = True
    badge_bold: bool = True
    line_spacing: float = 1.1
    product_margin: float = 0.04
    shadow_strength: float = 0.35
    badge_fill: str | None = None
    badge_text_color: str | None = None
    badge_corner: float = 0.6
    band_opacity: float = 0.18
    text_padding_px: int = 6
    min_contrast: float = 3.0
    seed: int = 0
    cutout: CutoutConfig = field(default_factory=CutoutConfig)

    def __post_init__(self) -> None:
        check_config(self)
        if not 1 <= self.min_font_px <= min(self.max_title_px, self.max_badge_px):
            raise InputError(
                f"font sizes must satisfy 1 <= min_font_px <= max_title_px, max_badge_px; got "
                f"{self.min_font_px}, {self.max_title_px}, {self.max_badge_px}"
            )
        for name in ("product_margin", "shadow_strength", "badge_corner", "band_opacity"):
            value = getattr(self, name)
            if not 0.0 <= value <= (0.45 if name == "product_margin" else 1.0):
                raise InputError(f"CompositorConfig.{name} is out of range: {value}")
        if self.line_spacing <= 0 or self.text_padding_px < 0 or self.min_contrast < 1:
            raise InputError("line_spacing must be > 0, text_padding_px >= 0 and min_contrast >= 1")
        for name in ("badge_fill", "badge_text_color"):
            value = getattr(self, name)
            if value is not None and parse_color(value) is None:
                raise InputError(f"CompositorConfig.{name}: {value!r} is not a colour (try a word or #RRGGBB)")


_KNOWN_SLOTS = ("title", "highlight", "background", "template", "font", "text_color")
PLACEMENT_COLUMNS = ("product_scale", "product_x", "product_y")  # a placement as creatives.parquet records it
MIN_PRODUCT_SCALE = 0.3


@dataclass(frozen=True)
class Placement:
    """Where the product photo sits inside its template's product box: render settings a proposal may choose.

    - ``scale``: the photo's size as a fraction of the largest that fits the box with its aspect kept
      (1: as large as fits, the default; at least ``MIN_PRODUCT_SCALE``).
    - ``x``, ``y``: where the scaled photo sits in the free space it leaves in the box, 0 = left/top edge,
      0.5 = centred (the default), 1 = right/bottom edge.

    The photo stays inside the template's product box whatever the setting, so no text, badge or band can
    land on it (``render.templates``). ``Placement()`` draws exactly what a spec without one draws.
    """

    scale: float = 1.0
    x: float = 0.5
    y: float = 0.5

    def __post_init__(self) -> None:
        check_config(self)
        for name, low in (("scale", MIN_PRODUCT_SCALE), ("x", 0.0), ("y", 0.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= 1.0):
                raise InputError(f"Placement.{name} must be a number in [{low}, 1], got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def is_default(self) -> bool:
        return self == Placement()

    def as_columns(self) -> dict[str, float]:
        """The placement as the ``PLACEMENT_COLUMNS`` of a creatives table."""
        return dict(zip(PLACEMENT_COLUMNS, (self.scale, self.x, self.y)))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Placement:
        """The placement a creatives table's row records; the default where it records none (an older table)."""
        values = [row.get(column) for column in PLACEMENT_COLUMNS]
        if all(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
            return cls()
        defaults = (1.0, 0.5, 0.5)
        return cls(*(d if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
                     for v, d in zip(values, defaults)))


def placements_of(table: Any) -> list[Placement]:
    """The placement of every row of a creatives table (``Placement.from_row``); defaults for a table without
    the ``PLACEMENT_COLUMNS``."""
    present = [c for c in PLACEMENT_COLUMNS if c in table]
    if not present:
        return [Placement()] * len(table)
    return [Placement.from_row(dict(zip(present, values))) for values in zip(*(table[c] for c in present))]


@dataclass
class CreativeSpec:
    """What to render: the product image and the creative's elements (all optional text)."""

    product_image: Image.Image
    title: str | None = None
    highlight: str | None = None
    background: str | None = None
    template: str | None = None
    font: str | None = None
    text_color: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    placement: Placement = field(default_factory=Placement)

    @classmethod
    def from_slots(cls, product_image: Image.Image, slots: Mapping[str, Any],
                   placement: Placement | None = None) -> CreativeSpec:
        """Build a spec from a slot -> value mapping; slots the compositor does not know go to ``extra``."""
        known = {k: (None if v is None else str(v)) for k, v in slots.items() if k in _KNOWN_SLOTS}
        extra = {k: v for k, v in slots.items() if k not in _KNOWN_SLOTS}
        return cls(product_image=product_image, extra=extra, placement=placement or Placement(), **known)


@dataclass(frozen=True)
class RenderedCreative:
    """A rendered creative: the RGB image, where the product landed, and the boxes text was drawn in."""

    image: Image.Image
    product_bbox: PixelBox
    text_boxes: tuple[PixelBox, ...] = ()


def _check_canvas(canvas: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in canvas)
    except (TypeError, ValueError) as exc:
        raise InputError(f"canvas must be (width, height) in pixels, got {canvas!r}") from exc
    if not (MIN_CANVAS_PX <= width <= MAX_CANVAS_PX and MIN_CANVAS_PX <= height <= MAX_CANVAS_PX):
        raise InputError(f"canvas sides must lie in [{MIN_CANVAS_PX}, {MAX_CANVAS_PX}] px, got {width}x{height}")
    return width, height


def _mean_rgb(image: Image.Image, box: PixelBox) -> tuple[float, float, float]:
    mean = ImageStat.Stat(image.crop(box)).mean
    return (mean[0], mean[1], mean[2])


def _inset(box: PixelBox, dx: int, dy: int) -> PixelBox:
    return (box[0] + dx, box[1] + dy, box[2] - dx, box[3] - dy)


def _blend_rect(image: Image.Image, rect: PixelBox, color: RGB, opacity: float, radius: float = 0.0) -> None:
    """Blend a (rounded) rectangle of ``color`` at ``opacity`` over ``image`` inside ``rect``."""
    width, height = rect[2] - rect[0], rect[3] - rect[1]
    if width <= 0 or height <= 0 or opacity <= 0:
        return
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, width - 1, height - 1), radius=radius,
                                           fill=round(255 * opacity))
    image.paste(color, rect, mask)


def _fingerprint(image: Image.Image) -> tuple[object, ...]:
    """A content key for an image: mode, size, transparency, palette and checksums of the pixels.

    CRC-32 and Adler-32 of the pixel bytes (64 bits together) are several times faster than a
    cryptographic digest and ample for a cache of a few entries; this is not a security check.
    """
    pixels = image.tobytes()
    palette = bytes(image.getpalette() or []) if image.mode in ("P", "PA") else b""
    return (image.mode, image.size, repr(image.info.get("transparency")), zlib.crc32(palette),
            zlib.crc32(pixels), zlib.adler32(pixels))


class Compositor:
    """Renders :class:`CreativeSpec` s onto a canvas with Pillow and NumPy only.

    A compositor remembers the last few products it cut out and scaled, keyed by the image's
    content (not its identity), so rendering many creatives of one product cuts it out once.
    """

    product_cache_size = 32

    def __init__(self, config: CompositorConfig | None = None) -> None:
        self.config = config or CompositorConfig()
        self._products: OrderedDict[tuple[object, ...], Image.Image] = OrderedDict()
        self._lock = threading.Lock()

    def _cached(self, key: tuple[object, ...], make: Callable[[], Image.Image]) -> Image.Image:
        with self._lock:
            if key in self._products:
                self._products.move_to_end(key)
                return self._products[key]
            value = make()
            self._products[key] = value
            while len(self._products) > self.product_cache_size:
                self._products.popitem(last=False)
            return value

    def _placed_product(self, image: Image.Image, product_box: PixelBox,
                        placement: Placement | None = None) -> tuple[Image.Image, PixelBox]:
        """The scaled RGBA cut-out (shared with the cache: do not modify) and its box on the canvas: as large as
        fits the box's inset times ``placement.scale``, placed at ``placement.x, placement.y`` of the free space."""
        placement = placement or Placement()
        if not isinstance(image, Image.Image):
            raise InputError(f"the product image must be a PIL image, got {type(image).__name__}")
        key = _fingerprint(image)
        cutout = self._cached(("cutout", key), lambda: ensure_cutout(image, self.config.cutout))
        margin_x = round((product_box[2] - product_box[0]) * self.config.product_margin)
        margin_y = round((product_box[3] - product_box[1]) * self.config.product_margin)
        left, top, right, bottom = _inset(product_box, margin_x, margin_y)
        avail_w, avail_h = max(1, right - left), max(1, bottom - top)
        scale = min(avail_w / cutout.width, avail_h / cutout.height) * placement.scale
        size = (min(avail_w, max(1, round(cutout.width * scale))), min(avail_h, max(1, round(cutout.height * scale))))
        resized = self._cached(("resized", key, size),
                               lambda: cutout if size == cutout.size else cutout.resize(size, Image.Resampling.LANCZOS))
        x = left + int((avail_w - size[0]) * placement.x)  # 0.5: (free // 2), as before placements
        y = top + int((avail_h - size[1]) * placement.y)
        return resized, (x, y, x + size[0], y + size[1])

    def product_cutout_resized(self, spec: CreativeSpec, canvas: tuple[int, int] = (512, 512)
                               ) -> tuple[Image.Image, PixelBox]:
        """The RGBA cut-out exactly as :meth:`render` pastes it, and its pixel box on the canvas."""
        canvas = _check_canvas(canvas)
        product_box = to_pixels(get_template(spec.template).product, canvas)
        resized, bbox = self._placed_product(spec.product_image, product_box, spec.placement)
        return resized.copy(), bbox

    def render(self, spec: CreativeSpec, canvas: tuple[int, int] = (512, 512)) -> RenderedCreative:
        """Render ``spec`` on a ``canvas`` = (width, height) image; deterministic for a given spec and config."""
        canvas = _check_canvas(canvas)
        template = get_template(spec.template)
        style = parse_background(spec.background or "")
        image = draw_background(style, canvas, self.config.seed)
        product_box = to_pixels(template.product, canvas)
        product, bbox = self._placed_product(spec.product_image, product_box, spec.placement)
        if style.shadow and self.config.shadow_strength > 0:
            self._draw_shadow(image, bbox, product_box)
        image.paste(product.convert("RGB"), bbox[:2], product.getchannel("A"))

        drawn = self.draw_text(image, spec, canvas)
        return RenderedCreative(image=image, product_bbox=bbox, text_boxes=drawn)

    def draw_text(self, image: Image.Image, spec: CreativeSpec, canvas: tuple[int, int]) -> tuple[PixelBox, ...]:
        """Draw the template's band, the title and the highlight badge on ``image`` (in place), after the
        background and the product; the boxes drawn into. Every renderer backend finishes a creative this way."""
        template = get_template(spec.template)
        title = (spec.title or "").strip()
        highlight = (spec.highlight or "").strip()
        drawn: list[PixelBox] = []
        if template.band is not None and ((title and template.title) or (highlight and template.badge)):
            band = to_pixels(template.band, canvas)
            _blend_rect(image, band, legible_color(_mean_rgb(image, band)), self.config.band_opacity)
            drawn.append(band)
        if title and template.title is not None:
            box = to_pixels(template.title, canvas)
            if self._draw_title(image, box, title, spec):
                drawn.append(box)
        if highlight and template.badge is not None:
            box = to_pixels(template.badge, canvas)
            if self._draw_badge(image, box, highlight, spec.font):
                drawn.append(box)
        return tuple(drawn)

    def _draw_shadow(self, image: Image.Image, bbox: PixelBox, product_box: PixelBox) -> None:
        """A soft elliptical contact shadow at the product's base, kept inside the product box."""
        width, height = bbox[2] - bbox[0], bbox[3] - bbox[1]
        rx = 0.42 * width
        ry = max(2.0, min(0.1 * width, 0.06 * height))
        cx, cy = (bbox[0] + bbox[2]) / 2.0, bbox[3] - 0.3 * ry
        blur = max(1.0, 0.8 * ry)
        reach_x, reach_y = rx + 3 * blur, ry + 3 * blur
        region = (max(product_box[0], int(cx - reach_x)), max(product_box[1], int(cy - reach_y)),
                  min(product_box[2], int(cx + reach_x) + 1), min(product_box[3], int(cy + reach_y) + 1))
        if region[2] <= region[0] or region[3] <= region[1]:
            return
        mask = Image.new("L", (region[2] - region[0], region[3] - region[1]), 0)
        ImageDraw.Draw(mask).ellipse(
            (cx - rx - region[0], cy - ry - region[1], cx + rx - region[0], cy + ry - region[1]),
            fill=round(255 * self.config.shadow_strength),
        )
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
        shade = tuple(round(0.25 * c) for c in _mean_rgb(image, region))
        image.paste(shade, region, mask)

    def _text_color(self, requested: str | None) -> RGB | None:
        if not requested:
            return None
        rgb = parse_color(requested)
        if rgb is None:
            logger.warning("text colour %r is not a colour; choosing a legible one instead", requested)
        return rgb

    def _draw_title(self, image: Image.Image, box: PixelBox, text: str, spec: CreativeSpec) -> bool:
        cfg = self.config
        pad = cfg.text_padding_px
        inner = _inset(box, pad, pad)
        block = fit_text(text, spec.font, inner[2] - inner[0], inner[3] - inner[1],
                         cfg.max_title_px, cfg.min_font_px, cfg.title_bold, cfg.line_spacing)
        if block.empty:
            return False
        ink = (inner[0] + block.ink_box[0], inner[1] + block.ink_box[1],
               inner[0] + block.ink_box[2], inner[1] + block.ink_box[3])
        backdrop = backdrop_colors(np.asarray(image.crop(ink))[::2, ::2])
        color = self._text_color(spec.text_color) or legible_color(backdrop)
        plate = legibility_plate(color, backdrop, cfg.min_contrast)
        if plate is not None:
            rect = (max(box[0], ink[0] - pad), max(box[1], ink[1] - pad),
                    min(box[2], ink[2] + pad), min(box[3], ink[3] + pad))
            _blend_rect(image, rect, plate.color, plate.opacity, radius=pad)
        block.draw(ImageDraw.Draw(image), inner[:2], color)
        return True

    def _draw_badge(self, image: Image.Image, box: PixelBox, text: str, font: str | None) -> bool:
        cfg = self.config
        pad_y = cfg.text_padding_px
        pad_x = max(pad_y, (box[3] - box[1]) // 4)
        inner = _inset(box, pad_x, pad_y)
        block = fit_text(text, font, inner[2] - inner[0], inner[3] - inner[1],
                         cfg.max_badge_px, cfg.min_font_px, cfg.badge_bold, cfg.line_spacing)
        if block.empty:
            return False
        rect = (inner[0] + block.ink_box[0] - pad_x, inner[1] + block.ink_box[1] - pad_y,
                inner[0] + block.ink_box[2] + pad_x, inner[1] + block.ink_box[3] + pad_y)
        fill = parse_color(cfg.badge_fill) if cfg.badge_fill else legible_color(_mean_rgb(image, rect))
        text_rgb = parse_color(cfg.badge_text_color) if cfg.badge_text_color else None
        text_rgb = text_rgb or legible_color(fill)
        radius = cfg.badge_corner * (rect[3] - rect[1]) / 2.0
        ImageDraw.Draw(image).rounded_rectangle((rect[0], rect[1], rect[2] - 1, rect[3] - 1),
                                                radius=radius, fill=fill)
        block.draw(ImageDraw.Draw(image), inner[:2], text_rgb)
        return True


def render_to_png(spec: CreativeSpec, path: str | os.PathLike[str], canvas: tuple[int, int] = (512, 512),
                  config: CompositorConfig | None = None) -> RenderedCreative:
    """Render ``spec`` and write it as a PNG at ``path`` atomically (a temporary file, then a rename)."""
    rendered = Compositor(config).render(spec, canvas)
    write_png(Path(path), rendered.image)
    return rendered

