"""Routing: which upstreams serve a model, and in which order to try them. Pure.

Rules:
- The caller passes only AVAILABLE upstreams (healthy, within buckets and concurrency):
  a policy orders what it is given; it never filters.
- `order` returns names: the first is the pick, the rest the fallback order. It may advance
  the policy's own rotation state, which is keyed by upstream name so it survives the
  candidate set changing between calls; `forget` drops names no longer configured.
- Ties fall back to the candidates' given order (config order), so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from itertools import groupby
from typing import Protocol

from core.config import Strategy


def model_matches(patterns: tuple[str, ...], model: str) -> bool:
    """Does a model name match any glob (case-sensitive)? No patterns means every model."""
    return not patterns or any(fnmatchcase(model, pattern) for pattern in patterns)


@dataclass(frozen=True, slots=True, kw_only=True)
class CandidateView:
    name: str
    weight: int
    priority: int
    active: int  # requests in flight now


class Policy(Protocol):
    def order(self, candidates: Sequence[CandidateView]) -> list[str]: ...

    def picked_alone(self, name: str) -> None:
        """`name` was the only candidate: leave the state `order` would have left (the
        common case, and on the request's latency path: no views to build)."""

    def forget(self, names: set[str]) -> None: ...


class SmoothWeightedRoundRobin:
    """nginx's smooth weighted round robin: each call every candidate's current weight
    grows by its weight, the largest wins and pays back the total. Weights 5,1,1 give
    a,a,b,a,c,a,a: shares follow the weights with no bursts."""

    def __init__(self) -> None:
        self._current: dict[str, int] = {}

    def order(self, candidates: Sequence[CandidateView]) -> list[str]:
        if not candidates:
            return []
        total = 0
        for c in candidates:
            weight = max(c.weight, 0)
            self._current[c.name] = self._current.get(c.name, 0) + weight
            total += weight
        # max() keeps the first of equals: ties go to config order
        pick = max(candidates, key=lambda c: self._current[c.name])
        self._current[pick.name] -= total
        rest = [c for c in candidates if c.name != pick.name]
        rest.sort(key=lambda c: -self._current[c.name])  # stable: ties keep config order
        return [pick.name] + [c.name for c in rest]

    def picked_alone(self, name: str) -> None:
        pass  # it gains its weight and pays back the same total: no change

    def peek(self, candidates: Sequence[CandidateView]) -> list[str]:
        """The order the next `order` call would favour, without advancing the rotation."""
        ranked = sorted(candidates, key=lambda c: -(self._current.get(c.name, 0) + c.weight))
        return [c.name for c in ranked]

    def forget(self, names: set[str]) -> None:
        for name in names:
            self._current.pop(name, None)


class LeastConnections:
    """Fewest requests in flight first; ties go to the higher weight, then to the one
    picked least recently, so equal upstreams alternate even when nothing is in flight."""

    def __init__(self) -> None:
        self._tick = 0
        self._last_pick: dict[str, int] = {}  # name -> tick of its last pick

    def order(self, candidates: Sequence[CandidateView]) -> list[str]:
        if not candidates:
            return []
        ranked = sorted(
            candidates, key=lambda c: (c.active, -c.weight, self._last_pick.get(c.name, -1))
        )
        self.picked_alone(ranked[0].name)
        return [c.name for c in ranked]

    def picked_alone(self, name: str) -> None:
        self._tick += 1
        self._last_pick[name] = self._tick

    def forget(self, names: set[str]) -> None:
        for name in names:
            self._last_pick.pop(name, None)


class PriorityPolicy:
    """The lowest priority number first; within that group, smooth weighted round robin.
    Only the first group present advances its rotation; lower groups follow as fallback,
    each in the order its own rotation would pick next."""

    def __init__(self) -> None:
        self._wrr = SmoothWeightedRoundRobin()  # state keyed by name, so one serves all groups

    def order(self, candidates: Sequence[CandidateView]) -> list[str]:
        ranked = sorted(candidates, key=lambda c: c.priority)  # stable within a group
        groups = [list(g) for _, g in groupby(ranked, key=lambda c: c.priority)]
        if not groups:
            return []
        names = self._wrr.order(groups[0])
        for group in groups[1:]:
            names += self._wrr.peek(group)
        return names

    def picked_alone(self, name: str) -> None:
        self._wrr.picked_alone(name)

    def forget(self, names: set[str]) -> None:
        self._wrr.forget(names)


def make_policy(strategy: Strategy) -> Policy:
    if strategy == Strategy.LEAST_CONNECTIONS:
        return LeastConnections()
    if strategy == Strategy.PRIORITY:
        return PriorityPolicy()
    return SmoothWeightedRoundRobin()
