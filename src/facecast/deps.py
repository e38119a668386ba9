"""Imports of packages that a plain `pip install facecast` may lack, with the fix in the error.

mediapipe is installed apart (`--no-deps`: its metadata pulls jax and the GUI OpenCV, neither of
which facecast uses; its real needs are facecast's own dependencies), so a bare `pip install .`
lacks it. The server and the musetalk backend are extras.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from facecast.errors import MissingDependency

MEDIAPIPE = "mediapipe==0.10.21"
FIXES = {
    "mediapipe": f"pip install --no-deps {MEDIAPIPE}  (or scripts/install.sh)",
    "fastapi": 'pip install "facecast[server]"',
    "uvicorn": 'pip install "facecast[server]"',
    "ray": 'pip install "facecast[ray]"',
}


def require(name: str) -> ModuleType:
    """`import name`, or MissingDependency naming the install command when it is not installed.

    Only the package itself being absent is translated; an ImportError raised inside an installed
    package (a real bug, a broken install) propagates unchanged.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name.split(".")[0]:
            raise
        raise MissingDependency(f"{name} is not installed; install it with: {FIXES[name.split('.')[0]]}") from None
