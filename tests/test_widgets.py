"""The widget editor, driven from Python: set values, click buttons, check the graph afterwards."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from jupyter_helpers import planner_graph

from llmtaskgraph import LLMTask, PythonTask, ScriptedLLM, TaskGraph
from llmtaskgraph.views import widgets as widgets_module
from llmtaskgraph.views.render import STATUS_COLOURS, graph_html, iter_tasks


def test_editing_a_running_task_is_refused_with_a_message():
    graph = TaskGraph()
    graph.add_task(PythonTask("slow", id="slow"))
    refusals: list[str] = []

    def try_edit(event):
        if event.kind == "task_started":
            with pytest.raises(ValueError) as info:
                event.task.edit(output="edited while running")
            refusals.append(str(info.value))

    assert graph.run({"slow": lambda ctx: "computed"}, on_event=try_edit, progress=False) == "computed"
    assert refusals == [
        "task `slow` is running: wait for the run to finish (or call `graph.stop()`) before editing it"
    ]
    graph.tasks["slow"].edit(output="edited")  # once finished, the same edit is accepted
    assert graph.tasks["slow"].output == "edited"


# -- the editor, driven like a person would -----------------------------------------------------------

def _ran_graph():
    graph, registry, llm = planner_graph()
    graph.run(registry, llm=llm, progress=False)
    registry.take()
    return graph, registry, llm


def test_picker_lists_every_task_with_its_status_including_sub_graph_tasks():
    graph, registry, llm = planner_graph()
    editor = graph.editor(registry, llm=llm)
    assert [label for label, _ in editor.picker.options] == [
        "plan · pending", "spawn · pending", "subgraph · pending", "subgraph > double · pending",
        "subgraph > inc · pending", "report · pending",
    ]
    editor.select("subgraph > inc")
    assert editor.task is graph.find("subgraph > inc")
    assert editor.fields["prompt"].disabled and not editor.fields["output"].disabled


def test_invalid_json_in_the_output_field_shows_an_error_and_changes_nothing():
    graph, registry, llm = _ran_graph()
    editor = graph.editor(registry, llm=llm)
    editor.select("plan")
    before = (graph.to_json(), editor.view.value)
    editor.fields["output"].value = "[1, 2,"
    editor.apply_button.click()
    assert "the output of task `plan` is not valid JSON" in editor.message.value
    assert "nothing was changed" in editor.message.value and "#c62828" in editor.message.value
    assert (graph.to_json(), editor.view.value) == before


def test_apply_an_output_edit_then_replay_reruns_exactly_the_descendants():
    graph, registry, llm = _ran_graph()
    editor = graph.editor(registry, llm=llm)
    editor.select("plan")
    assert editor.fields["output"].value == '[\n  "a",\n  "b",\n  "c"\n]'
    drawn_before = editor.view.value
    editor.fields["output"].value = '["a", "z"]'
    editor.apply_button.click()
    assert graph.tasks["plan"].output == ["a", "z"]
    # the children of `spawn` stay as they are: `spawn` decides on replay which ones it still adds
    assert [label for label, _ in editor.picker.options if label.endswith("stale")] == [
        "spawn · stale", "subgraph · stale", "subgraph > double · stale", "subgraph > inc · stale", "report · stale",
    ]
    assert "5 task(s) are now stale: Replay runs what the edit affects" in editor.message.value
    assert "4 done, 5 stale" in editor.status.value
    assert editor.view.value != drawn_before  # the drawing shows the stale tasks at once
    editor.replay_button.click()
    assert graph.output == "2 steps, size 5"
    assert registry.take() == {"spawn": 1, "work": 1, "sub_in": 1, "double": 1, "inc": 1, "report": 1}
    assert llm.calls == 1  # only the first run called the LLM
    assert "spawn/z" in graph.tasks and "spawn/c" not in graph.tasks
    assert "replayed: " in editor.message.value
    assert f'fill="{STATUS_COLOURS["pending"]}"' not in editor.view.value


def test_a_reply_edit_reparses_without_calling_the_llm_and_a_prompt_edit_calls_it_once():
    graph, registry, llm = _ran_graph()
    editor = graph.editor(registry, llm=llm)
    editor.select("plan")
    editor.fields["reply"].value = '["only"]'
    editor.apply_button.click()
    editor.replay_button.click()
    assert (llm.calls, graph.tasks["plan"].output, graph.output) == (1, ["only"], "1 steps, size 3")
    assert registry.take()["plan_parse"] == 1
    editor.fields["prompt"].value = "Plan steps about dogs, please"
    editor.apply_button.click()
    editor.replay_button.click()
    assert llm.calls == 2 and graph.tasks["plan"].prompt == "Plan steps about dogs, please"
    assert graph.output == "3 steps, size 7"
    assert "plan_prompt" not in registry.take()  # the edited prompt is kept, not re-formatted


def test_changing_two_fields_at_once_is_refused():
    graph, registry, llm = _ran_graph()
    editor = graph.editor(registry, llm=llm)
    editor.select("plan")
    editor.fields["reply"].value = '["x"]'
    editor.fields["output"].value = '["y"]'
    before = graph.to_json()
    editor.apply_button.click()
    assert "change one field at a time (changed: reply, output)" in editor.message.value
    assert graph.to_json() == before


def test_step_runs_one_task_per_click_and_shows_it():
    graph, registry, llm = planner_graph()
    editor = graph.editor(registry, llm=llm)
    stepped = []
    for _ in range(12):
        editor.step_button.click()
        if "nothing left to run" in editor.message.value:
            break
        stepped.append(editor.picker.value)
        assert len([p for p in graph.last_run.executed if p != "subgraph"]) == 1
    # one task per step, into the sub-graph too (its inner tasks are steps of their own)
    assert stepped == ["plan", "spawn", "spawn/a", "spawn/b", "spawn/c", "subgraph > double", "subgraph > inc", "report"]
    assert all(t.status == "done" for t in graph.tasks.values())
    assert "last run: 0 executed" in editor.status.value


# -- the live drawing during a run: checked by the order of events and drawings, never by time --------

RUNNING = f'fill="{STATUS_COLOURS["running"]}"'


def running(graph: TaskGraph) -> set[str]:
    return {path for path, task in iter_tasks(graph) if task.status == "running"}


def in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def drawings(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """A log of the editor's drawings, each with the tasks running when it was made, for tests to add
    events to. The editor's clock is stopped, so whether a change is drawn at once depends on the
    window alone (and every drawing made during a run with a window is one made when it ended)."""
    log: list[tuple[str, Any]] = []
    monkeypatch.setattr(widgets_module, "_clock", lambda: 0.0)

    def logged_graph_html(graph: TaskGraph, limits: Any = None) -> str:
        drawn = graph_html(graph, limits)
        now_running = running(graph)
        assert (RUNNING in drawn) == bool(now_running)  # the drawing shows the graph as it is
        log.append(("draw" if in_loop() else "final draw", now_running))
        return drawn

    monkeypatch.setattr(widgets_module, "graph_html", logged_graph_html)
    return log


def test_with_no_window_each_change_is_drawn_on_the_next_loop_turn_and_running_tasks_refuse_edits(drawings):
    graph, registry, llm = planner_graph()
    log = drawings
    statuses: list[str] = []
    refusals: list[str] = []

    def during_run(event):
        log.append((event.kind, event.path))
        if event.kind == "task_started" and event.path == "spawn":
            editor.select("spawn")
            editor.fields["output"].value = "5"
            editor.apply()
            refusals.append(editor.message.value)

    editor = graph.editor(registry, llm=llm, refresh_interval=0, on_event=during_run)
    editor.status.observe(lambda change: statuses.append(change["new"]), names="value")
    del log[:]  # (the drawing made by the constructor)
    editor.replay_button.click()

    # `plan` formats in a worker thread, so the loop turns while it runs: it is drawn running
    started, finished = log.index(("task_started", "plan")), log.index(("task_finished", "plan"))
    assert ("draw", {"plan"}) in log[started:finished]
    # the run's end draws the final state on the run's loop, after every task event (and the
    # caller's thread draws the same state once more, which sends the browser nothing new)
    end = log.index(("run_finished", ""))
    assert log[end - 1] == ("draw", set()) and log[-1] == ("final draw", set())
    # every drawing during the run follows an event (a burst of events costs one drawing)
    draws = [i for i, entry in enumerate(log[:end - 1]) if entry[0] == "draw"]
    assert draws and all(log[i - 1][0] != "draw" for i in draws)
    assert editor.view.value == graph_html(graph)
    assert any(s.startswith("running: ") for s in statuses)
    assert "task `spawn` is running: wait for the run to finish" in refusals[0]
    assert graph.tasks["spawn"].output == 3


class WaitForDrawing:
    """An LLM that answers only once the editor has drawn the graph after the call began."""

    kind = "wait-for-drawing"

    def __init__(self, inner: ScriptedLLM) -> None:
        self.inner = inner
        self.drawn: asyncio.Event | None = None

    def graph_drawn(self) -> None:
        if self.drawn is not None:
            self.drawn.set()

    async def complete(self, request: dict[str, Any]) -> Any:
        self.drawn = asyncio.Event()
        try:  # (a bound, not a spacing: without the redraw this call would wait for ever)
            await asyncio.wait_for(self.drawn.wait(), timeout=60)
        finally:
            self.drawn = None
        return await self.inner.complete(request)


def test_a_change_inside_the_window_is_drawn_when_the_window_ends_without_waiting_for_another_event(drawings, monkeypatch):
    graph, registry, llm = planner_graph()
    waiting_llm = WaitForDrawing(llm)
    log = drawings
    # The clock is stopped, so every change falls inside the window of the drawing before it.
    editor = graph.editor(registry, llm=waiting_llm, refresh_interval=0.01, on_event=lambda e: log.append((e.kind, e.path)))
    drawn = widgets_module.graph_html

    def draw_and_tell(graph: TaskGraph, limits: Any = None) -> str:
        html = drawn(graph, limits)
        waiting_llm.graph_drawn()
        return html

    monkeypatch.setattr(widgets_module, "graph_html", draw_and_tell)
    editor.replay_button.click()
    assert graph.output == "3 steps, size 7"
    # no event comes while the LLM call waits: only the redraw at the window's end can come
    started, finished = log.index(("llm_started", "plan")), log.index(("llm_finished", "plan"))
    assert log[started + 1:finished] == [("draw", {"plan"})]
    assert log[-1] == ("final draw", set())


def test_the_run_end_draws_the_last_change_even_inside_the_window(drawings):
    graph, registry, llm = planner_graph()
    log = drawings
    editor = graph.editor(registry, llm=llm, refresh_interval=3600, on_event=lambda e: log.append((e.kind, e.path)))
    del log[:]  # (the drawing made by the constructor)
    editor.replay_button.click()  # returns at once: the redraw due in an hour is dropped with the run
    assert [entry for entry in log if "draw" in entry[0]] == [("draw", set()), ("final draw", set())]
    assert log[-4:] == [("task_finished", "report"), ("draw", set()), ("run_finished", ""), ("final draw", set())]
    assert editor.view.value == graph_html(graph)


def test_the_users_listeners_get_every_event_and_one_that_raises_does_not_stop_the_live_view(drawings):
    graph, registry, llm = planner_graph()
    seen: list[str] = []

    def broken(event):
        raise RuntimeError("a bug in the user's listener")

    log = drawings
    editor = graph.editor(registry, llm=llm, refresh_interval=0, on_event=[lambda e: seen.append(e.kind), broken])
    with pytest.warns(RuntimeWarning, match="a bug in the user's listener"):
        editor.replay_button.click()
    assert "replayed: " in editor.message.value and graph.output == "3 steps, size 7"
    assert seen.count("task_finished") == len(list(iter_tasks(graph)))
    assert ("draw", {"plan"}) in log  # the editor's own listener went on


def test_breakpoints_stop_a_run_and_a_later_run_continues():
    graph, registry, llm = planner_graph()
    graph.run(registry, llm=llm, break_before=["subgraph"], progress=False)
    assert graph.last_run.stopped == "break_before:subgraph"
    assert graph.tasks["subgraph"].status == "pending" and graph.tasks["plan"].status == "done"
    graph.run(registry, llm=llm, break_after=["spawn"], progress=False)
    assert graph.last_run.stopped == "break_after:spawn"
    assert graph.run(registry, llm=llm, progress=False) == "3 steps, size 7"
    # nothing ran twice across the three runs (`work` runs once for each of the 3 steps)
    assert registry.take() == {name: 3 if name == "work" else 1 for name in registry}
    assert llm.calls == 1


def test_run_errors_are_shown_in_the_editor():
    graph, registry, llm = planner_graph()
    editor = graph.editor({k: v for k, v in registry.items() if k != "inc"}, llm=llm)
    editor.replay_button.click()
    assert "MissingFunctionError" in editor.message.value and "`inc`" in editor.message.value
    registry.add("report", lambda ctx, n, size: 1 / 0)
    editor = graph.editor(registry, llm=llm)
    editor.replay_button.click()
    assert "`report`: ZeroDivisionError in run: division by zero" in editor.message.value
    assert not editor.replay_button.disabled


def test_graph_step_goes_into_sub_graphs_one_inner_task_at_a_time():
    graph, registry, llm = planner_graph()
    steps = []
    while (task := graph.step(registry, llm=llm)) is not None:
        steps.append(task.id)
    assert steps == ["plan", "spawn", "spawn/a", "spawn/b", "spawn/c", "double", "inc", "report"]
    assert graph.find("subgraph > inc") is graph.tasks["subgraph"].subgraph.tasks["inc"]
    assert graph.output == "3 steps, size 7"


def test_breakpoints_inside_a_sub_graph_are_given_by_path():
    graph, registry, llm = planner_graph()
    graph.run(registry, llm=llm, break_before=["subgraph > inc"], progress=False)
    assert graph.last_run.stopped == "break_before:subgraph > inc"
    assert graph.find("subgraph > double").status == "done" and graph.find("subgraph > inc").status == "pending"
    graph.run(registry, llm=llm, break_after=["subgraph > inc"], progress=False)
    assert graph.last_run.stopped == "break_after:subgraph > inc"
    assert graph.find("subgraph > inc").output == 7
    assert graph.run(registry, llm=llm, progress=False) == "3 steps, size 7"


def test_message_list_prompts_are_edited_as_json_and_invalid_ones_are_refused():
    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "keep", id="ask"))
    registry = {"fmt": lambda ctx: [{"role": "user", "content": "hello"}], "keep": lambda ctx, text: text}
    llm = ScriptedLLM(lambda prompt: f"you said {prompt}")
    graph.run(registry, llm=llm, progress=False)
    editor = graph.editor(registry, llm=llm)
    editor.select("ask")
    assert json.loads(editor.fields["prompt"].value) == [{"role": "user", "content": "hello"}]
    before = graph.to_json()
    editor.fields["prompt"].value = '{"no_messages": 1}'
    editor.apply_button.click()
    assert "a dict prompt must have a `messages` key" in editor.message.value
    assert graph.to_json() == before
    editor.fields["prompt"].value = '[{"role": "user", "content": "goodbye"}]'
    editor.apply_button.click()
    editor.replay_button.click()
    assert graph.tasks["ask"].output == "you said goodbye" and llm.calls == 2


def test_huge_values_are_shown_cut_and_read_only_in_the_editor():
    graph = TaskGraph()
    graph.add_task(PythonTask("big", id="big"))
    graph.run({"big": lambda ctx: "x" * 300_000}, progress=False)
    editor = graph.editor({"big": lambda ctx: "x" * 300_000})
    editor.select("big")
    field = editor.fields["output"]
    assert field.disabled and len(field.value) < 101_000
    assert field.value.endswith("[truncated: 200,002 more characters not shown]\n(too large to edit here: use task.edit(...))")
    editor.apply_button.click()
    assert "nothing to apply" in editor.message.value and graph.tasks["big"].output == "x" * 300_000
