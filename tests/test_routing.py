"""Routing: model globs, and the order each policy gives over many requests."""

from __future__ import annotations

from collections import Counter

import pytest

from core.config import Strategy
from core.routing import (
    CandidateView,
    LeastConnections,
    Policy,
    PriorityPolicy,
    SmoothWeightedRoundRobin,
    make_policy,
    model_matches,
)


def view(name: str, weight: int = 1, priority: int = 0, active: int = 0) -> CandidateView:
    return CandidateView(name=name, weight=weight, priority=priority, active=active)


def picks(policy: Policy, candidates: list[CandidateView], n: int) -> list[str]:
    return [policy.order(candidates)[0] for _ in range(n)]


def test_model_globs_are_case_sensitive_and_empty_means_all() -> None:
    assert model_matches((), "anything-at-all")
    assert model_matches(("claude-*",), "claude-sonnet-4-5")
    assert model_matches(("gpt-4o", "claude-?-haiku"), "claude-3-haiku")
    assert not model_matches(("claude-*",), "Claude-sonnet")
    assert not model_matches(("gpt-4o",), "gpt-4o-mini")
    assert model_matches(("gpt-4o*",), "gpt-4o-mini")
    assert model_matches(("[gc]*",), "gemini-2.5-pro")


def test_smooth_wrr_spreads_5_1_1_without_bursts() -> None:
    policy = SmoothWeightedRoundRobin()
    cands = [view("a", 5), view("b", 1), view("c", 1)]
    assert picks(policy, cands, 14) == list("aabacaa") * 2


def test_smooth_wrr_fallback_order_is_every_other_candidate_by_current_weight() -> None:
    policy = SmoothWeightedRoundRobin()
    cands = [view("a", 5), view("b", 1), view("c", 1)]
    orders = [policy.order(cands) for _ in range(3)]
    assert all(sorted(order) == ["a", "b", "c"] for order in orders)
    # Round 1: current a=5-7,b=1,c=1 -> a then b, c (tie: config order).
    # Round 2: a=-2+5=3-7, b=2, c=2 -> a then b, c. Round 3: a=1, b=3-7, c=3 -> b, c, a.
    assert orders == [["a", "b", "c"], ["a", "b", "c"], ["b", "c", "a"]]


def test_equal_weights_alternate_and_shares_follow_weights() -> None:
    policy = SmoothWeightedRoundRobin()
    assert picks(policy, [view("x"), view("y")], 6) == ["x", "y"] * 3

    policy = SmoothWeightedRoundRobin()
    counts = Counter(picks(policy, [view("a", 3), view("b", 2), view("c", 1)], 600))
    assert counts == {"a": 300, "b": 200, "c": 100}


def test_smooth_wrr_state_survives_an_upstream_dropping_out() -> None:
    policy = SmoothWeightedRoundRobin()
    a, b, c = view("a"), view("b"), view("c")
    assert picks(policy, [a, b, c], 2) == ["a", "b"]
    assert picks(policy, [a, b], 2) == ["a", "b"]  # c unavailable for a while
    # c comes back and is owed its turn: its current weight was kept, not reset.
    assert picks(policy, [a, b, c], 3) == ["c", "a", "b"]
    assert policy.order([]) == []


@pytest.mark.parametrize("cls", [SmoothWeightedRoundRobin, LeastConnections, PriorityPolicy])
def test_picked_alone_leaves_the_state_ordering_one_candidate_would(cls: type) -> None:
    # Runtime.order skips building views when one upstream is available; the rotation
    # afterwards must be the same as if that one had been ordered.
    a, b, c = view("a"), view("b"), view("c")  # ties: the rotation alone decides
    slow, fast = cls(), cls()
    for policy in (slow, fast):
        picks(policy, [a, b, c], 4)
    for _ in range(3):
        assert slow.order([b]) == ["b"]
        fast.picked_alone("b")
    assert picks(slow, [a, b, c], 12) == picks(fast, [a, b, c], 12)


def test_least_connections_picks_the_least_loaded() -> None:
    policy = LeastConnections()
    cands = [view("a", active=4), view("b", active=1), view("c", active=2)]
    assert policy.order(cands) == ["b", "c", "a"]
    assert policy.order(cands) == ["b", "c", "a"]  # load, not rotation, decides
    # On equal load, the heavier upstream goes first.
    assert policy.order([view("a", 1, active=2), view("b", 3, active=2)])[0] == "b"


