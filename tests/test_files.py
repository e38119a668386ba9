"""facecast.files: atomic writes leave the old content or the new one, and no temporary file."""

from __future__ import annotations

import numpy as np
import pytest

from facecast.files import atomic_dir, atomic_path, atomic_write


def test_atomic_write_replaces_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "index.json"
    target.write_text("old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary_one(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_dir_replaces_a_folder_or_leaves_it_alone(tmp_path):
    folder = tmp_path / "cache" / "key"
    with atomic_dir(folder) as tmp:
        np.save(tmp / "a.npy", np.arange(3))
    assert np.load(folder / "a.npy").tolist() == [0, 1, 2]
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(folder) as tmp:
            np.save(tmp / "a.npy", np.arange(5))
            raise KeyboardInterrupt
    assert np.load(folder / "a.npy").tolist() == [0, 1, 2]
    assert [p.name for p in folder.parent.iterdir()] == ["key"]
