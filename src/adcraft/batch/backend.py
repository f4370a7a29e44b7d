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
from collections.abc import Iterator

import pyarrow as pa

from adcraft.batch.chunks import ROW, BatchConfig, BatchJob, split_into_chunks
from adcraft.batch.local import map_chunks_locally


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
