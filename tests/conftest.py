"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data bundle (``../shared/data`` beside the checkout, or ``$ADCRAFT_SHARED_DATA``).

    Tests that use it are skipped with a message when it is absent, as in a user's fresh clone.
    """
    folder = Path(os.environ.get("ADCRAFT_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not folder.is_dir():
        pytest.skip(f"real-data bundle not found at {folder} (set ADCRAFT_SHARED_DATA to use it)")
    return folder


@pytest.fixture(scope="session", autouse=True)
def private_feature_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep the feature cache of every test out of the user's home folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADCRAFT_CACHE_DIR", str(tmp_path_factory.mktemp("feature-cache")))
        yield
