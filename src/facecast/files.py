"""Atomic file and folder writes: everything is written under a temporary name in the target's
folder and renamed into place, so readers see the old content or the new one, never a part.

    with atomic_path(out) as tmp:        # a file: write tmp, it replaces `out` on a clean exit
        tmp.write_bytes(data)
    with atomic_dir(folder) as tmp:      # a folder: fill tmp, it replaces `folder` on a clean exit
        np.save(tmp / "frames.npy", frames)

On an error (or an interrupt) the temporary file or folder is removed and the target is untouched.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def temp_name(path: Path) -> Path:
    """A hidden, unique name beside `path` for the file that will become `path`."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` when the block ends cleanly."""
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns `path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a new empty folder beside `path` (the parent is created); it replaces `path` (an old
    folder there is removed first) when the block ends cleanly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
