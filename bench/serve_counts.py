"""What a ``/v1/serve`` choice reads as the served log grows: the counts kept beside the log against counting it.

    python bench/serve_counts.py [--rows 1000 10000 100000 1000000] [--arms 4] [--repeats 200] [--seed 10357]
                                 [--workdir DIR] [--results docs/results.md]

Before each choice the serving policy needs each arm's served impressions and clicks. For each log length N
this writes an SQLite database (the server's default) whose served log holds N impressions of one product,
spread over ``--arms`` combinations with clicks drawn at 4 %, in one run, plus as many impressions of another
product; builds ``served_counts`` from it (``rebuild_counts``, as a database from before the table gets it); then
reads the product's counts ``--repeats`` times each way, alternating:

- kept: ``arm_counts``, the rows of ``served_counts`` (what ``/v1/serve`` reads);
- counted: the log's rows of the run and product grouped by combination, through the log's index on
  (run, product, creative) (what ``/v1/serve`` read before the table).

Both must give the same counts (checked on every read). Reported per N: the median and 99th percentile of
the time per read in ms, each way, and the ratio of the medians, all measured in one run on one machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from worlds import machine

from adcraft.serve.impression_log import arm_counts, log_counts_query, rebuild_counts, served_table

from markdown import markdown_table, write_section

SECTION = "## Serving: arm counts kept beside the log, against counting the log (bench/serve_counts.py)"
RUN_ID = "bench-run"
PRODUCTS = ("product-a", "product-b")
CHUNK = 50_000  # rows per insert


def fill(engine: sa.Engine, rows: int, arms: int, rng: np.random.Generator) -> None:
    """``rows`` served impressions of each of ``PRODUCTS`` over ``arms`` combinations, then the counts."""
    served_table.metadata.create_all(engine)  # the log and its counts
    combos = [[f"title-{a}", f"background-{a}", "layout-0"] for a in range(arms)]
    now = datetime.now(UTC)
    with engine.begin() as connection:
        for product in PRODUCTS:
            for start in range(0, rows, CHUNK):
                size = min(CHUNK, rows - start)
                arm = rng.integers(0, arms, size)
                click = (rng.random(size) < 0.04).astype(int)
                connection.execute(sa.insert(served_table), [{
                    "impression_id": f"{product}-{start + i}", "run_id": RUN_ID, "product_id": product,
                    "creative_id": f"c{arm[i]}", "source": "approved", "elements": combos[arm[i]], "image": None,
                    "propensity": 1.0 / arms, "arms": arms, "policy": "bench", "context": None, "ts": 0,
                    "served_at": now, "click": int(click[i]), "clicked_at": None,
                } for i in range(size)])
    rebuild_counts(engine)


def counted(engine: sa.Engine, product_id: str) -> dict[tuple[str, ...], tuple[int, int]]:
    """The product's counts in the run, counted from the log itself (``log_counts_query``)."""
    query = log_counts_query(served_table.c.run_id == RUN_ID, served_table.c.product_id == product_id)
    with engine.connect() as connection:
        return {tuple(json.loads(text)): (int(n), int(c or 0)) for _, _, text, n, c in connection.execute(query)}


def measure(rows: int, arms: int, repeats: int, seed: int, workdir: Path) -> dict:
    path = workdir / f"counts-{rows}.sqlite"
    path.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        clock = time.perf_counter()
        fill(engine, rows, arms, np.random.default_rng(seed))
        fill_seconds = time.perf_counter() - clock
        times: dict[str, list[float]] = {"kept": [], "counted": []}
        kept: dict[tuple[str, ...], tuple[int, int]] = {}
        for _ in range(repeats):
            clock = time.perf_counter()
            kept = arm_counts(engine, PRODUCTS[0], RUN_ID)
            times["kept"].append(1000 * (time.perf_counter() - clock))
            clock = time.perf_counter()
            from_log = counted(engine, PRODUCTS[0])
            times["counted"].append(1000 * (time.perf_counter() - clock))
            if from_log != kept:
                raise AssertionError(f"the kept counts differ from the log's at {rows} rows: {kept} != {from_log}")
        if sum(n for n, _ in kept.values()) != rows:
            raise AssertionError(f"the counts hold {sum(n for n, _ in kept.values())} impressions, not {rows}")
    finally:
        engine.dispose()
        path.unlink(missing_ok=True)
    kept_ms, counted_ms = np.array(times["kept"]), np.array(times["counted"])
    return {"log rows per product": rows, "arms": arms, "reads": repeats,
            "kept median ms": float(np.median(kept_ms)), "kept p99 ms": float(np.percentile(kept_ms, 99)),
            "counted median ms": float(np.median(counted_ms)),
            "counted p99 ms": float(np.percentile(counted_ms, 99)),
            "counted / kept (medians)": float(np.median(counted_ms) / np.median(kept_ms)),
            "seconds to write the log": fill_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--arms", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--seed", type=int, default=10357)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "adcraft-bench" / "counts")
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "results.md")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([measure(rows, args.arms, args.repeats, args.seed, args.workdir) for rows in args.rows])
    print(table.to_string(index=False))
    text = "\n\n".join([
        SECTION,
        f"One product's served log of N impressions over {args.arms} combinations in one run (and as many of another "
        f"product), SQLite on local disk; {args.repeats} reads of the product's arm counts each way, alternating; "
        f"seed {args.seed}. Run {datetime.now(UTC):%Y-%m-%d %H:%M UTC} on {machine()}. Kept: `arm_counts` "
        "(the `served_counts` rows, what `/v1/serve` reads); counted: the log's rows of the run and product "
        "grouped by combination (what it read before). Both gave the same counts on every read.",
        markdown_table(table, digits=3),
    ])
    write_section(args.results, SECTION, text)
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
