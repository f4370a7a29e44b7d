"""A font element's value: a family name, or a font file shipped inside the market folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from adcraft.market import MarketValidationError, load_market, validate_market
from adcraft.market.fonts import is_font_path
from tests.market.market_drafts import MarketDraft

FONT_ROW = 10  # the draft's only font element, f1
FONT_BYTES = b"\x00\x01\x00\x00 not parsed by validation"


@pytest.mark.parametrize(("value", "path"), [
    ("DejaVu Sans", False), ("open-sans", False), ("Roboto Light", False),
    ("fonts/brand.ttf", True), ("brand.OTF", True), ("brand.ttc", True), ("fonts\\brand", True), ("/tmp/x", True),
])
def test_paths_are_told_from_family_names(value: str, path: bool) -> None:
    assert is_font_path(value) is path


def _font_problems(draft: MarketDraft, value: str) -> list[str]:
    draft.set("elements", "value", FONT_ROW, value)
    return [str(problem) for problem in validate_market(draft.write(), check_images=False)]


def test_family_names_and_fonts_shipped_in_the_market_are_valid(make_draft: Callable[..., MarketDraft]) -> None:
    draft = make_draft()
    draft.file("fonts/brand.ttf", FONT_BYTES)
    assert _font_problems(draft, "DejaVu Sans") == []
    assert _font_problems(draft, "fonts/brand.ttf") == []


@pytest.mark.parametrize(("kind", "rule"), [
    ("absolute", "path is absolute"), ("parent", "path contains '..'"), ("symlink", "symbolic link leads outside"),
    ("missing", "no such font file"), ("backslash", "backslash"),
])
def test_font_paths_that_leave_the_market_or_miss_are_refused(make_draft: Callable[..., MarketDraft], tmp_path: Path,
                                                              kind: str, rule: str) -> None:
    draft = make_draft()
    outside = tmp_path / "outside.ttf"
    outside.write_bytes(FONT_BYTES)
    if kind == "symlink":
        (draft.root / "fonts").mkdir()
        (draft.root / "fonts" / "link.ttf").symlink_to(outside)
    value = {"absolute": str(outside), "parent": "../outside.ttf", "symlink": "fonts/link.ttf",
             "missing": "fonts/none.ttf", "backslash": "fonts\\brand.ttf"}[kind]
    problems = _font_problems(draft, value)
    assert len(problems) == 1
    assert problems[0].startswith(f"elements.parquet row {FONT_ROW}: column value: font ") and rule in problems[0]
    with pytest.raises(MarketValidationError, match=rule):
        load_market(draft.root)


def test_a_huge_font_path_is_refused_in_a_short_message(make_draft: Callable[..., MarketDraft]) -> None:
    problems = _font_problems(make_draft(), "fonts/" + "a" * 100_000 + ".ttf")
    # the text-length limit refuses it too; every message stays short, and one names the font
    assert problems and all(len(problem) < 300 for problem in problems)
    assert any("font 'fonts/aaa" in problem for problem in problems)
