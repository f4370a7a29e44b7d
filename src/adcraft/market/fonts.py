"""Font files a market ships: a ``font`` element's value is a family name or a path to a font file.

A value with a path separator (``/`` or ``\\``) or a font file's suffix (``.ttf``, ``.otf``,
``.ttc``) is a path, and like every path in a market's tables it is relative to the market folder
and must stay inside it: no absolute path, no ``..``, no symbolic link leading out
(:func:`adcraft.market.images.resolve_inside`), and the file must be there. Anything else is a
family name, looked up among the installed fonts when rendering. Checking this when the market is
validated refuses a market that would read a font from elsewhere before any work starts; the
renderer checks it again (:class:`adcraft.render.from_market.MarketRenderer`) for markets built in
memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from adcraft.errors import InputError
from adcraft.market.coerce import TypedTable
from adcraft.market.images import resolve_inside
from adcraft.market.problems import Problem, examples

FONT_SUFFIXES: tuple[str, ...] = (".ttf", ".otf", ".ttc")
FONT_SLOT = "font"


def is_font_path(value: str) -> bool:
    """Whether a ``font`` element's value names a font file rather than a family."""
    return "/" in value or "\\" in value or value.lower().endswith(FONT_SUFFIXES)


def font_file(root: Path | None, value: str) -> Path:
    """The real location of the font file ``value`` of the market at ``root``.

    Raises ``InputError`` (quoting ``value`` cut short: a cell may hold megabytes) for an absolute
    path, a path with ``..``, a symbolic link leading out of the folder, or no such file.
    """
    shown = examples([value])
    if root is None:
        raise InputError(f"font {shown}: the market has no folder to read font files from")
    try:
        path = resolve_inside(root, value)
    except InputError as error:
        raise InputError(f"font {shown}: {str(error).removeprefix(repr(value) + ': ')}") from None
    try:
        found = path.is_file()
    except OSError as error:  # a name too long, a permission denied on a folder, ...
        raise InputError(f"font {shown}: cannot be read ({error.strerror})") from None
    if not found:
        raise InputError(f"font {shown}: no such font file in the market folder")
    return path


def font_path_problems(elements: TypedTable | None, root: Path | None) -> list[Problem]:
    """Every ``font`` element whose value is a font file's path that is unsafe or missing (each
    distinct path checked once)."""
    if elements is None or not elements.usable("slot", "value"):
        return []
    slots = elements.frame["slot"].to_numpy(dtype=object)
    values = elements.frame["value"].to_numpy(dtype=object)
    rows_of: dict[str, list[int]] = {}
    for row in np.flatnonzero(slots == FONT_SLOT):
        value = values[row]
        if isinstance(value, str) and value and is_font_path(value):
            rows_of.setdefault(value, []).append(int(row))
    problems = []
    for value, rows in rows_of.items():
        try:
            font_file(root, value)
        except InputError as error:
            problems.append(Problem.at_rows(elements.file, rows, "value", str(error)))
    return problems
