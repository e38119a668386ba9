"""The jobs file: a CSV with a header; one render per row.

Columns: `avatar` (an image or video file, or a prepared avatar's id) and exactly one of `audio`
(a file) or `text`; optional `name` (the output's file name without .mp4; default row-<n>),
`voice`, `fps`, `seed`, `crf`, `preset`. Relative paths are relative to the CSV's folder.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from facecast.config import DEFAULT_FPS, X264_PRESETS, check_crf, check_fps, check_seed
from facecast.errors import InvalidArgument

COLUMNS = ("name", "avatar", "audio", "text", "voice", "fps", "seed", "crf", "preset")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class Job:
    """One render: row is the CSV line number (for messages)."""

    row: int
    name: str
    avatar: str
    audio: str | None = None
    text: str | None = None
    voice: str = "en"
    fps: int = DEFAULT_FPS
    seed: int = 0
    crf: int = 20
    preset: str = "veryfast"

    def output(self, out_dir: Path) -> Path:
        return Path(out_dir) / f"{self.name}.mp4"


def read_jobs(path: Path) -> list[Job]:
    """Every row of the CSV as a Job; InvalidArgument naming the line and column of the first problem."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            _check_header(path, header)
            reader.fieldnames = header
            jobs = [_job(path, reader.line_num, row) for row in reader if any((v or "").strip() for v in row.values())]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidArgument(f"{path}: cannot read the jobs file: {exc}") from None
    if not jobs:
        raise InvalidArgument(f"{path}: no jobs (a header and at least one row)")
    seen: dict[str, int] = {}
    for job in jobs:
        if job.name in seen:
            raise InvalidArgument(f"{path}:{job.row}: name {job.name!r} is also on line {seen[job.name]}; names "
                                  "must differ (they name the outputs)")
        seen[job.name] = job.row
    return jobs


def _check_header(path: Path, header: list[str]) -> None:
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise InvalidArgument(f"{path}: unknown column {unknown[0]!r}; columns are {', '.join(COLUMNS)}")
    if "avatar" not in header or not ({"audio", "text"} & set(header)):
        raise InvalidArgument(f"{path}: the header needs an 'avatar' column and an 'audio' or 'text' column")


def _job(path: Path, line: int, row: dict) -> Job:
    def cell(key: str) -> str | None:
        value = (row.get(key) or "").strip()
        return value or None

    where = f"{path}:{line}"
    avatar, audio, text = cell("avatar"), cell("audio"), cell("text")
    if avatar is None:
        raise InvalidArgument(f"{where}: 'avatar' is empty")
    if (audio is None) == (text is None):
        raise InvalidArgument(f"{where}: give exactly one of 'audio' and 'text'")
    name = cell("name") or f"row-{line:04d}"
    if not NAME.fullmatch(name):
        raise InvalidArgument(f"{where}: name {name!r} must be letters, digits, '.', '_' or '-' (it names the output)")
    base = path.parent
    avatar_ref = str(base / avatar) if (base / avatar).exists() else avatar  # else: a prepared avatar's id
    preset = cell("preset") or "veryfast"
    if preset not in X264_PRESETS:
        raise InvalidArgument(f"{where}: preset {preset!r} is not one of {', '.join(X264_PRESETS)}")
    try:
        return Job(row=line, name=name, avatar=avatar_ref, audio=str(base / audio) if audio else None, text=text,
                   voice=cell("voice") or "en", fps=check_fps(_int(cell("fps"), DEFAULT_FPS, "fps")),
                   seed=check_seed(_int(cell("seed"), 0, "seed")), crf=check_crf(_int(cell("crf"), 20, "crf")),
                   preset=preset)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc}") from None


def _int(text: str | None, default: int, column: str) -> int:
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"{column}={text!r} is not a whole number") from None
