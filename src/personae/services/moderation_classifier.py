"""The classifier layer of moderation, chosen by PERSONAE_MODERATION_CLASSIFIER.

`openai`: an OpenAI-compatible moderation endpoint (`POST {url}/v1/moderations`,
answered in OpenAI's shape: results[0].categories and category_scores).
`guard`: a guard model (Llama Guard style) prompted through one of the configured
inference backends; it answers "safe", or "unsafe" and a line of category ids.

A classifier that fails or runs out of time raises `ClassifierUnavailable`; the
moderation service then lets the text through on the rules alone (fail open), logs a
warning and counts it: a broken classifier must not stop every chat.
"""

from __future__ import annotations

import asyncio
import re
from typing import Protocol

import httpx

from personae.llm.base import ChatTurn, SamplingParams
from personae.llm.router import Router

# OpenAI's category names (both generations of its models) to Personae's codes.
_OPENAI_CATEGORIES = {
    "sexual/minors": "sexual_minors",
    "self-harm": "self_harm",
    "self-harm/intent": "self_harm",
    "self-harm/instructions": "self_harm",
    "violence": "violence",
    "violence/graphic": "violence",
    "hate": "hate",
    "hate/threatening": "hate",
    "harassment": "harassment",
    "harassment/threatening": "harassment",
    "sexual": "sexual",
    "illicit": "illegal",
    "illicit/violent": "illegal",
}
# The guard prompt's category ids (Llama Guard's "S1", ...) and what they mean.
GUARD_CATEGORIES = {
    "S1": ("sexual_minors", "Sexual content involving minors."),
    "S2": ("self_harm", "Self-harm: suicide, self-injury, disordered eating."),
    "S3": ("violence", "Violent crimes and graphic violence, threats of violence."),
    "S4": ("hate", "Hate: demeaning people for protected characteristics."),
    "S5": ("harassment", "Harassment: abuse or threats aimed at a person."),
    "S6": ("sexual", "Sexual content between adults."),
    "S7": ("illegal", "Help with serious illegal acts: weapons, drugs, fraud."),
}
_GUARD_IDS = re.compile(r"\bS(\d{1,2})\b")


class ClassifierUnavailable(Exception):
    """The classifier gave no usable answer (down, timed out, or answered nonsense)."""


class Classifier(Protocol):
    name: str

    async def classify(self, text: str) -> set[str]:
        """The Personae categories the classifier flags in `text`."""
        ...

    async def aclose(self) -> None: ...


class OpenAIModeration:
    """An OpenAI-compatible `/v1/moderations` endpoint."""

    name = "openai"

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None,
        model: str | None,
        timeout_s: float,
        threshold: float | None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout_s, trust_env=False
        )
        self._model = model
        self._threshold = threshold

    async def classify(self, text: str) -> set[str]:
        body: dict[str, object] = {"input": text}
        if self._model:
            body["model"] = self._model
        try:
            response = await self._client.post("/v1/moderations", json=body)
            response.raise_for_status()
            result = response.json()["results"][0]
            flags = result.get("categories") or {}
            scores = result.get("category_scores") or {}
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            raise ClassifierUnavailable(f"moderation endpoint: {e!r}") from e
        found = set()
        for name, category in _OPENAI_CATEGORIES.items():
            score = scores.get(name)
            over = (
                self._threshold is not None
                and isinstance(score, int | float)
                and score >= self._threshold
            )
            if flags.get(name) is True or over:
                found.add(category)
        return found

    async def aclose(self) -> None:
        await self._client.aclose()


def guard_prompt(text: str) -> list[ChatTurn]:
    """A Llama Guard style prompt: the category list, the text, the answer's shape."""
    categories = "\n".join(f"{key}: {meaning}" for key, (_, meaning) in GUARD_CATEGORIES.items())
    instruction = (
        "Task: Check if there is unsafe content in the message below according to our "
        "safety policy with the categories below.\n\n<BEGIN UNSAFE CONTENT CATEGORIES>\n"
        f"{categories}\n<END UNSAFE CONTENT CATEGORIES>\n\n<BEGIN MESSAGE>\n{text}\n"
        "<END MESSAGE>\n\nProvide your safety assessment for the message above:\n"
        "- First line must read 'safe' or 'unsafe'.\n"
        "- If unsafe, a second line must include a comma-separated list of violated "
        "categories."
    )
    return [ChatTurn(role="user", content=instruction)]


def parse_guard_answer(answer: str) -> set[str]:
    """The categories of a guard model's answer ("safe", or "unsafe\\nS1,S3")."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    if not lines:
        raise ClassifierUnavailable("the guard model answered nothing")
    verdict = lines[0].lower()
    if verdict.startswith("safe"):
        return set()
    if not verdict.startswith("unsafe"):
        raise ClassifierUnavailable(f"the guard model answered {lines[0][:40]!r}")
    found = set()
    for number in _GUARD_IDS.findall(" ".join(lines[1:]) or lines[0]):
        known = GUARD_CATEGORIES.get(f"S{int(number)}")
        if known is not None:
            found.add(known[0])
    if not found:  # a refusal must name its category: an unnamed one is no answer
        raise ClassifierUnavailable(f"the guard model named no known category: {answer!r}")
    return found


class GuardModel:
    """A guard model answering through one of the configured inference backends."""

    name = "guard"

    def __init__(self, router: Router, *, backend: str | None, timeout_s: float) -> None:
        self._router = router
        self._backend = backend
        self._timeout_s = timeout_s

    async def classify(self, text: str) -> set[str]:
        try:
            async with asyncio.timeout(self._timeout_s):
                answer = await self._ask(text)
        except ClassifierUnavailable:
            raise
        except Exception as error:  # down, timed out, refused: all mean "no answer"
            raise ClassifierUnavailable(f"guard model: {error!r}") from error
        return parse_guard_answer(answer)

    async def _ask(self, text: str) -> str:
        backends = [
            b for b in self._router.backends if self._backend in (None, b.name) and not b.retired
        ]
        for backend in backends:
            choice = await self._router.take_backend(backend)
            if choice is None:
                continue
            try:
                pieces = backend.provider.stream_chat(
                    guard_prompt(text), SamplingParams(max_tokens=16, temperature=0.0)
                )
                return "".join([piece async for piece in pieces])
            finally:
                await choice.give_back()
        raise ClassifierUnavailable("no guard backend has room")

    async def aclose(self) -> None:
        return None
