"""The on-disk avatar cache, keyed by a content hash of the source and the settings.

Layout: <root>/avatars/<key>/{meta.json, landmarks.npy, boxes.npy, masks.npz, frames}
where the frames of a photo are `frames.npy` (1, H, W, 3) uint8 (loaded whole, the fast
path) and those of a video are JPEG-compressed (facecast.avatar.frame_store), decoded on
demand. An entry is written to a temporary folder and renamed into place, so a failed or
interrupted preparation never leaves a partial entry.

Housekeeping (`<root>` also holds `video/<key>/`, stabilised avatar sources):
- size: after every new entry, least recently used entries of both kinds are deleted until
  the total is within FACECAST_CACHE_MAX_MB (default CACHE_MAX_MB); loading an entry marks it used.
- stale temporary folders of preparations that were killed are removed when a process first
  opens the cache (those untouched for STALE_TMP_SECONDS).
- a damaged entry (bad JSON, a missing or truncated file) is detected on load, removed and
  reported as missing, so preparation builds it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

from facecast.avatar.frame_store import DamagedFrames, FrameStore, FrameWriter, has_frames
from facecast.avatar.model import Avatar
from facecast.config import cache_dir, env
from facecast.errors import InvalidArgument, NotFound

PREPARE_VERSION = 3  # bump when preparation output changes (3: video frames stored as JPEG)
KEY_PATTERN = re.compile(r"^[0-9a-f]{24}$")
CACHE_MAX_MB = 4096  # default size limit of the whole cache (FACECAST_CACHE_MAX_MB)
STALE_TMP_SECONDS = 3600  # a temporary folder untouched this long belongs to a killed preparation
KINDS = ("avatars", "video")  # sub-folders of the cache root holding entries

log = logging.getLogger(__name__)
_swept: set[Path] = set()  # roots whose stale temporary folders this process removed
_sweep_lock = threading.Lock()


def content_key(data: bytes, settings: dict) -> str:
    """24 hex digits of sha256 over the source bytes, the settings and PREPARE_VERSION."""
    h = hashlib.sha256()
    h.update(data)
    h.update(json.dumps({"settings": settings, "version": PREPARE_VERSION}, sort_keys=True).encode())
    return h.hexdigest()[:24]


def cache_limit_bytes() -> int:
    """The cache size limit: FACECAST_CACHE_MAX_MB (a positive number of MB), else CACHE_MAX_MB."""
    raw = env("CACHE_MAX_MB")
    if raw is None or not raw.strip():
        return CACHE_MAX_MB << 20
    try:
        mb = float(raw)
    except ValueError:
        mb = float("nan")
    if not mb > 0:
        raise InvalidArgument(f"FACECAST_CACHE_MAX_MB={raw!r}: expected a positive number of megabytes")
    return int(mb * 2**20)


class DamagedEntry(Exception):
    """A cache entry that cannot be loaded as it is (internal: callers see a cache miss)."""


class AvatarCache:
    """Prepared avatars on disk."""

    def __init__(self, root: Path | None = None):
        self.base = Path(root or cache_dir())
        self.root = self.base / "avatars"
        sweep_stale(self.base)

    def path(self, key: str) -> Path:
        if not KEY_PATTERN.match(key):
            raise NotFound(f"avatar {key!r} does not exist (malformed id)")
        return self.root / key

    def has(self, key: str) -> bool:
        """True when a complete, undamaged entry exists (a damaged one is removed)."""
        return self.get(key) is not None

    def get(self, key: str) -> Avatar | None:
        """The cached avatar, or None when there is none or it was damaged (and is now removed)."""
        try:
            return self._load(key)
        except (NotFound, DamagedEntry):
            return None

    def load(self, key: str) -> Avatar:
        """Load a prepared avatar; video frames are decoded on demand. NotFound when it is not
        cached or its entry was damaged (it is removed; preparing the source again rebuilds it)."""
        try:
            return self._load(key)
        except DamagedEntry as exc:
            raise NotFound(f"avatar {key!r}: its cache entry was damaged ({exc}) and was removed; "
                           "prepare the avatar again from its source") from None

    def _load(self, key: str) -> Avatar:
        folder = self.path(key)
        if not (folder / "meta.json").is_file():
            raise NotFound(f"avatar {key!r} is not in the cache")
        try:
            avatar = _read_entry(key, folder)
        except DamagedEntry as exc:
            log.warning("avatar cache entry %s is damaged (%s): removed, it will be prepared again", key, exc)
            shutil.rmtree(folder, ignore_errors=True)
            raise
        touch(folder)
        return avatar

    def writer(self, key: str) -> "EntryWriter":
        """A new entry for `key`, written frame by frame (see EntryWriter)."""
        return EntryWriter(self, key)

    def store(self, key: str, name: str, frames, landmarks: np.ndarray,
              boxes: np.ndarray, masks: dict[str, np.ndarray], fps: float) -> Avatar:
        """Write an entry atomically and return it loaded. frames: (F, H, W, 3) uint8 BGR (any iterable)."""
        with self.writer(key) as entry:
            for frame in frames:
                entry.add_frame(frame)
            return entry.finish(name, landmarks, boxes, masks, fps)

    def list(self) -> list[dict]:
        """Metadata of every cached avatar, newest first, each with its "id"."""
        entries = []
        if self.root.is_dir():
            for folder in self.root.iterdir():
                meta_file = folder / "meta.json"
                if KEY_PATTERN.match(folder.name) and meta_file.is_file():
                    try:
                        entries.append({"id": folder.name, **json.loads(meta_file.read_text())})
                    except (ValueError, OSError):
                        continue  # damaged: removed on its next load
        return sorted(entries, key=lambda e: -e.get("created", 0))

    def delete(self, key: str) -> None:
        folder = self.path(key)
        if not folder.is_dir():
            raise NotFound(f"avatar {key!r} does not exist")
        shutil.rmtree(folder)


class EntryWriter:
    """Builds one cache entry in a temporary folder: add_frame() for each frame, then
    finish(); leaving the `with` block without finish() (an error) removes everything."""

    def __init__(self, cache: AvatarCache, key: str):
        self.cache, self.key = cache, key
        cache.path(key)  # validates the key
        cache.root.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache.root))
        self._first: np.ndarray | None = None  # a photo's only frame stays raw
        self._frames: FrameWriter | None = None
        self.count = 0

    def add_frame(self, frame: np.ndarray) -> None:
        """frame: (H, W, 3) uint8 BGR, all of one size."""
        if self.count == 0:
            self._first = np.ascontiguousarray(frame, np.uint8).copy()
        else:
            if self._frames is None:
                self._frames = FrameWriter(self.tmp)
                self._frames.add(self._first)
                self._first = None
            self._frames.add(frame)
        self.count += 1

    def finish(self, name: str, landmarks: np.ndarray, boxes: np.ndarray, masks: dict[str, np.ndarray],
               fps: float) -> Avatar:
        """Write the per-frame data, move the entry into place and return it loaded."""
        if self.count == 0:
            raise ValueError("an avatar needs at least one frame")
        if self._frames is not None:
            self._frames.close()
            height, width = self._frames.shape[:2]
        else:
            np.save(self.tmp / "frames.npy", self._first[None])
            height, width = self._first.shape[:2]
        np.save(self.tmp / "landmarks.npy", landmarks.astype(np.float32))
        np.save(self.tmp / "boxes.npy", boxes.astype(np.float32))
        np.savez(self.tmp / "masks.npz", **masks)
        meta = {"name": name, "frames": self.count, "fps": fps, "width": int(width), "height": int(height),
                "created": time.time()}
        (self.tmp / "meta.json").write_text(json.dumps(meta))
        final = self.cache.root / self.key
        if final.exists():
            shutil.rmtree(final)
        self.tmp.rename(final)
        self.tmp = None
        enforce_limit(self.cache.base, keep=final)
        return self.cache.load(self.key)

    def __enter__(self) -> "EntryWriter":
        return self

    def __exit__(self, *exc) -> None:
        if self._frames is not None and self.tmp is not None:
            self._frames.abort()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _read_entry(key: str, folder: Path) -> Avatar:
    """Load and check an entry; DamagedEntry names what is wrong."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        count, size = int(meta["frames"]), (int(meta["height"]), int(meta["width"]))
        landmarks = np.load(folder / "landmarks.npy")
        boxes = np.load(folder / "boxes.npy")
        with np.load(folder / "masks.npz") as masks:
            lower_face, mouth = masks["lower_face"], masks["mouth"]
        if has_frames(folder):
            frames = FrameStore(folder, count, size)
        else:
            frames = np.load(folder / "frames.npy")
            if frames.shape != (count,) + size + (3,) or frames.dtype != np.uint8:
                raise DamagedEntry(f"frames.npy holds {frames.shape} {frames.dtype}, expected {count} frames "
                                   f"of {size[1]}x{size[0]}")
        for what, array in (("landmarks", landmarks), ("boxes", boxes), ("lower_face", lower_face),
                            ("mouth", mouth)):
            if len(array) != count:
                raise DamagedEntry(f"{what} holds {len(array)} rows for {count} frames")
        return Avatar(id=key, name=str(meta["name"]), frames=frames, landmarks=landmarks, boxes=boxes,
                      lower_face=lower_face, mouth=mouth, fps=float(meta["fps"]), cache_dir=folder)
    except DamagedEntry:
        raise
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, DamagedFrames) as exc:
        raise DamagedEntry(f"{type(exc).__name__}: {exc}") from None


