"""Batch scoring: the predicted CTR of every past creative of a market, on either backend.

Each worker loads the reward model and the market once; a chunk of creative ids is scored by the
model's own ``score_market`` on the market restricted to those creatives, so a chunk's scores are what
``score_market`` gives for that chunk. ``OUT/scores.parquet`` is written by ``write_scores`` in the
market's creative order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from adcraft.atomic import check_output_folder
from adcraft.batch.backend import run_batch
from adcraft.batch.chunks import BatchConfig, ChunkFunction
from adcraft.errors import InputError


@dataclass(frozen=True)
class ScoreJob:
    """Score creatives (items: ``creative_id``) with the model in ``model_dir`` on the market in ``market_dir``."""

    model_dir: str
    market_dir: str

    def load(self) -> ChunkFunction:
        from adcraft.market import load_market
        from adcraft.rewards import registry

        model = registry.load(Path(self.model_dir), "scores_combinations")
        market = load_market(self.market_dir)
        creatives = market.creatives
        position = {creative_id: row for row, creative_id in enumerate(creatives["creative_id"])}

        def score(items: pa.Table) -> pa.Table:
            rows = [position[creative_id] for creative_id in items.column("creative_id").to_pylist()]
            part = dataclasses.replace(market, creatives=creatives.iloc[rows].reset_index(drop=True))
            scores = model.score_market(part)
            return pa.table({
                "creative_id": pa.array(scores["creative_id"].tolist(), pa.string()),
                "predicted_ctr": pa.array(scores["predicted_ctr"].to_numpy(), pa.float64()),
            })

        return score


def score_market_batch(model_dir: Path, market_dir: Path, out: Path, config: BatchConfig | None = None) -> Path:
    """Write ``OUT/scores.parquet`` (``creative_id``, ``predicted_ctr``) for every past creative of the market.

    The model's kind is checked (it must score combinations: ``rewards.registry``) and the market loaded
    here before any worker starts, so bad input is refused with nothing written.
    """
    from adcraft.market import load_market, write_scores
    from adcraft.rewards import registry

    config = config or BatchConfig()
    check_output_folder(Path(out), "score", inputs=[Path(market_dir), Path(model_dir)], replaces=False)
    registry.check(Path(model_dir), "scores_combinations")
    market = load_market(market_dir)
    if market.creatives is None or market.creatives.empty:
        raise InputError(f"the market at {market_dir} has no past creatives to score")
    items = pa.table({"creative_id": pa.array(market.creatives["creative_id"].tolist(), pa.string())})
    job = ScoreJob(str(Path(model_dir).resolve()), str(Path(market_dir).resolve()))
    scores = run_batch(job, items, config).to_pandas()
    if scores["creative_id"].tolist() != items.column("creative_id").to_pylist():
        raise RuntimeError("scores came back for other creatives than were sent")
    write_scores(out, scores)
    return Path(out) / "scores.parquet"
