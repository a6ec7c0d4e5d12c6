"""Secrets: API keys held in a wrapper that never prints its value.

Rule: a key reaches the network only through `Secret.reveal()`; everything else
(logs, errors, snapshots, the tray) sees `mask()`: `sk-…abcd`.
"""

from __future__ import annotations

from dataclasses import dataclass


def mask(value: str) -> str:
    """`sk-ant-api03-XYZ…` -> `sk-…wxyz`; short values are fully hidden."""
    if len(value) < 12:
        return "…"
    head = value[:3]
    return f"{head}…{value[-4:]}"


@dataclass(frozen=True, slots=True)
class Secret:
    value: str

    def reveal(self) -> str:
        return self.value

    @property
    def masked(self) -> str:
        return mask(self.value)

    def __repr__(self) -> str:
        return f"Secret({self.masked!r})"

    __str__ = __repr__
