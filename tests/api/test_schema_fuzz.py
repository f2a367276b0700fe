"""Schemathesis over the OpenAPI document, against a real `personae serve` on 127.0.0.1
with a signed-in admin (every route does real work, staff ones included).

For every operation, a bounded number of generated requests (the same ones each run:
derandomized): no answer is a 5xx, every answer's status is one the document declares,
and its body and content type match what the document says for that status. The run
stays within BUDGET_S; each operation's failures are collected and reported together.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.core.failures import FailureGroup

from conftest import NO_BACKEND, PASSWORD, REDIS_URL, wait_until_ready
from personae.app import create_app
from personae.settings import Settings

EXAMPLES_PER_OPERATION = int(os.environ.get("PERSONAE_TEST_FUZZ_EXAMPLES", "12"))
# The whole run's budget: operations past it get fewer examples, never none.
BUDGET_S = float(os.environ.get("PERSONAE_TEST_FUZZ_BUDGET_S", "120"))
# Operations left out, and why.
SKIPPED = {
    # It would end the session every other request runs with.
    ("POST", "/api/v1/auth/logout"),
    # An event stream never ends: it is fuzzed for its status in test_events.
    ("GET", "/api/v1/chats/{chat_id}/events"),
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    # Invalid data is never taken (2xx); a method the address lacks is a 405.
    negative_data_rejection,
    unsupported_method,
]
# Not checked: positive_data_acceptance. Schema-valid requests may still be refused,
# 422 for what a schema cannot say (a weak password, NUL characters, a webhook to a
# non-http address, a maintenance that ends before it starts).


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _set_role(env: dict[str, str], username: str, role: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "personae.cli", "user", "set-role", username, role],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture
def server(
    database_url: str, tmp_path: Path, voice_models_dir: Path
) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    """The server's URL, the signed-in admin's headers, and the ids of its things."""
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("PERSONAE_")}
    env.update(
        PERSONAE_ENVIRONMENT="development",
        PERSONAE_DATA_DIR=str(tmp_path / "data"),
        PERSONAE_DATABASE_URL=database_url,  # SQLite, or PostgreSQL when the suite runs on it
        PERSONAE_BACKEND_URL=NO_BACKEND,
        PERSONAE_SEED_DEMO="true",
        PERSONAE_LOG_JSON="false",
        PERSONAE_EMBEDDING_MODEL="lexical",
        PERSONAE_VOICE_DIR=str(voice_models_dir),  # the voice routes are fuzzed working
        PERSONAE_GRACEFUL_SHUTDOWN_S="1",
        PERSONAE_REGISTER_RATE_PER_IP="10000/hour",
        PERSONAE_LOGIN_RATE_PER_IP="10000/minute",
        PERSONAE_SEND_RATE_PER_USER="10000/minute",
        PERSONAE_QUEUE_MAX_PER_USER="10000",
    )
    if REDIS_URL:
        env["PERSONAE_REDIS_URL"] = REDIS_URL
        env["PERSONAE_REDIS_PREFIX"] = f"fuzz-{os.getpid()}-{time.monotonic_ns()}"
    log = tmp_path / "server.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "personae.cli", "serve", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url, log)
        with httpx.Client(base_url=url, timeout=30) as client:
            registered = client.post(
                "/api/v1/auth/register", json={"username": "fuzzer", "password": PASSWORD}
            )
            assert registered.status_code == 201, registered.text
            _set_role(env, "fuzzer", "admin")
            cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
            headers = {"Cookie": cookies, "X-CSRF-Token": registered.json()["csrf_token"]}
            client.headers.update(headers)
            things = _make_things(client)
        yield url, headers, things
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        server_errors = [line for line in log.read_text().splitlines() if "Traceback" in line]
        assert not server_errors, log.read_text()[-5000:]


def _make_things(client: httpx.Client) -> dict[str, str]:
    """A character, a chat with a message, a memory, a persona, a token, an incident:
    valid requests name them by path parameter, so they reach past the 404."""

    def created(response: httpx.Response) -> dict[str, Any]:
        assert response.status_code in (200, 201, 202), response.text
        body: dict[str, Any] = response.json()
        return body

    tiny_png = (
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4"
        "z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
    )
    character = created(
        client.post(
            "/api/v1/characters", json={"name": "Fox", "description": "a fox", "avatar": tiny_png}
        )
    )
    chat = created(client.post("/api/v1/chats", json={"character_id": character["id"]}))
    sent = created(client.put(f"/api/v1/chats/{chat['id']}/messages/m1", json={"content": "Hi"}))
    memory = created(client.post(f"/api/v1/chats/{chat['id']}/memories", json={"content": "Tea"}))
    persona = created(client.post("/api/v1/personas", json={"name": "Wanderer"}))
    token = created(client.post("/api/v1/tokens", json={"name": "t"}))
    incident = created(client.post("/api/v1/admin/incidents", json={"title": "t", "body": "b"}))
    me = created(client.get("/api/v1/me"))
    return {
        "character_id": character["id"],
        "chat_id": chat["id"],
        "client_id": "m1",
        "message_id": sent["message"]["id"],
        "memory_id": memory["id"],
        "persona_id": persona["id"],
        "token_id": token["id"],
        "incident_id": incident["id"],
        "user_id": me["id"],
        "image_id": character["avatar"].removeprefix("/api/v1/images/").partition("?")[0],
    }


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    server: tuple[str, dict[str, str], dict[str, str]],
    examples: int,
) -> list[str]:
    """The distinct failures of `examples` generated requests to one operation."""
    url, headers, things = server
    failures: dict[str, str] = {}
    # Valid requests go to real things (what an operation deletes is gone for the next).
    names = re.findall(r"\{(\w+)\}", operation.path)
    known = {name: things[name] for name in names if name in things}
    path_parameters = known if mode is GenerationMode.POSITIVE and known else None

    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @hypothesis.given(
        case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
    )
    def run(case: Any) -> None:
        response = case.call(base_url=url, headers=headers, timeout=30)
        checks = CHECKS
        if response.status_code == 413:
            # A body past the size limit is refused before it is read: that refusal
            # (documented, problem+json) is not one schemathesis counts as one.
            checks = [check for check in CHECKS if check is not negative_data_rejection]
        try:
            case.validate_response(response, checks=checks)
        except (AssertionError, FailureGroup) as failure:
            # One report per kind of failure (the check's line, "- ST105 ...").
            kinds = [line for line in str(failure).splitlines() if line.startswith("- ")]
            failures.setdefault(" ".join(kinds) or str(failure), str(failure))

    # Unsatisfiable: nothing invalid to send (an operation without parameters or body).
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        run()
    return list(failures.values())


def test_the_api_keeps_to_its_openapi_document(
    server: tuple[str, dict[str, str], dict[str, str]],
) -> None:
    url = server[0]
    document = httpx.get(f"{url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [
        operation
        for operation in operations
        if (operation.method.upper(), operation.path) not in SKIPPED
    ]
    # A maintenance the fuzzer schedules may be under way at once, and a maintenance
    # makes every write a 503 (as it should): those operations go last.
    operations.sort(key=lambda operation: "/maintenances" in operation.path)
    assert len(operations) > 50
    started = time.monotonic()
    failures: list[str] = []
    for done, operation in enumerate(operations):
        left = max(BUDGET_S - (time.monotonic() - started), 0.0)
        per_operation_s = left / (len(operations) - done)
        # Out of time: fewer examples, at least two (a bug there must still show).
        examples = EXAMPLES_PER_OPERATION if per_operation_s > 1.0 else 2
        # Valid requests (real work done), then invalid ones (refused, never a 500).
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for failure in _fuzz(operation, mode, server, examples):
                failures.append(
                    f"{mode.value} {operation.method.upper()} {operation.path}: {failure}"
                )
    assert not failures, "\n\n".join(failures)


async def test_every_operation_declares_its_problem_responses(
    make_settings: Callable[..., Settings],
) -> None:
    document = create_app(make_settings()).openapi()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code", "request_id"} <= set(problem["required"])
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            expected = {"400", "404", "422", "500", "503"}
            if path.startswith("/api/v1/"):
                expected |= {"401", "403", "429"}
            assert expected <= set(responses), (method, path, sorted(responses))
            for status in expected:
                assert list(responses[status]["content"]) == ["application/problem+json"]
    png = document["paths"]["/api/v1/characters/{character_id}/card.png"]["get"]
    assert list(png["responses"]["200"]["content"]) == ["image/png"]
