"""Checkpointing a long run: the whole trace saved atomically as it goes.

A run given ``checkpoint=path`` saves the root graph's trace (with every sub-graph) every
``checkpoint_every`` finished tasks and/or every ``checkpoint_seconds``, and once more when the
run ends, however it ends. Each save goes through :func:`llmtaskgraph.trace.serialization.save` (a temporary
file, fsync, rename), so a process killed at any moment leaves the previous complete checkpoint.
Restarting is ``TaskGraph.load(path).run(registry, checkpoint=path)``: finished tasks are memoized, and
a task that was running when the process died was saved without its result, so it runs again.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model.graph import TaskGraph
    from .state import RunEvent, RunState

#: Seconds between saves when a checkpoint file is given but neither interval is.
DEFAULT_SECONDS = 10.0
_PROGRESS = frozenset({"task_finished", "task_failed", "task_blocked"})


class Checkpointer:
    """Listens to a run's events and saves the trace when enough tasks finished or time passed.

    Saving runs on the loop thread, between tasks, so the trace is never half-updated; its cost
    grows with the trace, so a large graph wants a larger ``every`` (see the growth benchmark).
    """

    def __init__(self, graph: TaskGraph, path: str | os.PathLike[str], every: int | None, seconds: float | None) -> None:
        if every is not None and every < 1:
            raise ValueError(f"`checkpoint_every` must be a whole number >= 1, got {every!r}")
        if seconds is not None and seconds <= 0:
            raise ValueError(f"`checkpoint_seconds` must be > 0, got {seconds!r}")
        self.graph = graph
        self.path = Path(path)
        self.every = every
        self.seconds = DEFAULT_SECONDS if every is None and seconds is None else seconds
        self.since_save = 0
        self.last_save = time.monotonic()
        self.saves = 0
        """How many times the trace was written."""
        self.pending = False
        self.closed = False

    def __call__(self, event: RunEvent) -> None:
        if event.kind not in _PROGRESS or self.pending or self.closed:
            return
        self.since_save += 1
        due_by_count = self.every is not None and self.since_save >= self.every
        due_by_time = self.seconds is not None and time.monotonic() - self.last_save >= self.seconds
        if due_by_count or due_by_time:
            # Not inside the event: the scheduler is still handling this task (blocking dependents
            # of a failure, say); saving just after keeps every checkpoint between two steps.
            self.pending = True
            asyncio.get_running_loop().call_soon(self._deferred_save)

    def _deferred_save(self) -> None:
        self.pending = False
        if not self.closed:
            self.save()

    def save(self) -> None:
        self.graph.save(self.path)
        self.saves += 1
        self.since_save = 0
        self.last_save = time.monotonic()

    def close(self) -> None:
        """The final save, when the run has ended."""
        self.closed = True
        self.save()


def attach_checkpoint(graph: TaskGraph, shared: RunState) -> Callable[[], None]:
    """Start checkpointing ``graph`` if its run asked for it; returns what to call when the run ends."""
    opts = shared.options
    if opts.checkpoint is None:
        if opts.checkpoint_every is not None or opts.checkpoint_seconds is not None:
            raise ValueError("`checkpoint_every`/`checkpoint_seconds` need `checkpoint=` (the file to save the trace to)")
        return lambda: None
    checkpointer = Checkpointer(graph, opts.checkpoint, opts.checkpoint_every, opts.checkpoint_seconds)
    stop_listening = shared.listen(checkpointer)

    def finish() -> None:
        stop_listening()
        checkpointer.close()

    return finish
