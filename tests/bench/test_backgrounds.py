"""``bench/backgrounds.py`` on a world other than legacy: one market per (market seed, training seed) pair,
the semantic section and its paired PCPO - DPO statistics."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import backgrounds  # noqa: E402
import intervals  # noqa: E402

from adcraft.generate.backgrounds import BackgroundsConfig  # noqa: E402
from adcraft.generate.prompt import PromptModelConfig  # noqa: E402
from adcraft.learning.training import TrainConfig  # noqa: E402
from adcraft.market.click_log import SplitConfig  # noqa: E402
from adcraft.rewards.encoding import EncodingConfig  # noqa: E402
from adcraft.rewards.pairwise import PairConfig, PairwiseConfig  # noqa: E402

TINY = BackgroundsConfig(
    prompt=PromptModelConfig(text_backbone="tiny", image_backbone="tiny", epochs=3),
    reward=PairwiseConfig(encoding=EncodingConfig(text_backbone="tiny", image_backbone="tiny", embedding_dim=8),
                          pairs=PairConfig(min_impressions=20, max_ratio=None),
                          split=SplitConfig(valid_fraction=0.4),
                          train=TrainConfig(epochs=5, batch_size=32, patience=2), lambda_point_candidates=()),
)


def test_t_quantile_and_paired_interval():
    assert intervals.t_quantile_975(4) == pytest.approx(2.7764, abs=1e-4)
    assert intervals.t_quantile_975(60) == pytest.approx(2.0003, abs=2e-4)
    # d = 1, 2, 3: mean 2, sd 1, half-width t(0.975, 2) / sqrt(3) = 2.4841
    got = backgrounds.paired_interval([1.0, 2.0, 3.0])
    assert got["mean"] == pytest.approx(2.0)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((2 - 2.4841, 2 + 2.4841), abs=1e-4)
    assert (got["n"], got["pcpo_ahead"], got["dpo_ahead"]) == (3, 3, 0)
    assert np.isnan(backgrounds.paired_interval([0.5])["ci_low"])


def test_semantic_truth_scores_the_markets_own_and_new_prompts(tmp_path):
    market, truth = backgrounds.simulated(31, tmp_path, 3, 1500, "semantic")
    assert (tmp_path / "market-semantic-31-3-1500" / "market.json").is_file()
    assert truth.model.world == "semantic"
    pid = market.products["product_id"].iloc[0]
    for element_id, prompt in truth.simulator_backgrounds().items():
        # a generated spelling of a market background keeps its parameters, a new element id the same CTR
        grown = truth.with_elements(pd.DataFrame({"element_id": ["copy"], "slot": "background",
                                                  "product_id": None, "value": [prompt.upper() + " ."]}))
        assert grown.model.background_latent["copy"] == truth.model.background_latent[element_id]
        assert grown.model.element_effect["copy"] == truth.model.element_effect[element_id]
        assert grown.background_match(pid, prompt.upper()) == truth.background_match(pid, prompt)
    # a new prompt's scene comes from its words: a scene the category likes matches, one it avoids does not
    category = truth.model.product_category[pid]
    affinity = truth.model.category_latent[category]
    assert truth.background_relevance(pid, "bright kitchen counter") == pytest.approx(
        truth.model.relevance_scale * affinity[2])
    assert not truth.background_match(pid, "plain paper")  # names no scene: relevance 0


@pytest.mark.slow
def test_semantic_world_writes_its_own_section_with_paired_columns(tmp_path):
    results = tmp_path / "results.md"
    results.write_text("# Results\n\n" + backgrounds.SECTION + "\n\nlegacy text kept\n")
    args = backgrounds.parse_args([
        "--world", "semantic", "--market-seeds", "41", "42", "--seeds", "1", "2", "--products", "3",
        "--impressions", "8000", "--rounds", "1", "--samples", "2", "--workdir", str(tmp_path / "work"),
        "--results", str(results)])
    text = backgrounds.run(args, TINY)
    written = results.read_text()
    title = "## Background prompts on the semantic world: DPO vs PCPO (bench/backgrounds.py --world semantic)"
    assert title in written and backgrounds.SECTION in written and "legacy text kept" in written
    assert text.startswith(title)
    assert "(41, 1), (42, 2)" in text and "structured reference" in text and "reference_corr" not in text
    assert "| market_seed | seed | dpo_match | pcpo_match | pcpo_minus_dpo_points |" in text
    assert "pcpo_minus_dpo_true_ctr" in text
    assert "| pcpo_minus_dpo | n | mean | ci_low | ci_high | pcpo_ahead | dpo_ahead |" in text
    assert "| match rate (points) | 2 |" in text and "| true CTR | 2 |" in text
    assert "95% paired t-interval" in text


def test_market_seeds_must_pair_with_training_seeds():
    args = backgrounds.parse_args(["--market-seeds", "1", "2", "--seeds", "1"])
    with pytest.raises(SystemExit, match="pairs each market seed"):
        backgrounds.replicates(args)
    assert backgrounds.replicates(backgrounds.parse_args(["--seeds", "4", "5"])) == [(7, [4, 5])]
    assert backgrounds.parse_args([]).world == "legacy"
