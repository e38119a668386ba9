"""Shared fixtures: the real test media in ../shared/data and an isolated avatar cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def pytest_configure(config):
    # Every test session gets its own avatar cache, so runs never share state.
    if "FACECAST_CACHE_DIR" not in os.environ:
        import tempfile

        os.environ["FACECAST_CACHE_DIR"] = tempfile.mkdtemp(prefix="facecast-test-cache-")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"test media not found at {DATA} (expected ../shared/data beside the repository)")
    return DATA


@pytest.fixture(scope="session")
def portraits(data_dir) -> list[Path]:
    return sorted((data_dir / "portraits").iterdir())


@pytest.fixture(scope="session")
def speech_clips(data_dir) -> list[Path]:
    return sorted((data_dir / "speech").iterdir())


@pytest.fixture(scope="session")
def talking_clips(data_dir) -> list[Path]:
    return sorted((data_dir / "talking").glob("*.mp4"))


def portrait(name: str) -> Path:
    return DATA / "portraits" / name


def speech(name: str) -> Path:
    return DATA / "speech" / name


def talking(name: str) -> Path:
    return DATA / "talking" / name
