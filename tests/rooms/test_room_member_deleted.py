"""A member who deletes their account while a reply they asked for waits in line: the
reply is the room's now (charged to its owner), so the room goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from room_helpers import make_room, wait_quiet

from conftest import PASSWORD, Api, fleet, wait_for_reply
from personae.settings import Settings
from personae.storage.repos import jobs as jobs_repo


async def test_a_member_deleting_their_account_does_not_jam_the_room(
    make_settings: Callable[..., Settings],
) -> None:
    # The first attempt fails and waits 30 s before its retry: the reply stays queued.
    async with fleet(make_settings, {"sim": {"slots": 2}}, job_retry_base_s=30) as (api, urls):
        room = await make_room(api, people=2, names=("Ada",))
        owner, member = room.people
        async with httpx.AsyncClient(base_url=urls["sim"]) as sim:
            armed = await sim.post("/simulation/faults", json={"mode": "status", "count": 1})
            armed.raise_for_status()
        sent = await member.put(f"/api/v1/chats/{room.id}/messages/m1", json={"content": "Hi"})
        assert sent.status_code == 202, sent.text
        reply_id = sent.json()["reply"]["id"]
        await _wait_for_retry(api, reply_id)
        await wait_for_reply(owner, room.id, reply_id, statuses={"queued"})

        deleted = await member.request("DELETE", "/api/v1/me", json={"password": PASSWORD})
        assert deleted.status_code == 200, deleted.text

        # The waiting reply kept its job, now the owner's: it can be stopped...
        async with api.container.database.read() as tx:
            job = await jobs_repo.get_open_job_for_message(tx, reply_id)
        assert job is not None and job.user_id == room.user_ids[0]
        stopped = await owner.post(f"/api/v1/messages/{reply_id}/stop")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["status"] == "stopped"
        # ...and the room's next message gets its reply.
        again = await owner.put(f"/api/v1/chats/{room.id}/messages/o1", json={"content": "Ada?"})
        assert again.status_code == 202, again.text
        assert again.json()["reply"] is not None
        items = await wait_quiet(owner, room.id, 2)
        last = [m for m in items if m["id"] == again.json()["reply"]["id"]]
        assert last and last[0]["status"] == "complete", items


async def _wait_for_retry(api: Api, reply_id: str) -> None:
    """Wait until the reply's job failed once and waits for its retry."""
    async with asyncio.timeout(30):
        while True:
            async with api.container.database.read() as tx:
                job = await jobs_repo.get_open_job_for_message(tx, reply_id)
            if job is not None and job.status == jobs_repo.QUEUED and job.attempts >= 1:
                return
            await asyncio.sleep(0.05)
