"""Checkpointing a long run: the whole trace saved atomically as it goes.

A run given ``checkpoint=path`` saves the root graph's trace (with every sub-graph) every
``checkpoint_every`` finished tasks and/or every ``checkpoint_seconds``, and once more when the
run ends, however it ends. Each save goes through :func:`llmtaskgraph.trace.serialization.save` (a temporary
file, fsync, rename), so a process killed at any moment leaves the previous complete checkpoint.
Restarting is ``TaskGraph.load(path).run(registry, checkpoint=path)``: finished tasks are memoized, and
a task that was running when the process died was saved without its result, so it runs again.

A save that fails (the folder was removed, the disk is full, permission denied) does not stop the
run: it is warned about and listed in ``graph.last_run.checkpoint_errors``, and the next save tries
again. A run's own failure (:class:`~llmtaskgraph.errors.TaskGraphError`) is raised as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..model.tasks import TaskGraphTask

if TYPE_CHECKING:
    from ..model.graph import TaskGraph
    from .state import RunEvent, RunReport, RunState

#: Seconds between saves when a checkpoint file is given but neither interval is.
DEFAULT_SECONDS = 10.0
_clock = time.monotonic
"""What ``checkpoint_seconds`` is measured by (a module attribute so tests can drive the clock)."""
_PROGRESS = frozenset({"task_finished", "task_failed", "task_blocked"})


class Checkpointer:
    """Listens to a run's events and saves the trace when enough tasks finished or time passed.

    Saving runs on the loop thread, between tasks, so the scheduler never has a task half-updated;
    it holds the lock of every graph it writes, so a plain function adding tasks from a worker
    thread (``ctx.add_task``) waits for the save instead of changing the graph under it. Its cost
    grows with the trace, so a large graph wants a larger ``every`` (see the growth benchmark).
    """

    def __init__(
        self, graph: TaskGraph, path: str | os.PathLike[str], every: int | None, seconds: float | None,
        report: RunReport | None = None,
    ) -> None:
        # (``every`` and ``seconds`` were checked by RunOptions)
        self.graph = graph
        self.path = Path(path)
        self.every = every
        self.seconds = DEFAULT_SECONDS if every is None and seconds is None else seconds
        self.report = report
        """Where failed saves are listed (``checkpoint_errors``), if given."""
        self.since_save = 0
        self.last_save = _clock()
        self.saves = 0
        """How many times the trace was written."""
        self.errors: list[str] = []
        """One line per failed save."""
        self.pending = False
        self.closed = False
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()

    def __call__(self, event: RunEvent) -> None:
        # A call submitted to a Message Batch is paid for: its batch id must reach the file at once, so a
        # killed process resumes polling it instead of submitting it again (see llmtaskgraph.llm.batch).
        submitted = event.kind == "llm_submitted"
        if (event.kind not in _PROGRESS and not submitted) or self.closed:
            return
        self.since_save += 1  # counted while a save is pending too: that save happens after them
        if self.pending:
            return
        due_by_count = self.every is not None and self.since_save >= self.every
        due_by_time = self.seconds is not None and _clock() - self.last_save >= self.seconds
        if due_by_count or due_by_time or submitted:
            # Not inside the event: the scheduler is still handling this task (blocking dependents
            # of a failure, say); saving just after keeps every checkpoint between two steps.
            self.pending = True
            if threading.get_ident() == self.loop_thread:
                self.loop.call_soon(self._deferred_save)
            else:  # (events come from the loop thread today; a save must happen there regardless)
                self.loop.call_soon_threadsafe(self._deferred_save)

    def _deferred_save(self) -> None:
        self.pending = False
        if not self.closed:
            self.save()

    def save(self) -> bool:
        """Write the trace now; a failure is warned about and recorded, never raised. True if written."""
        self.since_save = 0
        self.last_save = _clock()
        try:
            with _locked(self.graph):
                self.graph.save(self.path)
        except Exception as exc:  # a checkpoint is a safety copy: losing one must not lose the run
            line = f"{type(exc).__name__}: {exc}"
            self.errors.append(line)
            if self.report is not None:
                self.report.checkpoint_errors.append(line)
            warnings.warn(
                f"could not save the checkpoint `{self.path}` ({line}); the run goes on and the next save "
                "tries again (see graph.last_run.checkpoint_errors)",
                RuntimeWarning, stacklevel=2,
            )
            return False
        self.saves += 1
        return True

    def close(self) -> None:
        """The final save, when the run has ended (never raises, see :meth:`save`)."""
        self.closed = True
        self.save()


@contextlib.contextmanager
def _locked(graph: TaskGraph) -> Iterator[None]:
    """Hold the lock of ``graph`` and of every sub-graph in it, outer ones first.

    Each graph's lock is taken before its tasks are read, so a sub-graph added meanwhile is either
    seen (and locked) or not in the trace at all. Code adding a task holds one graph's lock at a
    time, so taking them in this order cannot deadlock.
    """
    with contextlib.ExitStack() as stack:
        todo = [graph]
        while todo:
            current = todo.pop()
            stack.enter_context(current._lock)
            todo.extend(t.subgraph for t in current.tasks.values() if isinstance(t, TaskGraphTask))
        yield


def attach_checkpoint(graph: TaskGraph, shared: RunState) -> Callable[[], None]:
    """Start checkpointing ``graph`` if its run asked for it; returns what to call when the run ends."""
    opts = shared.options
    if opts.checkpoint is None:
        return lambda: None
    checkpointer = Checkpointer(graph, opts.checkpoint, opts.checkpoint_every, opts.checkpoint_seconds, shared.report)
    stop_listening = shared.listen(checkpointer)

    def finish() -> None:
        stop_listening()
        checkpointer.close()

    return finish
