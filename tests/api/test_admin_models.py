"""GET /api/v1/admin/models: which model answers, and what a bigger one would give."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Api, assert_problem
from personae.app import create_app
from personae.llm import catalogue
from personae.llm.router import Router
from personae.services.models import models_view
from personae.settings import Settings


async def test_an_admin_sees_the_remote_model_and_no_advice_for_it(api: Api) -> None:
    admin = await api.user("root")
    await api.container.accounts.set_role("root", "admin")
    response = await admin.get("/api/v1/admin/models")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answering"] == [
        {
            "backend": "remote",
            "model": "default",
            "label": "default",
            "embedded": False,
            "catalogue_name": None,
            "params": None,
        }
    ]
    # A remote server's size is not known here: nothing to suggest.
    assert body["suggestion"] is None


async def test_moderators_users_and_strangers_are_refused(api: Api) -> None:
    moderator = await api.user("mod")
    await api.container.accounts.set_role("mod", "moderator")
    assert_problem(await moderator.get("/api/v1/admin/models"), 403, "forbidden")
    assert_problem(await (await api.user()).get("/api/v1/admin/models"), 403, "forbidden")
    assert_problem(await api.client().get("/api/v1/admin/models"), 401, "not_authenticated")


async def test_an_api_process_names_the_embedded_model_its_workers_run(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(role="api", backend_url=None))
    async with app.router.lifespan_context(app):
        helper = Api(app)
        admin = await helper.user("root")
        await helper.container.accounts.set_role("root", "admin")
        body = (await admin.get("/api/v1/admin/models")).json()
        await helper.aclose()
    assert body["answering"][0]["label"] == "SmolLM2-135M-Instruct"
    assert body["answering"][0]["embedded"] is True
    suggestion = body["suggestion"]
    assert suggestion["command"] == f"personae models pull {suggestion['name']}"
    assert suggestion["text"].startswith("SmolLM2-135M-Instruct (135M): a ")


@pytest.mark.parametrize(
    ("ram_gb", "suggested"),
    [(None, "qwen2.5-0.5b"), (0.5, "qwen2.5-0.5b"), (2.0, "qwen2.5-0.5b"), (3.0, "qwen2.5-1.5b")],
)
def test_the_suggestion_is_the_bigger_of_two_steps_that_fits(
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Callable[..., Settings],
    ram_gb: float | None,
    suggested: str,
) -> None:
    monkeypatch.setattr(catalogue, "machine_ram_gb", lambda: ram_gb)
    view = models_view(Router([]), make_settings(backend_url=None))
    assert view.suggestion is not None and view.suggestion.name == suggested
    if ram_gb == 0.5:
        assert "more than this machine's" in view.suggestion.text


def test_the_biggest_model_and_a_file_of_ones_own_get_no_advice(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    biggest = catalogue.CATALOGUE[-1]
    for model_path, label in [
        (tmp_path / biggest.file, biggest.label),
        (tmp_path / "my-finetune.gguf", "my-finetune"),
    ]:
        view = models_view(Router([]), make_settings(backend_url=None, model_path=model_path))
        assert view.answering[0].label == label and view.suggestion is None
