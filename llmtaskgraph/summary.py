"""Per-task facts read from a trace (status, tokens, timings), shared by ``show``, ``report`` and ``diff``.

Traces may be hand-edited or come from someone else, so nothing here trusts a field's type beyond
what loading validated: token counts that are not whole numbers count as zero, and so on.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .tasks import Task, TaskGraphTask

if TYPE_CHECKING:
    from .graph import TaskGraph


@dataclass
class TaskRow:
    """One task of a (possibly nested) graph, flattened for tables and timelines."""

    path: str
    """Task id, prefixed by the ids of enclosing sub-graph tasks (``outer > inner``)."""
    task: Task
    depth: int
    """How many sub-graphs enclose the task (0 at the top)."""
    input_tokens: int
    output_tokens: int
    retries: int
    """Retries the LLM backend made before the call succeeded."""

    @property
    def started_at(self) -> float | None:
        return self.task.record.started_at

    @property
    def finished_at(self) -> float | None:
        return self.task.record.finished_at

    @property
    def duration(self) -> float | None:
        return self.task.record.duration


@dataclass
class Totals:
    """Sums over every task of a trace."""

    tasks: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0
    retries: int = 0
    llm_replies: int = 0
    """LLMTasks holding a reply."""
    started_at: float | None = None
    finished_at: float | None = None
    max_concurrency: int = 0
    """Most tasks that were running at one instant (from their start/finish times)."""

    @property
    def wall_time(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


def task_rows(graph: TaskGraph) -> list[TaskRow]:
    """Every task, each sub-graph's tasks right after the task that runs it."""
    return list(_walk(graph, "", 0))


def _walk(graph: TaskGraph, prefix: str, depth: int) -> Iterator[TaskRow]:
    for tid, task in graph.tasks.items():
        response = task.record.response if isinstance(task.record.response, dict) else {}
        usage = response.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        yield TaskRow(
            path=prefix + tid,
            task=task,
            depth=depth,
            input_tokens=_count(usage.get("input_tokens")),
            output_tokens=_count(usage.get("output_tokens")),
            retries=_count(response.get("retries")),
        )
        if isinstance(task, TaskGraphTask):
            yield from _walk(task.subgraph, f"{prefix}{tid} > ", depth + 1)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def intervals(rows: list[TaskRow]) -> list[tuple[TaskRow, float, float]]:
    """(row, start, finish) of every task with both times, finish >= start (a task running now has none)."""
    found = []
    for row in rows:
        start, finish = row.started_at, row.finished_at
        if start is not None and finish is not None and finish >= start:
            found.append((row, float(start), float(finish)))
    return found


def max_concurrency(spans: list[tuple[float, float]]) -> int:
    """Most spans open at one instant; a span ending exactly when another starts does not overlap it."""
    events = sorted([(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans], key=lambda e: (e[0], e[1]))
    best = cur = 0
    for _, step in events:
        cur += step
        best = max(best, cur)
    return best


def totals(rows: list[TaskRow]) -> Totals:
    out = Totals(tasks=len(rows))
    for row in rows:
        out.by_status[row.task.status] += 1
        out.input_tokens += row.input_tokens
        out.output_tokens += row.output_tokens
        out.retries += row.retries
        out.llm_replies += row.task.record.response is not None
    # Only leaf tasks count towards concurrency: a sub-graph task is "running" while its tasks run.
    spans = [(s, f) for row, s, f in intervals(rows) if not isinstance(row.task, TaskGraphTask)]
    if spans:
        out.started_at = min(s for s, _ in spans)
        out.finished_at = max(f for _, f in spans)
        out.max_concurrency = max_concurrency(spans)
    return out


def utc_time(timestamp: float) -> str:
    """``2026-11-24 10:04:47 UTC``; a hand-edited timestamp out of the calendar's range gives ``?``."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))
    except (OverflowError, OSError, ValueError):
        return f"? (timestamp {timestamp!r})"
