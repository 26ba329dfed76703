"""Fixtures: real MLServer processes on free ports, serving model folders written like KEA's."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from kea_runtime.package import write_model_folder

IRIS_INPUTS = [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
IRIS_OUTPUTS = [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
STARTUP_SECONDS = 90.0


def git(cwd: Path, *args: str) -> str:
    """Runs git in `cwd` with a fixed identity (test repositories commit)."""
    return subprocess.run(
        ["git", "-c", "user.name=KEA", "-c", "user.email=kea@example.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mlserver_bin() -> str:
    found = Path(sys.executable).with_name("mlserver")
    return str(found) if found.exists() else (shutil.which("mlserver") or "mlserver")


@dataclass
class Server:
    """A running `mlserver start FOLDER`."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    name: str

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def infer(self, body: dict[str, Any], version: str | None = None) -> httpx.Response:
        path = f"/v2/models/{self.name}"
        if version:
            path += f"/versions/{version}"
        return httpx.post(self.url + path + "/infer", json=body, timeout=30)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30)


def start_server(folder: Path, name: str, wait_ready: bool = True) -> Server:
    """Starts MLServer on free ports (written into the folder's settings.json)."""
    settings_path = folder / "settings.json"
    settings = json.loads(settings_path.read_text()) if settings_path.exists() else {}
    http_port = free_port()
    settings.update(
        http_port=http_port,
        grpc_port=free_port(),
        metrics_port=free_port(),
        host="127.0.0.1",
        metrics_dir=str(folder / ".metrics"),
    )
    settings_path.write_text(json.dumps(settings))
    log_path = folder.parent / f"{folder.name}-mlserver.log"
    log = log_path.open("wb")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [mlserver_bin(), "start", str(folder)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=folder,
        env=env,
        start_new_session=True,
    )
    server = Server(process, f"http://127.0.0.1:{http_port}", log_path, name)
    if wait_ready:
        wait_until_ready(server)
    return server


def wait_until_ready(server: Server, timeout: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"mlserver exited with {server.process.returncode}:\n{server.log}")
        with contextlib.suppress(httpx.HTTPError):
            if server.get(f"/v2/models/{server.name}/ready").status_code == 200:
                return
        time.sleep(0.25)
    raise AssertionError(f"mlserver not ready after {timeout} s:\n{server.log}")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=15)


@pytest.fixture(scope="session")
def serve() -> Iterator[Callable[..., Server]]:
    """Factory starting servers; every one is stopped at the end of the session."""
    started: list[Server] = []

    def _serve(folder: Path, name: str, wait_ready: bool = True) -> Server:
        server = start_server(folder, name, wait_ready=False)
        started.append(server)
        if wait_ready:
            wait_until_ready(server)
        return server

    yield _serve
    for server in started:
        stop_server(server)


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data.astype(np.float32), data.target


def body(x: np.ndarray, name: str = "input-0", datatype: str = "FP32", **extra: Any) -> dict:
    return {
        "inputs": [
            {"name": name, "shape": list(x.shape), "datatype": datatype, "data": x.ravel().tolist()}
        ],
        **extra,
    }


def model_folder(tmp: Path, **kwargs: Any) -> Path:
    return write_model_folder(tmp, **kwargs)
