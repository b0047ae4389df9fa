"""``graph.plan(registry)``: what the next run would execute and why, without running anything.

The plan walks the graph in dependency order and asks the memo rule (:mod:`llmtaskgraph.memo.rule`)
the scheduler's own question for every task, with one difference: the outputs of tasks that will
run are not known yet, so whatever reads them is counted as running too. That is exact when a
re-run changes its output (the usual case after an edit) and an upper bound otherwise (a function
that returns the same value stops the cascade at run time). No registry function, no LLM and no
token counter is called; the only I/O is looking up the response cache when ``cache=`` is given.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..llm.cache import cache_key
from ..memo.code import CodeVersions
from ..memo.rule import Memo
from ..model.tasks import EDITED, INVALIDATED, PATH_SEP, LLMTask, Task, TaskGraphTask
from .estimate import PlannedCall, estimate_cost

if TYPE_CHECKING:
    from ..llm.cache import ResponseStore
    from ..model.graph import TaskGraph
    from ..model.registry import Registry
    from .state import RunSettings

__all__ = ["Plan", "make_plan"]


@dataclass
class Plan:
    """What a run would do now. Print it, or show it in a notebook (a table, and the drawing coloured)."""

    will_run: list[str] = field(default_factory=list)
    """Paths of the tasks that would execute at least one stage, in an order the run could take."""
    reasons: dict[str, list[str]] = field(default_factory=dict)
    """Path -> why it runs (``code of `parse` changed``, ``output of `a` changed``, ``never ran``, ...)."""
    llm_calls: int = 0
    """At most this many LLM requests would be sent (the cache and unchanged requests may save some)."""
    llm_calls_certain: int = 0
    """Of those, how many are certain: their request is known now and no stored reply answers it."""
    reused: list[str] = field(default_factory=list)
    """Paths of the tasks whose every stored result would be reused."""
    notes: list[str] = field(default_factory=list)
    """What the plan could not know (no registry given, tasks added at run time, bounds not applied)."""
    cost_low: float = 0.0
    """US dollars the calls would cost at least (their input alone; see :mod:`.estimate`)."""
    cost_high: float = 0.0
    """US dollars they could cost at most (input and ``max_tokens`` of output each)."""
    cost_unknown: int = 0
    """Calls left out of the range: no prompt to price yet, or a model with no known price."""
    unpriced_models: list[str] = field(default_factory=list)
    """Models of those calls that have no known price."""
    tokens_counted: bool = False
    """Input tokens were counted by the API's token-counting endpoint (else estimated locally)."""
    graph: TaskGraph | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        calls = (f"{self.llm_calls} LLM call(s)" if self.llm_calls == self.llm_calls_certain
                 else f"at most {self.llm_calls} LLM call(s) ({self.llm_calls_certain} certain)")
        total = len(self.will_run) + len(self.reused)
        lines = [f"plan: {len(self.will_run)} of {total} task(s) will run, {calls}{self.cost_text()}"]
        width = max((len(p) for p in self.will_run), default=0)
        lines += [f"  {p.ljust(width)}  {'; '.join(self.reasons.get(p, []))}" for p in self.will_run]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def cost_text(self) -> str:
        """``, cost $0.0120 to $0.0310`` (empty when no call would be sent)."""
        if not self.llm_calls:
            return ""
        from ..trace.usage import dollars_text

        priced = self.llm_calls - self.cost_unknown
        text = f", cost {dollars_text(self.cost_low)} to {dollars_text(self.cost_high)}" if priced > 0 else ", cost ?"
        if self.cost_unknown and priced > 0:
            text += f" + {self.cost_unknown} call(s) not priced"
        return text

    def _repr_html_(self) -> str:
        def e(text: str) -> str:  # escaped, with `names` as code
            return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))

        rows = "".join(
            f"<tr><td style='text-align:left;font-family:monospace'>{e(p)}</td>"
            f"<td style='text-align:left'>{e('; '.join(self.reasons.get(p, [])))}</td></tr>" for p in self.will_run
        )
        head, *_ = str(self).splitlines()
        notes = "".join(f"<div style='text-align:left'>note: {e(n)}</div>" for n in self.notes)
        drawing = ""
        if self.graph is not None:
            from ..views.render import to_html

            drawing = to_html(self.graph, plan=self)
        return (f"<div class='llmtaskgraph-plan' style='text-align:left'><b>{e(head)}</b>"
                f"<table style='margin:0'><tr><th style='text-align:left'>task</th><th style='text-align:left'>why it runs"
                f"</th></tr>{rows}</table>{notes}{drawing}</div>")


def make_plan(graph: TaskGraph, registry: Registry | None, options: RunSettings) -> Plan:
    """The plan of ``graph.run(registry, **options)``; see :class:`Plan`."""
    from ..model.graph import default_llm
    from .state import RunOptions

    settings: dict[str, Any] = dict(options)
    resample = settings.pop("resample", False)
    settings.pop("progress", None)
    llm = settings.pop("llm", None) or default_llm(graph)
    run_options = RunOptions(llm=llm, **settings)  # the same checks as a run: a bad option fails here too
    plan = Plan(graph=graph)
    versions: Callable[[str], str | None]
    if registry is None:
        versions = _no_versions
        plan.notes.append("no registry given: changes to function code are not detected")
    else:
        versions = run_options.code_versions or CodeVersions(registry)
    cache = None
    if run_options.cache is not None:
        from ..llm.cache import as_store

        cache = as_store(run_options.cache)
    resampled: Collection[Task] = graph.llm_tasks(None if resample is True else resample) if resample else ()
    planner = _Planner(plan, versions, run_options.llm.kind, cache, resampled, registry)
    planner.graph(graph, "", True)
    from .state import RunReport

    estimate_cost(plan, planner.calls, run_options.llm, RunReport())
    if planner.unversioned and registry is not None:
        plan.notes.append(f"{planner.unversioned} stored result(s) have no code version (a trace saved before versions "
                          "existed): the run keeps them and adopts the current code; changes made earlier go unseen")
    if run_options.max_tasks is not None or run_options.timeout is not None or run_options.break_before or run_options.break_after:
        plan.notes.append("bounds (max_tasks, timeout, break_before, break_after) are not applied: "
                          "this is everything the run would do without them")
    return plan


