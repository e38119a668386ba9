"""The on-disk avatar cache, keyed by a content hash of the source and the settings.

Layout: <root>/avatars/<key>/{meta.json, frames.npy, landmarks.npy, boxes.npy, masks.npz, ...}
An entry is written to a temporary folder and renamed into place, so a failed or
interrupted preparation never leaves a partial entry.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from facecast.avatar.model import Avatar
from facecast.config import cache_dir
from facecast.errors import NotFound

PREPARE_VERSION = 2  # bump when preparation output changes
KEY_PATTERN = re.compile(r"^[0-9a-f]{24}$")


def content_key(data: bytes, settings: dict) -> str:
    """24 hex digits of sha256 over the source bytes, the settings and PREPARE_VERSION."""
    h = hashlib.sha256()
    h.update(data)
    h.update(json.dumps({"settings": settings, "version": PREPARE_VERSION}, sort_keys=True).encode())
    return h.hexdigest()[:24]


class AvatarCache:
    """Prepared avatars on disk."""

    def __init__(self, root: Path | None = None):
        self.root = (root or cache_dir()) / "avatars"

    def path(self, key: str) -> Path:
        if not KEY_PATTERN.match(key):
            raise NotFound(f"avatar {key!r} does not exist (malformed id)")
        return self.root / key

    def has(self, key: str) -> bool:
        return (self.path(key) / "meta.json").is_file()

    def load(self, key: str) -> Avatar:
        """Load a prepared avatar; video frames are memory-mapped."""
        folder = self.path(key)
        meta_file = folder / "meta.json"
        if not meta_file.is_file():
            raise NotFound(f"avatar {key!r} is not in the cache")
        meta = json.loads(meta_file.read_text())
        mmap = "r" if meta["frames"] > 1 else None
        masks = np.load(folder / "masks.npz")
        return Avatar(
            id=key,
            name=meta["name"],
            frames=np.load(folder / "frames.npy", mmap_mode=mmap),
            landmarks=np.load(folder / "landmarks.npy"),
            boxes=np.load(folder / "boxes.npy"),
            lower_face=masks["lower_face"],
            mouth=masks["mouth"],
            fps=float(meta["fps"]),
            cache_dir=folder,
        )

    def store(self, key: str, name: str, frames: np.ndarray, landmarks: np.ndarray,
              boxes: np.ndarray, masks: dict[str, np.ndarray], fps: float) -> Avatar:
        """Write an entry atomically and return it loaded."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
        try:
            np.save(tmp / "frames.npy", np.ascontiguousarray(frames))
            np.save(tmp / "landmarks.npy", landmarks.astype(np.float32))
            np.save(tmp / "boxes.npy", boxes.astype(np.float32))
            np.savez(tmp / "masks.npz", **masks)
            meta = {"name": name, "frames": int(frames.shape[0]), "fps": fps,
                    "width": int(frames.shape[2]), "height": int(frames.shape[1]), "created": time.time()}
            (tmp / "meta.json").write_text(json.dumps(meta))
            final = self.root / key
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.load(key)

    def list(self) -> list[dict]:
        """Metadata of every cached avatar, newest first, each with its "id"."""
        entries = []
        if self.root.is_dir():
            for folder in self.root.iterdir():
                meta_file = folder / "meta.json"
                if KEY_PATTERN.match(folder.name) and meta_file.is_file():
                    entries.append({"id": folder.name, **json.loads(meta_file.read_text())})
        return sorted(entries, key=lambda e: -e["created"])

    def delete(self, key: str) -> None:
        folder = self.path(key)
        if not folder.is_dir():
            raise NotFound(f"avatar {key!r} does not exist")
        shutil.rmtree(folder)
