"""Prometheus metrics of one application.

Each app owns its registry (tests build many apps in one process, and a global
registry would refuse the second set of metrics). Nothing here knows HTTP: the
API layer feeds `observe_request`, the generation service the reply measures,
the probes the health gauges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from personae.services.backend_replies import BackendReplies
from personae.services.voice_slots import SYNTHESIS, TRANSCRIPTION, LineState

if TYPE_CHECKING:  # (queue.py exports its figures here)
    from personae.services.queue import QueueView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ReplyRecorder(Protocol):
    """What the generation service reports about each reply."""

    def reply_finished(self, state: str, generation: Mapping[str, Any]) -> None:
        """A reply ended in `state`; `generation` is what its message records about it."""
        ...

    def reply_quarantined(self) -> None:
        """A reply was set aside after being taken back too often (it ends failed)."""
        ...

    def stream_failed(self, backend: str) -> None:
        """`backend` failed a reply's stream (the reply goes on elsewhere or later)."""
        ...


class Metrics:
    """The metrics of one app, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # The status probes judge each backend by these before their own checks.
        self.backend_replies = BackendReplies()
        registry = self.registry
        self.requests = Counter(
            "personae_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.quarantined = Counter(
            "personae_replies_quarantined",
            "Replies set aside (failed, reply_quarantined) after being taken back too often.",
            registry=registry,
        )
        self.request_seconds = Histogram(
            "personae_http_request_duration_seconds",
            "Time to answer an HTTP request (to the response start for streams).",
            ["method", "route"],
            registry=registry,
        )
        self.replies = Counter(
            "personae_replies", "Replies by the state they ended in.", ["state"], registry=registry
        )
        self.first_token = Histogram(
            "personae_reply_first_token_seconds",
            "Time from the start of generation to the first token.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
            registry=registry,
        )
        self.tokens_per_second = Histogram(
            "personae_reply_tokens_per_second",
            "Generation speed of complete replies.",
            buckets=(1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 250),
            registry=registry,
        )
        self.prompt_tokens = Counter(
            "personae_prompt_tokens",
            "Prompt tokens of replies, by whether the backend had them cached.",
            ["cached"],
            registry=registry,
        )
        self.queue_length = Gauge(
            "personae_queue_length", "Reply jobs waiting to start.", registry=registry
        )
        self.queue_wait = Gauge(
            "personae_queue_oldest_wait_seconds",
            "How long the reply waiting longest has waited.",
            registry=registry,
        )
        self.backend_up = Gauge(
            "personae_backend_up",
            "1 when the backend passed its last probe, else 0.",
            ["backend"],
            registry=registry,
        )
        self.probe_ok = Gauge(
            "personae_probe_ok",
            "1 when the component passed its last probe, else 0.",
            ["component"],
            registry=registry,
        )
        self.probe_latency = Gauge(
            "personae_probe_latency_seconds",
            "How long the component's last probe took.",
            ["component"],
            registry=registry,
        )
        self.probes = Counter(
            "personae_probes",
            "Probes run, by component and result (ok or failed).",
            ["component", "result"],
            registry=registry,
        )
        self.loop_lag = Histogram(
            "personae_event_loop_lag_seconds",
            "How late the event loop ran a timer it was asked for (time it was kept busy).",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.loop_lag_last = Gauge(
            "personae_event_loop_lag_last_seconds",
            "The event loop's lag at its last measurement.",
            registry=registry,
        )
        # The cluster's figures, set in the leader's /metrics only (0 or absent elsewhere).
        self.cluster_queue = Gauge(
            "personae_cluster_queue_length",
            "Reply jobs waiting to start in the whole cluster, by tier (the leader's only).",
            ["tier"],
            registry=registry,
        )
        self.cluster_oldest_wait = Gauge(
            "personae_cluster_queue_oldest_wait_seconds",
            "How long the reply waiting longest in the cluster has waited (the leader's only).",
            registry=registry,
        )
        self.cluster_slots = Gauge(
            "personae_cluster_backend_slots",
            "A backend's slots, as its workers report them (the leader's only).",
            ["backend"],
            registry=registry,
        )
        self.cluster_slots_busy = Gauge(
            "personae_cluster_backend_slots_busy",
            "Requests in flight on a backend from every process (the leader's only).",
            ["backend"],
            registry=registry,
        )
        self.moderation = Counter(
            "personae_moderation_actions",
            "Moderation decisions by direction (input, output), category and action "
            "(refused, filtered, warned, crisis).",
            ["direction", "category", "action"],
            registry=registry,
        )
        self.moderation_classifier_failures = Counter(
            "personae_moderation_classifier_failures",
            "Texts the moderation classifier gave no answer for (the rules alone decided).",
            ["classifier"],
            registry=registry,
        )
        self.voice_busy = Gauge(
            "personae_voice_slots_busy",
            "Voice slots in use in this process, by kind (synthesis, transcription).",
            ["kind"],
            registry=registry,
        )
        self.voice_waiting = Gauge(
            "personae_voice_waiting",
            "Voice requests waiting in line for a slot in this process, by kind.",
            ["kind"],
            registry=registry,
        )
        self.leader = Gauge(
            "personae_leader",
            "1 in the process that leads the cluster now (it runs the probes and "
            "incident rules), else 0.",
            registry=registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def reply_quarantined(self) -> None:
        self.quarantined.inc()

    def stream_failed(self, backend: str) -> None:
        # A stream that failed is a failed reply as far as its backend's health goes.
        self.backend_replies.record("failed", {"backend": backend})

    def reply_finished(self, state: str, generation: Mapping[str, Any]) -> None:
        self.replies.labels(state).inc()
        self.backend_replies.record(state, generation)
        first_ms, duration_ms = generation.get("first_token_ms"), generation.get("duration_ms")
        if state != "complete" or not isinstance(first_ms, int | float):
            return
        self.first_token.observe(max(0.0, first_ms / 1000))
        tokens = generation.get("completion_tokens")
        generating_s = ((duration_ms or 0) - first_ms) / 1000
        if isinstance(tokens, int) and tokens > 1 and generating_s > 0:
            self.tokens_per_second.observe((tokens - 1) / generating_s)
        prompt, cached = generation.get("prompt_tokens"), generation.get("cached_tokens")
        if isinstance(prompt, int) and isinstance(cached, int):
            self.prompt_tokens.labels("yes").inc(min(cached, prompt))
            self.prompt_tokens.labels("no").inc(max(0, prompt - cached))

    def moderation_action(self, direction: str, category: str, action: str) -> None:
        self.moderation.labels(direction, category, action).inc()

    def moderation_classifier_failed(self, classifier: str) -> None:
        self.moderation_classifier_failures.labels(classifier).inc()

    def probe(self, component: str, ok: bool, latency_ms: int) -> None:
        self.probes.labels(component, "ok" if ok else "failed").inc()
        self.probe_ok.labels(component).set(1 if ok else 0)
        self.probe_latency.labels(component).set(latency_ms / 1000)
        if component.startswith("backend:"):
            self.backend_up.labels(component.removeprefix("backend:")).set(1 if ok else 0)

    def queue(self, length: int, oldest_wait_s: float) -> None:
        self.queue_length.set(length)
        self.queue_wait.set(oldest_wait_s)

    def event_loop_lag(self, seconds: float) -> None:
        self.loop_lag.observe(seconds)
        self.loop_lag_last.set(seconds)

    def cluster(self, view: QueueView | None) -> None:
        """The cluster's figures (`view`, in the leader) or none (in other processes)."""
        gauges = (self.cluster_queue, self.cluster_slots, self.cluster_slots_busy)
        for gauge in gauges:
            gauge.clear()
        if view is None:
            self.cluster_oldest_wait.set(0)
            return
        for tier in view.tiers:
            self.cluster_queue.labels(tier.tier).set(tier.queued)
        self.cluster_oldest_wait.set(max((t.oldest_wait_s or 0.0 for t in view.tiers), default=0))
        for backend in view.backends:
            self.cluster_slots.labels(backend.name).set(backend.slots)
            self.cluster_slots_busy.labels(backend.name).set(backend.in_flight)

    def watch_voice_lines(self, lines: Callable[[], Sequence[LineState]]) -> None:
        """Read the voice lines' slots and waiting requests when the metrics are read."""
        for kind in (SYNTHESIS, TRANSCRIPTION):

            def read(field: str, kind: str = kind) -> float:
                line = next((line for line in lines() if line.kind == kind), None)
                return float(getattr(line, field)) if line is not None else 0.0

            self.voice_busy.labels(kind).set_function(lambda read=read: read("busy"))
            self.voice_waiting.labels(kind).set_function(lambda read=read: read("waiting"))

    def leading(self, leads: bool) -> None:
        self.leader.set(1 if leads else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
