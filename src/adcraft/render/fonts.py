"""Font lookup by family name, with fallbacks so that rendering never fails for a missing font.

The system font folders (``/usr/share/fonts``, ``/usr/local/share/fonts``, ``~/.fonts``,
``~/.local/share/fonts``) are indexed once per process: every ``.ttf``/``.otf``/``.ttc`` file's
family and style names are read from the font itself. A requested family matches when it equals
the font's family with case, spaces, dashes and underscores ignored ("Open Sans" = "open-sans" =
"OpenSans"); a family followed by a style ("DejaVu Sans Condensed") picks that style of the family.
A value with a path separator or a font file's suffix is a path (:func:`adcraft.market.fonts.is_font_path`):
only an absolute one is opened, never one relative to the working directory; a market's font paths
are resolved inside the market's folder, and refused when they leave it, by
:class:`adcraft.render.from_market.MarketRenderer`.

Generic names map to the first installed of a list of common families: ``serif``; ``sans``,
``sans-serif`` (and ``None``); ``mono``, ``monospace``; ``bold`` is the sans family in bold.
A family that is not installed falls back to DejaVu Sans, and without DejaVu to Pillow's embedded
FreeType font (``ImageFont.load_default(size=...)``), with one logged warning per family.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageFont

from adcraft.market.fonts import FONT_SUFFIXES, is_font_path

logger = logging.getLogger(__name__)

FONT_DIRS: tuple[str, ...] = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.fonts",
    "~/.local/share/fonts",
)
_MAX_FONT_FILES = 5000

_GENERIC: dict[str, tuple[str, ...]] = {
    "sans": ("dejavusans", "liberationsans", "notosans", "freesans", "arial", "helvetica"),
    "serif": ("dejavuserif", "liberationserif", "notoserif", "freeserif", "timesnewroman", "georgia"),
    "mono": ("dejavusansmono", "liberationmono", "notosansmono", "freemono", "couriernew"),
}
_GENERIC_ALIASES = {
    "sans": "sans", "sansserif": "sans", "bold": "sans",
    "serif": "serif",
    "mono": "mono", "monospace": "mono", "monospaced": "mono",
}
_FALLBACK_FAMILY = "dejavusans"
_UPRIGHT_REGULAR = ("regular", "book", "roman", "normal", "")


@dataclass(frozen=True)
class FontFace:
    """One installed font face: its file, normalised family and style names."""

    path: str
    family: str
    style: str


def normalise_family(name: str) -> str:
    """Lower case without spaces, dashes or underscores: the key families are matched on."""
    return re.sub(r"[\s\-_]+", "", name.lower())


def _font_files(dirs: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    for folder in dirs:
        root = Path(os.path.expanduser(folder))
        if not root.is_dir():
            continue
        for dirpath, _, filenames in os.walk(root):
            for filename in sorted(filenames):
                if filename.lower().endswith(FONT_SUFFIXES):
                    found.append(os.path.join(dirpath, filename))
                    if len(found) >= _MAX_FONT_FILES:
                        return found
    return sorted(found)


@functools.cache
def font_index() -> dict[str, tuple[FontFace, ...]]:
    """Installed faces grouped by normalised family; built on first use and kept for the process."""
    index: dict[str, list[FontFace]] = {}
    for path in _font_files(FONT_DIRS):
        try:
            family, style = ImageFont.truetype(path, 12).getname()
        except OSError:  # unreadable or not a font FreeType knows
            continue
        face = FontFace(path, normalise_family(family or Path(path).stem), normalise_family(style or ""))
        index.setdefault(face.family, []).append(face)
    return {family: tuple(faces) for family, faces in index.items()}


def _style_rank(style: str, bold: bool) -> tuple[int, int, int]:
    """Lower is better: the right weight first, then upright, then plain (not condensed/light)."""
    is_bold = "bold" in style or "black" in style or "heavy" in style
    slanted = "italic" in style or "oblique" in style
    plain = style in _UPRIGHT_REGULAR or style == "bold"
    return (int(is_bold != bold), int(slanted), int(not plain))


def find_face(family: str, bold: bool = False) -> FontFace | None:
    """The installed face of ``family`` closest to the requested weight, or None.

    A name that is a family followed by a style ("DejaVu Sans Condensed", "Roboto Light") matches the
    faces of that family whose style contains the rest of the name.
    """
    key = normalise_family(family)
    index = font_index()
    faces = index.get(key)
    if not faces:
        faces = tuple(
            face
            for name, group in index.items()
            if key.startswith(name) and len(key) > len(name)
            for face in group
            if key[len(name) :] in face.style
        )
    if not faces:
        return None
    return min(faces, key=lambda face: (_style_rank(face.style, bold), face.path))


@functools.cache
def _warn_missing(family: str) -> None:
    logger.warning("font %r is not installed or not readable; falling back to DejaVu Sans or Pillow's default",
                   family if len(family) <= 80 else family[:80] + "...")


@functools.lru_cache(maxsize=256)
def resolve_font(family: str | None, size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """A FreeType font of ``family`` at ``size`` px; never fails (see the module docstring for fallbacks).

    ``family`` may be a family name, a generic name, an absolute path to a font file, or None (sans).
    A relative path is not opened (it would depend on the working directory): it falls back as a
    missing font does.
    """
    size = max(1, int(size))
    requested = (family or "sans").strip() or "sans"
    if is_font_path(requested):
        if os.path.isabs(requested) and os.path.isfile(requested):
            try:
                return ImageFont.truetype(requested, size)
            except OSError:
                pass
        _warn_missing(requested)
        return _fallback(bold, size)
    key = normalise_family(requested)
    if key == "bold":
        bold = True
    candidates = _GENERIC[_GENERIC_ALIASES[key]] if key in _GENERIC_ALIASES else (key,)
    for name in candidates:
        face = find_face(name, bold)
        if face is not None:
            return ImageFont.truetype(face.path, size)
    if key not in _GENERIC_ALIASES:
        _warn_missing(requested)
    return _fallback(bold, size)


def _fallback(bold: bool, size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans, or without it Pillow's embedded font."""
    face = find_face(_FALLBACK_FAMILY, bold)
    if face is not None:
        return ImageFont.truetype(face.path, size)
    font = ImageFont.load_default(size=size)
    if not isinstance(font, ImageFont.FreeTypeFont):  # Pillow built without FreeType
        raise RuntimeError("Pillow was built without FreeType support; text cannot be rendered")
    return font
