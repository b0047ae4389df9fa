"""Run settings, the report of a run, its events, and the state a run shares with its sub-graph runs.

Kept apart from the scheduler (:mod:`llmtaskgraph.run.scheduler`) so the scheduler reads as the
algorithm alone; progress, checkpoints and widgets only need what is here.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from ..llm.base import LLMBackend
from ..model.registry import Registry

if TYPE_CHECKING:
    from ..backends import ExecutionBackend
    from ..llm.cache import ResponseStore
    from ..model.tasks import Task


@dataclass
class RunEvent:
    """Something that happened during a run, passed to ``on_event`` callbacks."""

    kind: str
    """``task_started``, ``task_finished``, ``task_failed``, ``task_reused``, ``task_blocked``,
    ``task_added``, ``llm_started``, ``llm_finished`` or ``run_finished``."""
    path: str
    """Task id, prefixed by the ids of enclosing TaskGraphTasks (``outer > inner``)."""
    task: Task | None
    time: float = field(default_factory=time.time)


@dataclass
class RunOptions:
    """Settings of one run; every backend understands these."""

    llm: LLMBackend
    """Serves LLMTask calls."""
    max_concurrency: int = 16
    """LLM calls in flight at once."""
    max_tasks: int | None = None
    """Start no new task after this many have executed (memoized ones and sub-graph tasks themselves
    do not count; the tasks inside a sub-graph do)."""
    timeout: float | None = None
    """Start no new task after this many seconds; running ones finish."""
    break_before: Collection[str] = ()
    """Stop before executing any of these tasks (ids; ``outer > inner`` paths inside sub-graphs)."""
    break_after: Collection[str] = ()
    """Stop after any of these tasks finishes (ids; ``outer > inner`` paths inside sub-graphs)."""
    on_event: Callable[[RunEvent], None] | Sequence[Callable[[RunEvent], None]] | None = None
    """Called on the loop thread for every :class:`RunEvent` (one callable or several); one that
    raises is dropped for the rest of the run with a warning."""
    max_workers: int = 32
    """Threads for plain (non-async) registry functions, so they do not block LLM calls."""
    backend: ExecutionBackend | None = None
    """Where PythonTasks run, e.g. ``DaskBackend(client)``; None: in this process. LLM calls stay here."""
    checkpoint: str | os.PathLike[str] | None = None
    """File the trace is saved to (atomically) while the run goes on and when it ends; see :mod:`.checkpoint`."""
    checkpoint_every: int | None = None
    """Save after this many tasks finished since the last save."""
    checkpoint_seconds: float | None = None
    """Save when this many seconds passed since the last save (checked as tasks finish)."""
    cache: ResponseStore | str | os.PathLike[str] | None = None
    """Persistent response cache (a directory path or a store): replies are looked up there by call
    fingerprint before calling the LLM and stored after, so a fresh process pays for no call twice."""


@dataclass
class RunReport:
    """What one run did: read it from ``graph.last_run``."""

    executed: list[str] = field(default_factory=list)
    """Paths of tasks that executed at least one stage, in start order."""
    reused: int = 0
    """Tasks whose every stage was memoized."""
    calls: Counter[str] = field(default_factory=Counter)
    """Registry name -> how many times it was called."""
    llm_calls: int = 0
    """LLM requests made (cached replies not counted)."""
    llm_cache_hits: int = 0
    """Replies taken from the persistent response cache (run option ``cache=``) instead of calling."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(path, one-line error) of each failed task."""
    blocked: list[str] = field(default_factory=list)
    """Paths of tasks not run because a dependency failed."""
    stopped: str | None = None
    """Why the run stopped before the graph finished (``max_tasks``, ``timeout``, ``stop``,
    ``break_before:<id>``, ``break_after:<id>``), or None."""
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None


