"""The body of a transcription (talking instead of typing)."""

from __future__ import annotations

from personae.api.schemas.common import Output


class TranscriptionPublic(Output):
    """What was heard; not sent: the user fixes it and sends it as typed text."""

    text: str
    language: str
    duration_s: float