def test_least_connections_rotates_ties() -> None:
    policy = LeastConnections()
    cands = [view("a"), view("b"), view("c")]
    assert picks(policy, cands, 6) == ["a", "b", "c", "a", "b", "c"]
    # With one tie member busy, the other two alternate.
    busy_b = [view("a"), view("b", active=1), view("c")]
    assert [policy.order(busy_b) for _ in range(2)] == [["a", "c", "b"], ["c", "a", "b"]]


def test_least_connections_simulated_load_stays_balanced() -> None:
    # Each pick stays in flight for three turns; equal upstreams should share evenly.
    policy = LeastConnections()
    in_flight: list[tuple[int, str]] = []
    counts: Counter[str] = Counter()
    for turn in range(300):
        in_flight = [(end, name) for end, name in in_flight if end > turn]
        active = Counter(name for _, name in in_flight)
        cands = [view(n, active=active[n]) for n in ("a", "b", "c")]
        name = policy.order(cands)[0]
        counts[name] += 1
        in_flight.append((turn + 3, name))
        assert max(active.values(), default=0) - min(active[n] for n in "abc") <= 1
    assert counts == {"a": 100, "b": 100, "c": 100}


def test_priority_uses_the_first_group_until_it_is_gone() -> None:
    policy = PriorityPolicy()
    primary = [view("p1", 3, priority=0), view("p2", 1, priority=0)]
    backup = [view("b1", 1, priority=1), view("b2", 1, priority=1)]
    last_resort = [view("z", 1, priority=5)]

    counts = Counter(picks(policy, backup + last_resort + primary, 400))
    assert counts == {"p1": 300, "p2": 100}  # shares by weight within the group

    order = policy.order(last_resort + backup + primary)
    assert order[:2] in (["p1", "p2"], ["p2", "p1"])
    assert order[2:4] in (["b1", "b2"], ["b2", "b1"])
    assert order[4:] == ["z"]

    # The primaries become unavailable: the next group takes over, alternating.
    assert picks(policy, backup + last_resort, 4) == ["b1", "b2", "b1", "b2"]
    assert picks(policy, last_resort, 2) == ["z", "z"]


def test_priority_fallback_groups_do_not_advance_their_rotation() -> None:
    policy = PriorityPolicy()
    cands = [view("p", priority=0), view("b1", priority=1), view("b2", priority=1)]
    for _ in range(5):
        assert policy.order(cands) == ["p", "b1", "b2"]
    # When the group does take over, it starts at its own beginning.
    assert picks(policy, cands[1:], 2) == ["b1", "b2"]


def test_forget_drops_state_for_removed_upstreams() -> None:
    # Weights 1:3 go b, a, b, b. Forgetting b after its first turn wipes its payback,
    # so it goes again at once.
    policy = SmoothWeightedRoundRobin()
    a, b = view("a", 1), view("b", 3)
    assert picks(policy, [a, b], 1) == ["b"]  # current weights now a=1, b=-1
    policy.forget({"b", "never-seen"})
    assert picks(policy, [a, b], 1) == ["b"]  # a=2, b=3; without forget it was a's turn

    # Least connections: a forgotten upstream counts as never picked.
    lc = LeastConnections()
    x, y = view("x"), view("y")
    assert picks(lc, [x, y], 2) == ["x", "y"]
    lc.forget({"y"})
    assert picks(lc, [x, y], 2) == ["y", "x"]

    prio = PriorityPolicy()
    assert picks(prio, [x, y], 1) == ["x"]
    prio.forget({"x", "y"})
    assert picks(prio, [x, y], 1) == ["x"]  # fresh again; without forget it was y's turn


@pytest.mark.parametrize(
    ("strategy", "cls"),
    [
        (Strategy.ROUND_ROBIN, SmoothWeightedRoundRobin),
        (Strategy.LEAST_CONNECTIONS, LeastConnections),
        (Strategy.PRIORITY, PriorityPolicy),
    ],
)
def test_make_policy_builds_each_strategy(strategy: Strategy, cls: type) -> None:
    policy = make_policy(strategy)
    assert isinstance(policy, cls)
    assert policy.order([]) == []
