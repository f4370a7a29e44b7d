"""Safe access to the image files a market's tables point to.

Paths in tables are untrusted: they must be relative, must not climb out with ``..`` and must
not reach outside the market through a symbolic link. Image files are untrusted too: only PNG,
JPEG and WebP are decoded, the pixel count is read from the header and checked against the
limit *before* any pixel is decoded (decompression bombs), and the whole file is decoded so
that a truncated file is caught here rather than half-way through a run.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from PIL import Image, UnidentifiedImageError

from adcraft.errors import InputError
from adcraft.market.limits import MAX_IMAGE_BYTES

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP")
"""Pillow format names of the image files a market may hold."""


@dataclass(frozen=True)
class ImageLimits:
    """Limits on the image files a market may hold.

    ``max_pixels`` (width x height) guards against decompression bombs; Pillow's own bomb check
    (twice ``PIL.Image.MAX_IMAGE_PIXELS``) still applies above it.
    """

    max_pixels: int = 40_000_000

    def __post_init__(self) -> None:
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")


def unsafe_path_reason(relpath: object) -> str | None:
    """Why ``relpath`` may not name a file inside a market, or None if its spelling is fine."""
    if not isinstance(relpath, str) or not relpath:
        return "path is empty"
    if "\x00" in relpath:
        return "path contains a NUL character"
    if "\\" in relpath:
        return "path contains a backslash; use '/' between folders"
    if PurePosixPath(relpath).is_absolute() or PureWindowsPath(relpath).drive:
        return "path is absolute; paths must be relative to the market folder"
    if ".." in PurePosixPath(relpath).parts:
        return "path contains '..'; paths must stay inside the market folder"
    return None


def resolve_inside(root: Path, relpath: str) -> Path:
    """The real location of ``relpath`` under ``root``; refuses paths and links that leave ``root``.

    Raises ``InputError`` for an absolute path, a path with ``..`` or a symbolic link that
    resolves outside ``root``. The file need not exist.
    """
    reason = unsafe_path_reason(relpath)
    if reason is not None:
        raise InputError(f"{relpath!r}: {reason}")
    real_root = Path(root).resolve()
    try:
        real = (real_root / relpath).resolve()
    except (OSError, RuntimeError) as error:  # RuntimeError: a loop of symbolic links
        raise InputError(f"{relpath!r}: path cannot be followed ({error})") from None
    if not real.is_relative_to(real_root):
        raise InputError(f"{relpath!r}: a symbolic link leads outside the market folder ({real})")
    return real


def open_image(path: Path, limits: ImageLimits = ImageLimits()) -> Image.Image:
    """Open an image file, fully decoded and detached from the file.

    Raises ``InputError`` when the file is missing, is not a PNG/JPEG/WebP image, has more than
    ``limits.max_pixels`` pixels (checked from the header, before decoding) or is truncated or
    corrupt.
    """
    path = Path(path)
    kind = _file_kind(path)
    if kind is not None:
        raise InputError(f"{path}: {kind}")
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise InputError(f"{path}: the file is {size:,} bytes, over the limit of "
                             f"{MAX_IMAGE_BYTES:,} bytes for an image")
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"{path}: image file is truncated or corrupt ({error})") from None
    return decode_image(data, limits, str(path))


def decode_image(data: bytes, limits: ImageLimits = ImageLimits(), name: str = "image") -> Image.Image:
    """Decode the bytes of a PNG, JPEG or WebP image file, fully; errors are ``InputError`` starting with
    ``name``: not such an image, more than ``limits.max_pixels`` pixels (read from the header, before any
    pixel is decoded), or truncated or corrupt."""
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as header:
            width, height = header.size
        if width * height > limits.max_pixels:
            raise InputError(
                f"{name}: image is {width}x{height} = {width * height:,} pixels, over the limit "
                f"of {limits.max_pixels:,} pixels")
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as probe:
            probe.verify()
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        image.load()
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"{name}: {_unaccepted_kind(data)}") from None
    except Image.DecompressionBombError as error:
        raise InputError(f"{name}: image is over the pixel limit ({error})") from None
    # A corrupt file can make a decoder raise almost anything (OSError, SyntaxError, struct.error,
    # zlib.error, ...); all of them mean the same to the user.
    except Exception as error:
        raise InputError(f"{name}: image file is truncated or corrupt ({error})") from None
    return image


def _file_kind(path: Path) -> str | None:
    """Why ``path`` is not a regular file that can be opened, or None if it is one."""
    try:
        if path.is_file():
            return None
        return "is not a file" if path.exists() else "image file does not exist"
    except OSError as error:  # a name too long, a permission denied on a folder, ...
        return f"cannot be read ({error.strerror or error})"


def _unaccepted_kind(data: bytes) -> str:
    """Say what a file that is not PNG/JPEG/WebP is, reading its header only."""
    try:
        with Image.open(io.BytesIO(data)) as other:
            kind = other.format
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        kind = None
    if kind:
        return f"is a {kind} image; only PNG, JPEG and WebP are accepted"
    return "is not an image file (PNG, JPEG or WebP expected)"


def shows_nothing(image: Image.Image) -> str | None:
    """Why a product photo shows no product, or None: every pixel is fully transparent, or the photo
    is one plain colour (the renderer's cut-out removes a plain background, whatever its tolerance,
    and would leave nothing to place on a creative)."""
    if "A" in image.getbands() or "transparency" in image.info:
        alpha = image.convert("RGBA").getchannel("A")
        if alpha.getbbox() is None:
            return "every pixel is fully transparent"
        if alpha.getextrema()[0] < 255:
            return None  # a cut-out with something visible
    if all(low == high for low, high in _extrema(image)):
        return "it is one plain colour"
    return None


def _extrema(image: Image.Image) -> list[tuple[float, float]]:
    extrema = image.getextrema()
    return list(extrema) if isinstance(extrema[0], tuple) else [extrema]


def image_problem(root: Path, relpath: str, limits: ImageLimits = ImageLimits(),
                  decode: bool = True, product: bool = False) -> str | None:
    """What is wrong with the image at ``relpath`` inside ``root``, or None if nothing is.

    With ``decode=False`` only the path and the file's existence are checked. A ``product`` photo
    must also show something (``shows_nothing``).
    """
    try:
        path = resolve_inside(root, relpath)
    except InputError as error:
        return str(error).removeprefix(f"{relpath!r}: ")
    kind = _file_kind(path)
    if kind is not None:
        return kind
    if not decode:
        return None
    try:
        with open_image(path, limits) as image:
            nothing = shows_nothing(image) if product else None
            if nothing is not None:
                return (f"the product photo shows nothing: {nothing} (give a cut-out with the "
                        "product visible, or a photo of the product on a plain background)")
    except InputError as error:
        return str(error).removeprefix(f"{path}: ")
    return None


def image_problems(root: Path, relpaths: Iterable[str], limits: ImageLimits = ImageLimits(),
                   decode: bool = True, workers: int | None = None,
                   products: frozenset[str] = frozenset()) -> dict[str, str]:
    """``image_problem`` for many paths at once, each checked once; returns only the bad ones.
    Paths in ``products`` are product photos.

    Decoding runs in a small thread pool: Pillow's decoders release the GIL, and the pool stays
    small so that a few large images do not exhaust memory.
    """
    unique = sorted(set(relpaths))
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    if not decode or workers <= 1 or len(unique) < 2:
        found = [image_problem(root, relpath, limits, decode, relpath in products)
                 for relpath in unique]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            found = list(pool.map(lambda relpath: image_problem(root, relpath, limits, decode,
                                                                relpath in products), unique))
    return {relpath: reason for relpath, reason in zip(unique, found) if reason is not None}
