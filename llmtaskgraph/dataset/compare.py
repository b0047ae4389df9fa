"""Compare two runs of a dataset (before and after a change), case by case, worst regressions first.

Cases are matched by id. A case's output changed when its status or its output differs, compared
as JSON with types (``1``, ``1.0`` and ``true`` differ, as in :mod:`llmtaskgraph.trace.diff`). The
tasks whose outputs changed inside a case are told from the two indexes (a digest per task output),
so comparing 2,000 cases loads no trace; :meth:`CaseChange.diff` loads a case's two traces for the
task-by-task diff of prompts, replies and outputs (the one ``llmtaskgraph diff`` prints).

An optional score, ``score(ctx, case_input, output) -> number or bool`` (a registry function, called
like one: ``ctx.graph_input`` is the case input and ``ctx.task`` its output task), is computed for
both runs; a case whose score dropped, or that failed only after the change, is ``worse`` and listed
first, the biggest drop first.
"""

from __future__ import annotations

import inspect
import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DatasetError
from ..model.context import TaskContext
from ..model.registry import lookup
from ..text import shorten
from ..trace.diff import SHORT, same_json, word_diff

if TYPE_CHECKING:
    from ..model.registry import Registry
    from ..trace.diff import GraphDiff
    from .run import DatasetRun
    from .store import CaseResult

__all__ = ["VERDICTS", "CaseChange", "Comparison", "Score", "compare_runs"]

Score = str | Callable[..., Any]
"""A score function ``score(ctx, case_input, output)``, or its name in the registry."""
VERDICTS = ("worse", "changed", "better", "added", "removed", "same")
"""In the order cases are listed: ``changed`` means the output changed and no score says which way."""


@dataclass
class CaseChange:
    """How one case differs between the run before and the run after."""

    id: str
    before: CaseResult | None
    """The case in the run before (None: ``added``)."""
    after: CaseResult | None
    """The case in the run after (None: ``removed``)."""
    verdict: str = "same"
    """One of :data:`VERDICTS`."""
    changed_tasks: list[str] = field(default_factory=list)
    """Paths of the tasks whose output differs (or that are done in one run only)."""
    score_before: float | None = None
    score_after: float | None = None
    _runs: tuple[DatasetRun, DatasetRun] | None = field(default=None, repr=False, compare=False)

    @property
    def output_changed(self) -> bool:
        """Whether the case's status or output differs (or the case is in one run only)."""
        a, b = self.before, self.after
        return a is None or b is None or a.status != b.status or not same_json(a.output, b.output)

    @property
    def delta(self) -> float | None:
        """Score after minus score before, when both exist."""
        if self.score_before is None or self.score_after is None:
            return None
        return self.score_after - self.score_before

    def output_diff(self) -> list[str]:
        """Readable lines: the status change with the new errors, and the output change (a word diff of
        the changed places when it is long)."""
        a, b = self.before, self.after
        if a is None or b is None:
            return [f"case {self.verdict}"]
        lines = []
        if a.status != b.status:
            lines.append(f"status: {a.status} -> {b.status}")
            lines += [f"error: {e}" for e in b.errors[:3] if e not in a.errors]
            if b.status == "done":
                lines.append(f"output: {shorten(json.dumps(b.output, ensure_ascii=False, sort_keys=True), 2 * SHORT)}")
        if not same_json(a.output, b.output) and a.status == b.status == "done":
            lines += _value_diff("output", a.output, b.output)
        return lines

    def diff(self) -> GraphDiff:
        """The task-by-task diff of the case's two traces (prompts, replies, outputs, statuses)."""
        from ..model.graph import TaskGraph
        from ..trace.diff import diff_graphs

        if self._runs is None or self.before is None or self.after is None:
            raise DatasetError(f"case `{self.id}` is in one run only: there is no pair of traces to diff")
        before, after = self._runs
        return diff_graphs(before._open(self.before) if self.before.tasks else TaskGraph(),
                           after._open(self.after) if self.after.tasks else TaskGraph())


def _value_diff(name: str, a: Any, b: Any) -> list[str]:
    ta, tb = (json.dumps(v, ensure_ascii=False, sort_keys=True) for v in (a, b))
    if max(len(ta), len(tb)) <= SHORT:
        return [f"{name}: {ta} -> {tb}"]
    if isinstance(a, str) and isinstance(b, str):
        ta, tb = a, b
    return [f"{name}: {place}" for place in word_diff(ta, tb)]


