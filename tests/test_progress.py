"""Progress while running: counts from run events, terminal and widget displays, on/off rules."""

from __future__ import annotations

import io
import sys

import pytest
from jupyter_helpers import planner_graph

from llmtaskgraph import LLMTask, PythonTask, ScriptedLLM, TaskGraph, TaskGraphError
from llmtaskgraph.run.progress import ProgressCounter, TerminalDisplay, WidgetDisplay, make_display


class Recorder:
    """A display that keeps every state it was shown."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, bool]] = []
        self.totals: list[int] = []

    def update(self, counter: ProgressCounter, final: bool) -> None:
        self.shown.append((counter.describe(), final))
        self.totals.append(counter.total)


def test_total_grows_as_tasks_add_tasks_and_the_final_state_is_shown():
    graph, registry, llm = planner_graph()
    recorder = Recorder()
    graph.run(registry, llm=llm, progress=recorder)
    # 4 top-level tasks, 3 children added by `spawn`, 2 tasks inside the sub-graph
    assert recorder.shown[-1] == ("9/9 tasks done · 1 LLM calls", True)
    assert [final for _, final in recorder.shown].count(True) == 1
    assert recorder.totals[0] < 9  # the first update came before the children existed


def test_every_event_goes_to_both_progress_and_the_users_on_event():
    graph, registry, llm = planner_graph()
    kinds: list[str] = []
    recorder = Recorder()
    graph.run(registry, llm=llm, progress=recorder, on_event=lambda e: kinds.append(e.kind))
    assert kinds.count("task_added") == 9 and kinds.count("task_finished") == 9
    assert recorder.shown[-1][0].startswith("9/9 tasks done")


def test_failures_and_blocked_tasks_are_counted_and_named():
    graph = TaskGraph()
    bad = graph.add_task(PythonTask("bad", id="bad"))
    graph.add_task(PythonTask("after", bad, id="after"))
    graph.add_task(PythonTask("ok", id="ok"))
    recorder = Recorder()
    with pytest.raises(TaskGraphError):
        graph.run({"bad": lambda ctx: 1 / 0, "after": lambda ctx, x: x, "ok": lambda ctx: 1}, progress=recorder)
    assert recorder.shown[-1] == ("1/3 tasks done · 1 failed (bad) · 1 blocked · 0 LLM calls", True)


def test_llm_calls_in_flight_are_counted_up_to_the_concurrency_limit():
    graph = TaskGraph()
    for i in range(6):
        graph.add_task(LLMTask("ask", "keep", id=f"ask{i}"))
    counter = ProgressCounter()
    in_flight: list[int] = []

    def watch(event):
        counter.on_event(event)
        in_flight.append(counter.llm_in_flight)

    registry = {"ask": lambda ctx: f"question {ctx.task.id}", "keep": lambda ctx, text: text}
    graph.run(registry, llm=ScriptedLLM(lambda p: "answer", latency=0.05), max_concurrency=2, on_event=watch, progress=False)
    assert max(in_flight) == 2
    assert counter.llm_in_flight == 0 and counter.llm_calls == 6
    assert "2 LLM calls in flight" in _describe_with(llm_in_flight=2)


def _describe_with(**fields) -> str:
    return ProgressCounter(total=3, done=1, **fields).describe()


def test_terminal_display_redraws_one_line_and_ends_it():
    graph, registry, llm = planner_graph()
    stream = io.StringIO()
    graph.run(registry, llm=llm, progress=TerminalDisplay(stream))
    out = stream.getvalue()
    assert out.endswith("\r9/9 tasks done · 1 LLM calls\n")
    assert out.count("\n") == 1  # every update before the last one is redrawn in place


def test_progress_is_off_by_default_when_not_in_a_terminal_and_can_be_forced_or_refused(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert make_display(None) is None
    assert isinstance(make_display(True), TerminalDisplay)
    monkeypatch.setattr(sys, "stderr", Tty())
    assert isinstance(make_display(None), TerminalDisplay)
    assert make_display(False) is None
    graph = TaskGraph()
    graph.add_task(PythonTask("f"))
    graph.run({"f": lambda ctx: 1})
    assert sys.stderr.getvalue().endswith("\r1/1 tasks done · 0 LLM calls\n")
    sys.stderr.seek(0)
    sys.stderr.truncate(0)
    graph.run({"f": lambda ctx: 1}, progress=False)
    graph.step({"f": lambda ctx: 1})  # a single step shows no bar unless asked
    assert sys.stderr.getvalue() == ""


def test_widget_display_shows_counts_and_colours_the_bar():
    display = WidgetDisplay()
    assert repr(display.box) == "HBox(children=(IntProgress(value=0, description='tasks', max=1), HTML(value='')))"
    counter = ProgressCounter(total=4, done=2, failed=1, failures=["x > <y>"])
    display.update(counter, final=False)
    assert (display.bar.value, display.bar.max, display.bar.bar_style) == (2, 4, "danger")
    assert display.text.value == "2/4 tasks done · 1 failed (x &gt; &lt;y&gt;) · 0 LLM calls"
    display.update(ProgressCounter(total=4, done=4), final=True)
    assert display.bar.bar_style == "success"
