"""TaskGraph: the model of an application (tasks, dependencies, input, output) and its edits.

Running is delegated to :mod:`llmtaskgraph.run.scheduler`, JSON to :mod:`llmtaskgraph.trace.serialization`,
drawing to :mod:`llmtaskgraph.views.render`; this module only keeps the graph consistent.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import GraphValidationError, TaskGraphError, UnknownTaskError
from ..fingerprint import check_json
from ..run._sync import run_sync
from ..run.scheduler import Run, RunEvent, RunOptions, RunReport, RunState
from .registry import Registry, check_registry, lookup
from .tasks import MAX_NESTING, PATH_SEP, LLMTask, Task, TaskGraphTask, valid_id

if TYPE_CHECKING:
    from typing import Unpack

    from ..llm.base import LLMBackend
    from ..run.plan import Plan
    from ..run.state import RunSettings
    from ..trace.usage import Usage
    from ..views.graph_view import GraphView
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
        check_json(graph_input, "the graph input", "graph_input")
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
        # Refused here, where it enters, rather than when a saved trace fails to load.
        check_json(value, "the graph input", "graph_input")
        self._graph_input = value

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
        if isinstance(task, TaskGraphTask) and task.nesting() > MAX_NESTING:
            raise GraphValidationError(f"task `{tid}`: sub-graphs nested {task.nesting()} deep; at most {MAX_NESTING} can be "
                                       "saved and loaded, so flatten some of them")
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
            seen = run.children_seen.setdefault(cid, {})
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
            seen[tid] = None
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
    def remove_tasks(self, tasks: Iterable[Task | str]) -> list[str]:
        """Remove tasks (objects or paths), everything downstream of them and every task they created;
        returns the removed ids (paths for tasks inside sub-graphs).

        Refuses (naming it) to remove an output task, which would silently change what ``run`` returns:
        set ``graph.output_task`` to another task first.
        """
        groups: dict[int, tuple[TaskGraph, list[str]]] = {}
        for ref in self._checked_list(tasks):
            task = self.find(ref) if isinstance(ref, str) else self._check_own(ref)
            owner = task.graph
            assert owner is not None and task.id is not None
            groups.setdefault(id(owner), (owner, []))[1].append(task.id)
        removed: list[str] = []
        for owner, ids in groups.values():
            prefix = self.path_of(owner.tasks[ids[0]])[: -len(ids[0])]  # `outer > ` for a sub-graph's tasks
            removed += [prefix + tid for tid in owner._remove_own(ids)]
        return removed

    def _checked_list(self, tasks: Iterable[Task | str]) -> list[Task | str]:
        if isinstance(tasks, (str, Task)):
            raise GraphValidationError(f"expected a list of tasks or paths, got {tasks!r}; write [{tasks!r}]")
        return list(tasks)

    def _remove_own(self, starts: list[str]) -> list[str]:
        with self._lock:
            doomed = {*starts, *self._downstream(starts, include_children=True)}
            if self._output_id in doomed:
                raise GraphValidationError(
                    f"removing {', '.join(f'`{t}`' for t in starts)} would remove the output task `{self._output_id}`; "
                    "set `graph.output_task` to another task first"
                )
            return self._drop(doomed)

    def _drop(self, doomed: set[str]) -> list[str]:
        for tid in doomed:
            self.tasks.pop(tid).graph = None
        if self._output_id in doomed:  # (only when a creator no longer creates the output task)
            self._output_id = None
        return sorted(doomed)

    def _drop_stale_children(self, stale: list[str], kept: Collection[str]) -> None:
        """After a creator ran again: remove the children it no longer creates, their descendants and what
        they created, except those a child it created now depends on (directly or not): those stay."""
        with self._lock:
            needed: set[str] = set()
            stack = list(kept)
            while stack:
                task = self.tasks.get(stack.pop())
                for dep in task.all_deps() if task is not None else ():
                    if dep not in needed:
                        needed.add(dep)
                        stack.append(dep)
            starts = [t for t in stale if t in self.tasks and t not in needed]
            doomed = {*starts, *self._downstream(starts, include_children=True)} - needed
            self._drop(doomed)

    def resample(self, tasks: Iterable[Task | str] | None = None) -> None:
        """Draw fresh LLM replies on the next run for ``tasks`` (tasks or paths; a sub-graph task means every
        LLMTask inside it; default: every LLMTask of the graph)."""
        for task in self.llm_tasks(tasks):
            task.resample()

    def llm_tasks(self, tasks: Iterable[Task | str] | None = None) -> list[LLMTask]:
        """The LLMTasks among ``tasks`` (objects or paths) and inside the sub-graphs of those; all when None."""
        chosen = None if tasks is None else [self.find(t) if isinstance(t, str) else self._check_own(t)
                                             for t in self._checked_list(tasks)]
        return [task for _, task, _ in self.walk() if isinstance(task, LLMTask)
                and (chosen is None or task in chosen or self._inside(task, chosen))]

    @property
    def running(self) -> bool:
        """Whether a run of this graph is going on now."""
        return self._active is not None

    def invalidate(self, *tasks: Task | str, stage: str | None = None) -> None:
        """Make the next run execute ``stage`` (default: every stage) of each task again, and what follows it.

        Tasks are given as objects or paths (``outer > inner``). For an LLMTask's ``call`` stage (or a
        stage before it) that means a fresh sample, so neither the trace nor the response cache
        answers it. A sub-graph task's ``subgraph`` stage invalidates every task inside it.
        ``graph.plan`` shows the result ("invalidated").
        """
        from .tasks import INVALIDATED

        if not tasks:
            raise GraphValidationError("invalidate needs at least one task (an object or a path)")
        chosen = [self.find(t) if isinstance(t, str) else self._check_own(t) for t in tasks]
        for task in chosen:
            if stage is not None and stage not in task.stages:
                raise GraphValidationError(
                    f"task `{task.label}` has no stage `{stage}`; its stages are {', '.join(task.stages)}")
        for task in chosen:
            names = task.stages[task.stages.index(stage):] if stage is not None else task.stages
            task._check_editable()
            for name in names:
                if name in task.record.fingerprints:
                    task.record.fingerprints[name] = INVALIDATED
            if isinstance(task, LLMTask) and "call" in names:
                task.sample += 1
            if isinstance(task, TaskGraphTask) and "subgraph" in names and task.subgraph.tasks:
                task.subgraph.invalidate(*task.subgraph.tasks.values())

    def plan(self, registry: Registry | None, **options: Unpack[RunSettings]) -> Plan:
        """What ``run(registry, **options)`` would execute now and why, computed without running anything.

        No registry function or LLM is called. See :class:`~llmtaskgraph.run.plan.Plan`.
        """
        from ..run.plan import make_plan

        return make_plan(self, registry, options)

    # -- naming tasks -----------------------------------------------------------------------------
    def find(self, path: str) -> Task:
        """The task at ``path`` (``outer > inner`` for tasks inside sub-graphs).

        Raises :class:`~llmtaskgraph.errors.UnknownTaskError` naming it, with close matches.
        """
        head, _, rest = path.partition(PATH_SEP)
        task = self.tasks.get(head)
        if task is None or (rest and not isinstance(task, TaskGraphTask)):
            raise UnknownTaskError(path, [p for p, _, _ in self.walk()])
        if rest:
            assert isinstance(task, TaskGraphTask)
            try:
                return task.subgraph.find(rest)
            except UnknownTaskError:
                raise UnknownTaskError(path, [p for p, _, _ in self.walk()]) from None
        return task

    def path_of(self, task: Task) -> str:
        """The path of ``task`` in this graph (``outer > inner`` inside sub-graphs)."""
        for path, t, _ in self.walk():
            if t is task:
                return path
        raise UnknownTaskError(task.label, [p for p, _, _ in self.walk()])

    def paths(self, tasks: Iterable[Task | str]) -> list[str]:
        """Paths of ``tasks`` (objects, ids or paths); unknown ones are an error naming them."""
        return [self.path_of(self.find(t) if isinstance(t, str) else t) for t in self._checked_list(tasks)]

    def _check_own(self, task: Task) -> Task:
        self.path_of(task)
        return task

    def _inside(self, task: Task, chosen: Collection[Task]) -> bool:
        """Whether ``task`` is inside the sub-graph of one of ``chosen``."""
        return any(isinstance(c, TaskGraphTask) and any(t is task for _, t, _ in c.subgraph.walk()) for c in chosen)

    # -- running ----------------------------------------------------------------------------------
    def run(self, registry: Registry, **options: Unpack[RunSettings]) -> Any:
        """Run until every task is done (or a bound stops it) and return the output task's output.

        Works in plain scripts and inside Jupyter, where an event loop is already running. The options
        are :class:`~llmtaskgraph.run.state.RunSettings` (``llm``, ``max_concurrency``, ``max_tasks``,
        ``timeout``, ``break_before``, ``break_after``, ``resample``, ``progress``, ``cache``, ...); a
        misspelt or nonsense one is refused before anything runs. Raises :class:`TaskGraphError` naming
        every failed task; completed outputs stay in the trace.
        """
        try:
            return run_sync(lambda: self._arun(registry, options))
        finally:
            self._say_adopted(stacklevel=3)

    async def arun(self, registry: Registry, **options: Unpack[RunSettings]) -> Any:
        """The async form of :meth:`run`."""
        try:
            return await self._arun(registry, options)
        finally:
            self._say_adopted(stacklevel=3)

    def _say_adopted(self, stacklevel: int) -> None:
        report = self.last_run
        if report is not None and report.adopted_versions and not report.adoption_said:
            report.adoption_said = True
            warnings.warn(
                f"{report.adopted_versions} stored result(s) came from a trace saved before code versions existed: "
                "they were kept and now carry the current version of their functions (changes made to those "
                "functions earlier are not detected; `graph.invalidate(...)` re-runs a task)", stacklevel=stacklevel)

    async def _arun(self, registry: Registry, options: RunSettings) -> Any:
        if self._active is not None:
            raise GraphValidationError("this graph is already running; wait for that run to end (or call graph.stop())")
        check_registry(registry, self.required_functions())
        for path, task, _ in self.walk():
            task.check_functions(registry, path)
        run_options, resample, progress = self._run_options(options)
        if resample:
            self.resample(None if resample is True else resample)
        shared = RunState(registry, run_options)
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
            shared.emit("run_finished", "", None)  # (on the run's loop, after the graph is no longer running)
            detach()
            finish_checkpoint()
            shared.calls.close()
        if shared.report.failed:
            raise TaskGraphError(shared.report.failed)
        return self.output

    def _run_options(self, options: RunSettings) -> tuple[RunOptions, bool | Collection[str], bool | None]:
        """Checked options of one run, task paths in them resolved; plus ``resample`` and ``progress``."""
        settings: dict[str, Any] = dict(options)
        resample = settings.pop("resample", False)
        progress = settings.pop("progress", None)
        llm = settings.pop("llm", None)
        run_options = RunOptions(llm=llm or default_llm(self), **settings)
        run_options.break_before = frozenset(self.paths(run_options.break_before))
        run_options.break_after = frozenset(self.paths(run_options.break_after))
        if resample not in (True, False):
            resample = self.paths(resample)
        return run_options, resample, progress

    def events(self, registry: Registry, **options: Unpack[RunSettings]) -> AsyncIterator[RunEvent]:
        """Run (as :meth:`arun` does) while yielding its events: ``async for event in graph.events(registry)``."""
        from ..run.streaming import stream_events

        return stream_events(self, registry, **options)

    def step(self, registry: Registry, **options: Unpack[RunSettings]) -> Task | None:
        """Execute the next ready task (memoized ones are passed through) and return it, or None when finished.

        Inside a sub-graph the step executes one inner task and returns that one (its path is
        ``graph.last_run.executed[-1]``).
        """
        options["max_tasks"] = 1
        self.run(registry, **options)
        report = self.last_run
        if report is None or not report.executed:
            return None
        return self.find(report.executed[-1])


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
    def editor(self, registry: Registry, **options: Unpack[RunSettings]) -> GraphEditor:
        """A notebook widget to pick a task, edit its prompt, reply or output, replay and step (needs ipywidgets).

        ``options`` are passed to every run the editor starts (``llm=``, ``max_concurrency=``, ...).
        """
        from ..views.widgets import GraphEditor

        return GraphEditor(self, registry, **options)

    def view(self, **options: Any) -> GraphView:
        """The interactive drawing (needs anywidget): pan, zoom, click a node to select its task, hover for
        its status. Follow a run with ``graph.run(registry, on_event=view.on_event)``."""
        from ..views.graph_view import GraphView

        return GraphView(self, **options)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from ..views.render import graph_mimebundle

        return graph_mimebundle(self)

    def __repr__(self) -> str:
        counts = Counter(t.record.status for t in self.tasks.values())
        summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "empty"
        return f"<TaskGraph {len(self.tasks)} tasks: {summary}>"


def _take_over(old: Task, new: Task) -> None:
    """A re-created child keeps its predecessor's record (fingerprints decide what is reused).

    Only a child of the same type: another type's stages are not this one's, so it starts afresh.
    """
    if type(old) is type(new):
        new.record = old.record
    new.created_by = old.created_by
    if isinstance(old, TaskGraphTask) and isinstance(new, TaskGraphTask):
        from ..trace.serialization import same_spec

        if same_spec(old.subgraph, new.subgraph):
            new.subgraph = old.subgraph
    new.graph, new.id = old.graph, old.id
    old.graph = None


def default_llm(graph: TaskGraph | None = None) -> LLMBackend:
    """AnthropicLLM when ANTHROPIC_API_KEY is set, else the offline backend.

    The offline backend says so in one line of ordinary output (stdout, not a red stderr block),
    once per process and only when an LLM task is about to call it: a graph without LLM tasks, or
    whose replies are all stored, runs without the notice.
    """
    if os.environ.get("ANTHROPIC_API_KEY"):
        from ..llm.anthropic import AnthropicLLM

        return AnthropicLLM()
    return _announced_offline()()


@functools.cache
def _announced_offline() -> type[LLMBackend]:
    from ..llm.offline import OfflineLLM

    class AnnouncedOfflineLLM(OfflineLLM):
        """The offline default, which announces itself before its first call."""

        async def complete(self, request: dict[str, Any]) -> Any:
            _say_offline()
            return await super().complete(request)

    return AnnouncedOfflineLLM


def _say_offline() -> None:
    global _offline_notice_shown
    if not _offline_notice_shown:
        from ..llm.offline import OFFLINE_NOTICE

        _offline_notice_shown = True
        print(OFFLINE_NOTICE, flush=True)
