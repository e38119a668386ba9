"""Imports of packages that a plain `pip install facecast` may lack, with the fix in the error.

mediapipe is installed apart (`--no-deps`: its metadata pulls jax and the GUI OpenCV, neither of
which facecast uses; its real needs are facecast's own dependencies), so a bare `pip install .`
lacks it. The server and the musetalk backend are extras.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from types import ModuleType

from facecast.errors import MissingDependency

MEDIAPIPE = "mediapipe==0.10.21"
FIXES = {
    "mediapipe": f"pip install --no-deps {MEDIAPIPE}  (or scripts/install.sh)",
    "fastapi": 'pip install "facecast[server]"',
    "uvicorn": 'pip install "facecast[server]"',
    "ray": 'pip install "facecast[ray]"',
    "pipecat": 'pip install "facecast[pipecat]"',
    "livekit": 'pip install "facecast[livekit]"',
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


def require_mediapipe() -> ModuleType:
    """mediapipe (as require("mediapipe")), made to work with any protobuf from 4.25 on.

    mediapipe 0.10.21's solutions hand their graph to the C++ side as protobuf *text*; protobuf 5
    and later print the graph's packed option bytes in a form its C++ text parser rejects ("Failed
    to parse: node {..."), so mediapipe pins protobuf<5 - which pipecat and LiveKit (protobuf >= 5)
    cannot share. Handing the same graph over in the binary wire format, which every protobuf
    version reads alike, removes the conflict; the graph is the same either way. Its bindings also
    call MessageFactory.GetPrototype (removed in protobuf 5) to build result messages; where it is
    missing it is given back as the documented replacement, message_factory.GetMessageClass.
    """
    from google.protobuf import message_factory

    if not hasattr(message_factory.MessageFactory, "GetPrototype"):
        message_factory.MessageFactory.GetPrototype = lambda self, descriptor: message_factory.GetMessageClass(
            descriptor)
    mp = require("mediapipe")
    from mediapipe.python import solution_base

    graphs = solution_base.calculator_graph
    if not getattr(graphs.CalculatorGraph, "_facecast_binary", False):
        graphs.CalculatorGraph = _binary_graph(graphs.CalculatorGraph)
    return mp


def _binary_graph(graph_class):
    """A CalculatorGraph factory that passes graph_config=<proto> as a binary graph file."""

    def make(graph_config=None, **kwargs):
        if graph_config is None:
            return graph_class(**kwargs)
        fd, path = tempfile.mkstemp(prefix="facecast-graph-", suffix=".binarypb")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(graph_config.SerializeToString())
            return graph_class(binary_graph_path=path, **kwargs)
        finally:
            os.unlink(path)

    make._facecast_binary = True
    return make
