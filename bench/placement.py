"""Render settings as decisions: what optimize's placement search did on ``bench/worlds.py`` markets, and what the
truth says of the placements it chose.

    python bench/placement.py --out-json DIR --workdir DIR [--results docs/results.md] [--label TEXT]

For every (world, seed) run of ``bench/worlds.py`` in ``--out-json`` (markets and runs in ``--workdir``, run with a
config that switches ``placement`` on), read from the run: whether the demand utility h(v) passed its held-out
check (the note of ``generate.placement``: the gain per impression over the held-out creatives and its standard
error), how many proposals not kept were searched and how many it drew with another placement than the default.
Then, for every moved proposal, the world's truth of the PNG the run wrote against the truth of the same elements
drawn with the default placement: the placement's own effect on the proposal's true CTR, which no number a run
reports contains. Reported per world with 95% t-intervals over markets (the moved proposals' mean change per
market, over the markets that moved any).
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from evidence import ScoredRun
from markdown import markdown_table, write_section
from PIL import Image
from worlds import machine, mean_interval

from adcraft.render.compositor import placements_of

HEADING = "## Render settings as decisions: what the placement search chose (bench/placement.py)"
GAIN = re.compile(r"held-out gain ([+-]?\d+\.\d+) nats per impression, standard error (\d+\.\d+|inf)")


def render_note(notes: list[str]) -> str:
    """The run's note on render settings ("" where it has none: the search was off)."""
    return next((note for note in notes if note.startswith("Render settings:")), "")


def score_market(result: dict, workdir: Path) -> dict:
    """What the search did in one run, and the true CTR change of each moved proposal over its default drawing."""
    run = ScoredRun(result, workdir)
    note = render_note(run.record["notes"])
    found = GAIN.search(note)
    proposals = run.proposals
    kept = proposals["kept"].astype(bool) if "kept" in proposals else pd.Series(False, index=proposals.index)
    placements = placements_of(proposals)
    changes, relative = [], []
    for (_, row), placement, is_kept in zip(proposals.iterrows(), placements, kept):
        if is_kept or placement.is_default:
            continue
        combo = list(row["elements"])
        moved = run.scorer.exact(row["product_id"], combo, Image.open(run.out / row["image"]).convert("RGB"))
        default = run.scorer.exact(row["product_id"], combo)
        changes.append(moved - default)
        relative.append(moved / default - 1.0)
    return {"world": result["world"], "seed": result["seed"], "used": note.startswith(
                "Render settings: the demand utility"),
            "gain": float(found.group(1)) if found else np.nan,
            "standard error": float(found.group(2)) if found else np.nan,
            "searched": int((~kept).sum()), "moved": len(changes),
            "true CTR change": float(np.mean(changes)) if changes else np.nan,
            "relative change": float(np.mean(relative)) if relative else np.nan,
            "share of moved that gained": float(np.mean(np.array(changes) > 0)) if changes else np.nan}


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per world and over all markets: how often h was used, what moved, and the truth's verdict on the moves."""
    out = []
    for world in [*dict.fromkeys(rows["world"]), "all"]:
        part = rows if world == "all" else rows[rows["world"] == world]
        moved = part[part["moved"] > 0]
        out.append({"world": world, "markets": len(part), "h used": int(part["used"].sum()),
                    "held-out gain per impression": mean_interval(part["gain"].tolist(), "+.5f"),
                    "proposals searched": int(part["searched"].sum()), "proposals moved": int(part["moved"].sum()),
                    "markets that moved any": len(moved),
                    "true CTR change of a moved proposal": mean_interval(moved["true CTR change"].tolist(), "+.4f"),
                    "relative change": mean_interval(moved["relative change"].tolist(), "+.3f"),
                    "share of moved that gained": mean_interval(moved["share of moved that gained"].tolist(), ".2f")})
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-json", type=Path, required=True, help="bench/worlds.py's --out-json (placement on)")
    parser.add_argument("--workdir", type=Path, required=True, help="bench/worlds.py's --workdir")
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--heading", default=HEADING, help="the section's heading (one per config measured)")
    parser.add_argument("--label", default="", help="what made the runs (code, config, seeds), for the text")
    args = parser.parse_args()
    results = [json.loads(p.read_text()) for p in sorted(args.out_json.glob("*.json"))]
    rows = pd.DataFrame([score_market(result, args.workdir) for result in results])
    seeds = sorted(set(rows["seed"]))
    text = "\n\n".join([
        args.heading,
        f"{len(rows)} markets of `bench/worlds.py` (seeds {', '.join(map(str, seeds))}; {args.label}). *h used*: "
        "markets where the demand utility of the logged images passed its held-out check (fitted on the earlier "
        "80% of the log, the gain in log-likelihood per impression over each product's own CTR on the later 20%, "
        "averaged over held-out creatives; the mean over markets of that gain in the next column). *True CTR "
        "change of a moved proposal*: the world's truth of the PNG the run wrote minus the truth of the same "
        "elements drawn with the default placement, averaged over a market's moved proposals, then over the "
        "markets that moved any [95% t-interval]; *relative change* the same of the ratio minus 1. Run on "
        f"{machine()}, written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        markdown_table(table(rows), 4),
    ])
    print(text)
    if args.results is not None:
        write_section(args.results, args.heading, text)


if __name__ == "__main__":
    main()
