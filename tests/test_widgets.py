"""The widget editor, driven from Python: set values, click buttons, check the graph afterwards."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from jupyter_helpers import planner_graph

from llmtaskgraph import LLMTask, PythonTask, ScriptedLLM, TaskGraph, TaskGraphError
from llmtaskgraph.run.state import RunEvent
from llmtaskgraph.views import graph_view
from llmtaskgraph.views.render import iter_tasks
from llmtaskgraph.views.widgets import TEXT_HINT


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
    before = (graph.to_json(), dict(editor.view.statuses))
    editor.fields["output"].value = "[1, 2,"
    editor.apply_button.click()
    assert "the output of task `plan` is not valid JSON" in editor.message.value
    assert "nothing was changed" in editor.message.value and "ltg-msg-error" in editor.message.value
    assert (graph.to_json(), dict(editor.view.statuses)) == before


def test_apply_an_output_edit_then_replay_reruns_exactly_the_descendants():
    graph, registry, llm = _ran_graph()
    editor = graph.editor(registry, llm=llm)
    editor.select("plan")
    assert editor.fields["output"].value == '[\n  "a",\n  "b",\n  "c"\n]'
    svg_before = editor.view.svg
    editor.fields["output"].value = '["a", "z"]'
    editor.apply_button.click()
    assert graph.tasks["plan"].output == ["a", "z"]
    # the children of `spawn` stay as they are: `spawn` decides on replay which ones it still adds
    assert [label for label, _ in editor.picker.options if label.endswith("stale")] == [
        "spawn · stale", "subgraph · stale", "subgraph > double · stale", "subgraph > inc · stale", "report · stale",
    ]
    assert ("Replay will run 5 task(s): `spawn`, `subgraph`, `subgraph &gt; double`, `subgraph &gt; inc`, `report`"
            in editor.message.value)
    assert "4 done, 5 stale" in editor.status.value
    editor.select("report")  # its card says how the editor shows it, and what the last run left
    assert ">stale</span> <span class=\"ltg-note\">(last run: done)</span>" in editor.detail.value
    # the view shows the stale tasks at once, and the edited one, without a new layout
    assert editor.view.statuses["spawn"] == "stale" and editor.view.statuses["plan"] == "done"
    assert editor.view.marks == {"plan": "edited"} and editor.view.svg == svg_before
    editor.replay_button.click()
    assert graph.output == "2 steps, size 5"
    assert registry.take() == {"spawn": 1, "work": 1, "sub_in": 1, "double": 1, "inc": 1, "report": 1}
    assert llm.calls == 1  # only the first run called the LLM
    assert "spawn/z" in graph.tasks and "spawn/c" not in graph.tasks
    assert "replayed: " in editor.message.value
    assert set(editor.view.statuses.values()) == {"done"}
    assert set(editor.view.statuses) == {path for path, _ in iter_tasks(graph)}


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


# -- the editor built around the view: select by click, drafts, messages by path ----------------------

def test_clicking_a_node_selects_its_task_in_the_editor():
    graph, registry, llm = _ran_graph()
    editor = graph.editor(registry, llm=llm)
    editor.view.selected = "subgraph > inc"  # what a click on the node sends from the browser
    assert editor.picker.value == "subgraph > inc" and editor.task is graph.find("subgraph > inc")
    assert editor.fields["output"].value == "7" and "<b>inc</b>" in editor.detail.value
    editor.select("plan")  # and the other way round: the dropdown (keyboard) selects the node
    assert editor.view.selected == "plan"


def test_unapplied_text_is_kept_as_a_draft_when_switching_task_and_across_a_replay():
    graph, registry, llm = _ran_graph()
    editor = graph.editor(registry, llm=llm)
    editor.select("subgraph > inc")
    editor.fields["output"].value = "70"
    editor.select("plan")
    assert "kept your unapplied edit of the output of `subgraph &gt; inc`: choose it again" in editor.message.value
    assert editor.fields["output"].value.startswith("[")  # plan's own output
    editor.replay_button.click()  # a refresh after a run does not drop it either
    editor.view.selected = "subgraph > inc"
    assert editor.fields["output"].value == "70"
    assert "your unapplied edit of the output of `subgraph &gt; inc` is back" in editor.message.value
    editor.apply_button.click()
    assert graph.find("subgraph > inc").output == 70 and editor.drafts == {}
    assert "edited the output of `subgraph &gt; inc`" in editor.message.value


def test_editing_a_failed_task_says_what_changed_and_what_replay_will_run():
    graph = TaskGraph()
    bad = graph.add_task(PythonTask("bad", id="bad"))
    graph.add_task(PythonTask("after", bad, id="after"))
    registry = {"bad": lambda ctx: 1 / 0, "after": lambda ctx, x: x + 1}
    with pytest.raises(TaskGraphError):
        graph.run(registry, progress=False)
    editor = graph.editor(registry)
    editor.select("bad")
    assert "ZeroDivisionError" in editor.detail.value
    editor.fields["output"].value = "41"
    editor.apply_button.click()
    message = editor.message.value
    assert "edited the output of `bad` (it was failed; now pending, its old error cleared)" in message
    assert "Replay will run 1 task(s): `after`" in message
    assert "ZeroDivisionError" not in editor.detail.value  # the card shows the task as it is now
    assert editor.view.statuses["bad"] == "pending" and "bad" not in {p for p, m in editor.view.marks.items() if m == "failed"}
    editor.replay_button.click()
    assert graph.output == 42 and editor.view.statuses == {"bad": "done", "after": "done"}


def test_a_pending_task_shows_its_kept_output_as_the_previous_one():
    graph, registry, llm = _ran_graph()
    graph.tasks["plan"].edit(response='["x"]')  # plan is done; its output is now from before the edit
    graph.tasks["report"].record.status = "pending"
    editor = graph.editor(registry, llm=llm)
    editor.select("report")
    assert editor.fields["output"].description == "output (previous)"
    assert "previous output (the task is pending)" in editor.detail.value


def test_messages_name_tasks_inside_sub_graphs_by_path():
    graph, registry, llm = _ran_graph()
    editor = graph.editor(registry, llm=llm)
    editor.select("subgraph > double")
    editor.fields["output"].value = "{not json"
    editor.apply_button.click()
    assert "the output of task `subgraph &gt; double` is not valid JSON" in editor.message.value


def test_plan_colours_the_nodes_and_says_why_each_runs():
    graph, registry, llm = _ran_graph()
    editor = graph.editor(registry, llm=llm)
    graph.tasks["spawn"].edit(output=1)
    editor.plan_button.click()
    statuses = editor.view.statuses
    assert statuses["plan"] == "reused" and statuses["report"] == "will run" and statuses["spawn"] == "reused"
    assert "plan: 1 of 9 task(s) will run" in editor.message.value and "report" in editor.message.value
    assert "why: output of `spawn` changed" in editor.view.info["report"]
    assert "will run" in editor.view.legend
    editor.refresh()  # any refresh goes back to statuses
    assert editor.view.statuses["report"] == "stale"


def test_rerun_this_task_runs_it_and_what_depends_on_it_again():
    graph, registry, llm = _ran_graph()
    editor = graph.editor(registry, llm=llm)
    editor.select("subgraph")
    editor.rerun_button.click()
    assert "reran `subgraph`" in editor.message.value
    # it gives the same output as before, so `report` keeps its result (the memo rule decides, as always)
    assert set(registry.take()) == {"sub_in", "double", "inc"}
    assert llm.calls == 1


def test_stop_starts_no_new_task_and_keeps_the_trace():
    graph, registry, llm = planner_graph()

    def stop_after_plan(event):
        if event.kind == "task_finished" and event.path == "plan":
            editor.stop_button.click()

    editor = graph.editor(registry, llm=llm, on_event=stop_after_plan)
    assert editor.stop_button.disabled
    editor.replay_button.click()
    assert graph.tasks["plan"].status == "done" and graph.tasks["report"].status == "pending"
    assert graph.last_run.stopped == "stop" and "stopped (stop)" in editor.status.value
    assert editor.stop_button.disabled and editor.stop_button.description == "Stop"
    assert not editor.replay_button.disabled
    editor.replay_button.click()  # a later run continues; plan is not asked again
    assert graph.output == "3 steps, size 7" and llm.calls == 1


async def test_in_a_notebook_runs_go_on_in_the_background_and_stop_now_cancels_them():
    graph = TaskGraph()
    first = graph.add_task(PythonTask("quick", id="first"))
    graph.add_task(PythonTask("slow", first, id="slow"))
    started = asyncio.Event()

    async def slow(ctx, x):
        started.set()
        await asyncio.sleep(3600)  # only cancellation ends it

    editor = graph.editor({"quick": lambda ctx: 1, "slow": slow})
    editor.replay_button.click()  # returns at once: the loop (the kernel's, in a notebook) runs it
    assert editor._task is not None and editor.replay_button.disabled and not editor.stop_button.disabled
    await asyncio.wait_for(started.wait(), timeout=60)
    assert graph.running
    editor.stop_button.click()
    assert "stopping: no new task starts" in editor.message.value and editor.stop_button.description == "Stop now"
    editor.stop_button.click()
    while editor._task is not None or graph.running:  # (the run ends on this loop)
        await asyncio.sleep(0.01)
    assert "cancelled" in editor.message.value
    assert graph.tasks["first"].status == "done" and graph.tasks["slow"].status != "done"
    assert not editor.replay_button.disabled and editor.stop_button.disabled


def test_without_a_front_end_the_editor_and_the_view_read_as_hints():
    graph, registry, llm = planner_graph()
    editor = graph.editor(registry, llm=llm)
    bundle = editor._repr_mimebundle_()
    assert bundle["text/plain"] == TEXT_HINT and "application/vnd.jupyter.widget-view+json" in bundle
    data, _metadata = graph.view()._repr_mimebundle_()
    assert data["text/plain"] == graph_view.TEXT_HINT and "application/vnd.jupyter.widget-view+json" in data


# -- the view during a run: statuses repainted in place, checked by order of events, never by time -----

class WaitForStatus:
    """An LLM that answers only once the view has painted its task with ``status``."""

    kind = "wait-for-status"

    def __init__(self, inner: ScriptedLLM, status: str) -> None:
        self.inner = inner
        self.status = status
        self.view: Any = None
        self.seen: list[dict[str, str]] = []

    async def complete(self, request: dict[str, Any]) -> Any:
        painted = asyncio.Event()

        def check(change: dict[str, Any]) -> None:
            self.seen.append(dict(change["new"]))
            if change["new"].get("plan") == self.status:
                painted.set()

        check({"new": self.view.statuses})
        self.view.observe(check, names="statuses")
        try:  # (a bound, not a spacing: without the repaint at the window's end this would wait for ever)
            await asyncio.wait_for(painted.wait(), timeout=60)
        finally:
            self.view.unobserve(check, names="statuses")
        return await self.inner.complete(request)


def test_a_running_task_is_painted_running_while_it_runs_without_a_new_layout():
    graph, registry, llm = planner_graph()
    waiting = WaitForStatus(llm, "running")
    editor = graph.editor(registry, llm=waiting)
    waiting.view = editor.view
    layouts: list[str] = []
    editor.view.observe(lambda change: layouts.append(change["new"]), names="svg")
    editor.replay_button.click()
    assert graph.output == "3 steps, size 7"
    assert any(seen.get("plan") == "running" for seen in waiting.seen)
    assert editor.view.statuses == {path: "done" for path, _ in iter_tasks(graph)}  # the run's end paints all
    assert len(layouts) == 1  # one new layout for the 3 tasks `spawn` added; none for status changes
    editor.select("subgraph > double")
    editor.fields["output"].value = "10"
    editor.apply_button.click()  # an edit changes colours and borders, not the layout
    editor.replay_button.click()
    assert len(layouts) == 1 and "edited" in editor.view.marks.values()


def test_a_streaming_reply_shows_its_text_as_it_arrives_and_unknown_events_are_harmless():
    graph = TaskGraph()
    graph.add_task(LLMTask("ask", "keep", id="ask"))

    class Streaming:
        kind = "streaming-test"

        async def complete(self, request: dict[str, Any], on_text: Any = None) -> Any:
            shown = asyncio.Event()
            view.observe(lambda c: shown.set() if c["new"].get("ask") == "Once upon" else None, names="live_text")
            on_text("Once upon")
            await asyncio.wait_for(shown.wait(), timeout=60)  # (a bound: the view must show the partial text)
            return await ScriptedLLM(lambda prompt: "Once upon a time").complete(request)

    view = graph.view()
    view.on_event(RunEvent("a_kind_from_a_later_release", "ask", graph.tasks["ask"]))  # repaints, nothing more
    graph.run({"ask": lambda ctx: "tell a story", "keep": lambda ctx, text: text}, llm=Streaming(),
              on_event=view.on_event, progress=False)
    assert graph.output == "Once upon a time" and view.live_text == {} and view.statuses == {"ask": "done"}
    assert "Once upon" not in view.info["ask"]


def test_the_users_listeners_get_every_event_and_one_that_raises_does_not_stop_the_live_view():
    graph, registry, llm = planner_graph()
    seen: list[str] = []

    def broken(event):
        raise RuntimeError("a bug in the user's listener")

    editor = graph.editor(registry, llm=llm, on_event=[lambda e: seen.append(e.kind), broken])
    painted: list[bool] = []
    paint = editor.view._status_throttle.action
    editor.view._status_throttle.action = lambda: (painted.append(graph.running), paint())
    with pytest.warns(RuntimeWarning, match="a bug in the user's listener"):
        editor.replay_button.click()
    assert "replayed: " in editor.message.value and graph.output == "3 steps, size 7"
    assert seen.count("task_finished") == len(list(iter_tasks(graph)))
    assert painted and all(painted)  # the editor's own listener went on painting the run while it went


def test_the_view_redraws_its_layout_when_tasks_are_added_and_lays_out_once_per_shape(monkeypatch):
    graph, registry, llm = planner_graph()
    calls: list[int] = []
    real = graph_view.layout

    def counted(draw, limits=None):
        calls.append(len(draw.nodes))
        return real(draw, limits)

    monkeypatch.setattr(graph_view, "layout", counted)
    view = graph.view()
    view.refresh()
    view.refresh()
    assert calls == [6]  # the same shape: no second `dot`
    graph.run(registry, llm=llm, on_event=view.on_event, progress=False)
    assert calls[-1] == 9 and set(view.paths.values()) == {p for p, _ in iter_tasks(graph)}


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
