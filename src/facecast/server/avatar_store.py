"""Avatars of the server: random public ids mapped to content-hashed cache keys.

An id is secrets.token_urlsafe and is only ever a key of an in-memory dict (persisted as a JSON
index); it never becomes part of a path. Uploaded sources are stored under the server's data dir,
named by their cache key, outside any web root. Methods block (preparation runs the face mesh):
call them from a worker thread.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from pathlib import Path

from facecast.avatar.cache import AvatarCache, content_key
from facecast.avatar.model import Avatar
from facecast.config import PrepareSettings
from facecast.errors import FacecastError, NotFound
from facecast.files import atomic_write
from facecast.lru import LRU
from facecast.errors import Conflict
from facecast.server.uploads import sniff_visual
from facecast.streaming.telemetry import Telemetry

LOADED_AVATARS = 8  # prepared avatars kept in memory
NAME_CHARS = 80  # display names are cut to this length


class AvatarStore:
    """Prepared avatars by public id. Thread-safe."""

    def __init__(self, data_dir: Path, telemetry: Telemetry, cache: AvatarCache | None = None,
                 settings: PrepareSettings = PrepareSettings()):
        self.dir = Path(data_dir)
        self.sources = self.dir / "sources"
        self.sources.mkdir(parents=True, exist_ok=True)
        self.index_file = self.dir / "avatars.json"
        self.cache = cache or AvatarCache()
        self.settings = settings
        self.telemetry = telemetry
        self._lock = threading.RLock()
        self._prepare_lock = threading.Lock()  # one preparation at a time (the face mesh is heavy)
        self._loaded: LRU[str, Avatar] = LRU(LOADED_AVATARS)
        self._entries, self.default_id = self._read_index()
        self._deleted: set[str] = set()  # ids deleted here, kept out when merging the index on disk

    # -- queries ----------------------------------------------------------------------------
    def entry(self, avatar_id: str) -> dict:
        """The public record of an avatar; NotFound for unknown ids."""
        with self._lock:
            found = self._entries.get(avatar_id) if isinstance(avatar_id, str) else None
            if found is None and isinstance(avatar_id, str):
                self._merge_disk()
                found = self._entries.get(avatar_id)
            if found is None:
                raise NotFound(f"avatar {_shown(avatar_id)} does not exist")
            return self._public(avatar_id, found)

    def list(self) -> list[dict]:
        with self._lock:
            rows = [self._public(i, e) for i, e in self._entries.items()]
        return sorted(rows, key=lambda r: (not r["default"], -r["created"]))

    def load(self, avatar_id: str | None) -> tuple[str, Avatar]:
        """(id, prepared avatar) of `avatar_id`, or of the default avatar when None."""
        avatar_id = avatar_id or self.default_id
        if avatar_id is None:
            raise NotFound("no avatar given and no default avatar is set")
        key = self._key(avatar_id)
        with self._lock:
            avatar = self._loaded.get(key)
            if avatar is not None:
                self.telemetry.count("avatar_memory_hits")
                return avatar_id, avatar
        self.telemetry.count("avatar_memory_misses")
        avatar = self._load_key(key)
        return avatar_id, avatar

    def source(self, avatar_id: str | None) -> tuple[Path, dict]:
        """(stored source file, public record) of `avatar_id` or of the default avatar; the file is
        named by its cache key (no suffix: readers sniff the content). NotFound without one."""
        avatar_id = avatar_id or self.default_id
        if avatar_id is None:
            raise NotFound("no avatar given and no default avatar is set")
        path = self.sources / self._key(avatar_id)
        if not path.is_file():
            raise NotFound(f"avatar {_shown(avatar_id)} has no stored source")
        return path, self.entry(avatar_id)

    # -- changes ----------------------------------------------------------------------------
    def add(self, data: bytes, name: str | None, *, default: bool = False) -> tuple[dict, bool]:
        """Prepare an uploaded image/video (bytes) and register it.

        Returns (record, created): an upload whose content is already registered returns the
        existing record with created=False. Raises UnsupportedMedia, CorruptMedia, NoFaceFound.
        """
        kind = sniff_visual(data, name or "upload")
        key = content_key(data, self.settings.key())
        with self._lock:
            for avatar_id, entry in self._entries.items():
                if entry["key"] == key and self.cache.has(key):
                    self.telemetry.count("avatar_upload_cache_hits")
                    if default:
                        self._set_default(avatar_id)
                    return self._public(avatar_id, entry), False
        avatar = self._prepare(key, data, force=False, label=_display_name(name))
        entry = {"key": key, "name": _display_name(name), "kind": kind, "created": time.time(),
                 "width": avatar.size[0], "height": avatar.size[1], "frames": avatar.frame_count}
        with self._lock:
            avatar_id = secrets.token_urlsafe(12)
            self._entries[avatar_id] = entry
            if default:
                self.default_id = avatar_id
            self._write_index()
            return self._public(avatar_id, entry), True

    def reprepare(self, avatar_id: str) -> dict:
        """Prepare an avatar again from its stored source (e.g. after a preparation change)."""
        key = self._key(avatar_id)
        source = self.sources / key
        if not source.is_file():
            raise NotFound(f"avatar {_shown(avatar_id)} has no stored source to prepare again")
        self._prepare(key, source.read_bytes(), force=True, label=self.entry(avatar_id)["name"])
        self.telemetry.count("avatar_reprepared")
        return self.entry(avatar_id)

    def delete(self, avatar_id: str) -> None:
        """Forget an avatar; its cache entry and source go when no other id uses them."""
        key = self._key(avatar_id)
        with self._lock:
            if avatar_id == self.default_id:
                raise Conflict(f"avatar {_shown(avatar_id)} is the default avatar and cannot be deleted")
            del self._entries[avatar_id]
            self._deleted.add(avatar_id)
            self._write_index()
            if any(e["key"] == key for e in self._entries.values()):
                return
            self._loaded.pop(key)
        (self.sources / key).unlink(missing_ok=True)
        try:
            self.cache.delete(key)
        except NotFound:
            pass

    def ensure_default(self, source: Path) -> str:
        """Register `source` (the demo portrait) as the default avatar; returns its id."""
        data = Path(source).read_bytes()
        record, _ = self.add(data, Path(source).name, default=True)
        return record["id"]

    # -- internals ----------------------------------------------------------------------------
    def _key(self, avatar_id: str) -> str:
        with self._lock:
            entry = self._entries.get(avatar_id) if isinstance(avatar_id, str) else None
            if entry is None and isinstance(avatar_id, str):  # added by another process sharing the data dir
                self._merge_disk()
                entry = self._entries.get(avatar_id)
            if entry is None:
                raise NotFound(f"avatar {_shown(avatar_id)} does not exist")
            return entry["key"]

    def _prepare(self, key: str, data: bytes, force: bool, label: str = "avatar") -> Avatar:
        """Store the source under its key and prepare it (serialised); returns the avatar.

        Errors name the upload (`label`), never the server's file paths."""
        from facecast.avatar.prepare import prepare

        source = self.sources / key
        if not source.is_file():
            atomic_write(source, data)
        try:
            with self._prepare_lock:
                start = time.perf_counter()
                avatar = prepare(source, self.settings, cache=self.cache, force=force)
                self.telemetry.observe("avatar_prepare_ms", (time.perf_counter() - start) * 1000)
        except Exception as exc:
            if not self._known_key(key):
                source.unlink(missing_ok=True)
            if isinstance(exc, FacecastError):
                raise type(exc)(str(exc).replace(str(source), label)) from None
            raise
        self._remember(key, avatar)
        return avatar

    def _load_key(self, key: str) -> Avatar:
        avatar = self.cache.get(key)
        if avatar is None:  # evicted, cleared or damaged: prepare again from the stored source
            source = self.sources / key
            if not source.is_file():
                raise NotFound("the avatar's prepared data and its source are both gone")
            avatar = self._prepare(key, source.read_bytes(), force=True)
        self._remember(key, avatar)
        return avatar

    def _remember(self, key: str, avatar: Avatar) -> None:
        with self._lock:
            self._loaded.put(key, avatar)

    def _known_key(self, key: str) -> bool:
        with self._lock:
            return any(e["key"] == key for e in self._entries.values())

    def _set_default(self, avatar_id: str) -> None:
        if self.default_id != avatar_id:
            self.default_id = avatar_id
            self._write_index()

    def _public(self, avatar_id: str, entry: dict) -> dict:
        fields = ("name", "kind", "width", "height", "frames", "created")
        return {"id": avatar_id, "default": avatar_id == self.default_id, **{k: entry[k] for k in fields}}

    def _read_index(self) -> tuple[dict, str | None]:
        if not self.index_file.is_file():
            return {}, None
        try:
            raw = json.loads(self.index_file.read_text())
            entries = {i: e for i, e in raw.get("avatars", {}).items() if re.fullmatch(r"[0-9a-f]{24}", e.get("key", ""))}
            return entries, raw.get("default") if raw.get("default") in entries else None
        except (ValueError, AttributeError):
            return {}, None  # a damaged index: start empty, sources stay on disk

    def _merge_disk(self) -> None:
        """Take in avatars other processes sharing this data dir (Ray Serve replicas) registered.
        Call with the lock held."""
        entries, default = self._read_index()
        for avatar_id, entry in entries.items():
            if avatar_id not in self._deleted:
                self._entries.setdefault(avatar_id, entry)
        self.default_id = self.default_id or default

    def _write_index(self) -> None:
        """Write the index, merged with what other processes wrote (under an exclusive file lock)."""
        import fcntl

        with open(self.dir / "avatars.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._merge_disk()
            atomic_write(self.index_file, json.dumps({"avatars": self._entries, "default": self.default_id},
                                                      indent=1).encode())


def _display_name(name: str | None) -> str:
    """An upload's file name for display only: last path part, printable, at most NAME_CHARS."""
    base = re.split(r"[\\/]", name or "")[-1]
    clean = "".join(ch for ch in base if ch.isprintable()).strip()
    return clean[:NAME_CHARS] or "upload"


def _shown(value) -> str:
    """A user-given id, quoted and cut short, for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"
