"""Elements from outside a market's own table: those another run made (``OUT/elements.parquet``, written by
``write_proposals``; e.g. new background prompts) that a later run may combine beside the market's.

``read_extra_elements`` reads and checks such a table against the market it is meant for;
``with_extra_elements`` is that market with them appended to its elements.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from adcraft.errors import InputError
from adcraft.market.coerce import typed_frame
from adcraft.market.market import Market
from adcraft.market.schema import ELEMENTS
from adcraft.market.validate import element_rules


def read_extra_elements(path: Path, market: Market) -> pd.DataFrame:
    """Elements made by another run (``elements.parquet``, or a folder holding one), checked against ``market``.

    Raises ``InputError`` naming the file when it is missing or unreadable, breaks the elements table's
    rules (an element of a slot the market does not use, or without the field its slot reads), reuses one of
    the market's element ids, or names a product the market does not have.
    """
    path = Path(path)
    file = path / "elements.parquet" if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"{file}: no such elements table")
    try:
        frame = pd.read_parquet(file)
    except (OSError, ValueError) as exc:
        raise InputError(f"{file}: not a readable Parquet table ({exc})") from exc
    typed = typed_frame(ELEMENTS, frame, file.name)
    problems = [str(p) for p in typed.problems]
    frame = typed.frame
    clash = sorted(set(frame.get("element_id", [])) & set(market.elements["element_id"]))
    if clash:
        problems.append(f"{file.name}: element ids already in the market: {clash[:5]}")
    problems += [str(p) for p in element_rules(typed, market.config.slots)]  # slots, and the field each reads
    owners = sorted(set(frame.get("product_id", pd.Series(dtype=object)).dropna()) - set(market.products["product_id"]))
    if owners:
        problems.append(f"{file.name}: products the market does not have: {owners[:5]}")
    if problems:
        raise InputError("; ".join(problems))
    return frame.reset_index(drop=True)


def with_extra_elements(market: Market, extra: pd.DataFrame | None) -> Market:
    """``market`` with the rows of ``extra`` (checked by ``read_extra_elements``) after its own elements;
    ``market`` itself when there are none."""
    if extra is None or not len(extra):
        return market
    return dataclasses.replace(market, elements=pd.concat([market.elements, extra], ignore_index=True))
