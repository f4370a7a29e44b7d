"""A content-addressed on-disk feature cache, and cached batch encoding of image files and texts.

An entry's key is ``sha256(encoder.identity + "\\n" + sha256(content))`` where the content is an
image file's bytes or a text's UTF-8 bytes: renaming a file keeps its entry, editing it (or changing
the encoder's weights or preprocessing, which changes ``identity``) makes a new one. Entries are
float32 ``.npy`` files read with ``allow_pickle=False``, written to a temporary file and renamed into
place (so a crash never leaves a half-written entry), under ``root/ab/cd/<key>.npy``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from PIL import Image

from adcraft.errors import InputError

Payload = TypeVar("Payload")


def default_cache_dir() -> Path:
    """Feature cache folder: ``$ADCRAFT_CACHE_DIR`` or ``~/.cache/adcraft``."""
    return Path(os.environ.get("ADCRAFT_CACHE_DIR", Path.home() / ".cache" / "adcraft"))


class _Batched(Protocol):
    batch_size: int


class Encoder(Protocol):
    """What the cache needs of an image or text encoder (``ImageEncoder``, ``TextEncoder``): the
    ``identity`` its keys include, the feature size, the batch size and ``encode``."""

    identity: str
    dim: int

    @property
    def config(self) -> _Batched: ...

    def encode(self, items: Any) -> np.ndarray: ...


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_key(identity: str, content_sha256: str) -> str:
    """Cache key of one content under one encoder."""
    return hashlib.sha256(f"{identity}\n{content_sha256}".encode()).hexdigest()


class FeatureCache:
    """Feature vectors on disk, keyed by :func:`content_key`.

    ``hits`` and ``misses`` count :meth:`get` calls that found, or did not find, a usable entry.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"feature cache root {self.root} exists and is not a directory.")
        self.hits = 0
        self.misses = 0

    def path_for(self, key: str) -> Path:
        """Where the entry for ``key`` lives (whether or not it exists)."""
        return self.root / key[:2] / key[2:4] / f"{key}.npy"

    def get(self, key: str, dim: int) -> np.ndarray | None:
        """The stored ``(dim,)`` float32 vector, or ``None`` when absent or unreadable."""
        try:
            vector = np.load(self.path_for(key), allow_pickle=False)
        except (OSError, ValueError, EOFError):
            # Absent, or damaged by something outside this class: recomputed and overwritten.
            vector = None
        if vector is None or vector.shape != (dim,) or vector.dtype != np.float32:
            self.misses += 1
            return None
        self.hits += 1
        return vector

    def put(self, key: str, vector: np.ndarray) -> None:
        """Store a 1-d vector as float32, atomically."""
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:16]}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.save(stream, np.ascontiguousarray(vector, dtype=np.float32), allow_pickle=False)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise


def encode_image_files(
    encoder: Encoder,
    paths: Sequence[str | os.PathLike[str]],
    cache: FeatureCache | None = None,
    progress: bool = False,
    keys: list[str] | None = None,
) -> np.ndarray:
    """Features of image files, shape ``(len(paths), encoder.dim)``, in the order of ``paths``.

    Only files whose content is not cached are decoded and encoded, ``encoder.config.batch_size``
    at a time; repeated contents are encoded once. ``keys``, when given, receives each row's cache key
    (``content_key``), in order, so that a caller need not read and hash the files again.
    """

    if isinstance(paths, (str, os.PathLike)):
        raise InputError(f"expected a list of image paths, got the single path {paths!s}.")

    def contents() -> Iterator[tuple[str, tuple[Path, bytes]]]:
        for path in map(Path, paths):
            data = _read_file(path)
            yield hashlib.sha256(data).hexdigest(), (path, data)

    def encode(payloads: list[tuple[Path, bytes]]) -> np.ndarray:
        return encoder.encode([_decode_image(path, data) for path, data in payloads])

    return _encode_through_cache(
        contents(),
        len(paths),
        encode,
        encoder,
        cache,
        "encoding images" if progress else None,
        keys,
    )


def encode_texts(
    encoder: Encoder,
    texts: Sequence[str],
    cache: FeatureCache | None = None,
    progress: bool = False,
    keys: list[str] | None = None,
) -> np.ndarray:
    """Features of texts, shape ``(len(texts), encoder.dim)``, in order; only misses are encoded. ``keys`` as
    in :func:`encode_image_files`."""
    if isinstance(texts, str):
        raise InputError("expected a list of texts, got a single string.")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"text {index} is a {type(text).__name__}; expected str.")
    contents = ((hashlib.sha256(text.encode("utf-8")).hexdigest(), text) for text in texts)
    return _encode_through_cache(
        contents,
        len(texts),
        encoder.encode,
        encoder,
        cache,
        "encoding texts" if progress else None,
        keys,
    )


def _encode_through_cache(
    contents: Iterable[tuple[str, Payload]],
    count: int,
    encode: Callable[[list[Payload]], np.ndarray],
    encoder: Encoder,
    cache: FeatureCache | None,
    progress_label: str | None,
    keys: list[str] | None = None,
) -> np.ndarray:
    """Fill rows from the cache, encode misses in batches as they accumulate, copy repeats; each row's
    key is appended to ``keys`` when given."""
    identity, dim, batch_size = encoder.identity, encoder.dim, encoder.config.batch_size
    out = np.empty((count, dim), dtype=np.float32)
    first_row: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []
    pending: list[tuple[int, str, Payload]] = []

    with _progress_bar(count, progress_label) as advance:

        def flush() -> None:
            if not pending:
                return
            vectors = encode([payload for _, _, payload in pending])
            for (row, key, _), vector in zip(pending, vectors, strict=True):
                out[row] = vector
                if cache is not None:
                    cache.put(key, vector)
            advance(len(pending))
            pending.clear()

        for row, (digest, payload) in enumerate(contents):
            key = content_key(identity, digest)
            if keys is not None:
                keys.append(key)
            if key in first_row:
                repeats.append((row, first_row[key]))
                continue
            first_row[key] = row
            vector = cache.get(key, dim) if cache is not None else None
            if vector is not None:
                out[row] = vector
                advance(1)
                continue
            pending.append((row, key, payload))
            if len(pending) >= batch_size:
                flush()
        flush()
        for row, source in repeats:
            out[row] = out[source]
        advance(len(repeats))
    return out


@contextlib.contextmanager
def _progress_bar(total: int, label: str | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar's ``advance``; a no-op when ``label`` is ``None``."""
    if label is None:
        yield lambda _: None
        return
    from rich.progress import Progress

    with Progress() as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.advance(task, done)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"image file not found: {path}") from None
    except OSError as error:
        raise InputError(f"cannot read image file {path}: {error.strerror or error}") from None


def _decode_image(path: Path, data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, Image.DecompressionBombError) as error:
        raise InputError(f"{path} is not a readable image: {error}") from None
    return image
