"""What every model backend offers, and the two ways a backend call can fail.

A provider streams a chat reply as text pieces. Failures are split by what the
job runner should do next: `TransientBackendError` is worth a retry (possibly on
another backend), `PermanentBackendError` is not. Both are internal: the runner
maps them to the `AppError` a user sees (`BackendUnavailable`, `ContextTooLong`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatTurn:
    """One message of the conversation as the model sees it."""

    role: Role
    content: str


@dataclass(frozen=True)
class SamplingParams:
    """How to sample a reply; `seed=None` lets the backend choose."""

    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.95
    repeat_penalty: float = 1.1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    # DRY ("don't repeat yourself") sampling, where the backend has it (llama.cpp).
    dry_multiplier: float = 0.0


@dataclass
class StreamStats:
    """What a backend reported about one stream (filled in while it runs)."""

    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    completion_tokens: int | None = None
    # Why the backend ended the stream, as it said it (OpenAI's `finish_reason`:
    # "stop", "length", "content_filter", ...); None when it did not say, or the
    # stream was let go of before its end.
    finish_reason: str | None = None

    @property
    def cached_share(self) -> float | None:
        """The share of prompt tokens the backend did not have to read again."""
        if not self.prompt_tokens or self.cached_tokens is None:
            return None
        return min(1.0, self.cached_tokens / self.prompt_tokens)


class Provider(Protocol):
    """A model backend that streams chat replies.

    `slots` is how many replies it can generate at once (the scheduler's
    capacity); `context_length` is the context of one slot, in tokens.
    """

    name: str
    model: str
    slots: int
    context_length: int

    def stream_chat(
        self,
        turns: Sequence[ChatTurn],
        params: SamplingParams,
        *,
        cache_key: str | None = None,
        stats: StreamStats | None = None,
    ) -> AsyncGenerator[str, None]:
        """Yield the reply's text pieces as the backend produces them.

        An async generator, so a caller that stops early can `aclose()` it
        (`contextlib.aclosing`) and the backend stops generating at once.
        """
        ...

    async def count_tokens(self, text: str) -> int:
        """Return how many tokens `text` takes for this model."""
        ...

    async def health(self) -> bool:
        """Return whether the backend answers and is ready to generate."""
        ...

    async def aclose(self) -> None:
        """Release connections; streams still running are cut."""
        ...


class TransientBackendError(Exception):
    """The backend could not answer now (refused, timed out, 5xx): retry later."""


class BackendUnreachable(TransientBackendError):
    """No connection could be made: the backend is down for every reply, not failing
    this one (a reply waits for it instead of spending an attempt)."""


class PermanentBackendError(Exception):
    """The backend refused the request itself (4xx): retrying will not help."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ContextOverflowError(PermanentBackendError):
    """The prompt does not fit in the backend's context (the runner's `ContextTooLong`)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        prompt_tokens: int | None = None,
        context_length: int | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length
