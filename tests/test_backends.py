"""The backend contract and registry: names, per-backend options, built-ins loaded without hiding
errors, a missing optional extra named, and a third backend written to the abstract class alone."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.media import write_wav

from facecast.avatar.model import Avatar
from facecast.config import RenderSettings
from facecast.engine import frame_batches
from facecast.errors import InvalidArgument, MissingDependency
from facecast.idle import idle_motion
from facecast.lipsync import base
from facecast.lipsync.base import (BUILTIN_BACKENDS, FeatureStream, LipsyncBackend, available_backends,
                                   get_backend, register_backend)

GPU_HINT = 'pip install "facecast[gpu]"'


@pytest.fixture
def fresh_registry(monkeypatch):
    """An empty registry for one test: built-ins are imported again, registrations are dropped after."""
    monkeypatch.setattr(base, "_REGISTRY", {})


# -- names and options ---------------------------------------------------------------------

def test_unknown_backend_is_refused_with_the_known_names():
    with pytest.raises(InvalidArgument) as err:
        get_backend("wav2lip")
    assert "'wav2lip'" in str(err.value)
    assert "classic" in str(err.value) and "musetalk" in str(err.value)


def test_builtins_are_listed_from_the_table():
    assert set(BUILTIN_BACKENDS) <= set(available_backends())
    assert {"classic", "musetalk"} <= set(available_backends())


def test_an_unknown_option_is_refused_naming_it_and_what_the_backend_accepts():
    with pytest.raises(InvalidArgument) as err:
        get_backend("classic", model_dir="models/")
    assert "model_dir" in str(err.value) and "accepts none" in str(err.value)
    with pytest.raises(InvalidArgument) as err:
        get_backend("musetalk", model_dir="models/", batch=8, devcie="cpu")
    message = str(err.value)
    assert "batch, devcie" in message  # both named, sorted
    for accepted in ("model_dir", "device", "dtype", "batch_size", "compile"):
        assert accepted in message


def test_render_model_dir_with_the_default_backend_is_one_line_and_exit_1(tmp_path):
    image, audio, out = tmp_path / "face.png", tmp_path / "speech.wav", tmp_path / "out.mp4"
    cv2.imwrite(str(image), np.full((64, 64, 3), 128, np.uint8))
    write_wav(audio, np.sin(np.arange(8000) * 0.05) * 8000 / 32767)
    result = subprocess.run([sys.executable, "-m", "facecast.cli", "render", "--avatar", str(image),
                             "--audio", str(audio), "--model-dir", str(tmp_path), "-o", str(out), "-q"],
                            capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("facecast: error:") and "model_dir" in lines[0] and "'classic'" in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".out.mp4*"))


# -- built-ins: lazy, and errors not hidden ------------------------------------------------

def test_face_geometry_imports_no_backend_and_classic_imports_no_torch():
    code = ("import sys; import facecast.portrait.renderer, facecast.face.inner_mouth, facecast.face.warp; "
            "assert not [m for m in sys.modules if m.startswith('facecast.lipsync')], 'face/ imported a backend'; "
            "from facecast.lipsync import available_backends, get_backend; "
            "available_backends(); get_backend('classic'); "
            "assert 'torch' not in sys.modules and 'facecast.lipsync.musetalk' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(),
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_missing_third_party_package_names_the_extra(fresh_registry, monkeypatch):
    real = base.importlib.util.find_spec
    monkeypatch.setattr(base.importlib.util, "find_spec",
                        lambda name, *args: None if name == "diffusers" else real(name, *args))
    with pytest.raises(MissingDependency) as err:
        get_backend("musetalk")
    assert "diffusers" in str(err.value) and GPU_HINT in str(err.value)


def _create_raising(exc: BaseException):
    def create(options):
        raise exc
    return create


def test_a_third_party_module_missing_while_creating_names_the_extra(fresh_registry, monkeypatch):
    import facecast.lipsync.musetalk as package

    missing = ModuleNotFoundError("no whisper", name="transformers.models")
    monkeypatch.setattr(package, "create", _create_raising(missing))
    with pytest.raises(match=r"transformers\.models.*facecast\[gpu\]"):
        get_backend("musetalk")


@pytest.mark.parametrize("exc", [ModuleNotFoundError("gone", name="facecast.lipsync.musetalk.network"),
                                 ImportError("cannot import name 'Graphed' from 'facecast.lipsync.musetalk.network'",
                                             name="facecast.lipsync.musetalk.network"),
                                 ModuleNotFoundError("not an extra", name="accelerate")])
def test_an_import_error_that_is_not_a_missing_extra_propagates(fresh_registry, monkeypatch, exc):
    import facecast.lipsync.musetalk as package

    monkeypatch.setattr(package, "create", _create_raising(exc))
    with pytest.raises(ImportError) as err:
        get_backend("musetalk")
    assert err.value is exc and not isinstance(err.value, MissingDependency)


def test_a_broken_backend_package_propagates_instead_of_vanishing(fresh_registry, monkeypatch):
    monkeypatch.setitem(sys.modules, "facecast.lipsync.musetalk", None)  # its import now fails
    with pytest.raises(ModuleNotFoundError) as err:
        get_backend("musetalk")
    assert err.value.name == "facecast.lipsync.musetalk"
    assert "musetalk" in available_backends()  # still listed: the failure is reported, not hidden
    monkeypatch.setitem(BUILTIN_BACKENDS, "musetalk", replace(BUILTIN_BACKENDS["musetalk"],
                                                              module="facecast.lipsync.no_such_module"))
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        get_backend("musetalk")


# -- a third backend, written to the abstract class ------------------------------------------

@dataclass(frozen=True)
class GreyOptions:
    level: int = 128


class GreyBackend(LipsyncBackend):
    """Renders flat grey frames and remembers what the engine passed."""

    name = "grey"

    def __init__(self, level: int):
        self.level, self.calls = level, []

    def prepare(self, avatar):
        pass

    def audio_features(self, audio, fps):
        return np.zeros((audio.frame_count(fps), 1), np.float32)

    def stream_features(self, sample_rate, fps) -> FeatureStream:
        raise NotImplementedError

    def silence_features(self, n_frames):
        return np.zeros((n_frames, 1), np.float32)

    def render(self, avatar, features, source_indices, *, idle=None):
        self.calls.append((np.asarray(source_indices).copy(), None if idle is None else idle.copy()))
        width, height = avatar.size
        return np.full((len(source_indices), height, width, 3), self.level, np.uint8)


def synthetic_avatar(frame_count: int) -> Avatar:
    frames = np.zeros((frame_count, 8, 10, 3), np.uint8)
    return Avatar(id="synthetic", name="synthetic", frames=frames,
                  landmarks=np.zeros((frame_count, 478, 3), np.float32),
                  boxes=np.zeros((frame_count, 4), np.float32), lower_face=np.zeros((frame_count, 4, 2), np.float32),
                  mouth=np.zeros((frame_count, 20, 2), np.float32), fps=25.0 if frame_count > 1 else 0.0,
                  cache_dir=Path("/nonexistent"))


def test_a_backend_written_to_the_contract_gets_its_options_and_the_idle_motion(fresh_registry):
    register_backend("grey", lambda options: GreyBackend(options.level), GreyOptions)
    with pytest.raises(InvalidArgument, match="colour.*accepts level"):
        get_backend("grey", colour=3)
    backend = get_backend("grey", level=77)
    assert isinstance(backend, GreyBackend) and backend.level == 77

    still = synthetic_avatar(1)
    settings = RenderSettings(fps=25, idle=True, seed=5)
    frames = np.concatenate(list(frame_batches(backend, still, np.zeros((7, 1), np.float32), settings,
                                               start=30, batch=3)))
    assert frames.shape == (7, 8, 10, 3) and (frames == 77).all()
    assert [len(sources) for sources, _ in backend.calls] == [3, 3, 1]
    idle = np.concatenate([motion for _, motion in backend.calls])
    np.testing.assert_array_equal(idle, idle_motion(np.arange(30, 37), 25, seed=5))
    assert all((sources == 0).all() for sources, _ in backend.calls)

    backend.calls.clear()  # a video avatar: looped source frames, no idle motion
    video = synthetic_avatar(4)
    list(frame_batches(backend, video, np.zeros((10, 1), np.float32), settings, batch=10))
    (sources, motion), = backend.calls
    assert motion is None
    np.testing.assert_array_equal(sources, video.source_index(np.arange(10), 25))
    assert sources.max() == 3 and len(set(sources.tolist())) == 4
