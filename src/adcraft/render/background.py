"""Background prompts: read a short phrase into a :class:`BackgroundStyle`, then draw it with NumPy.

A background prompt is the free text of a creative's background slot ("warm beige studio, soft
shadow", "#1e3a5f to #f0c27b gradient", "pastel pink marble", "dark wooden table"). The compositor
has no image model, so the phrase is read with a small, predictable grammar:

Grammar (case-insensitive; words are runs of letters, hex codes are ``#RRGGBB`` or ``#RGB``)::

    prompt   := term*                        (unknown words are ignored)
    term     := modifier* colour | hex | texture | kind | effect | direction | "to" | other
    colour   := a CSS named colour ("navy", "lightblue") | an ad colour word ("beige", "cream",
                "charcoal", "sand", "terracotta", "sage", "mint", "blush", ...); two adjacent words
                that spell one ("light blue" -> lightblue, "off white", "rose gold") count as one,
                and so does a shade followed by a basic hue ("sage green", "navy blue" -> the
                shade; but "blue green" is two colours)
    modifier := light | pale | pastel | soft      -> lighter and less saturated
              | dark | deep | rich                -> darker
              | warm | cool                       -> hue turned toward orange / toward blue
              | vivid | bright | neon             -> more saturated
              | muted | dusty                     -> less saturated
    texture  := marble | wood | wooden | linen | fabric | concrete | stone | paper | stripes | dots
              | polka | bokeh (and a few synonyms: marbled, oak, cloth, cement, granite, striped, ...)
    kind     := gradient | fade | ombre
    effect   := shadow | vignette | spotlight     ("no"/"without" just before one turns it off)
    direction:= horizontal | vertical | diagonal | radial      (of a gradient; vertical by default)

Semantics:

* Modifiers apply, in order, to the next colour or hex code. Modifiers left with no colour after
  them apply to the texture's default colour (``dark wooden table``) or, with neither, to the
  default background; otherwise they are dropped (``soft shadow``).
* The kind is ``texture`` when a surface texture is named (the first one wins), else ``gradient``
  when a kind word is present or two colours are joined by "to" (``navy to white``), else
  ``solid``. A solid background uses the first colour. A gradient runs through all colours in
  order (top to bottom unless a direction is given); with one colour it fades to a lighter or
  darker shade of it. A texture draws its pattern in the first colour (or its own default
  colour) and uses the second colour, if any, for the pattern's detail (veins, stripes, dots).
* ``bokeh`` is an overlay of soft out-of-focus light discs; named alone it is the texture.
* No colour at all gives a neutral light grey, :data:`DEFAULT_COLOR`.
* ``shadow`` is recorded on the style and drawn by the compositor under the product (it depends
  on where the product lands); ``vignette`` darkens the corners, ``spotlight`` lights the centre.

Drawing is deterministic for a given (style, size, seed): every random pattern comes from a
NumPy generator seeded with ``seed``.
"""

from __future__ import annotations

import colorsys
import functools
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFilter

from adcraft.errors import InputError

RGB = tuple[int, int, int]
BackgroundKind = Literal["solid", "gradient", "texture"]
GradientDirection = Literal["vertical", "horizontal", "diagonal", "radial"]

DEFAULT_COLOR: RGB = (234, 234, 232)
"""The neutral light grey used when a prompt names no colour."""

