"""A trained model's metrics.json is strict JSON, even when a metric is undefined."""

from __future__ import annotations

import json
import math

from adcraft.learning import metrics
from adcraft.pipeline import train_reward_model


def test_an_undefined_metric_is_written_as_null_and_named(tiny_market_dir, tmp_path, monkeypatch):
    computed = metrics.click_metrics

    def without_gauc(*args, **kwargs):  # as when no product holds both clicks and non-clicks
        return {**computed(*args, **kwargs), "gauc": math.nan}

    monkeypatch.setattr(metrics, "click_metrics", without_gauc)
    quick = tmp_path / "ctr.yaml"
    quick.write_text("encoding: {text_backbone: tiny, embedding_dim: 8}\ntrain: {epochs: 1}\n")
    train_reward_model("ctr", tiny_market_dir, tmp_path / "model", quick)

    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")

    written = json.loads((tmp_path / "model" / "metrics.json").read_text(), parse_constant=refuse)
    assert written["validation"]["gauc"] is None and written["validation"]["auc"] > 0
    assert written["not_finite"] == {"validation.gauc": "NaN"}
