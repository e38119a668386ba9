"""What `pip install .` gives: runtime dependencies are what the package imports, the extras are
the requirements files, the demo portrait is package data, the locks cover both README commands,
and a missing mediapipe ends in a one-line message naming the fix."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import cv2
import pytest

from facecast.demo import demo_portrait
from facecast.deps import MEDIAPIPE

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
REQUIREMENTS = REPO / "requirements"
TEST_ONLY = {"pytest", "httpx", "soundfile", "skimage", "playwright"}  # import names


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(lines) -> set[str]:
    """Canonical project names of requirement strings (extras of facecast itself expanded)."""
    names = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            names |= requirement_names((REQUIREMENTS / line[3:].strip()).read_text().splitlines())
            continue
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line).group(0)
        extras = re.match(r"[A-Za-z0-9._-]+\[([^\]]+)\]", line)
        if canonical(name) == "facecast" and extras:
            for extra in extras.group(1).split(","):
                names |= requirement_names(PYPROJECT["project"]["optional-dependencies"][extra.strip()])
            continue
        names.add(canonical(name))
    return names


def file_names(name: str) -> set[str]:
    return requirement_names((REQUIREMENTS / f"{name}.txt").read_text().splitlines())


def test_dependencies_and_extras_match_the_requirements_files():
    project = PYPROJECT["project"]
    assert requirement_names(project["dependencies"]) == file_names("base")
    extras = project["optional-dependencies"]
    files = {p.stem for p in REQUIREMENTS.glob("*.txt")} - {"base", "lock", "lock-test"}
    assert set(extras) == files
    for extra in extras:
        assert requirement_names(extras[extra]) == file_names(extra), extra


def test_runtime_dependencies_leave_out_test_and_demo_needs():
    runtime = requirement_names(PYPROJECT["project"]["dependencies"])
    assert not runtime & {"soundfile", "httpx", "scikit-image", "pytest"}
    assert "mediapipe" not in runtime  # installed with --no-deps (see facecast.deps)


def test_the_package_imports_no_test_only_module():
    found = []
    for path in (REPO / "src" / "facecast").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in TEST_ONLY]
    assert not found, found


def test_the_demo_portrait_is_small_package_data():
    path = demo_portrait()
    assert path.is_file() and path.stat().st_size < 100_000
    assert cv2.imread(str(path)).shape == (512, 512, 3)
    package = REPO / "src" / "facecast"
    relative = path.relative_to(package).as_posix()
    assert any(fnmatch(relative, glob) for glob in PYPROJECT["tool"]["setuptools"]["package-data"]["facecast"])


@pytest.mark.parametrize("lock, sources", [("lock", ["base", "server"]),
                                           ("lock-test", ["base", "server", "test", "test-gpu", "test-web", "test-ray"])])
def test_the_locks_pin_and_hash_everything(lock, sources):
    text = (REQUIREMENTS / f"{lock}.txt").read_text()
    entries = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)",
                         text, re.M)
    pinned = {canonical(name) for name, _, _ in entries}
    requirements = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert len(requirements) == len(entries), "every requirement is pinned with == and hashed"
    for source in sources:
        assert file_names(source) <= pinned, (source, file_names(source) - pinned)
    assert f"{canonical(MEDIAPIPE.split('==')[0])}" in pinned and MEDIAPIPE in text


def test_missing_mediapipe_is_a_one_line_error_naming_the_fix(tmp_path):
    code = ("import sys; sys.modules['mediapipe'] = None\n"  # what an absent package looks like
            "from facecast.cli import main\n"
            f"sys.exit(main(['prepare', {str(demo_portrait())!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={"FACECAST_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin",
                                 "PYTHONPATH": str(REPO / "src")})
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"facecast: error: mediapipe is not installed; install it with: pip install --no-deps {MEDIAPIPE}"
        "  (or scripts/install.sh)"]
    assert not list(tmp_path.rglob("*.npy")), "nothing was cached"
