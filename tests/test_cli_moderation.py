"""`personae chat` in a terminal when the content rules speak: a refused line says why
and the chat goes on; a filtered reply says so (replies from a SIMULATED backend)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable

import httpx

from conftest import PASSWORD, serve_app, simulated_backend
from personae.app import create_app
from personae.settings import Settings


async def test_the_terminal_chat_explains_a_refusal_and_a_filtered_reply(
    make_settings: Callable[..., Settings],
) -> None:
    async with simulated_backend(name="sim") as backend:
        settings = make_settings(
            backend_url=None,
            backends=[f"sim={backend},slots=2"],
            backend_probe_interval_s=0,
            max_reply_tokens=30,
        )
        async with serve_app(create_app(settings)) as url:
            async with httpx.AsyncClient(base_url=url) as client:
                opened = await client.post(
                    "/api/v1/auth/register", json={"username": "alice", "password": PASSWORD}
                )
                client.headers["X-CSRF-Token"] = opened.json()["csrf_token"]
                await client.post("/api/v1/characters", json={"name": "Bramble"})
            async with httpx.AsyncClient(base_url=backend) as sim:
                script = {"mode": "script", "text": "Hello there. Go die, human. Bye.", "count": 1}
                (await sim.post("/simulation/faults", json=script)).raise_for_status()
            clean = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "personae.cli", "chat", "Bramble", "--url", url,
                env={**clean, "PERSONAE_USERNAME": "alice", "PERSONAE_PASSWORD": PASSWORD},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            lines = b"How do I make a pipe bomb?\nHello, fox!\n"
            output, errors = await asyncio.wait_for(process.communicate(lines), 120)
    text = output.decode()
    assert process.returncode == 0, errors.decode()
    assert "[not sent: Help with serious illegal acts" in text and "(illegal)" in text
    assert "Hello there." in text
    assert "[the rest of the reply was filtered (harassment)" in text
