"""Data-parallel training (gloo, CPU): two processes train the same model as one, within a tolerance.

Not bitwise: with two ranks the averaged gradient is the shard-size weighted mean of the two shards'
gradients of the impression-weighted binomial loss, which is close to but not the whole batch's, and the
sums run in another order. On this market the validation log loss of world sizes 1 and 2 agrees within
LOG_LOSS_TOLERANCE (relative) and the AUC within AUC_TOLERANCE (absolute); the ranks' weights are
bitwise identical after training.
"""

from __future__ import annotations

import gc
import json

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from adcraft.errors import InputError
from adcraft.learning.distributed import BACKEND, DataParallel
from adcraft.pipeline import train_reward_model

LOG_LOSS_TOLERANCE = 0.02  # relative
AUC_TOLERANCE = 0.03  # absolute

CONFIG = """\
encoding: {text_backbone: tiny, embedding_dim: 8}
train: {epochs: 15, batch_size: 64, learning_rate: 0.02, patience: 15}
"""


@pytest.fixture(scope="module")
def trained(logged_market, tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    (root / "mil.yaml").write_text(CONFIG)
    metrics = {}
    for world_size in (1, 2):
        out = root / f"world{world_size}"
        train_reward_model("mil", logged_market[0].root, out, root / "mil.yaml", world_size=world_size)
        metrics[world_size] = json.loads((out / "metrics.json").read_text())
    return metrics


@pytest.mark.slow
def test_two_ranks_reach_the_validation_metrics_of_one(trained):
    one, two = trained[1]["validation"], trained[2]["validation"]
    assert abs(two["log_loss"] - one["log_loss"]) <= LOG_LOSS_TOLERANCE * one["log_loss"]
    assert abs(two["auc"] - one["auc"]) <= AUC_TOLERANCE
    assert len(trained[2]["history"]["valid_loss"]) == len(trained[1]["history"]["valid_loss"])


@pytest.mark.slow
def test_the_ranks_hold_identical_weights_after_training(trained):
    assert trained[2]["world"] == {"size": 2, "weights_identical": True}
    assert "world" not in trained[1]


def test_data_parallel_training_is_refused_for_models_it_does_not_cover(tiny_market_dir, tmp_path):
    with pytest.raises(InputError, match="data-parallel"):
        train_reward_model("utility", tiny_market_dir, tmp_path / "out", world_size=2)
    assert not (tmp_path / "out").exists()


def test_release_leaves_no_wrapper_holding_the_process_group(tmp_path):
    """After training a wrapper can live on in reference cycles, freed at whichever garbage collection
    comes, possibly the interpreter's exit; ``release`` frees it before the group is left."""
    dist.init_process_group(BACKEND, init_method=f"file://{tmp_path}/rendezvous", rank=0, world_size=1)
    try:
        world, model = DataParallel(0, 1), nn.Linear(3, 1)
        world.wrap(model)(torch.ones(2, 3)).sum().backward()
        assert world.wraps(model)
        world.release()
        assert not world.wraps(model)
        assert not [o for o in gc.get_objects() if type(o) is DistributedDataParallel and o.module is model]
    finally:
        dist.destroy_process_group()
