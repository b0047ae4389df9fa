"""Progress while a graph runs: tasks done of total, failures, LLM calls in flight.

Counting (:class:`ProgressCounter`) is kept apart from showing: a notebook gets a small widget
(progress bar + one line of text), a terminal gets one line on stderr redrawn in place. The total
grows as running tasks add tasks. By default progress shows in notebooks and when stderr is a TTY
(never in pipes, CI logs or tests); ``progress=False`` turns it off, ``progress=True`` forces it.

Redraws are throttled (:class:`Throttle`) on both edges: the first change of a quiet spell is shown
at once, later ones at the end of the window they fall in. Without that trailing redraw a burst of
events (every task added at the start) followed by a long task would leave the display showing the
first event of the burst until the next event, seconds later.
"""

from __future__ import annotations

import asyncio
import html
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from ..text import terminal_safe

if TYPE_CHECKING:
    from ..model.graph import TaskGraph
    from .state import RunEvent, RunState


@dataclass
class ProgressCounter:
    """Run totals, kept up to date from :class:`~llmtaskgraph.run.scheduler.RunEvent` s."""

    total: int = 0
    """Tasks seen so far (grows when tasks add tasks; sub-graph tasks included)."""
    done: int = 0
    """Tasks finished, memoized ones included."""
    reused: int = 0
    """Of ``done``, how many were memoized (nothing executed)."""
    failed: int = 0
    blocked: int = 0
    llm_in_flight: int = 0
    """LLM requests sent and not yet answered."""
    llm_calls: int = 0
    """LLM requests answered (or failed) so far."""
    failures: list[str] = field(default_factory=list)
    """Paths of the failed tasks."""
    stopped: str | None = None
    """Set when the run ends stopped by its budget: why (shown at the end of the line)."""

    def on_event(self, event: RunEvent) -> None:
        kind = event.kind
        if kind == "task_added":
            self.total += 1
        elif kind in ("task_finished", "task_reused"):
            self.done += 1
            self.reused += kind == "task_reused"
        elif kind == "task_failed":
            self.failed += 1
            self.failures.append(event.path)
        elif kind == "task_blocked":
            self.blocked += 1
        elif kind == "llm_started":
            self.llm_in_flight += 1
        elif kind == "llm_finished":
            self.llm_in_flight -= 1
            self.llm_calls += 1

    def describe(self) -> str:
        """One line, e.g. ``7/12 tasks done · 1 failed · 2 LLM calls in flight``."""
        parts = [f"{self.done}/{self.total} tasks done"]
        if self.reused:
            parts.append(f"{self.reused} reused")
        if self.failed:  # paths come from task ids, which may hold anything: never let them drive the terminal
            shown = ", ".join(terminal_safe(p) for p in self.failures[:3]) + (", …" if len(self.failures) > 3 else "")
            parts.append(f"{self.failed} failed ({shown})")
        if self.blocked:
            parts.append(f"{self.blocked} blocked")
        parts.append(f"{self.llm_in_flight} LLM calls in flight" if self.llm_in_flight else f"{self.llm_calls} LLM calls")
        if self.stopped:
            parts.append(f"stopped by the budget: {self.stopped}")
        return " · ".join(parts)


class Display(Protocol):
    """Somewhere to show a :class:`ProgressCounter`."""

    def update(self, counter: ProgressCounter, final: bool) -> None: ...


