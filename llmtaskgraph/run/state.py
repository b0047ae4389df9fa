"""Run settings, the report of a run, its events, and the state a run shares with its sub-graph runs.

Kept apart from the scheduler (:mod:`llmtaskgraph.run.scheduler`) so the scheduler reads as the
algorithm alone; progress, checkpoints and widgets only need what is here.
"""

from __future__ import annotations

import asyncio
import difflib
import math
import os
import time
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypedDict, cast

from ..errors import RunOptionsError
from ..llm.base import LLMBackend
from ..memo.code import CodeVersions
from ..model.registry import Registry
from .calls import FunctionCaller

if TYPE_CHECKING:
    from ..backends import ExecutionBackend
    from ..llm.cache import ResponseStore
    from ..model.tasks import Task


@dataclass
class RunEvent:
    """Something that happened during a run, passed to ``on_event`` callbacks."""

    kind: str
    """``task_started``, ``task_finished``, ``task_failed``, ``task_reused``, ``task_blocked``,
    ``task_added``, ``llm_started``, ``llm_finished``, ``llm_submitted`` (a call was sent in a Message Batch:
    its batch id is in the trace now) or ``run_finished``."""
    path: str
    """Task id, prefixed by the ids of enclosing TaskGraphTasks (``outer > inner``)."""
    task: Task | None
    time: float = field(default_factory=time.time)


Listener = Callable[[RunEvent], None]


@dataclass
class RunOptions:
    """Settings of one run; every backend understands these.

    Checked when made: a value that cannot work or an unknown name raises :class:`RunOptionsError`
    before anything runs (a run given ``max_concurrency=0`` would otherwise wait for ever).
    """

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
    on_event: Listener | Sequence[Listener] | None = None
    """Called on the loop thread for every :class:`RunEvent` (one callable or several); one that
    raises is dropped for the rest of the run with a warning."""
    max_workers: int = 32
    """Threads for plain (non-async) registry functions, so they do not block LLM calls."""
    backend: ExecutionBackend | None = None
    """Where PythonTasks run, e.g. ``DaskBackend(client)``; None: in this process. LLM calls stay here."""
    code_versions: CodeVersions | None = None
    """One reading of the registry's code to share between runs started together (a dataset run passes one to
    every case); None: this run reads the code versions it needs itself."""
    checkpoint: str | os.PathLike[str] | None = None
    """File the trace is saved to (atomically) while the run goes on and when it ends; see :mod:`.checkpoint`."""
    checkpoint_every: int | None = None
    """Save after this many tasks finished since the last save."""
    checkpoint_seconds: float | None = None
    """Save when this many seconds passed since the last save (checked as tasks finish)."""
    cache: ResponseStore | str | os.PathLike[str] | None = None
    """Persistent response cache (a directory path or a store): replies are looked up there by call
    fingerprint before calling the LLM and stored after, so a fresh process pays for no call twice."""
    cache_mode: str | None = None
    """How this run uses ``cache``: ``write`` (the default: read hits, store new replies), ``read`` (read
    hits, store nothing), ``refresh`` (read nothing, call and overwrite), ``off`` (leave it alone)."""
    max_cost: float | None = None
    """US dollars this run's LLM calls may cost: no call starts that could take the run past it (calls in
    flight counted at their upper bound); the run then stops cleanly, see :mod:`.budget`."""
    max_tokens_total: int | None = None
    """Tokens (input, output and cache) this run's LLM calls may use, bounded like ``max_cost``."""

    def __new__(cls, *args: Any, **kwargs: Any) -> RunOptions:
        # Runs before the generated __init__, which would reject an unknown name with a bare TypeError.
        unknown = [name for name in kwargs if name not in _OPTION_FIELDS]
        if unknown:
            raise RunOptionsError(_unknown_message(unknown))
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if not isinstance(self.llm, LLMBackend):
            raise RunOptionsError(
                f"`llm` must be an LLM backend (AnthropicLLM(), OfflineLLM(), ScriptedLLM(...) or any object with "
                f"`kind` and an async `complete`), got {_shown(self.llm)}"
            )
        _check_int("max_concurrency", self.max_concurrency, 1, "LLM calls in flight at once")
        _check_int("max_workers", self.max_workers, 1, "threads for plain functions")
        if self.max_tasks is not None:
            _check_int("max_tasks", self.max_tasks, 0, "or None for no bound")
        if self.timeout is not None:
            _check_number("timeout", self.timeout, "seconds, or None for no bound", allow_zero=True)
        self.break_before = _check_ids("break_before", self.break_before)
        self.break_after = _check_ids("break_after", self.break_after)
        self.on_event = _check_listeners(self.on_event)
        if self.checkpoint is None:
            if self.checkpoint_every is not None or self.checkpoint_seconds is not None:
                raise RunOptionsError(
                    "`checkpoint_every`/`checkpoint_seconds` need `checkpoint=` (the file to save the trace to)"
                )
        elif not isinstance(self.checkpoint, (str, os.PathLike)):
            raise RunOptionsError(f"`checkpoint` must be a file path (str or Path), got {_shown(self.checkpoint)}")
        if self.checkpoint_every is not None:
            _check_int("checkpoint_every", self.checkpoint_every, 1, "finished tasks between saves")
        if self.checkpoint_seconds is not None:
            _check_number("checkpoint_seconds", self.checkpoint_seconds, "seconds between saves", allow_zero=False)
        if self.cache is not None and not isinstance(self.cache, (str, os.PathLike)) and not _has_methods(self.cache, "get", "put"):
            raise RunOptionsError(
                f"`cache` takes a directory path or a response store (an object with `get` and `put`), got {_shown(self.cache)}"
            )
        if self.cache_mode is not None and self.cache_mode not in CACHE_MODES:
            raise RunOptionsError(f"`cache_mode` is one of {', '.join(map(repr, CACHE_MODES))}, got {_shown(self.cache_mode)}")
        if self.cache_mode not in (None, "off") and self.cache is None:
            raise RunOptionsError(f"`cache_mode={self.cache_mode!r}` needs `cache=` (a directory path or a response store)")
        if self.max_cost is not None:
            _check_number("max_cost", self.max_cost, "US dollars, or None for no bound", allow_zero=True)
        if self.max_tokens_total is not None:
            _check_int("max_tokens_total", self.max_tokens_total, 0, "tokens, or None for no bound")
        if self.backend is not None and not _has_methods(self.backend, "handles", "run"):
            raise RunOptionsError(
                f"`backend` takes an execution backend such as DaskBackend(client) (an object with `handles` and `run`), "
                f"got {_shown(self.backend)}"
            )


