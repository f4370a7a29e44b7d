"""What both batch backends share: the run settings, the job contract, and items cut into chunks.

A batch job is a list of work items (an Arrow table, one row per item) and a ``BatchJob`` whose
``load()`` runs once per worker (it loads the model, the market, the encoder) and returns the function
that turns a table of items into a table of results, one row per item, in order. Both backends cut the
items into the same chunks (``split_into_chunks``) and hand each chunk to the job's function whole
(``apply_to_chunks``), so a model sees exactly the same batches on either backend.
"""

from __future__ import annotations

from collections.abc import Callable
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
