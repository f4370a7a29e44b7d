"""Fixtures of the market tests: a factory of tiny market drafts in fresh folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.market.market_drafts import MarketDraft


@pytest.fixture
def make_draft(tmp_path: Path) -> Callable[..., MarketDraft]:
    """Factory of market drafts in fresh folders under ``tmp_path``."""
    count = 0

    def make(**options: object) -> MarketDraft:
        nonlocal count
        count += 1
        return MarketDraft(root=tmp_path / f"market{count}", **options)

    return make