class RunSettings(TypedDict, total=False):
    """The keyword options of ``graph.run`` / ``graph.arun`` / ``graph.step``, for type checkers:
    every :class:`RunOptions` field plus ``resample`` and ``progress``, each optional.

    ``def run(self, registry, **options: Unpack[RunSettings])`` lets a type checker flag a misspelt
    or mistyped option; a test keeps these keys equal to RunOptions' fields.
    """

    llm: LLMBackend | None
    max_concurrency: int
    max_tasks: int | None
    timeout: float | None
    break_before: Collection[str]
    break_after: Collection[str]
    on_event: Listener | Sequence[Listener] | None
    max_workers: int
    backend: ExecutionBackend | None
    code_versions: CodeVersions | None
    checkpoint: str | os.PathLike[str] | None
    checkpoint_every: int | None
    checkpoint_seconds: float | None
    cache: ResponseStore | str | os.PathLike[str] | None
    cache_mode: str | None
    max_cost: float | None
    max_tokens_total: int | None
    resample: bool | Collection[str]
    """Draw fresh LLM replies: True for every LLMTask, or the ids of the chosen ones."""
    progress: bool | None
    """Show progress: None (default) in notebooks and terminals, True always, False never."""


_OPTION_FIELDS = frozenset(f.name for f in fields(RunOptions))
CACHE_MODES = ("write", "read", "refresh", "off")
"""The values of the ``cache_mode`` run option (the first is the default)."""
RUN_SETTINGS = tuple(RunSettings.__annotations__)
"""Every name ``graph.run`` accepts, in the order of :class:`RunSettings`."""


def _unknown_message(unknown: list[str]) -> str:
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, RUN_SETTINGS, n=2)
        parts.append(f"`{name}`" + (f" (did you mean {' or '.join(f'`{c}`' for c in close)}?)" if close else ""))
    return (
        f"unknown run option{'s' if len(unknown) > 1 else ''} {', '.join(parts)}; "
        f"the run options are {', '.join(f'`{n}`' for n in RUN_SETTINGS)}"
    )


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.80}"


