"""Moderation of what users send and what characters reply, and why.

Two layers decide which categories a text falls in: the rules (word and pattern
lists, moderation_rules.py), always; and a classifier (moderation_classifier.py)
when one is configured. The policy then says what each category does in a chat with
a character of a given content rating: block, warn (allowed, with a warning) or allow.

- A user message a category blocks is refused before anything is stored
  (`ContentRefused`, 422 `content_refused`) with the category and a plain reason.
- A user message showing intent of self-harm is never refused: it is sent, and the
  answer carries crisis resources (crisis.py).
- A reply is checked sentence by sentence as it streams (`SentenceGate`); a blocked
  sentence ends it in state `filtered`, keeping the text before that sentence.

A classifier that fails or times out lets the text through on the rules alone (fail
open): the failure is logged and counted (personae_moderation_classifier_failures).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal, Protocol

from personae.errors import ContentRefused, InputTooComplex, WorkTimedOut
from personae.llm.router import Router
from personae.offload import bounded
from personae.services.moderation_classifier import (
    Classifier,
    ClassifierUnavailable,
    GuardModel,
    OpenAIModeration,
)
from personae.services.moderation_rules import CATEGORIES, Action, RuleSet, RulesFile
from personae.settings import Settings
from personae.voice.sentences import SENTENCE_END

log = logging.getLogger("personae.moderation")

Direction = Literal["input", "output"]
APPEAL_PATH = "/api/v1/appeals"
SELF_HARM = "self_harm"

_REASONS = {
    "sexual_minors": "Sexual content involving minors is never allowed on Personae.",
    "self_harm": "This talks about self-harm.",
    "violence": "Graphic violence or threats of violence are not allowed in chats with "
    "characters rated {rating}.",
    "hate": "Content that attacks people for who they are is not allowed.",
    "harassment": "Threats or abuse aimed at a person are not allowed.",
    "sexual": "Sexual content is not allowed in chats with characters rated {rating}.",
    "illegal": "Help with serious illegal acts (weapons, hard drugs, fraud) is not allowed.",
}
_WARNINGS = {
    "violence": "This chat's character is rated {rating}; violent content may upset some readers.",
}


def reason(category: str, rating: str) -> str:
    """Why a category is refused, in plain words."""
    return _REASONS.get(category, "This breaks the content rules.").format(rating=rating)


class ModerationRecorder(Protocol):
    def moderation_action(self, direction: str, category: str, action: str) -> None:
        """A text was refused, filtered, warned about or met with crisis resources."""
        ...

    def moderation_classifier_failed(self, classifier: str) -> None:
        """The classifier gave no answer: the text went through on the rules alone."""
        ...


@dataclass(frozen=True)
class Verdict:
    """The categories a text falls in, and what the policy does with each."""

    actions: dict[str, Action] = field(default_factory=dict)
    # Whether a classifier answered (False: none configured, or it failed).
    classified: bool = False

    @property
    def blocked(self) -> str | None:
        """The first blocked category (in CATEGORIES order), or None."""
        return next((c for c in CATEGORIES if self.actions.get(c) == "block"), None)

    @property
    def warnings(self) -> list[str]:
        return [c for c in CATEGORIES if self.actions.get(c) == "warn"]

    @property
    def self_harm(self) -> bool:
        return SELF_HARM in self.actions


@dataclass(frozen=True)
class InputCheck:
    """What a user message may carry with it once sent."""

    warnings: list[dict[str, str]]
    self_harm: bool


def build_classifier(settings: Settings, router: Router | None) -> Classifier | None:
    """The classifier the settings choose, or None."""
    kind = settings.moderation_classifier
    timeout = settings.moderation_classifier_timeout_s
    if kind == "openai":
        assert settings.moderation_classifier_url is not None  # checked by the settings
        return OpenAIModeration(
            settings.moderation_classifier_url,
            api_key=settings.moderation_classifier_api_key,
            model=settings.moderation_classifier_model,
            timeout_s=timeout,
            threshold=settings.moderation_classifier_threshold,
        )
    if kind == "guard" and router is not None:
        return GuardModel(router, backend=settings.moderation_guard_backend, timeout_s=timeout)
    return None


class ModerationService:
    """Checks texts against the rules, the classifier and the policy."""

    def __init__(
        self,
        settings: Settings,
        *,
        router: Router | None = None,
        recorder: ModerationRecorder | None = None,
        classifier: Classifier | None = None,
    ) -> None:
        self._settings = settings
        self._recorder = recorder
        self.enabled = settings.moderation_enabled
        self._rules = RulesFile(settings.moderation_rules_file) if self.enabled else None
        self._classifier = classifier or (
            build_classifier(settings, router) if self.enabled else None
        )

    async def aclose(self) -> None:
        if self._classifier is not None:
            await self._classifier.aclose()

    async def verdict(
        self, text: str, rating: str, direction: Direction, *, classify: bool = True
    ) -> Verdict:
        """The categories `text` falls in and their actions for a character of `rating`."""
        if self._rules is None:
            return Verdict()
        rules = self._rules

        def match() -> tuple[RuleSet, list[str]]:
            current = rules.current()  # (a changed file is read and compiled here too)
            return current, current.match(text)

        policy, found = await bounded(
            match,
            budget_s=self._settings.cpu_budget_s,
            what="checking the message against the content rules",
            input_at_fault=direction == "input",
        )
        hits = set(found)
        classified = False
        if classify and self._classifier is not None:
            try:
                hits |= await self._classifier.classify(text)
                classified = True
            except ClassifierUnavailable as error:
                log.warning(
                    "moderation classifier failed; the rules alone decided",
                    extra={"classifier": self._classifier.name, "error": str(error)},
                )
                if self._recorder is not None:
                    self._recorder.moderation_classifier_failed(self._classifier.name)
        actions: dict[str, Action] = {}
        for category in CATEGORIES:
            if category in hits:
                action = policy.action(category, rating)
                if category == SELF_HARM and direction == "input" and action == "block":
                    action = "allow"  # a user's cry for help is answered, never refused
                actions[category] = action
        return Verdict(actions, classified)

    async def check_input(self, text: str, rating: str) -> InputCheck:
        """Refuse a user message a category blocks (ContentRefused); otherwise what it
        carries: warnings, and whether to show crisis resources."""
        verdict = await self.verdict(text, rating, "input")
        blocked = verdict.blocked
        if blocked is not None:
            self._count("input", blocked, "refused")
            raise ContentRefused(
                "Your message was not sent and nothing was stored; it is still in your "
                "draft. Change it and send it again, or ask for a review if you think "
                "this is a mistake.",
                extra={
                    "category": blocked,
                    "reason": reason(blocked, rating),
                    "appeal": APPEAL_PATH,
                },
            )
        for category in verdict.warnings:
            self._count("input", category, "warned")
        if verdict.self_harm:
            self._count("input", SELF_HARM, "crisis")
        warnings = [
            {"category": c, "reason": _WARNINGS.get(c, reason(c, rating)).format(rating=rating)}
            for c in verdict.warnings
        ]
        return InputCheck(warnings=warnings, self_harm=verdict.self_harm)

    async def check_output(self, sentence: str, rating: str) -> str | None:
        """The category that blocks this sentence of a reply, or None. Rules only unless
        PERSONAE_MODERATION_CLASSIFY_OUTPUT is on (a classifier call per sentence holds
        the stream). A check out of time lets the sentence through (and logs it)."""
        try:
            verdict = await self.verdict(
                sentence,
                rating,
                "output",
                classify=self._settings.moderation_classify_output,
            )
        except (WorkTimedOut, InputTooComplex):
            log.warning("checking a reply's sentence ran out of time; it was let through")
            return None
        if verdict.blocked is not None:
            self._count("output", verdict.blocked, "filtered")
        return verdict.blocked

    def _count(self, direction: str, category: str, action: str) -> None:
        if self._recorder is not None:
            self._recorder.moderation_action(direction, category, action)


class SentenceGate:
    """Checks a reply's sentences as each one is completed.

    `checked` is how much of the text has been found clean; `feed` checks the
    sentences completed since, `finish` the unfinished rest when the stream ends.
    A blocked sentence gives (where it starts, its category).
    """

    def __init__(self, moderation: ModerationService, rating: str) -> None:
        self._moderation = moderation
        self._rating = rating
        self.checked = 0

    def reset(self, length: int) -> None:
        """The text was cut back to `length` characters (written again from there)."""
        self.checked = min(self.checked, length)

    async def feed(self, text: str) -> tuple[int, str] | None:
        ends = [m.end() for m in SENTENCE_END.finditer(text, self.checked)]
        for end in ends:
            hit = await self._check(text, end)
            if hit is not None:
                return hit
        return None

    async def finish(self, text: str) -> tuple[int, str] | None:
        return await self._check(text, len(text))

    async def _check(self, text: str, end: int) -> tuple[int, str] | None:
        start = self.checked
        sentence = text[start:end]
        if sentence.strip():
            category = await self._moderation.check_output(sentence, self._rating)
            if category is not None:
                return start, category
        self.checked = end
        return None
