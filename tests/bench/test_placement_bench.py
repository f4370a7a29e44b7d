"""``bench/placement.py`` reads what the placement search did from the run's note: the note's format and the
bench's reading of it must agree."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import placement  # noqa: E402

from adcraft.generate.placement import HeldOutCheck, PlacementChoice  # noqa: E402
from adcraft.render.compositor import Placement  # noqa: E402


def test_the_bench_reads_the_gain_and_its_error_from_either_kind_of_note():
    check = HeldOutCheck(gain=-0.00123, standard_error=0.00045, impressions=4000, creatives=200)
    summary = check.summary()
    unused = PlacementChoice((Placement(),), False, f"h did not predict the later clicks ({summary}).", check)
    used = PlacementChoice((Placement(0.7),), True, summary, check, moved=1, searched=1)
    for choice in (unused, used):
        note = placement.render_note(["another note", choice.note()])
        assert note == choice.note()
        found = placement.GAIN.search(note)
        assert (float(found.group(1)), float(found.group(2))) == (-0.00123, 0.00045)
    assert placement.render_note(["nothing about placements"]) == ""
    assert used.note().startswith("Render settings: the demand utility")
