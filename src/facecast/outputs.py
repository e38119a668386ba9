"""The file paths a command names, checked before any work starts: inputs are files (a folder or a
missing name is said as such), outputs are writable and never one of the inputs.

One check for every command (render, demo, animate, every `facecast video ...` tool): a known suffix,
an existing writable folder, not a folder itself, and never one of the command's own inputs, whichever
way the input is named (the same path, a relative or `..` variant, a symbolic link, a hard link).
`prepare` and the server write only into facecast's own cache and data folders, never to a path the
user names, so they need no check.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from facecast.errors import InvalidArgument

Inputs = Iterable[tuple[str, "str | Path | None"]]  # (option that names it, path or None)


def check_output(path: str | Path, suffixes: tuple[str, ...] = (".mp4",), option: str = "--output",
                 inputs: Inputs = ()) -> Path:
    """Validate an output path before any work starts; returns it as a Path.

    suffixes: allowed lower-case endings; inputs: (option, path) of each file the command reads (None
    entries are skipped). Raises InvalidArgument naming the problem: a wrong suffix, a missing or
    unwritable folder, an existing folder at the path, or a path that is one of the inputs.
    """
    path = Path(path)
    for label, given in inputs:
        if given is not None and same_file(path, given):
            raise InvalidArgument(f"{option} {str(path)!r} is the input {label} {str(given)!r}: facecast never "
                                  "overwrites its inputs; choose another output name")
    if path.is_dir():
        raise InvalidArgument(f"{option} {str(path)!r} is a folder; give a file name")
    if path.suffix.lower() not in suffixes:
        raise InvalidArgument(f"{option} {str(path)!r}: use a name ending in {' or '.join(suffixes)}")
    folder = path.parent
    if not folder.exists():
        raise InvalidArgument(f"{option} {str(path)!r}: folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise InvalidArgument(f"{option} {str(path)!r}: {str(folder)!r} is not a folder")
    _check_writable(folder, path, option)
    return path


def check_inputs(inputs: Inputs) -> None:
    """Each (option, path) names an existing file, not a folder (None entries are skipped).

    Raises InvalidArgument for a folder or something that is not a regular file, NotFound for a
    missing path, naming the option and the path.
    """
    from facecast.errors import NotFound

    for option, given in inputs:
        if given is None:
            continue
        path = Path(given)
        if path.is_dir():
            raise InvalidArgument(f"{option} {str(given)!r} is a folder; give a file")
        if not path.exists():
            raise NotFound(f"{option} {str(given)!r}: no such file")
        if not path.is_file():
            raise InvalidArgument(f"{option} {str(given)!r} is not a regular file")


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two names reach the same file: the same inode when both exist (symbolic and hard links,
    `./x`, `dir/../x`), else the same fully resolved path (a link to a file not yet written)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        pass
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return False


def _check_writable(folder: Path, path: Path, option: str) -> None:
    """Create and remove a probe file in `folder` (what the atomic writers do there: a temporary file,
    then a rename), so /proc, read-only mounts and folders without permission fail here, before any work."""
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InvalidArgument(f"{option} {str(path)!r}: cannot write in folder {str(folder)!r} ({reason})") from None
    os.close(fd)
    os.unlink(probe)
