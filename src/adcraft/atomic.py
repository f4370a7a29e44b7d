"""Atomic replacement of output folders and files: a reader sees the old version or the new one, never half."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def move_into_place(staging: Path, out: Path) -> None:
    """Rename the finished folder ``staging`` to ``out``; an old ``out`` is moved aside first, then removed."""
    if out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old)
        try:
            os.replace(staging, out)
        except OSError:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)
