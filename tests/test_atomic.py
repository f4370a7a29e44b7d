"""Output folders: adcraft replaces only what it wrote, and never an input (a market) or what holds one."""

from __future__ import annotations

from pathlib import Path

import pytest

from adcraft.atomic import check_output_folder, mark_output, written_by
from adcraft.errors import InputError


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def market(tmp_path) -> Path:
    folder = tmp_path / "shop" / "market"
    folder.mkdir(parents=True)
    (folder / "market.json").write_text("{}")
    return folder


def test_a_new_or_empty_folder_or_an_earlier_output_is_accepted(tmp_path, market):
    assert check_output_folder(tmp_path / "new", "optimize", inputs=[market]) == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty", "optimize", inputs=[market])
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "creatives.parquet").write_bytes(b"x")
    mark_output(earlier, "optimize")
    assert written_by(earlier, "optimize") and not written_by(earlier, "render")
    check_output_folder(earlier, "optimize", inputs=[market])


@pytest.mark.parametrize("where", ["market", "parent", "grandparent", "inside", "unrelated", "other-command", "file"])
def test_a_folder_adcraft_did_not_write_is_refused(tmp_path, market, where):
    unrelated = tmp_path / "photos"
    unrelated.mkdir()
    (unrelated / "holiday.jpg").write_bytes(b"\xff\xd8 not really")
    other = tmp_path / "rendered"
    other.mkdir()
    (other / "a.png").write_bytes(b"png")
    mark_output(other, "render")
    (tmp_path / "notes.txt").write_text("keep me")
    out = {"market": market, "parent": market.parent, "grandparent": tmp_path, "inside": market / "out",
           "unrelated": unrelated, "other-command": other, "file": tmp_path / "notes.txt"}[where]
    before = tree(tmp_path)
    with pytest.raises(InputError, match="--out") as refused:
        check_output_folder(out, "optimize", inputs=[market])
    assert "\n" not in str(refused.value)
    assert tree(tmp_path) == before


def test_a_scratch_folder_that_is_or_holds_the_input_is_refused(tmp_path):
    market = tmp_path / ".out.partial" / "market"
    market.mkdir(parents=True)
    with pytest.raises(InputError, match="scratch folder"):
        check_output_folder(tmp_path / "out", "optimize", inputs=[market], scratch=[tmp_path / ".out.partial"])


def test_a_command_that_only_adds_files_may_use_a_non_empty_folder_but_not_the_input(tmp_path, market):
    unrelated = tmp_path / "reports"
    unrelated.mkdir()
    (unrelated / "q1.pdf").write_bytes(b"pdf")
    check_output_folder(unrelated, "score", inputs=[market], replaces=False)
    check_output_folder(market.parent, "score", inputs=[market], replaces=False)  # adds scores.parquet beside it
    with pytest.raises(InputError, match="is or contains the input folder"):
        check_output_folder(market, "score", inputs=[market], replaces=False)
    with pytest.raises(InputError, match="inside the input folder"):
        check_output_folder(market / "scores", "score", inputs=[market], replaces=False)
