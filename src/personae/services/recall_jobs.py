"""Indexing for recall: a background job that gives older messages their vectors.

A reply's prompt only embeds its query; when messages have left a chat's recent
history without vectors, the prompt queues a job of kind `recall_index` with the
summaries' priority (every waiting reply goes first). The job needs no inference
backend, so it gives its slot back at once, and it embeds on one low-priority
thread, a chunk at a time, each chunk stored as it is made.
"""

from __future__ import annotations

import logging
import time

from personae.services.job_state import JobControl, Outcome
from personae.services.recall import Recall
from personae.storage.db import Database
from personae.storage.repos import jobs as job_repo

log = logging.getLogger("personae.recall")


class RecallIndexJobs:
    """Runs `recall_index` jobs: vectors for the messages before the payload's position."""

    def __init__(self, database: Database, recall: Recall) -> None:
        self._db = database
        self._recall = recall

    async def run(self, job: job_repo.JobRecord, control: JobControl) -> Outcome:
        started = time.monotonic()
        control.free_slot()
        before = int(job.payload.get("before_position", 0))

        def stop() -> bool:
            return control.stop_requested.is_set() or control.should_pause()

        stored = 0
        status, note = job_repo.DONE, None
        try:
            stored = await self._recall.index(job.chat_id or "", before_position=before, stop=stop)
        # Failed, not retried: a message the embedder cannot take must not loop; a later
        # turn queues a new job.
        except Exception as error:
            log.exception("indexing for recall failed", extra={"chat_id": job.chat_id})
            status, note = job_repo.FAILED, f"{type(error).__name__}: {error}"
        if status == job_repo.DONE and stop():
            note = "interrupted; a later turn queues the rest"
        async with self._db.write() as tx:
            await job_repo.finish(tx, job.id, status, note)
        log.info("recall index job ended", extra={"chat_id": job.chat_id, "stored": stored})
        return Outcome(status, time.monotonic() - started)
