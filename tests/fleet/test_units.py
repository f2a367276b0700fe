"""The quality gate, the circuit breaker and backend specs, without a network."""

from __future__ import annotations

import pytest

from personae.errors import ConfigurationError
from personae.llm.backends import parse_backend
from personae.llm.breaker import CircuitBreaker
from personae.llm.quality import QualityMonitor, compression_ratio, repeated_4gram_share


def _monitor(*pieces: str) -> QualityMonitor:
    monitor = QualityMonitor(("\nAlice:",))
    for piece in pieces:
        monitor.feed(piece)
    return monitor


def test_a_normal_reply_passes() -> None:
    text = (
        "The kettle whistles as Bramble pours two cups. 'Try the smoky one,' he says, "
        "pushing a chipped mug across the counter. Rain drums on the roof while a traveller "
        "shakes out her cloak by the door."
    )
    assert _monitor(text).verdict().ok


def test_a_pattern_of_sixteen_tokens_seen_four_times_stops_the_stream() -> None:
    phrase = "I am so sorry for the trouble , please forgive me , I did not mean it at all . "
    monitor = _monitor()
    for count in range(1, 5):
        for word in phrase.split(" "):
            monitor.feed(word + " ")
        assert monitor.looping is (count == 4)
    assert monitor.verdict().label == "repetitive"


def test_short_repeats_are_not_a_loop_but_a_high_4gram_share_is_repetitive() -> None:
    assert not _monitor("ha ha ha ha").looping
    words = ("yes I know " * 30).split()
    assert repeated_4gram_share(words) > 0.5
    assert _monitor(" ".join(words)).verdict().label == "repetitive"


def test_empty_leaked_markup_and_gibberish_are_caught() -> None:
    assert _monitor("   ").verdict().label == "empty"
    assert _monitor("Sure!<|im_end|> <|im_start|>user").verdict().label == "leaked_markup"
    assert _monitor("Hello there.\nAlice: and then I said").verdict().label == "leaked_markup"
    gibberish = "a" * 400
    assert compression_ratio(gibberish) < 0.18
    assert _monitor(" ".join([gibberish[:30]] * 40)).verdict().ok is False
    assert _monitor("x" + "zq" * 300 + " end " * 30).verdict().ok is False


def test_the_breaker_opens_after_failures_then_half_opens_for_one_trial() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, reset_after_s=10, clock=lambda: now[0])
    for _ in range(2):
        breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open" and not breaker.acquire()
    now[0] = 10.0
    assert breaker.state == "half_open"
    assert breaker.acquire()
    assert not breaker.acquire(), "one trial at a time"
    breaker.failure()
    assert breaker.state == "open"
    now[0] = 20.0
    assert breaker.state == "open", "a failed trial doubles the open time (20 s now)"
    now[0] = 30.0
    assert breaker.acquire()
    breaker.success()
    assert breaker.state == "closed" and breaker.acquire()
    for _ in range(3):
        breaker.failure()
    now[0] = 40.0
    assert breaker.state == "half_open", "a success brings the open time back to 10 s"


def test_the_open_time_grows_to_its_bound_while_trials_fail() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=1, reset_after_s=2, max_open_s=8, clock=lambda: now[0])
    breaker.failure()
    opened = []
    for _ in range(5):
        waited = 0.0
        while breaker.state != "half_open":
            now[0] += 0.5
            waited += 0.5
        opened.append(waited)
        assert breaker.acquire()
        breaker.failure()
    assert opened == [2.0, 4.0, 8.0, 8.0, 8.0]


def test_backend_specs_parse_and_bad_ones_are_refused_clearly() -> None:
    spec = parse_backend("gpu1=http://10.0.0.5:8000,slots=8,role=fallback,model=m,context=4096")
    assert (spec.name, spec.slots, spec.role, spec.model, spec.context_length) == (
        "gpu1",
        8,
        "fallback",
        "m",
        4096,
    )
    for bad in (
        "nourl",
        "x=ftp://a",
        "x=http://a,slots=many",
        "x=http://a,role=boss",
        "x=http://a,y=1",
    ):
        with pytest.raises(ConfigurationError):
            parse_backend(bad)
