"""Live without lag: the progress display shows the latest event's state by the end of each window.

Driven by a fake clock and a fake timer (what is scheduled, and what runs when it fires), and by a
real run whose task waits until the display has shown every task added: it could never finish if
the display stayed one event behind.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from llmtaskgraph import PythonTask, TaskGraph
from llmtaskgraph.run.progress import WIDGET_HINT, Progress, ProgressCounter, Throttle, WidgetDisplay
from llmtaskgraph.run.state import RunEvent


class FakeTime:
    """A clock that moves only when told, and a timer that fires only when the clock passes it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[list[Any]] = []  # [when, callback, cancelled]

    def clock(self) -> float:
        return self.now

    def schedule(self, delay: float, callback: Any) -> Any:
        timer = [self.now + delay, callback, False]
        self.timers.append(timer)

        class Handle:
            def cancel(self) -> None:
                timer[2] = True

        return Handle()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for timer in [t for t in self.timers if t[0] <= self.now and not t[2]]:
            self.timers.remove(timer)
            timer[1]()


class Shown:
    def __init__(self) -> None:
        self.states: list[tuple[int, int, bool]] = []

    def update(self, counter: ProgressCounter, final: bool) -> None:
        self.states.append((counter.done, counter.total, final))


def event(kind: str, path: str = "t") -> RunEvent:
    return RunEvent(kind, path, None)


def test_a_burst_is_shown_at_once_then_its_last_state_when_the_window_ends():
    fake, shown = FakeTime(), Shown()
    progress = Progress(shown, interval=0.1, clock=fake.clock, schedule=fake.schedule)
    for i in range(7):  # every task added at the start: one burst
        progress.on_event(event("task_added", f"t{i}"))
    progress.on_event(event("task_started", "t0"))
    assert shown.states == [(0, 1, False)]  # the burst's first event, at once
    fake.advance(0.1)  # the window ends while the first task still runs: no event comes
    assert shown.states == [(0, 1, False), (0, 7, False)]
    fake.advance(10)
    assert len(shown.states) == 2  # nothing changed since: no redraw
    for i in range(4):
        progress.on_event(event("task_finished", f"t{i}"))
    assert shown.states[-1] == (1, 7, False)  # first of a new spell: at once
    fake.advance(0.1)
    assert shown.states[-1] == (4, 7, False)  # 4/7 when 4 are done, not 2/7
    progress.on_event(event("task_finished", "t4"))
    progress.close()
    fake.advance(1)
    assert shown.states[-1] == (5, 7, True)  # the run's end drops the pending redraw and shows the final state


def test_the_throttle_runs_once_per_window_however_many_pokes():
    fake = FakeTime()
    calls: list[float] = []
    throttle = Throttle(lambda: calls.append(fake.now), 0.25, clock=fake.clock, schedule=fake.schedule)
    for _ in range(100):
        throttle.poke()
        fake.advance(0.01)
    fake.advance(0.25)
    # leading call, then one at the end of each window while pokes keep coming, then the trailing one
    assert calls[0] == 0.0 and len(calls) == 5
    assert all(b - a >= 0.25 - 1e-9 for a, b in itertools.pairwise(calls))
    assert fake.now - calls[-1] < 0.25 + 0.01 and not fake.timers


def test_in_a_real_run_the_display_catches_up_while_a_long_task_waits():
    shown_all = asyncio.Event()

    class Display:
        def update(self, counter: ProgressCounter, final: bool) -> None:
            if counter.total == 3:
                shown_all.set()

    async def first(ctx: Any) -> str:
        # Waits until the display shows all 3 tasks: no further event comes while it waits, so
        # only the redraw at the end of the window can show them.
        await asyncio.wait_for(shown_all.wait(), timeout=60)  # (a bound: it would wait for ever)
        return "ok"

    graph = TaskGraph()
    a = graph.add_task(PythonTask("first", id="a"))
    b = graph.add_task(PythonTask("after", a, id="b"))
    graph.add_task(PythonTask("after", b, id="c"))
    assert graph.run({"first": first, "after": lambda ctx, x: x}, progress=Display()) == "ok"


def test_the_progress_widget_reads_as_a_hint_where_no_front_end_draws_it(monkeypatch):
    sent: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: sent.append((obj, kw)))
    display = WidgetDisplay()
    (bundle, options), = sent
    assert options == {"raw": True}
    assert bundle["text/plain"] == WIDGET_HINT and "HBox" not in WIDGET_HINT
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == display.box.model_id