# Common ad/photo colour words missing from (or better than) the CSS table.
_AD_COLOURS: dict[str, RGB] = {
    "beige": (232, 220, 196),
    "cream": (255, 250, 226),
    "offwhite": (248, 246, 240),
    "eggshell": (240, 234, 214),
    "ivory": (255, 255, 240),
    "pearl": (234, 226, 210),
    "champagne": (247, 231, 206),
    "nude": (227, 188, 154),
    "oatmeal": (220, 206, 182),
    "sand": (214, 196, 160),
    "taupe": (152, 134, 116),
    "mocha": (150, 120, 90),
    "coffee": (111, 78, 55),
    "caramel": (196, 142, 72),
    "honey": (235, 177, 52),
    "charcoal": (54, 60, 66),
    "graphite": (65, 66, 76),
    "slate": (108, 122, 137),
    "ink": (30, 35, 48),
    "terracotta": (204, 108, 82),
    "clay": (182, 106, 80),
    "rust": (183, 65, 14),
    "brick": (160, 52, 40),
    "ochre": (204, 119, 34),
    "mustard": (225, 173, 1),
    "lemon": (255, 244, 79),
    "butter": (255, 241, 181),
    "peach": (255, 203, 164),
    "apricot": (251, 206, 177),
    "blush": (242, 190, 190),
    "rose": (230, 150, 165),
    "rosegold": (183, 110, 121),
    "mauve": (204, 153, 170),
    "lilac": (200, 162, 200),
    "burgundy": (128, 0, 32),
    "wine": (114, 47, 55),
    "cherry": (210, 4, 45),
    "ruby": (224, 17, 95),
    "copper": (184, 115, 51),
    "bronze": (205, 127, 50),
    "sage": (168, 182, 146),
    "mint": (178, 236, 206),
    "pistachio": (147, 197, 114),
    "emerald": (80, 200, 120),
    "jade": (0, 168, 107),
    "forest": (34, 90, 50),
    "cobalt": (0, 71, 171),
    "sapphire": (15, 82, 186),
    "denim": (21, 96, 189),
    "sky": (135, 206, 235),
    "ocean": (0, 94, 140),
    "midnight": (25, 25, 70),
}

_MODIFIER_WORDS: dict[str, tuple[float, float, int]] = {
    # word: (lighten in [-1, 1], saturate in [-1, 1], hue direction: +1 warm, -1 cool, 0 none)
    "light": (0.35, -0.15, 0),
    "pale": (0.5, -0.4, 0),
    "pastel": (0.55, -0.35, 0),
    "soft": (0.25, -0.25, 0),
    "dark": (-0.4, 0.0, 0),
    "deep": (-0.3, 0.15, 0),
    "rich": (-0.15, 0.2, 0),
    "warm": (0.0, 0.0, 1),
    "cool": (0.0, 0.0, -1),
    "vivid": (0.0, 0.5, 0),
    "bright": (0.05, 0.4, 0),
    "neon": (0.0, 0.7, 0),
    "muted": (0.0, -0.5, 0),
    "dusty": (0.05, -0.5, 0),
}

_TEXTURE_WORDS: dict[str, str] = {
    "marble": "marble", "marbled": "marble",
    "wood": "wood", "wooden": "wood", "oak": "wood", "walnut": "wood", "timber": "wood",
    "linen": "linen", "fabric": "linen", "cloth": "linen", "canvas": "linen", "textile": "linen",
    "concrete": "concrete", "cement": "concrete",
    "stone": "stone", "granite": "stone",
    "paper": "paper",
    "stripes": "stripes", "stripe": "stripes", "striped": "stripes",
    "dots": "dots", "dot": "dots", "dotted": "dots", "polka": "dots",
    "bokeh": "bokeh",
}

_TEXTURE_COLOURS: dict[str, RGB] = {
    "marble": (238, 236, 232),
    "wood": (156, 108, 68),
    "linen": (234, 228, 214),
    "concrete": (168, 168, 164),
    "stone": (150, 146, 138),
    "paper": (246, 243, 236),
}

