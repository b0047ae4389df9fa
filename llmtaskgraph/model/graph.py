"""TaskGraph: the model of an application (tasks, dependencies, input, output) and its edits.

Running is delegated to :mod:`llmtaskgraph.run.scheduler`, JSON to :mod:`llmtaskgraph.trace.serialization`,
drawing to :mod:`llmtaskgraph.views.render`; this module only keeps the graph consistent.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import GraphValidationError, TaskGraphError
from ..run._sync import run_sync
from ..run.scheduler import Run, RunEvent, RunOptions, RunReport, RunState
from .registry import Registry, check_registry, lookup
from .tasks import PATH_SEP, LLMTask, Task, TaskGraphTask, valid_id

if TYPE_CHECKING:
    from ..llm.base import LLMBackend
    from ..trace.usage import Usage
    from ..views.widgets import GraphEditor

T = TypeVar("T", bound=Task)
_offline_notice_shown = False


class TaskGraph:
    """An acyclic graph of tasks plus everything its runs produced (the trace).

    >>> graph = TaskGraph()
    >>> first = graph.add_task(PythonTask("load"))
    >>> graph.add_task(LLMTask("ask", "parse", first))  # doctest: +SKIP
    """

    def __init__(self, graph_input: Any = None) -> None:
        self.tasks: dict[str, Task] = {}
        """Task id -> task, in insertion order."""
        self._graph_input: Any = graph_input
        self.last_run: RunReport | None = None
        """What the latest run did (executed tasks, calls per function, failures)."""
        self._output_id: str | None = None
        self._lock = threading.RLock()
        self._active: RunState | None = None

    # -- building ---------------------------------------------------------------------------------
    @property
    def graph_input(self) -> Any:
        """Any JSON value; read by functions through ``ctx.graph_input``."""
        return self._graph_input

    @graph_input.setter
    def graph_input(self, value: Any) -> None:
        changed = value != self._graph_input
        self._graph_input = value
        if changed:  # show what the next run will redo: the stages that read the input, and downstream
            readers = [tid for tid, t in self.tasks.items() if t.record.reads_graph_input]
            self._mark_stale_ids([*readers, *self._downstream(readers)])

    @property
    def output_task(self) -> Task | None:
        """The task whose output ``run`` returns; None means the last task added before the run."""
        return None if self._output_id is None else self.tasks.get(self._output_id)

    @output_task.setter
    def output_task(self, task: Task | str | None) -> None:
        tid = task.id if isinstance(task, Task) else task
        if tid is not None and tid not in self.tasks:
            raise GraphValidationError(f"cannot make `{tid}` the output task: it is not in the graph; add it first")
        self._output_id = tid

    def add_task(self, task: T) -> T:
        """Add ``task`` (its dependencies must already be in the graph) and return it."""
        with self._lock:
            self._insert(task, task.id or self._fresh_id(task))
        return task

    def add_output_task(self, task: T) -> T:
        """Add ``task`` and make it the graph's output."""
        self.add_task(task)
        self._output_id = task.id
        return task

    def _fresh_id(self, task: Task) -> str:
        base = task.name or task.main_function
        if base not in self.tasks:
            return base
        n = 2
        while f"{base}#{n}" in self.tasks:
            n += 1
        return f"{base}#{n}"

    def _resolve_deps(self, task: Task, tid: str) -> None:
        def resolve(dep: Any) -> str:
            dep_id = dep.id if isinstance(dep, Task) else dep
            if isinstance(dep, Task) and (dep_id is None or self.tasks.get(dep_id) is not dep):
                raise GraphValidationError(
                    f"task `{tid}` depends on task `{dep.label}`, which is not in this graph; add it first"
                )
            if dep_id not in self.tasks:
                raise GraphValidationError(f"task `{tid}` depends on `{dep_id}`, which is not in the graph; add it first")
            return str(dep_id)

        task.deps = [resolve(d) for d in task.deps]
        task.kwdeps = {k: resolve(d) for k, d in task.kwdeps.items()}

    def _insert(self, task: Task, tid: str) -> None:
        if task.graph is not None:
            raise GraphValidationError(f"task `{task.id}` already belongs to a graph; create a new task instead")
        if tid in self.tasks:
            raise GraphValidationError(f"a task with id `{tid}` is already in the graph; give this one another `id=`")
        if not valid_id(tid):
            raise GraphValidationError(f"the task id `{tid}` is not allowed: ids are non-empty and never contain `{PATH_SEP}`, "
                                       "which separates sub-graph paths; choose another `id=`, `name=` or `key=`")
        self._resolve_deps(task, tid)
        task.id = tid
        task.graph = self
        self.tasks[tid] = task

    def _add_child(self, creator: Task, task: T, run: Run | None) -> T:
        """Add ``task`` on behalf of ``creator`` while it runs (see :meth:`TaskContext.add_task`)."""
        if run is None:
            raise GraphValidationError("ctx.add_task can only be called while the graph runs")
        missing = {name: [str(creator.id)] for name in task.function_names().values() if lookup(run.shared.registry, name) is None}
        if missing:
            check_registry(run.shared.registry, missing)
        with self._lock:
            cid = str(creator.id)
            counts = run.child_counts.setdefault(cid, Counter())
            base = task.key or task.name or task.main_function
            counts[base] += 1
            tid = task.id or (f"{cid}/{base}" if task.key else f"{cid}/{base}#{counts[base]}")
            seen = run.children_seen.setdefault(cid, [])
            if tid in seen:
                raise GraphValidationError(f"task `{cid}` added two children with the id `{tid}`; give them distinct keys")
            old = self.tasks.get(tid)
            if old is not None and valid_id(tid):
                if old.created_by != cid:
                    raise GraphValidationError(f"task `{cid}` cannot add `{tid}`: that id belongs to another task")
                if task.graph is not None:
                    raise GraphValidationError(f"task `{task.id}` already belongs to a graph; create a new task instead")
                self._resolve_deps(task, tid)
                _take_over(old, task)
                self.tasks[tid] = task
            else:
                self._insert(task, tid)
            task.created_by = cid
            seen.append(tid)
        if threading.get_ident() == run.loop_thread:
            run.register(task)
        else:
            run.loop.call_soon_threadsafe(run.register, task)
        return task

    # -- queries ----------------------------------------------------------------------------------
    def result_task(self) -> Task | None:
        """The output task, else the last task not added at run time (the last one added before a run)."""
        if self._output_id is not None:
            return self.tasks.get(self._output_id)
        for task in reversed(self.tasks.values()):
            if task.created_by is None:
                return task
        return None

    @property
    def output(self) -> Any:
        """The stored output of :meth:`result_task` (None if there is none yet)."""
        task = self.result_task()
        return None if task is None else task.output

    def dependents(self) -> dict[str, list[str]]:
        """Task id -> ids of the tasks that take its output."""
        index: dict[str, list[str]] = {tid: [] for tid in self.tasks}
        for tid, task in self.tasks.items():
            for dep in dict.fromkeys(task.all_deps()):
                index.setdefault(dep, []).append(tid)
        return index

    def descendants(self, task: Task | str, include_children: bool = False) -> list[str]:
        """Ids of every task downstream of ``task`` (and, optionally, of those it created), in graph order."""
        return self._downstream([str(task.id if isinstance(task, Task) else task)], include_children)

    def _downstream(self, starts: Iterable[str], include_children: bool = False) -> list[str]:
        index = self.dependents()
        children: dict[str, list[str]] = {}
        if include_children:
            for tid, t in self.tasks.items():
                if t.created_by is not None:
                    children.setdefault(t.created_by, []).append(tid)
        found: set[str] = set()
        stack = list(starts)
        while stack:
            cur = stack.pop()
            for nxt in [*index.get(cur, ()), *children.get(cur, ())]:
                if nxt not in found:
                    found.add(nxt)
                    stack.append(nxt)
        return [tid for tid in self.tasks if tid in found]

    def walk(self, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Task, int]]:
        """(path, task, depth) for every task, those of a sub-graph right after their TaskGraphTask."""
        for tid, task in list(self.tasks.items()):
            yield prefix + tid, task, depth
            if isinstance(task, TaskGraphTask):
                yield from task.subgraph.walk(f"{prefix}{tid}{PATH_SEP}", depth + 1)

    def required_functions(self) -> dict[str, list[str]]:
        """Registry name -> paths of the tasks (sub-graphs included) that need it."""
        needs: dict[str, list[str]] = {}
        for path, task, _ in self.walk():
            for name in task.function_names().values():
                needs.setdefault(name, []).append(path)
        return needs

    # -- edits ------------------------------------------------------------------------------------
    def remove_tasks(self, ids: Iterable[str]) -> list[str]:
        """Remove tasks, everything downstream of them and every task they created; returns the removed ids."""
        with self._lock:
            starts = [tid for tid in ids if tid in self.tasks]
            doomed = {*starts, *self._downstream(starts, include_children=True)}
            for tid in doomed:
                task = self.tasks.pop(tid)
                task.graph = None
            if self._output_id in doomed:
                self._output_id = None
            return sorted(doomed)

    def _mark_stale(self, tid: str, include_self: bool) -> None:
        """After an edit: show the edited task (optionally) and its descendants as pending."""
        self._mark_stale_ids(([tid] if include_self else []) + self.descendants(tid))

    def _mark_stale_ids(self, ids: Iterable[str]) -> None:
        for t in ids:
            if self.tasks[t].record.status in ("done", "blocked"):
                self.tasks[t].record.status = "pending"

    def resample(self, tasks: Iterable[Task | str] | None = None) -> None:
        """Draw fresh LLM replies for ``tasks`` (default: every LLMTask) on the next run."""
        chosen = None if tasks is None else {str(t.id) if isinstance(t, Task) else t for t in tasks}
        for tid, task in self.tasks.items():
            if isinstance(task, LLMTask) and (chosen is None or tid in chosen):
                task.resample()
            elif isinstance(task, TaskGraphTask):
                task.subgraph.resample(None if chosen is None or tid in chosen else chosen)

    # -- running ----------------------------------------------------------------------------------
    def run(self, registry: Registry, **options: Any) -> Any:
        """Run until every task is done (or a bound stops it) and return the output task's output.

        Works in plain scripts and inside Jupyter, where an event loop is already running.
        Options: ``llm``, ``max_concurrency``, ``max_tasks``, ``timeout``, ``break_before``,
        ``break_after``, ``resample``, ``on_event``, ``max_workers``, ``progress``, ``cache`` (a directory
        for the persistent response cache, see :class:`~llmtaskgraph.llm.cache.ResponseCache`).
        Raises :class:`TaskGraphError` naming every failed task; completed outputs stay in the trace.
        """
        return run_sync(lambda: self.arun(registry, **options))

    async def arun(
        self,
        registry: Registry,
        *,
        llm: LLMBackend | None = None,
        resample: bool | Collection[str] = False,
        progress: bool | None = None,
        **options: Any,
    ) -> Any:
        """The async form of :meth:`run`."""
        if self._active is not None:
            raise GraphValidationError("this graph is already running; wait for that run to end (or call graph.stop())")
        check_registry(registry, self.required_functions())
        if resample:
            self.resample(None if resample is True else resample)
        shared = RunState(registry, RunOptions(llm=llm or default_llm(), **options))
        from ..run.checkpoint import attach_checkpoint
        from ..run.progress import attach_progress

        finish_checkpoint = attach_checkpoint(self, shared)
        detach = attach_progress(self, shared, progress)
        self._active = shared
        run = Run(self, shared)
        try:
            await run.execute()
        finally:
            self._active = None
            shared.report.finished_at = time.time()
            self.last_run = shared.report
            detach()
            finish_checkpoint()
            if shared.executor is not None:
                shared.executor.shutdown(wait=False)
        if shared.report.failed:
            raise TaskGraphError(shared.report.failed)
        return self.output

    def events(self, registry: Registry, **options: Any) -> AsyncIterator[RunEvent]:
        """Run (as :meth:`arun` does) while yielding its events: ``async for event in graph.events(registry)``."""
        from ..run.streaming import stream_events

        return stream_events(self, registry, **options)

    def step(self, registry: Registry, **options: Any) -> Task | None:
        """Execute the next ready task (memoized ones are passed through) and return it, or None when finished.

        Inside a sub-graph the step executes one inner task and returns that one (its path is
        ``graph.last_run.executed[-1]``).
        """
        self.run(registry, max_tasks=1, **options)
        report = self.last_run
        if report is None or not report.executed:
            return None
        return self.find(report.executed[-1])

    def find(self, path: str) -> Task:
        """The task at ``path`` (``outer > inner`` for tasks inside sub-graphs)."""
        head, _, rest = path.partition(PATH_SEP)
        task = self.tasks[head]
        if rest:
            if not isinstance(task, TaskGraphTask):
                raise KeyError(path)
            return task.subgraph.find(rest)
        return task

    def stop(self) -> None:
        """Ask the current run to start no new task; running ones finish and ``run`` returns."""
        shared = self._active
        if shared is not None and shared.report.stopped is None:
            shared.report.stopped = "stop"

    def usage(self) -> Usage:
        """Calls, tokens (cache reads/writes too), LLM seconds and per-model counts of the replies in the
        trace, sub-graphs included. See :mod:`llmtaskgraph.trace.usage`."""
        from ..trace.usage import graph_usage

        return graph_usage(self)

    # -- JSON -------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The graph and its whole trace as plain JSON types (``json.dumps`` works on it)."""
        from ..trace.serialization import graph_to_json

        return graph_to_json(self)

    @classmethod
    def from_json(cls, data: Any) -> TaskGraph:
        """Rebuild a graph from :meth:`to_json` output; ``data`` is not modified."""
        from ..trace.serialization import graph_from_json

        return graph_from_json(data)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the trace to ``path`` atomically (a crash never leaves a half-written file)."""
        from ..trace.serialization import save

        save(self, Path(path))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TaskGraph:
        from ..trace.serialization import load

        return load(Path(path))

    # -- display ----------------------------------------------------------------------------------
    def editor(self, registry: Registry, **options: Any) -> GraphEditor:
        """A notebook widget to pick a task, edit its prompt, reply or output, replay and step (needs ipywidgets).

        ``options`` are passed to every run the editor starts (``llm=``, ``max_concurrency=``, ...).
        """
        from ..views.widgets import GraphEditor

        return GraphEditor(self, registry, **options)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from ..views.render import graph_mimebundle

        return graph_mimebundle(self)

    def __repr__(self) -> str:
        counts = Counter(t.record.status for t in self.tasks.values())
        summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "empty"
        return f"<TaskGraph {len(self.tasks)} tasks: {summary}>"


def _take_over(old: Task, new: Task) -> None:
    """A re-created child keeps its predecessor's record (fingerprints decide what is reused)."""
    new.record = old.record
    new.created_by = old.created_by
    if isinstance(old, TaskGraphTask) and isinstance(new, TaskGraphTask):
        from ..trace.serialization import same_spec

        if same_spec(old.subgraph, new.subgraph):
            new.subgraph = old.subgraph
    new.graph, new.id = old.graph, old.id
    old.graph = None


def default_llm() -> LLMBackend:
    """AnthropicLLM when ANTHROPIC_API_KEY is set, else the offline backend (announced once)."""
    global _offline_notice_shown
    from ..llm import OFFLINE_NOTICE, OfflineLLM

    if os.environ.get("ANTHROPIC_API_KEY"):
        from ..llm.anthropic import AnthropicLLM

        return AnthropicLLM()
    if not _offline_notice_shown:
        _offline_notice_shown = True
        print(OFFLINE_NOTICE, file=sys.stderr)
    return OfflineLLM()


