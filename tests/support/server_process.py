"""A real `facecast serve` in a child process on a free loopback port, for tests and benchmarks.

    with ServerProcess(env={"FACECAST_API_TOKEN": "..."}) as server:
        httpx.get(server.url + "/health", headers=server.headers)

    @pytest.fixture(scope="module")                 # the tests' module fixture
    def server(tmp_path_factory):
        with served(tmp_path_factory.mktemp("server"), {"FACECAST_API_TOKEN": TOKEN}) as proc:
            yield proc

    client = client_fixture(timeout_s=30.0)         # an httpx.Client on it, with its token

    def test_x(client):
        assert_alive(client)
        assert detail(client.get("/sessions/nope"), 404)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import httpx

READY_TIMEOUT_S = 180.0  # s for imports, the default avatar and the warm-up (minutes on a loaded 2-core CI machine)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """Start `python -m facecast.server` and wait until /health says ok; stop it on exit.

    env: extra environment (FACECAST_*); args: extra serve options; log: file for its output.
    """

    def __init__(self, env: dict | None = None, args: list[str] | None = None, log: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = (env or {}).get("FACECAST_API_TOKEN")
        self.env = {**os.environ, **(env or {})}
        self.args = args or []
        self.log_path = log or Path(tempfile.mkstemp(prefix="facecast-serve-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def start(self) -> "ServerProcess":
        log = open(self.log_path, "wb")
        cmd = [sys.executable, "-m", "facecast.server", "--port", str(self.port), "--log-level", "warning", *self.args]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"facecast serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/health", headers=self.headers, timeout=1.0).json().get("status") == "ok":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"facecast serve did not become ready in {READY_TIMEOUT_S:g} s:\n{self.output()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def served(data_dir: Path, env: dict | None = None, args: list[str] | None = None) -> Iterator[ServerProcess]:
    """A server keeping its files in `data_dir` (FACECAST_SERVER_DIR, log in serve.log) for the
    length of the block; on a clean exit, asserts that it is still up and logged no traceback."""
    env = {"FACECAST_SERVER_DIR": str(data_dir), **(env or {})}
    with ServerProcess(env=env, args=args, log=Path(data_dir) / "serve.log") as proc:
        yield proc
        assert proc.alive(), f"the server died during the tests:\n{proc.output()}"
        assert "Traceback" not in proc.output(), proc.output()


def client_fixture(timeout_s: float = 30.0, scope: str = "module") -> Callable:
    """A pytest fixture (assign it to a name in a test module) that yields an httpx.Client on the
    module's `server` fixture (a ServerProcess): its URL, its token's headers, `timeout_s` s per request."""
    import pytest

    @pytest.fixture(scope=scope)
    def _client(server: ServerProcess) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=timeout_s) as client:
            yield client

    return _client


def detail(response: httpx.Response, status: int) -> str:
    """The JSON detail of an error response, checking its status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    return body["detail"]


def assert_alive(client: httpx.Client) -> None:
    """The server behind `client` answers /health with status ok."""
    assert client.get("/health").json()["status"] == "ok"