_BASIC_HUES = frozenset(
    {"red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "grey", "gray"}
)
_KIND_WORDS = frozenset({"gradient", "fade", "ombre"})
_DIRECTION_WORDS: dict[str, GradientDirection] = {
    "vertical": "vertical", "horizontal": "horizontal", "sideways": "horizontal",
    "diagonal": "diagonal", "radial": "radial", "circular": "radial",
}
_EFFECT_WORDS = {"shadow": "shadow", "shadows": "shadow", "vignette": "vignette", "spotlight": "spotlight"}
_NEGATIONS = frozenset({"no", "without"})

_TOKEN = re.compile(r"#(?:[0-9a-f]{6}|[0-9a-f]{3})(?![0-9a-f])|[a-z]+")


@dataclass(frozen=True)
class BackgroundStyle:
    """What a background prompt asks for; see the module docstring for how words map here."""

    kind: BackgroundKind = "solid"
    colors: tuple[RGB, ...] = (DEFAULT_COLOR,)
    texture: str | None = None
    direction: GradientDirection = "vertical"
    shadow: bool = False
    vignette: bool = False
    spotlight: bool = False
    bokeh: bool = False


@functools.cache
def _vocabulary() -> dict[str, RGB]:
    vocab: dict[str, RGB] = {}
    for name in ImageColor.colormap:
        rgb = ImageColor.getrgb(name)
        vocab[name] = (rgb[0], rgb[1], rgb[2])
    vocab.update(_AD_COLOURS)
    return vocab


def _hex_to_rgb(code: str) -> RGB:
    digits = code[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


def _shift(value: float, amount: float) -> float:
    """Move ``value`` in [0, 1] toward 1 (amount > 0) or toward 0 (amount < 0) by ``|amount|``."""
    return value + (1.0 - value) * amount if amount >= 0 else value * (1.0 + amount)


def apply_modifiers(rgb: RGB, modifiers: list[str] | tuple[str, ...]) -> RGB:
    """Apply modifier words in order, working in HLS space (see ``_MODIFIER_WORDS``)."""
    h, l, s = colorsys.rgb_to_hls(*(c / 255.0 for c in rgb))
    for word in modifiers:
        lighten, saturate, hue_dir = _MODIFIER_WORDS[word]
        l = _shift(l, lighten)
        s = _shift(s, saturate)
        if hue_dir:
            target = 30 / 360 if hue_dir > 0 else 210 / 360
            if s < 0.08:  # a grey has no hue to turn: give it a faint tint instead
                h, s, l = target, 0.15, min(l, 0.94)
            else:
                delta = (target - h + 0.5) % 1.0 - 0.5
                h = (h + max(-20 / 360, min(20 / 360, delta))) % 1.0
    r, g, b = colorsys.hls_to_rgb(h, l, s)
    return (round(r * 255), round(g * 255), round(b * 255))


@functools.lru_cache(maxsize=512)
def parse_background(prompt: str) -> BackgroundStyle:
    """Read a background prompt into a :class:`BackgroundStyle` (grammar in the module docstring)."""
    return _read_prompt(prompt)[0]


def _read_prompt(prompt: str) -> tuple[BackgroundStyle, bool]:
    """The style, and whether the prompt named any colour itself (rather than a default)."""
    tokens = _TOKEN.findall((prompt or "").lower())
    vocab = _vocabulary()
    colours: list[RGB] = []
    pending: list[str] = []
    texture_mods: list[str] = []
    textures: list[str] = []
    effects: set[str] = set()
    direction: GradientDirection = "vertical"
    gradient = False
    to_after_colour = False  # a "to" right after a colour, waiting for the colour that follows it
    last_was_colour = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        colour: RGB | None = None
        if tok.startswith("#"):
            colour = _hex_to_rgb(tok)
        elif i + 1 < len(tokens) and tok + tokens[i + 1] in vocab:
            colour = vocab[tok + tokens[i + 1]]
            i += 1
        elif tok in vocab and tok not in _TEXTURE_WORDS:  # "linen" is a CSS colour, but a texture here
            colour = vocab[tok]
        if colour is not None:
            if tok not in _BASIC_HUES and i + 1 < len(tokens) and tokens[i + 1] in _BASIC_HUES:
                i += 1  # "sage green", "navy blue": the first word already names the shade
            colours.append(apply_modifiers(colour, pending))
            pending = []
            gradient = gradient or to_after_colour
            to_after_colour = False
            last_was_colour = True
            i += 1
            continue
        if tok in _MODIFIER_WORDS:
            pending.append(tok)
            i += 1
            continue  # modifiers between "to" and its colour keep the link
        if tok == "to":
            to_after_colour = last_was_colour
        else:
            to_after_colour = False
            if tok in _TEXTURE_WORDS:
                textures.append(_TEXTURE_WORDS[tok])
                if pending and not texture_mods:
                    texture_mods = pending
                pending = []
            elif tok in _KIND_WORDS:
                gradient = True
            elif tok in _DIRECTION_WORDS:
                direction = _DIRECTION_WORDS[tok]
            elif tok in _EFFECT_WORDS and not (i > 0 and tokens[i - 1] in _NEGATIONS):
                effects.add(_EFFECT_WORDS[tok])
        last_was_colour = False
        i += 1

    named = bool(colours)
    surfaces = [t for t in textures if t != "bokeh"]
    texture = surfaces[0] if surfaces else ("bokeh" if textures else None)
    if not colours:
        base = _TEXTURE_COLOURS.get(texture or "", DEFAULT_COLOR)
        colours = [apply_modifiers(base, texture_mods or pending)]
    kind: BackgroundKind = "texture" if texture else ("gradient" if gradient else "solid")
    style = BackgroundStyle(
        kind=kind,
        colors=tuple(colours),
        texture=texture,
        direction=direction,
        shadow="shadow" in effects,
        vignette="vignette" in effects,
        spotlight="spotlight" in effects,
        bokeh="bokeh" in textures,
    )
    return style, named


def parse_color(text: str | None) -> RGB | None:
    """The first colour named in ``text`` (a word, modifiers + word, ``#hex`` or ``rgb(...)``), or None."""
    if not text or not text.strip():
        return None
    try:
        rgb = ImageColor.getrgb(text.strip())
        return (rgb[0], rgb[1], rgb[2])
    except ValueError:
        pass
    style, named = _read_prompt(text)
    return style.colors[0] if named else None


# --- drawing -------------------------------------------------------------------------------------


def _contrast_shade(rgb: RGB, amount: float = 0.22) -> RGB:
    """A darker shade of a light colour, a lighter shade of a dark one: the second colour of a pattern."""
    h, l, s = colorsys.rgb_to_hls(*(c / 255.0 for c in rgb))
    l = l - amount if l > 0.5 else l + amount
    r, g, b = colorsys.hls_to_rgb(h, min(1.0, max(0.0, l)), s)
    return (round(r * 255), round(g * 255), round(b * 255))


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells_y: int, cells_x: int) -> np.ndarray:
    """Value noise in [0, 1]: a coarse random grid upsampled bicubically to (height, width)."""
    grid = rng.random((max(2, cells_y) + 1, max(2, cells_x) + 1), dtype=np.float32)
    up = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(up, dtype=np.float32), 0.0, 1.0)


