"""The admin page's Capacity section: the planner's table over recorded jobs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import insert

from browser.helpers import DESKTOP, new_page, register
from personae.storage.tables import jobs
from personae.storage.types import new_id, utcnow


async def _record_replies(web: Any, count: int, service_s: float) -> None:
    """`count` replies a second apart over the last minutes, each `service_s` long."""
    start = utcnow() - timedelta(seconds=count + 60)
    async with web.api.container.database.write() as tx:
        for i in range(count):
            created = start + timedelta(seconds=i)
            await tx.execute(
                insert(jobs).values(
                    id=new_id(), kind="reply", status="done", priority=0, payload={},
                    available_at=created, created_at=created, started_at=created,
                    finished_at=created + timedelta(seconds=service_s),
                )
            )  # fmt: skip


async def test_an_admin_sees_the_slots_the_busiest_hour_needs(browser: Any, start_web: Any) -> None:
    async with start_web() as web:
        # One reply a second of 1 s each: 1 slot busy on average, on the 2 configured
        # (p95 wait 1.9 s).
        await _record_replies(web, 120, 1.0)
        page = await new_page(browser, web, DESKTOP)
        await register(page, "root")
        await web.api.container.accounts.set_role("root", "admin")
        await page.goto("/admin")
        section = page.locator("section#capacity")
        table = section.get_by_role("table", name="Slots needed by month")
        await table.wait_for()
        assert await table.locator("tbody tr").count() == 7
        # About 50% (the hour boundary may split the two minutes of traffic).
        assert "% on 2 slots" in await section.inner_text()

        await section.get_by_label("Growth a month (%)").fill("0")
        await section.get_by_role("button", name="Plan").click()
        await section.get_by_text("while traffic does not grow").wait_for()
