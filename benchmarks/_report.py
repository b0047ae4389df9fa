"""Timing and table printing shared by every benchmark."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Row = Sequence[Any]


def best_of(repeats: int, setup: Callable[[], Any], measure: Callable[[Any], Any]) -> float:
    """Fastest of ``repeats`` timings of ``measure(setup())``; setup is not timed.

    The minimum is the figure least disturbed by other processes on a shared machine.
    """
    best = float("inf")
    for _ in range(repeats):
        arg = setup()
        gc.collect()
        start = time.perf_counter()
        result = measure(arg)
        best = min(best, time.perf_counter() - start)
        del arg, result  # freed after the clock stops: what is timed is making it, not freeing it
    return best


def side_by_side(
    repeats: int, contenders: Mapping[str, tuple[Callable[[], Any], Callable[[Any], Any]]],
) -> dict[str, list[float]]:
    """Every timing of every contender: ``{name: [seconds, ...]}``, ``repeats`` each.

    ``contenders`` maps a name to ``(setup, measure)``; like :func:`best_of`, only ``measure(setup())``
    is timed, after a full collection, with the garbage collector left on. The contenders take
    turns within each repeat (the order rotating between repeats), so a slow spell of a shared
    machine falls on all of them rather than on whichever happened to be timed then.
    """
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        for name in names[i % len(names):] + names[:i % len(names)]:
            setup, measure = contenders[name]
            arg = setup()
            gc.collect()
            start = time.perf_counter()
            result = measure(arg)
            times[name].append(time.perf_counter() - start)
            del arg, result
    return times


def ratios(ours: Sequence[float], peer: Sequence[float]) -> tuple[float, float]:
    """``(best ours / best peer, median ours / median peer)``."""
    return min(ours) / min(peer), statistics.median(ours) / statistics.median(peer)


def check(ratio: float, target: float) -> str:
    """``ok`` or ``MISSED`` for a ratio that must be at most ``target``."""
    return f"<= {target:g} ok" if ratio <= target else f"<= {target:g} MISSED"


def table(title: str, header: Row, rows: Sequence[Row]) -> str:
    """A plain-text table; floats are shown with three significant digits."""
    cells = [[_fmt(c) for c in header], *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [f"\n## {title}", "  ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells[1:]]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
