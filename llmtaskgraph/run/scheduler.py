"""The scheduler: moves tasks through waiting, ready and running on one asyncio loop.

It keeps its own in-degree counts (not ``graphlib``) because tasks may be added while it runs.
Whether a ready task runs at all, and from which stage, is the memo rule's answer
(:class:`~llmtaskgraph.memo.rule.Memo`); running its stages is :mod:`.stages`' job. A task whose
every stage is reused completes synchronously, without a coroutine, so replaying a finished trace
costs little more than hashing it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from ..llm.secrets import redact
from ..memo.rule import Memo
from ..model.tasks import Stage, Task, TaskError
from .budget import _BudgetStop
from .stages import _StageError, run_stages
from .state import RunEvent, RunOptions, RunReport, RunState

__all__ = ["Run", "RunEvent", "RunOptions", "RunReport", "RunState"]

if TYPE_CHECKING:
    from ..model.graph import TaskGraph


class Run:
    """One execution of one graph. Sub-graphs get their own Run sharing the same :class:`RunState`."""

    def __init__(self, graph: TaskGraph, shared: RunState, prefix: str = "") -> None:
        self.graph = graph
        self.shared = shared
        self.prefix = prefix
        self.memo = Memo(graph, shared.versions, shared.options.llm.kind)
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self.finished: dict[str, str] = {}
        self.registered: set[str] = set()
        self.waiting: dict[str, int] = {}
        self.dependents: dict[str, list[str]] = {}
        self.ready: deque[str] = deque()
        self.running: dict[str, asyncio.Task[Any]] = {}
        self.children_seen: dict[str, dict[str, None]] = {}
        """Creator id -> ids of the children it added while running now, in order (a dict: O(1) lookups)."""
        self.child_counts: dict[str, Counter[str]] = {}
        self.children_kept: set[str] = set()
        """Creators whose last stage was reused (only earlier stages ran): the children it added stay theirs."""
        self.failed_here = False
        self.launched = 0
        """Tasks of this graph (not of sub-graphs) that executed at least one stage in this run."""
        self._launching = False
        self._idle = asyncio.Event()

    # -- scheduling -------------------------------------------------------------------------------
    async def execute(self) -> None:
        graph = self.graph
        for task in list(graph.tasks.values()):
            # A child waits for its creator, which may re-create it differently or not at all.
            if task.created_by is None or task.created_by not in graph.tasks:
                self.register(task)
        self._launch_ready()
        try:
            while self.running or (self.ready and self.shared.report.stopped is None):
                self._idle.clear()
                await self._idle.wait()
        except BaseException:
            for t in self.running.values():
                t.cancel()
            await asyncio.gather(*self.running.values(), return_exceptions=True)
            raise
        self._settle()

    def register(self, task: Task) -> None:
        """Schedule ``task``; called for the graph's tasks at start and for tasks added while running."""
        tid = task.id
        assert tid is not None
        if tid in self.registered:
            return
        self.registered.add(tid)
        if self.shared.listeners:
            self.shared.emit("task_added", self.prefix + tid, task)
        missing = 0
        finished, dependents = self.finished, self.dependents
        for dep in dict.fromkeys(task.all_deps()):  # a dep given twice is waited for once
            state = finished.get(dep)
            if state == "done":
                continue
            if state is not None or dep not in self.graph.tasks:
                self._block(tid)
                return
            missing += 1
            dependents.setdefault(dep, []).append(tid)
        if missing:
            self.waiting[tid] = missing
        else:
            self.ready.append(tid)
            self._launch_ready()

    def _launch_ready(self) -> None:
        if self._launching:  # re-entered from a synchronous completion below: the outer loop continues
            return
        self._launching = True
        shared, ready, tasks, prefix, memo = self.shared, self.ready, self.graph.tasks, self.prefix, self.memo
        report = shared.report
        try:
            while ready:
                tid = ready[0]
                task = tasks.get(tid)
                if task is None:  # removed while waiting (a stale dynamic child)
                    ready.popleft()
                    continue
                start = memo.first_stale(task)
                if start is None:
                    ready.popleft()
                    self._reuse(task)
                    continue
                path = prefix + tid
                if (report.stopped is not None or shared.bounded) and not shared.may_start(path):
                    break
                ready.popleft()
                report.executed.append(path)
                self.launched += 1
                if task.stage_table[-1].reads != "subgraph":  # its inner tasks count instead, so a step can enter it
                    shared.started += 1
                # `running` holds the only reference the loop needs until the task finishes.
                self.running[tid] = self.loop.create_task(self._execute(task, start, path))
        finally:
            self._launching = False
        if not self.running:  # only then can `execute` be done
            self._idle.set()

    def _reuse(self, task: Task) -> None:
        """Every stage's stored result holds: the task is done without running anything."""
        shared = self.shared
        if self.memo.needs_settling(task):
            shared.report.adopted_versions += self.memo.settle(task)
        shared.report.reused += 1
        task.record.status = "done"
        task.record.error = None
        if shared.listeners:
            shared.emit("task_reused", self.prefix + str(task.id), task)
        self._finish(task, "done")

    def _finish(self, task: Task, state: str) -> None:
        tid = task.id
        assert tid is not None
        self.finished[tid] = state
        self.running.pop(tid, None)
        if state == "done":
            if task.record.children:
                self._adopt_children(task)
            waiting = self.waiting
            for dep_of in self.dependents.pop(tid, ()):
                left = waiting.get(dep_of)
                if left is None:
                    continue
                if left == 1:
                    del waiting[dep_of]
                    self.ready.append(dep_of)
                else:
                    waiting[dep_of] = left - 1
            shared = self.shared
            if shared.break_after and self.prefix + tid in shared.break_after and shared.report.stopped is None:
                shared.report.stopped = f"break_after:{self.prefix + tid}"
        else:
            for dep_of in self.dependents.pop(tid, ()):
                self._block(dep_of)
        if self.ready:
            self._launch_ready()
        elif not self.running:  # what `_launch_ready` would do with nothing to launch
            self._idle.set()

    def _block(self, tid: str) -> None:
        stack = [tid]
        while stack:
            t = stack.pop()
            if t in self.finished:
                continue
            self.waiting.pop(t, None)
            self.finished[t] = "blocked"
            task = self.graph.tasks.get(t)
            if task is not None:
                task.record.status = "blocked"
                self.shared.report.blocked.append(self.prefix + t)
                self.shared.emit("task_blocked", self.prefix + t, task)
            stack.extend(self.dependents.pop(t, ()))

    def _take_children(self, task: Task) -> None:
        """After a creator executed: the children it created this time are its children now; drop the rest."""
        seen = list(self.children_seen.pop(str(task.id), ()))  # (``ctx.add_task`` fills it)
        if not seen and not task.record.children:
            return  # (the common case) it created no children, now or before
        if str(task.id) in self.children_kept and not seen:
            self.children_kept.discard(str(task.id))
            return
        kept = set(seen)
        stale = [c for c in task.record.children if c not in kept]
        if stale:
            self.graph._drop_stale_children(stale, kept)
        # a child not created now stays only if one created now depends on it
        task.record.children = seen + [c for c in stale if c in self.graph.tasks]

    def _adopt_children(self, task: Task) -> None:
        """After a creator finishes (its children already taken, see :meth:`_take_children`): schedule them."""
        for child_id in task.record.children:
            child = self.graph.tasks.get(child_id)
            if child is not None:
                self.register(child)

    def _settle(self) -> None:
        """At the end: tasks never started stay pending if the run was stopped, else are blocked."""
        stopped = self.shared.report.stopped is not None
        for tid, task in self.graph.tasks.items():
            if tid in self.finished:
                continue
            if stopped:
                if task.record.status == "running":
                    task.record.status = "pending"
            elif tid in self.registered or task.created_by is not None:
                task.record.status = "blocked"
                self.shared.report.blocked.append(self.prefix + tid)

    # -- executing one task -----------------------------------------------------------------------
    async def _execute(self, task: Task, start: Stage, path: str) -> None:
        shared, rec = self.shared, task.record
        previous_times = rec.started_at, rec.finished_at
        rec.status = "running"
        rec.error = None
        rec.started_at = time.time()
        rec.finished_at = None
        if shared.listeners:
            shared.emit("task_started", path, task)
        try:
            outcome = await run_stages(self, task, start)
        except (asyncio.CancelledError, KeyboardInterrupt):  # (Ctrl-C inside a function called inline)
            rec.status = "pending"
            rec.finished_at = time.time()
            self.running.pop(str(task.id), None)
            raise
        except _StageError as exc:
            rec.finished_at = time.time()
            self._fail(task, exc)
            return
        except _BudgetStop:  # its call would pass the run's budget: it waits, unfinished, for the next run
            outcome = "stopped"
        except Exception as exc:  # a fault outside any registry function (a broken cache, say): never hang the run
            rec.finished_at = time.time()
            self._fail(task, _StageError(start.name, exc))
            return
        if outcome == "stopped":
            rec.status = "pending"  # a bounded run stopped inside the sub-graph: resume later
            self.running.pop(str(task.id), None)
            self._idle.set()
            return
        if outcome == "reused":  # a sub-graph in which nothing ran: like any memoized task
            rec.started_at, rec.finished_at = previous_times
            report = shared.report
            del report.executed[len(report.executed) - 1 - report.executed[::-1].index(path)]
            self.launched -= 1
            self._take_children(task)
            self._reuse(task)
            return
        rec.status = "done"
        rec.finished_at = time.time()
        if task.id in self.children_seen or rec.children:
            self._take_children(task)  # before the event, so a listener saving the trace sees them
        if shared.listeners:
            shared.emit("task_finished", path, task)
        self._finish(task, "done")

    def _fail(self, task: Task, exc: _StageError) -> None:
        rec = task.record
        cause = exc.cause
        rec.status = "failed"
        message = redact(str(cause))  # the trace is shared and shown: no key-shaped value may be stored
        rec.error = TaskError(
            type=type(cause).__name__,
            message=message,
            traceback=redact("".join(traceback.format_exception(cause))),
            stage=exc.stage,
        )
        # The failed stage and everything after it no longer hold a valid result.
        stages = task.stages
        for stage in stages[stages.index(exc.stage):] if exc.stage in stages else stages:
            rec.fingerprints.pop(stage, None)
        seen = self.children_seen.pop(str(task.id), None)
        if seen:  # keep old children too: the fixed creator may re-create them
            rec.children = list(dict.fromkeys([*rec.children, *seen]))
        self.failed_here = True
        path = self.prefix + str(task.id)
        first_line = (message.splitlines() or [""])[0]
        self.shared.report.failed.append((path, f"{type(cause).__name__} in {exc.stage}: {first_line}"))
        self.shared.emit("task_failed", path, task)
        self._finish(task, "failed")