def _check_int(name: str, value: Any, least: int, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise RunOptionsError(f"`{name}` must be a whole number >= {least} ({meaning}), got {_shown(value)}")


def _check_number(name: str, value: Any, meaning: str, *, allow_zero: bool) -> None:
    ok = (
        not isinstance(value, bool) and isinstance(value, (int, float)) and not math.isnan(value)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        raise RunOptionsError(f"`{name}` must be a number {'>=' if allow_zero else '>'} 0 ({meaning}), got {_shown(value)}")


def _has_methods(value: object, *names: str) -> bool:
    return all(callable(getattr(value, name, None)) for name in names)


def _check_ids(name: str, value: Any) -> frozenset[str]:
    """Task ids or paths as a set; a bare string would otherwise be taken as a set of characters."""
    if isinstance(value, str):
        raise RunOptionsError(f"`{name}` takes a list of task ids or paths, got the string {value!r}: write {name}=[{value!r}]")
    try:
        ids = list(value)
    except TypeError:
        raise RunOptionsError(f"`{name}` takes a list of task ids or paths, got {_shown(value)}") from None
    bad = [i for i in ids if not isinstance(i, str)]
    if bad:
        raise RunOptionsError(
            f"`{name}` takes task ids or paths (str), got {_shown(bad[0])}; for a Task give its `.id`"
        )
    return frozenset(ids)


def _check_listeners(value: Any) -> Listener | list[Listener] | None:
    what = "`on_event` takes a function of one RunEvent, or a list of them"
    if value is None or callable(value):
        return cast("Listener | None", value)
    if isinstance(value, (str, bytes)):
        raise RunOptionsError(f"{what}; got {_shown(value)}")
    try:
        listeners = list(value)
    except TypeError:
        raise RunOptionsError(f"{what}; got {_shown(value)}") from None
    for listener in listeners:
        if not callable(listener):
            raise RunOptionsError(f"{what}; one of them is {_shown(listener)}")
    return listeners


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
    adopted_versions: int = 0
    """Reused stages that had no code version (a trace written before versions existed) and adopted the
    current one: edits made to their functions before this run are not detected."""
    adoption_said: bool = field(default=False, repr=False)
    llm_cache_hits: int = 0
    """Replies taken from the persistent response cache (run option ``cache=``) instead of calling."""
    cache_saved: float = 0.0
    """US dollars those cached replies would have cost (replies of unknown price count nothing)."""
    cost: float = 0.0
    """US dollars this run's LLM calls cost (replies of a known price; batch replies at the batch price)."""
    tokens: int = 0
    """Tokens (input, output, cache reads and writes) this run's LLM calls used."""
    unpriced_calls: int = 0
    """Calls of this run whose model has no known price (not in ``cost``)."""
    overshoot: float = 0.0
    """Dollars spent past ``max_cost`` (only when a request's input was estimated too low; else 0)."""
    overshoot_tokens: int = 0
    """Tokens used past ``max_tokens_total`` (as for ``overshoot``)."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(path, one-line error) of each failed task."""
    blocked: list[str] = field(default_factory=list)
    """Paths of tasks not run because a dependency failed."""
    stopped: str | None = None
    """Why the run stopped before the graph finished (``max_tasks``, ``timeout``, ``stop``, ``max_cost``,
    ``max_tokens_total``, ``break_before:<id>``, ``break_after:<id>``), or None."""
    stopped_why: str | None = None
    """One sentence on why, when the reason needs more than its name (what a budget had spent and refused)."""
    checkpoint_errors: list[str] = field(default_factory=list)
    """Checkpoint saves that failed (run option ``checkpoint=``), one line each, e.g.
    ``PermissionError: [Errno 13] Permission denied: 'run/trace.json'``; each was also warned about."""
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
        self.cache_mode = options.cache_mode or CACHE_MODES[0]
        if self.cache_mode == "off":
            self.cache = None
        from .budget import Budget

        self.budget = Budget(self.report, options.llm, options.max_cost, options.max_tokens_total)
        """Counts what the run's calls cost and refuses calls past ``max_cost``/``max_tokens_total``."""
        self.semaphore = asyncio.Semaphore(options.max_concurrency)
        self.calls = FunctionCaller(options.max_workers)
        """Calls the registry functions (see :mod:`.calls`)."""
        self.deadline = None if options.timeout is None else time.monotonic() + options.timeout
        self.started = 0
        """Tasks that executed, sub-graph tasks counted by their inner tasks: what ``max_tasks`` bounds."""
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
        self.versions = options.code_versions or CodeVersions(registry)
        """Code versions of the registry's functions, computed once per run (see :mod:`llmtaskgraph.memo.code`)."""
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
