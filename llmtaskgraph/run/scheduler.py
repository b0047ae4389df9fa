"""The scheduler: runs ready tasks concurrently on one asyncio loop, stage by stage, memoized.

It keeps its own in-degree counts (not ``graphlib``) because tasks may be added while it runs.
An asyncio task that finishes a task may run the next ready one itself (a hand-off, see
``Run._execute``), which saves creating an asyncio task and a loop turn per task along chains.
A task whose every stage fingerprint matches completes synchronously, without a coroutine, so
replaying a finished trace costs little more than hashing it.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
import traceback
import warnings
from collections import Counter, deque
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ..errors import LLMTaskGraphError
from ..fingerprint import check_json, digest, stage_fingerprint
from ..llm.base import build_request
from ..model.context import TaskContext
from ..model.registry import lookup
from ..model.tasks import PATH_SEP, LLMTask, PythonTask, Task, TaskError, TaskGraphTask
from .state import RunEvent, RunOptions, RunReport, RunState

__all__ = ["Run", "RunEvent", "RunOptions", "RunReport", "RunState", "SubgraphFailed"]

if TYPE_CHECKING:
    from ..model.graph import TaskGraph


_JSON_TYPES = (str, int, float, list, dict, type(None))


class _StageError(Exception):
    """Carries the stage in which a task failed, wrapping the original exception."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        self.stage = stage
        self.cause = cause


