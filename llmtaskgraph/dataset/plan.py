"""The plan of a dataset run: after a code, prompt or input change, how many cases and tasks would run
again, how many LLM calls that takes and what they would cost, before running anything.

It is :meth:`TaskGraph.plan <llmtaskgraph.model.graph.TaskGraph.plan>` asked for every case, so the
dataset's plan and its run cannot disagree, and summed: cases that would run, tasks, LLM calls (an
upper bound, and the certain part), their cost range in dollars, and the reasons with how many tasks each one re-runs
(``code of `classify_prompt` changed: 20 tasks``). A changed formatter re-formats every case it
serves, but a request that comes out the same needs no call: the plan cannot know which before the
formatter runs, so it says "at most".
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..memo.code import CodeVersions
from ..text import count_text

if TYPE_CHECKING:
    from ..model.registry import Registry
    from ..run.plan import Plan
    from ..run.state import RunSettings
    from .run import DatasetRun

__all__ = ["DatasetPlan", "plan_dataset"]

MAX_SHOWN = 10
"""Cases and reasons listed by ``str(plan)``; the rest are counted."""


@dataclass
class DatasetPlan:
    """What running a dataset again would do. Print it, or show it in a notebook."""

    cases: int = 0
    """Cases in the dataset run."""
    will_run: list[str] = field(default_factory=list)
    """Ids of the cases in which at least one task would run."""
    tasks: int = 0
    """Tasks that would run, over every case."""
    llm_calls: int = 0
    """At most this many LLM requests would be sent."""
    llm_calls_certain: int = 0
    """Of those, how many are certain (their request is known now and nothing stored answers it)."""
    cost_low: float = 0.0
    """US dollars those calls would cost at least, over every case (see :attr:`Plan.cost_low
    <llmtaskgraph.run.plan.Plan.cost_low>`: their input alone)."""
    cost_high: float = 0.0
    """US dollars they could cost at most (input and ``max_tokens`` of output each)."""
    cost_unknown: int = 0
    """Calls left out of the range: no prompt to price yet (a formatter that runs first), or no known price."""
    reasons: Counter[str] = field(default_factory=Counter)
    """Why tasks run -> how many tasks, over every case (``never ran``, ``code of `f` changed``, ...)."""
    plans: dict[str, Plan] = field(default_factory=dict, repr=False)
    """Case id -> its plan, for the cases that would run."""
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        calls = (f"{count_text(self.llm_calls, True)} LLM call(s)" if self.llm_calls == self.llm_calls_certain
                 else f"at most {count_text(self.llm_calls, True)} LLM call(s) "
                      f"({count_text(self.llm_calls_certain, True)} certain)")
        cost = self.cost_text()
        lines = [f"dataset plan: {count_text(len(self.will_run), True)} of {count_text(self.cases, True)} case(s) will run: "
                 f"{count_text(self.tasks, True)} task(s), {calls}{cost}"]
        for reason, n in self.reasons.most_common(MAX_SHOWN):
            lines.append(f"  {count_text(n, True)} task(s): {reason}")
        if len(self.reasons) > MAX_SHOWN:
            lines.append(f"  … and {len(self.reasons) - MAX_SHOWN} more reasons")
        if self.will_run:
            shown = ", ".join(self.will_run[:MAX_SHOWN])
            more = f" and {len(self.will_run) - MAX_SHOWN} more" if len(self.will_run) > MAX_SHOWN else ""
            lines.append(f"cases: {shown}{more}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def cost_text(self) -> str:
        """``, cost $0.12 to $0.31`` as a graph's plan says it (empty when no call would be sent)."""
        from ..run.plan import Plan

        return Plan(llm_calls=self.llm_calls, cost_low=self.cost_low, cost_high=self.cost_high,
                    cost_unknown=self.cost_unknown).cost_text()

    def __repr__(self) -> str:
        return f"<DatasetPlan {str(self).split(chr(10), 1)[0]}>"

    def _repr_html_(self) -> str:
        from .table import code_names

        head, *rest = str(self).split("\n")
        rows = "".join(f"<tr><td style='text-align:right'>{n:,}</td><td style='text-align:left'>{code_names(r)}</td></tr>"
                       for r, n in self.reasons.most_common(MAX_SHOWN))
        tail = "".join(f"<div style='text-align:left'>{code_names(line)}</div>" for line in rest if not line.startswith("  "))
        return (f"<div class='llmtaskgraph-dataset-plan' style='text-align:left'><b>{html.escape(head)}</b>"
                f"<table style='margin:0'><tr><th style='text-align:right'>tasks</th><th style='text-align:left'>why they run"
                f"</th></tr>{rows}</table>{tail}</div>")


def plan_dataset(run: DatasetRun, registry: Registry | None, options: RunSettings) -> DatasetPlan:
    """The plan of ``run.run(registry, **options)``: every case's plan, summed (see :class:`DatasetPlan`)."""
    from ..model.graph import default_llm

    settings: dict[str, Any] = dict(options)
    if registry is not None:
        settings.setdefault("code_versions", CodeVersions(registry))  # each function's code read once, not per case
    result = DatasetPlan(cases=len(run.cases))
    notes: Counter[str] = Counter()
    for case in run.cases.values():
        graph = run._open(case)
        if settings.get("llm") is None:
            settings["llm"] = default_llm(graph)  # once: not one offline notice per case
        plan = graph.plan(registry, **settings)
        notes.update(plan.notes)
        if not plan.will_run:
            continue
        result.will_run.append(case.id)
        result.plans[case.id] = plan
        result.tasks += len(plan.will_run)
        result.llm_calls += plan.llm_calls
        result.llm_calls_certain += plan.llm_calls_certain
        result.cost_low += plan.cost_low
        result.cost_high += plan.cost_high
        result.cost_unknown += plan.cost_unknown
        for path in plan.will_run:
            result.reasons.update(plan.reasons.get(path, []))
    result.notes = list(notes)
    return result
