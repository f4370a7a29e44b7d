"""Data-parallel training of the reward models with ``torch.distributed`` (gloo backend, CPU).

Every process (rank) builds the same model from the same data and seed; ``DistributedDataParallel``
broadcasts rank 0's initial weights and averages the gradients after each backward pass, so the weights
stay identical on every rank. ``training.fit`` draws the same permutation of the training rows on every
rank (same generator seed) and gives rank r the r-th of W contiguous parts of each mini-batch. Rank r's
loss, a mean over its n_r rows, is scaled by W n_r / n before the backward pass, so the averaged gradient
is

    g = (1/W) sum_r W (n_r / n) g_r = sum_r (n_r / n) g_r,

the shard-size weighted mean of the shards' gradients. For a loss that is a mean over rows this is the
whole batch's gradient; for the impression-weighted binomial loss (a ratio of sums over rows) it is close
but not equal, and summation orders differ, so world sizes 1 and 2 reach close, not bitwise-equal,
weights. Validation runs on the whole validation set on every rank, so early stopping agrees everywhere;
rank 0 alone writes checkpoints and the model. When its work is done every rank waits at a barrier,
drops its ``DistributedDataParallel`` wrappers and then leaves the group, so that gloo's threads end
while the interpreter is alive, never in its finalisation.

How to run it:

- command line: ``adcraft train mil --market M --out DIR --world-size 2`` spawns the processes;
- Python: ``run_data_parallel(function, world_size, *args)`` runs ``function(world, *args)`` in each
  process, and ``function`` calls a trainer's ``fit(market, world=world)`` (``MILTrainer``, ``CTRTrainer``,
  ``PairwiseTrainer``);
- ``torchrun --nproc-per-node 2 script.py``: in the script, ``world = DataParallel.from_environment()``.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from adcraft.errors import AdcraftError, InputError
from adcraft.learning.checkpoint import tensor_digest

BACKEND = "gloo"


@dataclass
class DataParallel:
    """This process's place in a data-parallel group: its ``rank`` among ``size`` processes.

    The process group must be initialised (``run_data_parallel`` and ``from_environment`` do it).
    """

    rank: int
    size: int
    _wrapped: dict[int, DistributedDataParallel] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.size < 1 or not 0 <= self.rank < self.size:
            raise InputError(f"a data-parallel rank must be in [0, world size), got rank {self.rank} of {self.size}")

    @classmethod
    def from_environment(cls) -> DataParallel:
        """Join the group described by ``torchrun``'s environment (RANK, WORLD_SIZE, MASTER_ADDR/PORT)."""
        if not dist.is_initialized():
            dist.init_process_group(BACKEND)
        return cls(dist.get_rank(), dist.get_world_size())

    @property
    def writes(self) -> bool:
        """Whether this rank writes files (checkpoints, the model): rank 0 only."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in ``DistributedDataParallel`` (made once per model): losses computed through it
        average their gradients over the ranks."""
        if id(model) not in self._wrapped:
            self._wrapped[id(model)] = DistributedDataParallel(model, static_graph=True)
        return self._wrapped[id(model)]

    def wraps(self, model: nn.Module) -> bool:
        return id(model) in self._wrapped

    def shard(self, index: torch.Tensor) -> tuple[torch.Tensor, float]:
        """This rank's rows of a mini-batch and their share n_r / n of it.

        A rank left without rows (a batch smaller than the world) gets the batch's first row with share
        0, so that it still takes part in the gradient averaging, with a zero gradient.
        """
        part = torch.tensor_split(index, self.size)[self.rank]
        if len(part) == 0:
            return index[:1], 0.0
        return part, len(part) / len(index)

    def identical(self, module: nn.Module) -> bool:
        """Whether ``module``'s weights are bitwise the same on every rank (a digest of them is gathered)."""
        mine = torch.frombuffer(bytearray.fromhex(tensor_digest(module.state_dict().items())), dtype=torch.uint8)
        gathered = [torch.empty_like(mine) for _ in range(self.size)]
        dist.all_gather(gathered, mine)
        return all(torch.equal(mine, other) for other in gathered)

    def release(self) -> None:
        """Drop the ``DistributedDataParallel`` wrappers, whose reducers hold the process group.

        Call before ``dist.destroy_process_group()``: a wrapper left alive keeps gloo's worker threads
        until the interpreter's finalisation, where tearing them down aborts the process (SIGABRT,
        "terminate called without an active exception").
        """
        self._wrapped.clear()
        gc.collect()

    def batch_loss(self, loss: torch.Tensor, share: float) -> float:
        """sum_r (n_r / n) loss_r over the ranks: the batch's loss, the same number on every rank."""
        contribution = loss.detach().reshape(1).double() * share if share > 0 else torch.zeros(1, dtype=torch.float64)
        dist.all_reduce(contribution)
        return float(contribution)


def run_data_parallel(function: Callable[..., Any], world_size: int, *args: Any) -> None:
    """Run ``function(DataParallel(rank, world_size), *args)`` in ``world_size`` new processes joined
    in a gloo group; returns when all have finished.

    ``function`` must be importable at module level (the processes are started fresh). A failure in
    any process is raised here: ``InputError`` for bad input, ``AdcraftError`` otherwise.
    """
    if world_size < 1:
        raise InputError(f"world size must be at least 1, got {world_size}")
    folder = tempfile.mkdtemp(prefix="adcraft-ddp-")
    try:
        torch.multiprocessing.spawn(
            _rank_main, args=(world_size, f"file://{folder}/rendezvous", os.getpid(), function, args),
            nprocs=world_size, join=True,
        )
    except torch.multiprocessing.ProcessRaisedException as error:
        last = [line for line in str(error).strip().splitlines() if line.strip()][-1]
        prefix = f"{InputError.__module__}.{InputError.__name__}: "
        if last.startswith(prefix):
            raise InputError(last.removeprefix(prefix)) from None
        raise AdcraftError(f"a data-parallel training process failed: {last}") from None
    except torch.multiprocessing.ProcessExitedException as error:
        raise AdcraftError(f"a data-parallel training process died: {error}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _rank_main(rank: int, world_size: int, init_method: str, parent: int, function: Callable[..., Any],
               args: tuple) -> None:
    _exit_with_parent(parent)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    dist.init_process_group(BACKEND, init_method=init_method, rank=rank, world_size=world_size)
    world = DataParallel(rank, world_size)
    try:
        function(world, *args)
        dist.barrier()
    finally:
        world.release()
        dist.destroy_process_group()


def _exit_with_parent(parent: int) -> None:
    """End this process when the process that spawned it is gone (killed), so that no orphan keeps
    training and writing checkpoints beside a resumed run."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
