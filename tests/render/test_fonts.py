from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import ImageFont

from adcraft.render import fonts
from adcraft.render.fonts import find_face, normalise_family, resolve_font

needs_dejavu = pytest.mark.skipif(find_face("DejaVu Sans") is None, reason="DejaVu fonts are not installed")


@pytest.fixture(autouse=True)
def fresh_font_cache() -> Iterator[None]:
    resolve_font.cache_clear()
    fonts._warn_missing.cache_clear()
    yield
    resolve_font.cache_clear()


def test_family_names_are_matched_ignoring_case_spaces_and_dashes() -> None:
    assert normalise_family("Open Sans") == normalise_family("open-sans") == normalise_family("OPEN_SANS")


@needs_dejavu
@pytest.mark.parametrize("family", ["DejaVu Sans", "dejavu-sans", "DEJAVUSANS"])
def test_installed_family_is_found(family: str) -> None:
    font = resolve_font(family, 20)
    assert font.getname() == ("DejaVu Sans", "Book")
    assert font.size == 20


@needs_dejavu
def test_bold_picks_the_bold_face() -> None:
    assert resolve_font("DejaVu Sans", 20, bold=True).getname() == ("DejaVu Sans", "Bold")
    assert resolve_font("bold", 20).getname() == ("DejaVu Sans", "Bold")


@needs_dejavu
@pytest.mark.parametrize(("generic", "family"), [
    ("serif", "DejaVu Serif"), ("sans-serif", "DejaVu Sans"), ("sans", "DejaVu Sans"),
    ("monospace", "DejaVu Sans Mono"), ("mono", "DejaVu Sans Mono"), (None, "DejaVu Sans"),
])
def test_generic_names_map_to_installed_families(generic: str | None, family: str) -> None:
    assert resolve_font(generic, 16).getname()[0] == family


def test_missing_family_falls_back_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="adcraft.render.fonts"):
        font = resolve_font("No Such Typeface 3000", 18)
    assert isinstance(font, ImageFont.FreeTypeFont)
    assert font.getbbox("Sale")[2] > 0
    assert "No Such Typeface 3000" in caplog.text


def test_without_any_system_font_pillows_embedded_font_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fonts, "font_index", lambda: {})
    font = resolve_font("Helvetica", 22, bold=True)
    assert isinstance(font, ImageFont.FreeTypeFont)
    assert font.size == 22
    assert font.getlength("Sale") > 0


def test_font_file_path_is_used_directly() -> None:
    face = find_face("DejaVu Serif")
    if face is None:
        pytest.skip("DejaVu fonts are not installed")
    assert resolve_font(face.path, 12).getname()[0] == "DejaVu Serif"


def test_family_with_style_name_picks_that_style() -> None:
    from adcraft.render.fonts import find_face, font_index

    if "dejavusans" not in font_index():
        pytest.skip("DejaVu fonts are not installed")
    condensed = find_face("DejaVu Sans Condensed")
    regular = find_face("DejaVu Sans")
    if condensed is None:
        pytest.skip("DejaVu Sans Condensed is not installed")
    assert "condensed" in condensed.style and "condensed" not in regular.style
    assert find_face("DejaVu Sans Sparkly") is None


def test_relative_font_path_is_never_read_from_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    face = find_face("DejaVu Serif")
    if face is None:
        pytest.skip("DejaVu fonts are not installed")
    (tmp_path / "fonts").mkdir()
    (tmp_path / "fonts" / "cwd-serif.ttf").write_bytes(Path(face.path).read_bytes())
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="adcraft.render.fonts"):
        font = resolve_font("fonts/cwd-serif.ttf", 12)
    assert font.getname()[0] != "DejaVu Serif"
    assert "cwd-serif.ttf" in caplog.text
    assert resolve_font(str(tmp_path / "fonts" / "cwd-serif.ttf"), 12).getname()[0] == "DejaVu Serif"