class TerminalDisplay:
    """One line on a text stream, redrawn in place with a carriage return."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._width = 0

    def update(self, counter: ProgressCounter, final: bool) -> None:
        line = terminal_safe(counter.describe())  # one line, redrawn with \r: no newline or escape may reach it
        pad = " " * max(0, self._width - len(line))  # wipe the rest of a longer previous line
        self._width = len(line)
        self.stream.write(f"\r{line}{pad}" + ("\n" if final else ""))
        self.stream.flush()


WIDGET_HINT = "[progress bar: shown by a Jupyter front end with ipywidgets while the notebook runs]"
"""What a notebook output holds as text where no front end draws the widget (nbviewer, GitHub, a
notebook opened before its kernel started), instead of ``HBox(children=(IntProgress(...``."""


class WidgetDisplay:
    """An ipywidgets progress bar with the counts beside it, for notebooks."""

    def __init__(self) -> None:
        import ipywidgets as w
        from IPython.display import display

        # Fixed initial values: the displayed text form stays the same from run to run (nbval).
        self.bar = w.IntProgress(value=0, min=0, max=1, description="tasks")
        self.text = w.HTML(value="")
        self.box = w.HBox([self.bar, self.text])
        display(with_text_hint(self.box, WIDGET_HINT), raw=True)  # type: ignore[no-untyped-call]

    def update(self, counter: ProgressCounter, final: bool) -> None:
        self.bar.max = max(counter.total, 1)
        self.bar.value = counter.done
        self.bar.bar_style = "danger" if counter.failed else ("success" if final and counter.done == counter.total else "")
        self.text.value = html.escape(counter.describe())


def with_text_hint(widget: Any, hint: str) -> dict[str, Any]:
    """The widget's display bundle with ``hint`` as its plain-text form."""
    bundle = widget._repr_mimebundle_() or {}
    if isinstance(bundle, tuple):  # (data, metadata), as anywidget gives it
        bundle = bundle[0]
    return {**bundle, "text/plain": hint}


def in_notebook() -> bool:
    """True inside a Jupyter kernel (checked without importing IPython)."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def make_display(progress: bool | None) -> Display | None:
    """The display a run should use, or None for no progress."""
    if progress is False:
        return None
    if in_notebook():
        try:
            return WidgetDisplay()
        except ImportError:  # no ipywidgets: the stream still shows in the notebook
            return TerminalDisplay()
    if progress or sys.stderr.isatty():
        return TerminalDisplay()
    return None


Schedule = Callable[[float, Callable[[], None]], Any]
"""``schedule(delay, callback)``: call ``callback`` after ``delay`` seconds; returns something with ``cancel()``."""


def loop_schedule(delay: float, callback: Callable[[], None]) -> Any:
    """Schedule on the running event loop (run events come on the run's loop); None when there is none."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop.call_later(delay, callback)


class Throttle:
    """Calls ``action`` at most once per ``interval`` seconds, on both edges of the window.

    :meth:`poke` says something changed: the action runs at once if the last run is older than the
    window, else once when the window ends (however many pokes came in it). So what is shown is
    never more than ``interval`` behind, even when no event follows for minutes. ``clock`` and
    ``schedule`` are injectable so tests can drive time.
    """

    def __init__(self, action: Callable[[], None], interval: float, *, clock: Callable[[], float] = time.monotonic,
                 schedule: Schedule = loop_schedule) -> None:
        self.action = action
        self.interval = interval
        self.clock = clock
        self.schedule = schedule
        self._last = -math.inf
        self._dirty = False
        self._pending: Any = None

    def poke(self) -> None:
        self._dirty = True
        if self._pending is not None:
            return
        wait = self._last + self.interval - self.clock()
        if wait > 0:
            self._pending = self.schedule(wait, self._window_ended)
            if self._pending is not None:
                return
        self._fire()  # (no loop to wait on: show it now)

    def _window_ended(self) -> None:
        self._pending = None
        if self._dirty:
            self._fire()

    def _fire(self) -> None:
        self._dirty = False
        self._last = self.clock()
        self.action()

    def cancel(self) -> None:
        """Drop the trailing call still scheduled (the caller shows the final state itself)."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._dirty = False


class Progress:
    """Feeds run events to a counter and redraws the display at most every ``interval`` seconds,
    always including the state at the end of each window (see :class:`Throttle`)."""

    def __init__(self, display: Display, interval: float = 0.1, *, clock: Callable[[], float] = time.monotonic,
                 schedule: Schedule = loop_schedule) -> None:
        self.counter = ProgressCounter()
        self.display = display
        self.interval = interval
        self.throttle = Throttle(lambda: self.display.update(self.counter, final=False), interval,
                                 clock=clock, schedule=schedule)

    def on_event(self, event: RunEvent) -> None:
        self.counter.on_event(event)
        self.throttle.poke()

    def close(self) -> None:
        self.throttle.cancel()
        self.display.update(self.counter, final=True)


def attach_progress(graph: TaskGraph, shared: RunState, progress: bool | Display | None) -> Callable[[], None]:
    """Show progress for one run; returns the function that ends the display when the run ends.

    ``progress`` may also be a :class:`Display`. A single step (``max_tasks=1``) shows nothing
    unless asked for: stepping through a graph would otherwise stack up one bar per step.
    """
    if progress is None and shared.options.max_tasks == 1:
        return lambda: None
    display = make_display(progress) if progress is None or isinstance(progress, bool) else progress
    if display is None:
        return lambda: None
    watcher = Progress(display)
    stop_listening = shared.listen(watcher.on_event)

    def detach() -> None:
        stop_listening()
        report = shared.report
        if report.stopped in ("max_cost", "max_tokens_total"):
            watcher.counter.stopped = report.stopped_why or report.stopped
        watcher.close()

    return detach
