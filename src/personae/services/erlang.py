"""The M/M/c queue: Erlang C, the tail of the wait, and the servers a target needs.

Arrivals are Poisson at `arrival_rate` (λ, per second), each of `servers` (c)
serves one job at a time for an exponential time of rate `service_rate` (μ, per
second). The offered load a = λ/μ is the number of servers busy on average.
An arrival waits with probability C(c, a) (Erlang C), and then for an
exponential time of rate cμ - λ, so P(W > t) = C(c, a) · exp(-(cμ - λ)·t).
"""

from __future__ import annotations

import math

from personae.errors import ValidationFailed

# Past this many servers the model is not the tool: the caller asked for the impossible.
MAX_SERVERS = 100_000


def erlang_c(servers: int, offered_load: float) -> float:
    """The probability that an arrival waits: C(c, a); 1.0 when a >= c (the line grows
    without bound).

    Computed through Erlang B's recurrence, B(k) = a·B(k-1) / (k + a·B(k-1)), which
    stays finite where a^c / c! would overflow; then C = c·B / (c - a·(1 - B)).
    """
    if offered_load <= 0.0:
        return 0.0
    if servers <= 0 or offered_load >= servers:
        return 1.0
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    return servers * blocking / (servers - offered_load * (1.0 - blocking))


def wait_exceeds_probability(
    servers: int, arrival_rate: float, service_rate: float, wait_s: float
) -> float:
    """P(W > wait_s) for an arrival: C(c, a) · exp(-(cμ - λ)·t)."""
    offered_load = arrival_rate / service_rate
    waits = erlang_c(servers, offered_load)
    if waits >= 1.0:
        return 1.0
    return waits * math.exp(-(servers * service_rate - arrival_rate) * wait_s)


def wait_quantile_s(
    servers: int, arrival_rate: float, service_rate: float, quantile: float = 0.95
) -> float:
    """The wait that a `quantile` share of arrivals stays under (math.inf when the
    servers cannot keep up). Zero when fewer than 1 - quantile of arrivals wait at all."""
    tail = 1.0 - quantile
    waits = erlang_c(servers, arrival_rate / service_rate)
    if waits >= 1.0:
        return math.inf
    if waits <= tail:
        return 0.0
    return math.log(waits / tail) / (servers * service_rate - arrival_rate)


def servers_needed(
    arrival_rate: float, service_rate: float, target_wait_s: float, quantile: float = 0.95
) -> int:
    """The fewest servers that keep the `quantile` wait at or under `target_wait_s`
    (0 with no arrivals)."""
    if arrival_rate <= 0.0:
        return 0
    if service_rate <= 0.0:
        raise ValidationFailed("the service rate must be positive")
    # Fewer servers than the load can never keep up: start just above it.
    servers = math.floor(arrival_rate / service_rate) + 1
    while wait_quantile_s(servers, arrival_rate, service_rate, quantile) > target_wait_s:
        servers += 1
        if servers > MAX_SERVERS:
            raise ValidationFailed(f"the load needs more than {MAX_SERVERS} slots")
    return servers