# -- housekeeping -------------------------------------------------------------------------
def touch(folder: Path) -> None:
    """Mark an entry as just used (its folder's mtime orders eviction)."""
    try:
        os.utime(folder)
    except OSError:
        pass  # a read-only cache still works, it only forgets the order of use


def entries(base: Path) -> list[Path]:
    """Every finished entry folder of the cache at `base` (avatars and stabilised sources)."""
    found = []
    for kind in KINDS:
        folder = Path(base) / kind
        if folder.is_dir():
            found += [p for p in folder.iterdir() if KEY_PATTERN.match(p.name) and p.is_dir()]
    return found


def folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                pass
    return total


def enforce_limit(base: Path, keep: Path | None = None, limit: int | None = None) -> list[Path]:
    """Delete least recently used entries until the cache at `base` is within `limit` bytes
    (default: cache_limit_bytes()); `keep` (the entry just made) is never deleted. Returns
    the deleted folders."""
    limit = cache_limit_bytes() if limit is None else limit
    sized = []
    for folder in entries(base):
        try:
            sized.append((folder.stat().st_mtime, folder, folder_bytes(folder)))
        except OSError:
            continue  # deleted meanwhile
    total = sum(s for _, _, s in sized)
    removed = []
    for _, folder, size in sorted(sized, key=lambda e: e[0]):
        if total <= limit:
            break
        if keep is not None and folder == Path(keep):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        total -= size
        removed.append(folder)
        log.info("cache over %d MB: removed least recently used %s (%d MB)", limit >> 20, folder, size >> 20)
    return removed


def sweep_stale(base: Path, max_age: float = STALE_TMP_SECONDS, *, force: bool = False) -> list[Path]:
    """Remove temporary folders (".<key>-...") of killed preparations untouched for `max_age`
    seconds; once per process and cache root unless `force`. Returns what was removed."""
    base = Path(base)
    with _sweep_lock:
        if base in _swept and not force:
            return []
        _swept.add(base)
    now, removed = time.time(), []
    for kind in KINDS:
        folder = base / kind
        if not folder.is_dir():
            continue
        for tmp in folder.iterdir():
            if tmp.name.startswith(".") and tmp.is_dir() and now - _newest_mtime(tmp) > max_age:
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
    if removed:
        log.info("removed %d stale temporary cache folder(s) under %s", len(removed), base)
    return removed


def _newest_mtime(folder: Path) -> float:
    """The latest modification time of a folder and everything in it (a preparation still
    writing keeps its folder fresh)."""
    newest = folder.stat().st_mtime
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
            except OSError:
                pass
    return newest
