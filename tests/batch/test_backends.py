"""The backend-independent machinery: chunking, per-chunk application, ordering, the missing-Ray message."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pyarrow as pa
import pytest

from adcraft.batch import BatchConfig, run_batch
from adcraft.batch.chunks import CHUNK, ROW, apply_to_chunks, split_into_chunks
from adcraft.errors import InputError


@dataclass(frozen=True)
class BatchSizes:
    """A job whose result records the size of the batch each item was processed in."""

    def load(self):
        def sizes(items: pa.Table) -> pa.Table:
            return pa.table({"x": items.column("x"), "batch": [items.num_rows] * items.num_rows})

        return sizes


@dataclass(frozen=True)
class DropsARow:
    def load(self):
        return lambda items: items.slice(1)


def test_chunks_number_rows_and_never_mix_kinds():
    items = pa.table({"kind": ["a"] * 5 + ["b"] * 3, "x": list(range(8))})
    chunks = split_into_chunks(items, 2, by="kind")
    assert [c.num_rows for c in chunks] == [2, 2, 1, 2, 1]
    assert all(len(set(c.column("kind").to_pylist())) == 1 for c in chunks)
    assert [r for c in chunks for r in c.column(ROW).to_pylist()] == list(range(8))
    assert [c.column(CHUNK).to_pylist() for c in chunks][2] == [2]
    assert [c.num_rows for c in split_into_chunks(items, 3)] == [3, 3, 2]


def test_a_block_of_several_chunks_is_processed_chunk_by_chunk():
    items = pa.table({"x": list(range(7))})
    chunks = split_into_chunks(items, 3)
    merged = apply_to_chunks(BatchSizes().load(), pa.concat_tables(chunks))
    assert merged.column("batch").to_pylist() == [3, 3, 3, 3, 3, 3, 1]
    assert merged.column(ROW).to_pylist() == list(range(7))


def test_run_batch_keeps_item_order_and_checks_row_counts():
    items = pa.table({"x": [5, 3, 9, 1, 7]})
    result = run_batch(BatchSizes(), items, BatchConfig(batch_size=2))
    assert result.column("x").to_pylist() == [5, 3, 9, 1, 7]
    assert result.column("batch").to_pylist() == [2, 2, 2, 2, 1]
    with pytest.raises(RuntimeError, match="1 rows for 2 items"):
        run_batch(DropsARow(), items, BatchConfig(batch_size=2))


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "spark"}, "backend: 'spark' .*not one of 'local', 'ray'"),
    ({"num_workers": 0}, "num_workers"),
    ({"batch_size": 0}, "batch_size"),
    ({"object_store_memory": 1024}, "75 MiB"),
])
def test_batch_config_refuses_bad_settings(kwargs, message):
    with pytest.raises(InputError, match=message):
        BatchConfig(**kwargs)


def test_ray_backend_without_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(InputError, match=r"pip install 'adcraft\[ray\]'"):
        run_batch(BatchSizes(), pa.table({"x": [1]}), BatchConfig(backend="ray"))


def test_the_local_backend_never_imports_ray():
    code = (
        "import sys, pyarrow as pa\n"
        "from adcraft.batch import BatchConfig, run_batch\n"
        "from adcraft.batch.render_job import RenderJob\n"
        "from adcraft.batch.score_job import ScoreJob\n"
        "class Double:\n"
        "    def load(self):\n"
        "        return lambda t: pa.table({'y': [2 * v for v in t.column('x').to_pylist()]})\n"
        "assert run_batch(Double(), pa.table({'x': [1, 2]}), BatchConfig()).column('y').to_pylist() == [2, 4]\n"
        "print('ray' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
