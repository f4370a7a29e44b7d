"""Where a batch job runs: one process (``local``) or a Ray cluster (``ray``), with identical outputs.

A batch job is a list of work items (an Arrow table, one row per item) and a ``BatchJob`` whose
``load()`` runs once per worker (it loads the model, the market, the encoder) and returns the function
that turns a table of items into a table of results, one row per item, in order.

Both backends cut the items into the same chunks of ``batch_size`` rows and hand each chunk to the
job's function whole (``apply_to_chunks``), so a model sees exactly the same batches on either backend:
scores and pixels come out bitwise equal, and results are put back in item order before anything is
written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

import numpy as np
import pyarrow as pa

from adcraft.configuration import check_config
from adcraft.errors import InputError

Backend = Literal["local", "ray"]
BACKENDS: tuple[str, ...] = get_args(Backend)
ROW = "_row"
CHUNK = "_chunk"

ChunkFunction = Callable[[pa.Table], pa.Table]


@dataclass(frozen=True)
class BatchConfig:
    """How a batch job is run.

    backend: ``"local"`` (this process, the default) or ``"ray"`` (Ray Data, needs ``adcraft[ray]``).
    address: Ray cluster to join (``"auto"``, ``"ray://host:10001"``); ``None`` starts a local Ray
        instance for the job and stops it afterwards (unless Ray is already initialised in this process).
    num_workers: Ray actors, each holding one copy of the model (one CPU each).
    batch_size: work items per chunk, the unit a worker processes at once.
    object_store_memory: bytes of object store of a local Ray instance the job starts (``None``: Ray's default).
    """

    backend: Backend = "local"
    address: str | None = None
    num_workers: int = 2
    batch_size: int = 256
    object_store_memory: int | None = None

    def __post_init__(self) -> None:
        check_config(self)
        if self.backend not in BACKENDS:
            raise InputError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.num_workers < 1:
            raise InputError(f"num_workers must be at least 1, got {self.num_workers}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.object_store_memory is not None and self.object_store_memory < 75 * 1024**2:
            raise InputError("object_store_memory must be at least 75 MiB (Ray's minimum)")


class BatchJob(Protocol):
    """A picklable description of per-item work (paths and configs, not loaded models)."""

    def load(self) -> ChunkFunction:
        """Load what the work needs, once per worker; return the function applied to each chunk."""
        ...


def split_into_chunks(items: pa.Table, batch_size: int, by: str | None = None) -> list[pa.Table]:
    """``items`` with its row number (``_row``) and chunk number (``_chunk``), cut into chunks of at most
    ``batch_size`` rows; with ``by``, a chunk also ends where that column's value changes (so one
    chunk holds one kind of item)."""
    runs = [(0, items.num_rows)]
    if by is not None and items.num_rows:
        values = items.column(by).to_pylist()
        starts = [0] + [row for row in range(1, len(values)) if values[row] != values[row - 1]]
        runs = list(zip(starts, [*starts[1:], len(values)]))
    bounds = [(start, min(start + batch_size, stop))
              for first, stop in runs for start in range(first, stop, batch_size)]
    chunk_ids = np.repeat(np.arange(len(bounds), dtype=np.int64), [stop - start for start, stop in bounds])
    numbered = items.append_column(ROW, pa.array(np.arange(items.num_rows, dtype=np.int64))).append_column(
        CHUNK, pa.array(chunk_ids, pa.int64()))
    return [numbered.slice(start, stop - start) for start, stop in bounds]


def apply_to_chunks(function: ChunkFunction, table: pa.Table) -> pa.Table:
    """Apply a job's function to each chunk in ``table`` separately; results keep the items' ``_row``.

    A backend may hand over several chunks at once (or one); grouping by ``_chunk`` here makes the
    function's batches the same whatever the backend did.
    """
    starts = np.flatnonzero(np.diff(table.column(CHUNK).to_numpy(), prepend=-1)).tolist()
    results = []
    for start, stop in zip(starts, [*starts[1:], table.num_rows]):
        chunk = table.slice(start, stop - start)
        result = function(chunk.drop_columns([ROW, CHUNK]))
        if result.num_rows != chunk.num_rows:
            raise RuntimeError(f"a batch job returned {result.num_rows} rows for {chunk.num_rows} items")
        results.append(result.append_column(ROW, chunk.column(ROW)))
    return pa.concat_tables(results)


@contextlib.contextmanager
def batch_session(config: BatchConfig) -> Iterator[None]:
    """Keep the backend up across several jobs (one Ray start for all of them); a no-op for ``local``."""
    if config.backend != "ray":
        yield
        return
    from adcraft.batch.ray_backend import ray_session

    with ray_session(config):
        yield


def map_chunks(job: BatchJob, items: pa.Table, config: BatchConfig, by: str | None = None) -> Iterator[pa.Table]:
    """Results of ``job`` on ``items``, chunk by chunk as they finish (in any order), each with ``_row``;
    ``by`` as in ``split_into_chunks``."""
    chunks = split_into_chunks(items, config.batch_size, by)
    if not chunks:
        return iter(())
    if config.backend == "ray":
        from adcraft.batch.ray_backend import map_chunks_on_ray

        return map_chunks_on_ray(job, chunks, config)
    from adcraft.batch.local import map_chunks_locally

    return map_chunks_locally(job, chunks)


def run_batch(job: BatchJob, items: pa.Table, config: BatchConfig, by: str | None = None) -> pa.Table:
    """All results of ``job`` on ``items``, one row per item, in item order (``_row`` removed)."""
    results = list(map_chunks(job, items, config, by))
    if not results:
        return pa.table({})
    table = pa.concat_tables(results).sort_by(ROW)
    if table.column(ROW).to_pylist() != list(range(items.num_rows)):
        raise RuntimeError(f"a batch job returned {table.num_rows} results for {items.num_rows} items")
    return table.drop_columns([ROW])