def _no_versions(name: str) -> None:
    return None


def stale_paths(graph: TaskGraph) -> set[str]:
    """Paths of the tasks an edit (of a prompt, reply, output, input or setting) left to run again.

    What views show as "stale": the plan's rule without a registry (code is not compared) and with
    the LLM backend each task was last called with.
    """
    plan = Plan()
    _Planner(plan, _no_versions, None, None, (), None).graph(graph, "", True)
    return set(plan.will_run)


class _Planner:
    def __init__(self, plan: Plan, versions: Callable[[str], str | None], llm_kind: str | None,
                 cache: ResponseStore | None, resampled: Collection[Task], registry: Registry | None) -> None:
        self.plan = plan
        self.registry = registry
        """The registry, when given: an agent's first turn depends on its tools' schemas."""
        self.versions = versions
        self.llm_kind = llm_kind
        self.cache = cache
        self.resampled = resampled
        self.creators_noted = False
        self.calls: list[PlannedCall] = []
        """The calls counted in ``plan.llm_calls``, for the cost estimate."""
        self.unversioned = 0
        """Reused stages with no code version: from a trace saved before versions existed."""

    def graph(self, graph: TaskGraph, prefix: str, input_known: bool) -> set[str]:
        """Plan the tasks of ``graph``; returns the ids of those that will run."""
        plan = self.plan
        changing: set[str] = set()
        memo = Memo(graph, self.versions, self.llm_kind, changing, input_known)
        for tid, task in graph.tasks.items():  # insertion order: every task comes after its dependencies
            path = prefix + tid
            stage = memo.first_stale(task)
            reasons = [] if stage is None else memo.explain(task, stage)
            if task in self.resampled and (stage is None or task.stages.index(stage.name) > 1):
                stage = task.stage_table[1]
                reasons = ["resample requested"]
            if isinstance(task, TaskGraphTask):
                assert stage is not None
                input_runs = stage.name == "input"
                try:
                    afresh = task.starts_afresh(self.registry)
                except Exception:  # e.g. a tool whose signature cannot be read: the run will say so
                    afresh = None
                if afresh is not None:  # its tasks will be replaced: plan the new ones as calls, not as tasks
                    why, least, most = afresh
                    plan.will_run.append(path)
                    plan.reasons[path] = [*(reasons if input_runs else []), why]
                    plan.llm_calls += most
                    plan.llm_calls_certain += least
                    self.calls += [PlannedCall(path, task, exact=False)] * most
                    changing.add(tid)
                    continue
                at = len(plan.will_run)
                # its own input stage decides its sub-graph's input: known unless that stage runs
                inner = self.graph(task.subgraph, path + PATH_SEP, not input_runs)
                if not (input_runs or inner):
                    plan.reused.append(path)
                    result = task.result_task()
                    if result is not None and result.record.output_fingerprint() != task.record.output_fingerprint():
                        changing.add(tid)  # its output task was edited: entering it hands the new output on
                    continue
                plan.will_run.insert(at, path)
                plan.reasons[path] = reasons if input_runs else ["tasks inside it run"]
                result = task.result_task()
                if result is not None and result.id in inner:  # else its output stays what it is
                    changing.add(tid)
                continue
            if stage is None:
                plan.reused.append(path)
                rec = task.record
                self.unversioned += sum(s.attr is not None and s.name in rec.fingerprints and s.name not in rec.versions
                                        and rec.fingerprints[s.name] != EDITED for s in task.stage_table)
                continue
            plan.will_run.append(path)
            plan.reasons[path] = reasons
            changing.add(tid)
            if task.record.children and not self.creators_noted:
                self.creators_noted = True
                plan.notes.append("tasks that add tasks while running will run again: the tasks they add "
                                  "are planned as they are now (they may add others)")
            if isinstance(task, LLMTask) and stage.name in ("format", "call"):
                self._count_call(task, stage.name, memo, path)
        return changing

    def _count_call(self, task: LLMTask, stage: str, memo: Memo, path: str) -> None:
        plan = self.plan
        stored = task.record.fingerprints.get("call")
        if stage == "format" and stored not in (None, INVALIDATED) and task not in self.resampled:
            plan.llm_calls += 1  # the request is known only once the formatter ran: it may come out the same
            self.calls.append(PlannedCall(path, task, exact=False))
            return
        if self.cache is not None:
            fp = None
            if stage == "call":
                try:
                    fp = memo.fingerprint(task, task.stage_table[1]) if task not in self.resampled else None
                except Exception:
                    fp = None
            if fp is None or self.cache.get(cache_key(fp, path)) is None:
                plan.llm_calls += 1
                plan.llm_calls_certain += stage == "call"
                self.calls.append(PlannedCall(path, task, exact=stage == "call"))
            return
        plan.llm_calls += 1
        plan.llm_calls_certain += 1
        self.calls.append(PlannedCall(path, task, exact=stage == "call"))