class Run:
    """One execution of one graph. Sub-graphs get their own Run sharing the same :class:`RunState`."""

    def __init__(self, graph: TaskGraph, shared: RunState, prefix: str = "") -> None:
        self.graph = graph
        self.shared = shared
        self.prefix = prefix
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self.gi_fp = digest(graph.graph_input)
        self.finished: dict[str, str] = {}
        self.registered: set[str] = set()
        self.waiting: dict[str, int] = {}
        self.dependents: dict[str, list[str]] = {}
        self.ready: deque[str] = deque()
        self.running: dict[str, asyncio.Task[Any]] = {}
        self.children_seen: dict[str, list[str]] = {}
        self.child_counts: dict[str, Counter[str]] = {}
        self.failed_here = False
        self.launched = 0
        """Tasks of this graph (not of sub-graphs) that executed at least one stage in this run."""
        self._launching = False
        self._idle = asyncio.Event()
        self._taking = False
        """True while a task finishes on an asyncio task that can run one task it made ready next."""
        self._handed: tuple[Task, str, str] | None = None
        self._loop_queue: Collection[Any] | None = getattr(self.loop, "_ready", None)
        """The loop's queue of callbacks to run now (asyncio's own loop has one; others: None)."""

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
        deps = task.deps  # a dep given twice is waited for once:
        if task.kwdeps:
            deps = list(dict.fromkeys(task.all_deps()))
        elif len(deps) > 1 and len(set(deps)) < len(deps):
            deps = list(dict.fromkeys(deps))
        missing = 0
        finished, dependents = self.finished, self.dependents
        for dep in deps:
            state = finished.get(dep)
            if state == "done":
                continue
            if state is not None:
                self._block(tid)
                return
            missing += 1
            waiters = dependents.get(dep)
            if waiters is None:
                dependents[dep] = [tid]
            else:
                waiters.append(tid)
        if missing:
            self.waiting[tid] = missing
        else:
            self.ready.append(tid)
            self._launch_ready()

    def _launch_ready(self) -> None:
        if self._launching:  # re-entered from a synchronous completion below: the outer loop continues
            return
        self._launching = True
        shared, ready, tasks, prefix = self.shared, self.ready, self.graph.tasks, self.prefix
        report, running, create_task = shared.report, self.running, self.loop.create_task
        try:
            while ready:
                tid = ready[0]
                task = tasks.get(tid)
                if task is None:  # removed while waiting (a stale dynamic child)
                    ready.popleft()
                    continue
                try:
                    # (a PythonTask never run, the common case of a fresh graph, needs no method call)
                    start = "run" if type(task) is PythonTask and not task.record.fingerprints else self._first_stale_stage(task)
                except Exception as exc:  # a hand-edited prompt that is no longer valid, say
                    ready.popleft()
                    self._fail(task, _StageError("call", exc))
                    continue
                if start is None:
                    ready.popleft()
                    report.reused += 1
                    task.record.status = "done"
                    if shared.listeners:
                        shared.emit("task_reused", prefix + tid, task)
                    self._finish(task, "done")
                    continue
                path = prefix + tid
                if (report.stopped is not None or shared.bounded) and not shared.may_start(path):
                    break
                ready.popleft()
                report.executed.append(path)
                self.launched += 1
                if not isinstance(task, TaskGraphTask):  # else a step could never enter a sub-graph
                    shared.started += 1
                if self._taking:  # (only the first task launched may be handed off)
                    self._taking = False
                    if self._may_hand_off():
                        self._handed = task, start, path
                        running[tid] = asyncio.current_task()  # type: ignore[assignment]  # (the one finishing)
                        continue
                shared.unstarted += 1  # before: an eager task factory runs `_execute` inside create_task
                # `running` holds the only reference the loop needs until the task finishes.
                running[tid] = create_task(self._execute(task, start, path))
        finally:
            self._launching = False
        if not self.running:  # only then can `execute` be done; waking it per task would cost a loop turn each
            self._idle.set()

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
        seen = self.children_seen.pop(str(task.id), [])  # (``ctx.add_task`` fills it)
        if not seen and not task.record.children:
            return  # (the common case) it created no children, now or before
        kept = set(seen)
        stale = [c for c in task.record.children if c not in kept]
        task.record.children = seen
        if stale:
            self.graph.remove_tasks(stale)

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

    # -- fingerprints -----------------------------------------------------------------------------
    def _inputs_fp(self, task: Task) -> Any:
        """What a stage consumed: its deps' output fingerprints and the task's inputs.

        Returned unhashed, since ``_fp`` hashes it with the rest of the stage in one digest.
        """
        tasks = self.graph.tasks
        return (
            [tasks[d].record.output_fingerprint() for d in task.deps],
            {k: tasks[d].record.output_fingerprint() for k, d in task.kwdeps.items()} if task.kwdeps else {},
            task.inputs or None,
        )

    def _fp(self, task: Task, stage: str, name: str, inputs: Any, reads_input: bool | None = None) -> str:
        """Fingerprint of a stage; includes the graph input only if that stage reads it."""
        if reads_input is None:
            reads_input = stage in task.record.reads_graph_input
        return stage_fingerprint(stage, name, inputs, self.gi_fp if reads_input else None)

    def _call_fp(self, task: LLMTask, request: dict[str, Any]) -> str:
        return stage_fingerprint("call", self.shared.options.llm.kind, request, task.sample)

    def _first_stale_stage(self, task: Task) -> str | None:
        """The first stage whose stored fingerprint differs from its current inputs, or None."""
        fps = task.record.fingerprints
        if isinstance(task, PythonTask):
            # A stage never run cannot match: skip hashing its inputs (the common case of a fresh graph).
            return None if "run" in fps and fps["run"] == self._fp(task, "run", task.fn_name, self._inputs_fp(task)) else "run"
        if isinstance(task, LLMTask):
            if "format" not in fps or fps["format"] != self._fp(task, "format", task.formatter_name, self._inputs_fp(task)):
                return "format"
            if fps.get("call") != self._call_fp(task, build_request(task.record.prompt, task.params)):
                return "call"
            response = task.record.response or {}
            if fps.get("parse") != self._fp(task, "parse", task.parser_name, digest(response.get("text"))):
                return "parse"
            return None
        return "input"  # a sub-graph always runs; its own tasks are memoized

    # -- executing one task -----------------------------------------------------------------------
    def _may_hand_off(self) -> bool:
        """Whether the asyncio task finishing a task may run the next ready task itself (see :meth:`_execute`).

        Only if the loop's queue holds nothing but the first steps of asyncio tasks this run created
        (for graph tasks not started yet), so no callback or other task is overtaken, only tasks
        whose order among themselves is the scheduler's to choose.
        """
        shared, queue = self.shared, self._loop_queue
        if queue is None or len(queue) != shared.unstarted:
            return False
        if time.monotonic() < shared.handoffs_until:
            return True
        shared.handoffs_until = float("inf")  # none until `refill` ran, after the loop's next poll
        self.loop.call_soon(shared.refill)
        return False

    async def _execute(self, task: Task, start: str, path: str) -> None:
        """Execute ``task``; then, while its finishing hands this asyncio task a task made ready, that one.

        Running it here instead of on a new asyncio task saves creating one (and, along a chain, a
        turn of the loop) per task; see :meth:`_may_hand_off` for when it is done. Code inside
        still runs on a real asyncio task (what ``asyncio.current_task()`` returns, which anyio and
        httpx rely on), in the contextvars a new task created at that moment would have copied.
        """
        shared = self.shared
        shared.unstarted -= 1
        while True:
            rec = task.record
            previous_times = rec.started_at, rec.finished_at
            rec.status = "running"
            rec.error = None
            rec.started_at = time.time()
            rec.finished_at = None
            if shared.listeners:
                shared.emit("task_started", path, task)
            try:
                if isinstance(task, PythonTask):  # inlined rather than a coroutine of its own: one frame less per task
                    inputs_fp = self._inputs_fp(task)
                    args, kwargs = self._dep_outputs(task)
                    output, reads = await self._stage(task, "run", task.fn_name, args, kwargs)
                    rec.set_output(output)
                    rec.fingerprints["run"] = self._fp(task, "run", task.fn_name, inputs_fp, reads)
                elif isinstance(task, LLMTask):
                    await self._run_llm(task, start)
                elif isinstance(task, TaskGraphTask):
                    outcome = await self._run_subgraph(task)
                    if outcome == "stopped":
                        rec.status = "pending"  # a bounded run stopped inside the sub-graph: resume later
                        self.running.pop(str(task.id), None)
                        self._idle.set()
                        return
                    if outcome == "reused":  # nothing ran inside: like any memoized task, keep its timings
                        rec.started_at, rec.finished_at = previous_times
                        rec.status = "done"
                        self._take_children(task)
                        shared.emit("task_reused", path, task)
                        self._finish(task, "done")
                        return
            except asyncio.CancelledError:
                rec.status = "pending"
                rec.finished_at = time.time()
                self.running.pop(str(task.id), None)
                raise
            except _StageError as exc:
                rec.finished_at = time.time()
                self._fail(task, exc)
                return
            except Exception as exc:  # a fault outside any registry function (a broken cache, say): never hang the run
                rec.finished_at = time.time()
                self._fail(task, _StageError(start, exc))
                return
            rec.status = "done"
            rec.finished_at = time.time()
            if task.id in self.children_seen or rec.children:
                self._take_children(task)  # before the event, so a listener saving the trace sees them
            if shared.listeners:
                shared.emit("task_finished", path, task)
            self._taking = True
            try:
                self._finish(task, "done")
            except BaseException:  # (a listener's error, say) must not strand the task handed to us
                self._taking = False
                if self._handed is not None:
                    self.shared.unstarted += 1
                    self.running[str(self._handed[0].id)] = self.loop.create_task(self._execute(*self._handed))
                    self._handed = None
                raise
            self._taking = False
            handed = self._handed
            if handed is None:
                return
            self._handed = None
            task, start, path = handed

    def _fail(self, task: Task, exc: _StageError) -> None:
        rec = task.record
        cause = exc.cause
        rec.status = "failed"
        rec.error = TaskError(
            type=type(cause).__name__,
            message=str(cause),
            traceback="".join(traceback.format_exception(cause)),
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
        first_line = (str(cause).splitlines() or [""])[0]
        self.shared.report.failed.append((path, f"{type(cause).__name__} in {exc.stage}: {first_line}"))
        self.shared.emit("task_failed", path, task)
        self._finish(task, "failed")

    async def _stage(self, task: Task, stage: str, fn_name: str, args: list[Any], kwargs: dict[str, Any]) -> tuple[Any, bool]:
        """Call a registry function for one stage; returns its JSON-checked result and whether it read the input."""
        fn = lookup(self.shared.registry, fn_name)
        if fn is None:
            raise _StageError(stage, KeyError(f"registry has no callable `{fn_name}` (needed by task `{task.id}`)"))
        ctx = TaskContext(self.graph, task, self, stage)
        shared = self.shared
        shared.report.calls[fn_name] += 1
        rec = task.record
        rec.fingerprints.pop(stage, None)
        backend = shared.backend
        try:
            if backend is not None and stage == "run" and backend.handles(fn_name):
                result = await backend.run(fn_name, fn, ctx, args, kwargs)
            elif shared.is_async.get(fn):  # known async (the common case): no detour through `start`
                result = await fn(ctx, *args, **kwargs)
            else:
                result = await shared.start(fn, ctx, *args, **kwargs)
            if result is not None:  # None is JSON: no need to build the message below
                # e.g. a partial or lambda wrapping an async function; JSON values are never awaitable
                if not isinstance(result, _JSON_TYPES) and inspect.isawaitable(result):
                    result = await result
                check_json(result, f"`{fn_name}` ({stage} of task `{task.id}`)", "prompt" if stage == "format" else "output")
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except BaseException as exc:
            raise _StageError(stage, exc) from exc
        read = ctx.read_graph_input
        reads = rec.reads_graph_input
        if reads or read:
            if read and stage not in reads:
                reads.append(stage)
            elif not read and stage in reads:
                reads.remove(stage)
        return result, read

    def _dep_outputs(self, task: Task) -> tuple[list[Any], dict[str, Any]]:
        tasks = self.graph.tasks
        kwargs = {k: tasks[d].record.output for k, d in task.kwdeps.items()} if task.kwdeps else {}
        if task.inputs:
            kwargs.update(task.inputs)
        return [tasks[d].record.output for d in task.deps], kwargs

    async def _run_llm(self, task: LLMTask, start: str) -> None:
        rec = task.record
        if start == "format":
            inputs_fp = self._inputs_fp(task)
            args, kwargs = self._dep_outputs(task)
            prompt, reads = await self._stage(task, "format", task.formatter_name, args, kwargs)
            rec.prompt = prompt
            rec.fingerprints["format"] = self._fp(task, "format", task.formatter_name, inputs_fp, reads)
        try:
            request = build_request(rec.prompt, task.params)
        except Exception as exc:
            raise _StageError("format", TypeError(f"formatter `{task.formatter_name}` of task `{task.id}`: {exc}")) from exc
        call_fp = self._call_fp(task, request)
        if rec.fingerprints.get("call") != call_fp:
            rec.fingerprints.pop("call", None)
            rec.response = await self._call_llm(task, request, call_fp)
            rec.fingerprints["call"] = call_fp
        text = (rec.response or {}).get("text")
        parse_inputs = digest(text)
        if rec.fingerprints.get("parse") != self._fp(task, "parse", task.parser_name, parse_inputs):
            output, reads = await self._stage(task, "parse", task.parser_name, [text], {})
            rec.set_output(output)
            rec.fingerprints["parse"] = self._fp(task, "parse", task.parser_name, parse_inputs, reads)

    async def _call_llm(self, task: LLMTask, request: dict[str, Any], call_fp: str) -> dict[str, Any]:
        shared = self.shared
        path = self.prefix + str(task.id)
        cache = shared.cache
        if cache is not None:
            hit = cache.get(call_fp)
            if hit is not None:
                shared.report.llm_cache_hits += 1
                return {**hit, "cached": True}
        async with shared.semaphore:
            shared.emit("llm_started", path, task)
            try:
                response = await shared.options.llm.complete(request)
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except BaseException as exc:
                raise _StageError("call", exc) from exc
            finally:
                shared.report.llm_calls += 1
                shared.emit("llm_finished", path, task)
        reply = response.to_json()
        if cache is not None:
            try:
                cache.put(call_fp, reply, request)
            except OSError as exc:  # the reply is in the trace; losing its cached copy must not fail the task
                warnings.warn(f"could not store the reply of task `{task.id}` in the response cache: {exc}", stacklevel=1)
        return reply

    async def _run_subgraph(self, task: TaskGraphTask) -> str:
        """Run the sub-graph: ``done``, ``reused`` if nothing inside ran, ``stopped`` if a bound stopped it."""
        rec = task.record
        sub = task.subgraph
        inputs_fp = self._inputs_fp(task)
        input_memoized = rec.fingerprints.get("input") == self._fp(task, "input", task.input_formatter_name, inputs_fp)
        if not input_memoized:
            args, kwargs = self._dep_outputs(task)
            sub_input, reads = await self._stage(task, "input", task.input_formatter_name, args, kwargs)
            sub.graph_input = sub_input
            rec.fingerprints["input"] = self._fp(task, "input", task.input_formatter_name, inputs_fp, reads)
        rec.fingerprints.pop("subgraph", None)
        inner = Run(sub, self.shared, f"{self.prefix}{task.id}{PATH_SEP}")
        await inner.execute()
        if inner.failed_here:
            failed = [p for p, _ in self.shared.report.failed if p.startswith(inner.prefix)]
            raise _StageError("subgraph", SubgraphFailed(f"sub-graph tasks failed: {', '.join(failed)}"))
        result = sub.result_task()
        if result is not None and inner.finished.get(str(result.id)) != "done":
            if self.shared.report.stopped is not None:
                return "stopped"
            raise _StageError("subgraph", SubgraphFailed(f"sub-graph output task `{result.id}` did not finish"))
        rec.set_output(None if result is None else result.record.output)
        rec.fingerprints["subgraph"] = rec.output_fingerprint()
        if input_memoized and inner.launched == 0:
            # Nothing ran inside: report it as reused, like any fully memoized task.
            executed, path = self.shared.report.executed, self.prefix + str(task.id)
            del executed[next(i for i in range(len(executed) - 1, -1, -1) if executed[i] == path)]
            self.launched -= 1
            self.shared.report.reused += 1
            return "reused"
        return "done"


class SubgraphFailed(LLMTaskGraphError):
    """A TaskGraphTask failed because tasks in its sub-graph failed (they are listed)."""