def _fbm(rng: np.random.Generator, height: int, width: int, base_cells: int, octaves: int) -> np.ndarray:
    """Fractal (1/f) sum of value-noise octaves, normalised to [0, 1]."""
    total = np.zeros((height, width), dtype=np.float32)
    norm = 0.0
    for octave in range(octaves):
        cells = base_cells * 2**octave
        amp = 0.5**octave
        total += amp * _smooth_noise(rng, height, width, cells * height // max(height, width) + 1,
                                     cells * width // max(height, width) + 1)
        norm += amp
    return total / norm


def _mix(a: np.ndarray, b: np.ndarray | RGB, t: np.ndarray) -> np.ndarray:
    """Per-pixel linear blend ``a*(1-t) + b*t`` (t is HxW)."""
    b_arr = np.asarray(b, dtype=np.float32)
    return a + (b_arr - a) * t[..., None]


def _coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates scaled so the shorter side spans [0, 1]."""
    scale = float(min(height, width))
    y = (np.arange(height, dtype=np.float32) + 0.5) / scale
    x = (np.arange(width, dtype=np.float32) + 0.5) / scale
    return y[:, None], x[None, :]


def _gradient(colours: tuple[RGB, ...], direction: GradientDirection, height: int, width: int) -> np.ndarray:
    stops = list(colours) if len(colours) > 1 else [colours[0], _contrast_shade(colours[0], 0.15)]
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    if direction == "horizontal":
        t = np.broadcast_to(xs, (height, width))
    elif direction == "diagonal":
        t = (xs + ys) / 2.0
    elif direction == "radial":
        t = np.clip(np.sqrt((xs - 0.5) ** 2 + (ys - 0.5) ** 2) / np.sqrt(0.5), 0.0, 1.0)
    else:
        t = np.broadcast_to(ys, (height, width))
    positions = np.linspace(0.0, 1.0, len(stops))
    out = np.empty((height, width, 3), dtype=np.float32)
    for c in range(3):
        out[..., c] = np.interp(t, positions, [s[c] for s in stops])
    return out


def _marble(base: np.ndarray, detail: RGB, rng: np.random.Generator) -> np.ndarray:
    h, w = base.shape[:2]
    y, x = _coords(h, w)
    turbulence = _fbm(rng, h, w, 2, 5)
    veins = (1.0 - np.abs(np.sin((x * 1.3 + y * 0.8) * 2 * np.pi + turbulence * 7.0))) ** 6
    fade = _fbm(rng, h, w, 2, 3)  # veins come and go along their length
    t = np.clip(veins * (1.6 * fade - 0.3), 0.0, 1.0) * 0.7 + 0.12 * (turbulence - 0.5)
    return _mix(base, detail, np.clip(t, 0.0, 1.0))


def _wood(base: np.ndarray, detail: RGB, rng: np.random.Generator) -> np.ndarray:
    h, w = base.shape[:2]
    y, _ = _coords(h, w)
    warp = _smooth_noise(rng, h, w, 4, 3)
    rings = 0.5 + 0.5 * np.sin((y * 9.0 + warp * 2.5) * 2 * np.pi)
    streaks = _smooth_noise(rng, h, w, max(8, h // 3), 6)  # fine grain along the planks
    seams = np.zeros((h, 1), dtype=np.float32)
    plank = max(8, h // 4)
    seams[plank - 1 :: plank] = 0.5
    t = np.clip(0.45 * rings**3 + 0.3 * (streaks - 0.5) + seams, 0.0, 1.0)
    return _mix(base, detail, t)


def _linen(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = base.shape[:2]
    weave = 0.5 * (rng.random((h, 1), dtype=np.float32) + rng.random((1, w), dtype=np.float32))
    slubs = _smooth_noise(rng, h, w, max(4, h // 12), 6)
    shade = 1.0 + 0.07 * (weave - 0.5) + 0.04 * (slubs - 0.5)
    return base * shade[..., None]


def _speckled(base: np.ndarray, rng: np.random.Generator, cells: int, amount: float) -> np.ndarray:
    """Concrete, stone and paper: fractal blotches plus fine grain and sparse pits."""
    h, w = base.shape[:2]
    blotches = _fbm(rng, h, w, cells, 4)
    grain = rng.random((h, w), dtype=np.float32)
    pits = (grain > 0.985).astype(np.float32)
    shade = 1.0 + amount * (blotches - 0.5) + 0.3 * amount * (grain - 0.5) - 0.6 * amount * pits
    return base * shade[..., None]


def _stripes(base: np.ndarray, detail: RGB) -> np.ndarray:
    h, w = base.shape[:2]
    y, x = _coords(h, w)
    phase = ((x + y) * 8.0) % 1.0
    t = np.clip((np.abs(phase - 0.5) - 0.25) * min(h, w) / 8.0 + 0.5, 0.0, 1.0)  # 1-px soft edge
    return _mix(base, detail, t)


def _dots(base: np.ndarray, detail: RGB) -> np.ndarray:
    h, w = base.shape[:2]
    spacing = max(8.0, min(h, w) / 10.0)
    yy = np.arange(h, dtype=np.float32)[:, None] + 0.5
    xx = np.arange(w, dtype=np.float32)[None, :] + 0.5
    row = np.floor(yy / spacing)
    dx = (xx + (row % 2) * spacing / 2.0) % spacing - spacing / 2.0
    dy = yy % spacing - spacing / 2.0
    t = np.clip(0.22 * spacing - np.sqrt(dx * dx + dy * dy) + 0.5, 0.0, 1.0)
    return _mix(base, detail, t)


def _bokeh(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Soft discs of light, drawn at quarter resolution (they are blurred anyway) and screened on."""
    h, w = base.shape[:2]
    sh, sw = max(1, h // 4), max(1, w // 4)
    layer = Image.new("L", (sw, sh), 0)
    draw = ImageDraw.Draw(layer)
    for _ in range(18):
        r = float(rng.uniform(0.03, 0.11)) * min(sw, sh)
        cx, cy = float(rng.uniform(0, sw)), float(rng.uniform(0, sh))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=int(rng.integers(70, 200)))
    layer = layer.filter(ImageFilter.GaussianBlur(max(0.6, min(sw, sh) / 120.0)))
    light = np.asarray(layer.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    return _mix(base, (255, 252, 240), 0.6 * light)


def _lighting(arr: np.ndarray, vignette: bool, spotlight: bool) -> np.ndarray:
    h, w = arr.shape[:2]
    ys = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    xs = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    if spotlight:
        r2 = xs**2 + (ys + 0.15) ** 2
        arr = _mix(arr, (255, 255, 255), 0.35 * np.exp(-r2 / 0.35))
        arr = arr * (1.0 - 0.18 * np.clip(r2 / 2.0, 0.0, 1.0))[..., None]
    if vignette:
        arr = arr * (1.0 - 0.4 * np.clip((xs**2 + ys**2) / 2.0, 0.0, 1.0) ** 1.5)[..., None]
    return arr


@functools.lru_cache(maxsize=24)
def _draw_cached(style: BackgroundStyle, size: tuple[int, int], seed: int) -> Image.Image:
    width, height = size
    rng = np.random.default_rng(seed)
    first = style.colors[0]
    detail = style.colors[1] if len(style.colors) > 1 else _contrast_shade(first)
    if style.kind == "gradient":
        arr = _gradient(style.colors, style.direction, height, width)
    else:
        arr = np.empty((height, width, 3), dtype=np.float32)
        arr[...] = first
    texture = style.texture if style.kind == "texture" else None
    if texture == "marble":
        grey_vein = apply_modifiers(_contrast_shade(first, 0.35), ["muted"])
        arr = _marble(arr, detail if len(style.colors) > 1 else grey_vein, rng)
    elif texture == "wood":
        arr = _wood(arr, detail if len(style.colors) > 1 else _contrast_shade(first, 0.18), rng)
    elif texture == "linen":
        arr = _linen(arr, rng)
    elif texture in ("concrete", "stone", "paper"):
        cells, amount = {"concrete": (6, 0.16), "stone": (3, 0.22), "paper": (4, 0.05)}[texture]
        arr = _speckled(arr, rng, cells, amount)
    elif texture == "stripes":
        arr = _stripes(arr, detail)
    elif texture == "dots":
        arr = _dots(arr, detail)
    if style.bokeh:
        arr = _bokeh(arr, rng)
    if style.vignette or style.spotlight:
        arr = _lighting(arr, style.vignette, style.spotlight)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def draw_background(style: BackgroundStyle, size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Draw ``style`` as an RGB image of ``size`` = (width, height); the same seed gives the same pixels.

    Results are cached per (style, size, seed); the caller gets its own copy.
    """
    width, height = int(size[0]), int(size[1])
    if width <= 0 or height <= 0:
        raise InputError(f"background size must be positive, got {width}x{height}")
    return _draw_cached(style, (width, height), int(seed)).copy()