@dataclass
class Comparison:
    """Every case of two dataset runs, the worse ones first; print it, show it, or make a table."""

    cases: list[CaseChange] = field(default_factory=list)
    """Every case, ordered: worse (biggest drop first), changed, better, added, removed, same."""
    counts: Counter[str] = field(default_factory=Counter)
    """Verdict -> number of cases."""
    scored: bool = False
    """Whether a score was given."""

    def __bool__(self) -> bool:
        """True when any case's output or status differs, or a case is in one run only."""
        return any(c.output_changed for c in self.cases)

    @property
    def changed(self) -> list[CaseChange]:
        """The cases whose output or status differs, in the listing order."""
        return [c for c in self.cases if c.output_changed]

    def mean_scores(self) -> tuple[float | None, float | None]:
        """The mean score before and after, over the cases that have one."""
        def mean(values: list[float | None]) -> float | None:
            known = [v for v in values if v is not None]
            return sum(known) / len(known) if known else None

        return mean([c.score_before for c in self.cases]), mean([c.score_after for c in self.cases])

    def summary(self) -> str:
        changed = len(self.changed)
        parts = [f"{n} {v}" for v in VERDICTS[:-1] if (n := self.counts.get(v, 0))]
        text = f"compare: {len(self.cases)} case(s); {changed} output(s) changed"
        text += f" ({', '.join(parts)})" if parts else ""
        inner = sum(1 for c in self.cases if not c.output_changed and c.changed_tasks)
        if inner:
            text += f"; {inner} more with the same output but other task outputs changed"
        if self.scored:
            before, after = self.mean_scores()
            text += f"; mean score {_number(before)} -> {_number(after)}"
        return text

    def lines(self) -> list[str]:
        """The summary, then one line per changed case (verdict, id, scores) with its diff lines below."""
        out = [self.summary()]
        for case in self.changed:
            score = f"  score {_number(case.score_before)} -> {_number(case.score_after)}" if self.scored else ""
            out.append(f"{case.verdict} `{case.id}`{score}")
            out += [f"    {line}" for line in case.output_diff()]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        return f"<Comparison {self.summary()}>"

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per case: id, verdict, statuses, outputs, scores, changed tasks."""
        return [{
            "case": c.id, "verdict": c.verdict,
            "status_before": c.before.status if c.before else None, "status_after": c.after.status if c.after else None,
            "output_before": c.before.output if c.before else None, "output_after": c.after.output if c.after else None,
            "score_before": c.score_before, "score_after": c.score_after, "delta": c.delta,
            "changed_tasks": list(c.changed_tasks),
        } for c in self.cases]

    def to_dataframe(self) -> Any:
        """:meth:`rows` as a pandas DataFrame (needs pandas)."""
        from .table import to_dataframe

        return to_dataframe(self.rows())

    def _repr_html_(self) -> str:
        from .table import comparison_html

        return comparison_html(self)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def compare_runs(before: DatasetRun, after: DatasetRun, score: Score | None = None,
                 registry: Registry | None = None) -> Comparison:
    """Compare two runs of a dataset; see the module docstring."""
    fn = _score_function(score, registry)
    result = Comparison(scored=fn is not None)
    ids = list(before.cases) + [cid for cid in after.cases if cid not in before.cases]
    for cid in ids:
        a, b = before.cases.get(cid), after.cases.get(cid)
        change = CaseChange(cid, a, b, _runs=(before, after))
        if a is not None and b is not None:
            change.changed_tasks = _changed_tasks(a, b)
            if fn is not None:
                change.score_before = _score(fn, before, a)
                change.score_after = _score(fn, after, b)
        change.verdict = _verdict(change)
        result.counts[change.verdict] += 1
        result.cases.append(change)
    result.cases.sort(key=_order)
    return result


def _changed_tasks(a: CaseResult, b: CaseResult) -> list[str]:
    paths = list(a.task_outputs) + [p for p in b.task_outputs if p not in a.task_outputs]
    return [p for p in paths if a.task_outputs.get(p) != b.task_outputs.get(p)]


def _verdict(c: CaseChange) -> str:
    if c.before is None:
        return "added"
    if c.after is None:
        return "removed"
    a, b = c.before.status, c.after.status
    if a != b and "failed" in (a, b):
        return "worse" if b == "failed" else "better"
    delta = c.delta
    if delta is not None and delta != 0:
        return "worse" if delta < 0 else "better"
    if (c.score_before is None) != (c.score_after is None):  # a score was lost or gained
        return "worse" if c.score_after is None else "better"
    return "changed" if c.output_changed else "same"


def _order(c: CaseChange) -> tuple[int, float]:
    rank = VERDICTS.index(c.verdict)
    delta = c.delta
    if c.verdict == "worse":  # failing now first, then the biggest drop
        return rank, -math.inf if delta is None else delta
    if c.verdict == "better":  # the biggest gain first
        return rank, -math.inf if delta is None else -delta
    return rank, 0.0


def _score_function(score: Score | None, registry: Registry | None) -> Callable[..., Any] | None:
    if score is None or callable(score):
        return score
    if registry is None:
        raise DatasetError(f"score={score!r} names a registry function: pass registry= too (or the function itself)")
    fn = lookup(registry, score)
    if fn is None:
        raise DatasetError(f"the registry has no function `{score}` to score the cases with")
    return fn


def _score(fn: Callable[..., Any], run: DatasetRun, case: CaseResult) -> float | None:
    """The case's score in ``run``; None when the case is not done (it has no output to score)."""
    if case.status != "done":
        return None
    graph = run._open(case)
    task = graph.result_task()
    assert task is not None
    value = fn(TaskContext(graph, task, None, "score"), case.input, case.output)
    if inspect.isawaitable(value):
        from ..run._sync import run_sync

        awaitable = value

        async def wait() -> Any:
            return await awaitable

        value = run_sync(wait)
    name = getattr(fn, "__name__", "score")
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    raise DatasetError(f"the score function `{name}` must return a finite number or a bool; for case `{case.id}` it "
                       f"returned {shorten(repr(value), 80)}")
