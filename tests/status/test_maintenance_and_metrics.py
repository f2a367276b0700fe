"""Read-only maintenance (reads work, sends wait for their reply) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from status_helpers import staff

from conftest import Api, assert_problem, simulated_backend, wait_for_reply
from personae.app import create_app
from personae.settings import Settings


async def _chat(client: httpx.AsyncClient) -> tuple[str, str]:
    character = await client.post(
        "/api/v1/characters", json={"name": "Ren", "first_message": "Hi."}
    )
    assert character.status_code == 201, character.text
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    return character.json()["id"], chat.json()["id"]


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = rf"^{re.escape(name)}(\{{{re.escape(wanted)}\}})? (\S+)$" if wanted else None
    for line in text.splitlines():
        if pattern is None and line.startswith(f"{name} "):
            return float(line.split()[-1])
        if pattern is not None:
            found = re.match(pattern, line)
            if found and found.group(1):
                return float(found.group(2))
    return None


async def test_maintenance_keeps_reads_stores_sends_and_answers_them_when_it_ends(
    make_settings: Callable[..., Settings],
) -> None:
    async with simulated_backend(first_token_ms=1, tokens_per_second=500) as url:
        app = create_app(make_settings(backend_url=url, probe_interval_s=0, max_reply_tokens=8))
        async with app.router.lifespan_context(app):
            api = Api(app)
            admin = await staff(api)
            user = await api.user()
            character_id, chat_id = await _chat(user)
            now = datetime.now(UTC)
            window = {
                "scheduled_for": now.isoformat(),
                "scheduled_until": (now + timedelta(minutes=30)).isoformat(),
            }
            started = await admin.post(
                "/api/v1/admin/maintenances",
                json={"title": "Database upgrade", "status": "in_progress", **window},
            )
            maintenance_id = started.json()["id"]
            api.container.status.forget_maintenance()

            read = await user.get(f"/api/v1/characters/{character_id}")
            assert read.status_code == 200
            assert read.headers["x-personae-maintenance"] == maintenance_id
            history = await user.get(f"/api/v1/chats/{chat_id}/messages")
            assert history.status_code == 200
            refused = await user.patch(f"/api/v1/characters/{character_id}", json={"name": "R"})
            body = assert_problem(refused, 503, "maintenance")
            assert body["retryable"] is True and body["maintenance_id"] == maintenance_id
            assert 30 <= int(refused.headers["retry-after"]) <= 1800
            assert refused.headers["x-personae-maintenance"] == maintenance_id
            created = await user.post("/api/v1/characters", json={"name": "New"})
            assert_problem(created, 503, "maintenance")

            sent = await user.put(f"/api/v1/chats/{chat_id}/messages/m1", json={"content": "Hi"})
            assert sent.status_code == 202, sent.text
            assert sent.headers["x-personae-maintenance"] == maintenance_id
            reply_id = sent.json()["reply"]["id"]
            await asyncio.sleep(1.5)  # several scheduler polls: the reply must still wait
            waiting = await wait_for_reply(user, chat_id, reply_id, statuses={"queued"})
            assert waiting["content"] == ""
            notice = (await user.get("/api/v1/notice")).json()
            assert (notice["kind"], notice["read_only"]) == ("maintenance", True)
            assert notice["queue_length"] == 1
            components = (await user.get("/api/v2/components.json")).json()["components"]
            assert {c["status"] for c in components} == {"under_maintenance"}
            assert (await user.get("/api/v2/status.json")).json()["status"]["indicator"] == (
                "maintenance"
            )

            ended = await admin.patch(
                f"/api/v1/admin/maintenances/{maintenance_id}", json={"status": "completed"}
            )
            assert ended.status_code == 200, ended.text
            reply = await wait_for_reply(user, chat_id, reply_id, timeout_s=20)
            assert reply["status"] == "complete" and reply["content"]
            after = await user.get(f"/api/v1/characters/{character_id}")
            assert "x-personae-maintenance" not in after.headers
            await api.aclose()


async def test_the_maintenance_setting_forces_read_only_mode(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(maintenance_mode=True, probe_interval_s=0))
    async with app.router.lifespan_context(app):
        api = Api(app)
        public = api.client()
        response = await public.get("/api/v2/status.json")
        assert response.headers["x-personae-maintenance"] == "settings"
        refused = await public.post(
            "/api/v1/auth/register", json={"username": "someone", "password": "x" * 12}
        )
        assert_problem(refused, 503, "maintenance")
        assert refused.headers["retry-after"] == "300"
        await api.aclose()


async def test_metrics_have_requests_replies_probes_and_queue(
    make_settings: Callable[..., Settings],
) -> None:
    async with simulated_backend(first_token_ms=1, tokens_per_second=500) as url:
        app = create_app(make_settings(backend_url=url, probe_interval_s=0, max_reply_tokens=8))
        async with app.router.lifespan_context(app):
            api = Api(app)
            user = await api.user()
            _, chat_id = await _chat(user)
            sent = await user.put(f"/api/v1/chats/{chat_id}/messages/m1", json={"content": "Hi"})
            await wait_for_reply(user, chat_id, sent.json()["reply"]["id"])
            await api.container.probes.run_round()
            await user.get("/api/v1/characters/unknown-id")
            response = await api.client().get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            text = response.text
            route = "/api/v1/chats/{chat_id}/messages/{client_id}"
            assert _sample(text, "personae_http_requests_total", method="PUT", route=route,
                           status="202") == 1  # fmt: skip
            by_id = "/api/v1/characters/{character_id}"
            assert _sample(text, "personae_http_requests_total", method="GET", route=by_id,
                           status="404") == 1  # fmt: skip
            assert _sample(text, "personae_replies_total", state="complete") == 1
            assert _sample(text, "personae_reply_first_token_seconds_count") == 1
            assert _sample(text, "personae_reply_tokens_per_second_count") == 1
            assert _sample(text, "personae_backend_up", backend="remote") == 1
            assert _sample(text, "personae_probe_ok", component="database") == 1
            assert _sample(text, "personae_probes_total", component="event_log", result="ok") == 1
            assert _sample(text, "personae_queue_length") == 0
            # The one process leads: it exports the cluster's figures too.
            assert _sample(text, "personae_leader") == 1
            assert _sample(text, "personae_cluster_queue_length", tier="user") == 0
            assert _sample(text, "personae_cluster_queue_length", tier="plus") == 0
            assert _sample(text, "personae_cluster_queue_oldest_wait_seconds") == 0
            assert _sample(text, "personae_cluster_backend_slots", backend="remote") == 4
            assert _sample(text, "personae_cluster_backend_slots_busy", backend="remote") == 0
            assert chat_id not in text  # route templates, never raw paths
            await api.aclose()


async def test_two_apps_in_one_process_have_their_own_metrics(api: Api) -> None:
    first = await api.client().get("/metrics")
    second_app = create_app(api.container.settings)
    second_api = Api(second_app)
    second = await second_api.client().get("/metrics")
    await second_api.aclose()
    await second_app.state.container.database.dispose()
    assert first.status_code == second.status_code == 200
    assert _sample(second.text, "personae_http_requests_total", method="GET", route="/metrics",
                   status="200") is None  # fmt: skip
