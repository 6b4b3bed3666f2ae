"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path | None:
    """The read-only ``shared/`` folder laid beside the repository, if present.

    ``TGSIP_SHARED`` overrides the default ``<repo>/../shared``.
    """
    path = Path(os.environ.get("TGSIP_SHARED", REPO_ROOT.parent / "shared"))
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared() -> Path:
    """Path of ``shared/``; the test is skipped with a reason when it is absent."""
    path = shared_dir()
    if path is None:
        pytest.skip("shared/ (the RFC torture corpus and specs) is not beside the repository")
    return path
