"""A real `personae serve` in a process where the `[voice]` extra's packages cannot be
imported (as on a server installed without it): the voices list says so and every
voice route answers 501 voice_not_installed, while the rest works."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import NO_BACKEND, PASSWORD, REDIS_URL, assert_problem, wait_until_ready

# Runs `personae serve` with the voice packages made unimportable: a None entry in
# sys.modules is how Python marks a module that must not import (`import` raises
# ModuleNotFoundError, importlib.util.find_spec answers None), and a meta-path finder
# refuses any of their submodules.
LAUNCHER = """
import importlib.abc, sys
REFUSED = ("onnxruntime", "piper", "kokoro_onnx", "faster_whisper")

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in REFUSED:
            raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)")
        return None

sys.meta_path.insert(0, Refuse())
for name in REFUSED:
    sys.modules[name] = None
from personae.cli import main
sys.argv = ["personae", *sys.argv[1:]]
main()
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("PERSONAE_")}
    env.update(
        PERSONAE_ENVIRONMENT="development",
        PERSONAE_DATA_DIR=str(tmp_path / "data"),
        PERSONAE_DATABASE_URL=database_url,
        PERSONAE_BACKEND_URL=NO_BACKEND,
        PERSONAE_LOG_JSON="false",
        PERSONAE_EMBEDDING_MODEL="lexical",
        PERSONAE_GRACEFUL_SHUTDOWN_S="1",
    )
    if REDIS_URL:
        env["PERSONAE_REDIS_URL"] = REDIS_URL
        env["PERSONAE_REDIS_PREFIX"] = f"novoice-{os.getpid()}-{time.monotonic_ns()}"
    log = tmp_path / "server.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, "serve", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url, log)
        yield url
    finally:
        process.terminate()
        process.wait(30)
    assert "Traceback" not in log.read_text(), log.read_text()[-5000:]


def test_without_the_extra_voice_says_not_installed_and_routes_answer_501(server: str) -> None:
    with httpx.Client(base_url=server, timeout=30) as client:
        registered = client.post(
            "/api/v1/auth/register", json={"username": "listener", "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        client.headers["X-CSRF-Token"] = registered.json()["csrf_token"]
        voices = client.get("/api/v1/voices")
        assert voices.status_code == 200
        body = voices.json()
        assert body["installed"] is False and body["voices"] == [] and body["engines"] == []
        for method, path, payload in (
            ("POST", "/api/v1/messages/some-reply/speech", None),
            ("GET", "/api/v1/messages/some-reply/speech", None),
            ("GET", "/api/v1/messages/some-reply/speech/0", None),
            ("POST", "/api/v1/voices/sample", {"voice": {"engine": "piper", "voice": "x"}}),
        ):
            answer = client.request(method, path, json=payload)
            problem = assert_problem(answer, 501, "voice_not_installed")
            assert "[voice]" in problem["detail"]
        # Everything else works as ever.
        made = client.post("/api/v1/characters", json={"name": "Quiet"})
        assert made.status_code == 201, made.text
        assert made.json()["voice"] is None
