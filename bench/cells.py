"""Numbers and table cells of the bench report: medians over rounds, units, verdicts.

Owns: pure helpers of bench/report.py. A missing figure
(None or NaN) reads "n/a" and never passes a check.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable

Check = Callable[[float], bool]


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values that exist; None when none does."""
    kept = present(values)
    return statistics.median(kept) if kept else None


def present(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and not math.isnan(v)]


def sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:.3f} ms"


def us(seconds: float | None) -> str:
    return "n/a" if seconds is None or math.isnan(seconds) else f"{seconds * 1e6:.1f} us"


def plus(text: str, value: float | None) -> str:
    return ("+" if value is not None and value >= 0 else "") + text


def num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f}"


def times(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def ratio(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} x"


def mb(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} MB"


def spread(values: list[float], unit: Callable[[float | None], str]) -> str:
    """`median [min-max]` over rounds (just the value with one round)."""
    mid = median(values)
    if len(values) < 2:
        return unit(mid)
    lo, hi = unit(min(values)).split()[0], unit(max(values)).split()[0]
    return f"{unit(mid)} [{lo}-{hi}]"


def cpu_versus(proxy: float | None, floor: float | None,
                unit: Callable[[float | None], str]) -> str:  # fmt: skip
    ratio = div(proxy, floor)
    if ratio is None:
        return "n/a"
    added = sub(proxy, floor)
    return f"{ratio:.2f} x ({plus(unit(added), added)})"


def verdict(value: float | None, check: Check | None) -> str:
    if check is None:
        return ""
    if value is None or math.isnan(value):
        return "n/a"
    return "ok" if check(value) else "**miss**"


def at_most(limit: float) -> Check:
    return lambda v: v <= limit


def at_least(floor: float) -> Check:
    return lambda v: v >= floor