class RunState:
    """State shared by a run and the runs of its sub-graphs."""

    def __init__(self, registry: Registry, options: RunOptions) -> None:
        self.registry = registry
        self.options = options
        self.report = RunReport()
        self.cache: ResponseStore | None = None
        if options.cache is not None:
            from ..llm.cache import as_store

            self.cache = as_store(options.cache)
        self.semaphore = asyncio.Semaphore(options.max_concurrency)
        self.executor: ThreadPoolExecutor | None = None
        self.deadline = None if options.timeout is None else time.monotonic() + options.timeout
        self.started = 0
        """Tasks that executed, sub-graph tasks counted by their inner tasks: what ``max_tasks`` bounds."""
        self.is_async: dict[Callable[..., Any], bool] = {}
        on_event = options.on_event
        self.listeners: list[Callable[[RunEvent], None]] = (
            [] if on_event is None else [on_event] if callable(on_event) else list(on_event)
        )
        """Everything watching this run (the user's ``on_event``, progress bars, widgets). Hot paths
        test it before building an event's path, so a run nobody watches pays nothing for events."""
        self.bounded = options.max_tasks is not None or self.deadline is not None or bool(options.break_before)
        """Whether :meth:`may_start` can say no before ``report.stopped`` is set; if not, it is skipped."""
        self.backend = options.backend
        self.break_after = options.break_after
        self.unstarted = 0
        """Asyncio tasks created for graph tasks (of any depth of sub-graph) that have not run yet; see
        :meth:`Run._execute`."""
        self.handoffs_until = time.monotonic() + _HANDOFF_SECONDS
        """Hand-offs stop at this time until the loop has had a turn (and ran :meth:`refill`)."""

    def refill(self) -> None:
        self.handoffs_until = time.monotonic() + _HANDOFF_SECONDS

    def listen(self, listener: Callable[[RunEvent], None]) -> Callable[[], None]:
        """Add ``listener`` to every event of this run; returns a function that removes it."""
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener) if listener in self.listeners else None

    def emit(self, kind: str, path: str, task: Task | None) -> None:
        if self.listeners:
            event = RunEvent(kind, path, task)
            for listener in tuple(self.listeners):
                try:
                    listener(event)
                except Exception as exc:  # a watcher's bug must neither hang nor fail the run it watches
                    if listener in self.listeners:
                        self.listeners.remove(listener)
                    warnings.warn(
                        f"run event listener {listener!r} raised {type(exc).__name__}: {exc}; "
                        "it gets no more events in this run", RuntimeWarning, stacklevel=2,
                    )

    def may_start(self, path: str) -> bool:
        """False once a bound is reached; records why in ``report.stopped``."""
        report, opts = self.report, self.options
        if report.stopped is None:
            if opts.max_tasks is not None and self.started >= opts.max_tasks:
                report.stopped = "max_tasks"
            elif self.deadline is not None and time.monotonic() >= self.deadline:
                report.stopped = "timeout"
            elif path in opts.break_before:
                report.stopped = f"break_before:{path}"
        return report.stopped is None

    def run_sync_fn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        if self.executor is None:
            self.executor = ThreadPoolExecutor(self.options.max_workers, thread_name_prefix="llmtaskgraph")
        return asyncio.get_running_loop().run_in_executor(self.executor, partial(fn, *args, **kwargs))

    def start(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Start ``fn``: an async function as a coroutine for the loop, a plain one in a worker thread.

        Returns the awaitable itself rather than being a coroutine, which saves a frame per task.
        """
        is_async = self.is_async.get(fn)
        if is_async is None:
            # also catches callable objects whose __call__ is async
            is_async = self.is_async[fn] = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
                type(fn).__call__
            )
        return fn(*args, **kwargs) if is_async else self.run_sync_fn(fn, *args, **kwargs)


_HANDOFF_SECONDS = 0.002
"""How long hand-offs (see :meth:`Run._execute`) may go on before the loop gets a turn (to poll
sockets, fire timers): about a turn's length with a few hundred tasks on it."""
