"""Holes found by attacking the core: each test here failed on the code before the reuse rule moved
to one module (issue "a trace you can trust")."""

from __future__ import annotations

import json
from typing import Any

import pytest
from core_helpers import CountingRegistry

from llmtaskgraph import (
    LLMTask,
    LLMTaskGraphError,
    MissingFunctionError,
    OfflineLLM,
    PythonTask,
    TaskGraph,
    TaskGraphError,
    TaskGraphTask,
)
from llmtaskgraph.errors import GraphValidationError, OutputNotJSONError
from llmtaskgraph.model.tasks import MAX_NESTING


def reload(graph: TaskGraph) -> TaskGraph:
    """Save and load, as every trace the library writes must allow."""
    return TaskGraph.from_json(json.loads(json.dumps(graph.to_json())))


# -- functions that mutate what they are given -----------------------------------------------------
def test_a_function_that_mutates_its_inputs_changes_no_stored_value_and_no_fingerprint():
    graph = TaskGraph({"items": [1, 2]})
    make = graph.add_task(PythonTask("make", id="make", inputs={"extra": {"k": [0]}}))
    graph.add_output_task(PythonTask("grab", make, id="grab", inputs={"extra": {"k": [0]}}))

    def mutate(ctx: Any, *deps: Any, extra: dict[str, Any]) -> list[int]:
        ctx.graph_input["items"].append(99)
        extra["k"].append(99)
        for dep in deps:
            dep.append(99)
        return [len(ctx.graph_input["items"])]

    registry = CountingRegistry({"make": mutate, "grab": mutate})
    graph.run(registry, llm=OfflineLLM())
    assert graph.graph_input == {"items": [1, 2]}
    assert graph.tasks["make"].output == [3] and graph.tasks["grab"].inputs == {"extra": {"k": [0]}}
    registry.take()
    graph.run(registry, llm=OfflineLLM())  # nothing it changed can make it look stale
    reload(graph).run(registry, llm=OfflineLLM())
    assert registry.take() == {}


# -- every saved trace loads ------------------------------------------------------------------------
def test_a_creator_whose_new_child_depends_on_a_child_it_no_longer_creates_saves_a_loadable_trace():
    graph = TaskGraph({"round": 1})

    def creator(ctx: Any) -> int:
        if ctx.graph_input["round"] == 1:
            ctx.add_task(PythonTask("leaf", key="a"))
        else:
            ctx.add_task(PythonTask("use", f"{ctx.task.id}/a", key="b"))
        return ctx.graph_input["round"]

    graph.add_task(PythonTask("creator", id="creator"))
    registry = {"creator": creator, "leaf": lambda ctx: "leaf", "use": lambda ctx, x: x + "!"}
    graph.run(registry)
    graph.graph_input = {"round": 2}
    graph.run(registry)
    assert graph.tasks["creator/b"].output == "leaf!"
    assert "creator/a" in graph.tasks, "a child the new one depends on stays"
    loaded = reload(graph)
    loaded.run(registry)
    assert loaded.last_run is not None and loaded.last_run.executed == []


def test_a_child_recreated_under_the_same_key_as_another_task_type_saves_a_loadable_trace():
    graph = TaskGraph({"llm": True})

    def creator(ctx: Any) -> None:
        task = LLMTask("fmt", "parse", key="x") if ctx.graph_input["llm"] else PythonTask("leaf", key="x")
        ctx.add_task(task)

    graph.add_task(PythonTask("creator", id="creator"))
    registry = {"creator": creator, "leaf": lambda ctx: 1, "fmt": lambda ctx: "hi", "parse": lambda ctx, t: t}
    graph.run(registry, llm=OfflineLLM())
    graph.graph_input = {"llm": False}
    graph.run(registry, llm=OfflineLLM())
    assert graph.tasks["creator/x"].output == 1
    assert reload(graph).tasks["creator/x"].output == 1


def test_sub_graphs_deeper_than_a_trace_can_hold_are_refused_when_added():
    graph = TaskGraph()
    graph.add_task(PythonTask("leaf"))
    for _ in range(MAX_NESTING):
        outer = TaskGraph()
        outer.add_task(TaskGraphTask(graph, "fmt"))
        graph = outer
    reload(graph)  # as deep as allowed: saves and loads
    top = TaskGraph()
    with pytest.raises(GraphValidationError, match=f"nested {MAX_NESTING + 1} deep"):
        top.add_task(TaskGraphTask(graph, "fmt"))


def test_a_graph_input_too_deep_or_not_json_is_refused_where_it_enters():
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    with pytest.raises(OutputNotJSONError, match="graph_input"):
        TaskGraph(deep)
    graph = TaskGraph()
    for bad in (deep, float("nan"), "\ud800", {1: "int key"}):
        with pytest.raises(OutputNotJSONError, match="graph_input"):
            graph.graph_input = bad
    assert graph.graph_input is None


# -- edits ------------------------------------------------------------------------------------------
def test_an_edit_of_a_task_that_never_ran_is_kept_and_the_task_is_not_done_before_it_ran():
    graph = TaskGraph()
    first = graph.add_task(PythonTask("first", id="first"))
    ask = graph.add_task(LLMTask("fmt", "parse", first, id="ask"))
    graph.add_output_task(PythonTask("last", ask, id="last"))
    registry = CountingRegistry({"first": lambda ctx: "a", "fmt": lambda ctx, x: f"say {x}",
                                 "parse": lambda ctx, t: t, "last": lambda ctx, x: f"[{x}]"})
    graph.run(registry, llm=OfflineLLM(), break_before=["ask"])
    ask.edit(response="an edited reply")
    graph.tasks["last"].edit(output="kept")
    assert ask.status == "pending" and graph.tasks["last"].status == "pending"
    plan = graph.plan(registry, llm=OfflineLLM())
    assert plan.llm_calls == 0
    llm = OfflineLLM()
    assert graph.run(registry, llm=llm) == "kept"
    assert llm.calls == 0 and ask.output == "an edited reply"
    assert registry.take() == {"first": 1, "parse": 1}
    assert reload(graph).run(registry, llm=llm) == "kept" and registry.take() == {}


def test_an_edit_of_a_failed_task_supplies_its_output():
    graph = TaskGraph()
    bad = graph.add_task(PythonTask("bad", id="bad"))
    graph.add_output_task(PythonTask("after", bad, id="after"))
    registry = {"bad": lambda ctx: 1 / 0, "after": lambda ctx, x: x * 2}
    with pytest.raises(TaskGraphError):
        graph.run(registry)
    bad.edit(output=21)
    assert bad.status == "pending" and bad.error is None
    assert graph.run(registry) == 42


def test_removing_the_output_task_is_refused_naming_it():
    graph = TaskGraph()
    a = graph.add_task(PythonTask("a", id="a"))
    graph.add_output_task(PythonTask("b", a, id="b"))
    with pytest.raises(GraphValidationError, match="output task `b`"):
        graph.remove_tasks(["a"])
    assert list(graph.tasks) == ["a", "b"]
    graph.output_task = a
    assert graph.remove_tasks(["b"]) == ["b"]


def test_paths_inside_sub_graphs_name_tasks_for_resample_breaks_and_removal():
    sub = TaskGraph()
    sub.add_task(LLMTask("fmt", "parse", id="ask"))
    sub.add_task(PythonTask("leaf", id="spare"))
    graph = TaskGraph()
    graph.add_task(TaskGraphTask(sub, "inp", id="box"))
    registry = {"fmt": lambda ctx: "hi", "parse": lambda ctx, t: t, "inp": lambda ctx: None, "leaf": lambda ctx: 1}
    llm = OfflineLLM()
    graph.run(registry, llm=llm, break_before=["box > spare"])
    assert graph.last_run is not None and graph.last_run.stopped == "break_before:box > spare"
    graph.run(registry, llm=llm)
    graph.resample(["box > ask"])
    assert graph.plan(registry, llm=llm).will_run == ["box", "box > ask"]
    assert graph.remove_tasks(["box > spare"]) == ["box > spare"]
    assert list(sub.tasks) == ["ask"]


def test_keyword_dependencies_cannot_take_the_names_of_task_settings():
    graph = TaskGraph()
    a = graph.add_task(PythonTask("a"))
    for name in ("params", "sample"):  # not PythonTask arguments, so they would become dependencies
        with pytest.raises(GraphValidationError, match="reserved"):
            PythonTask("f", **{name: a})
    trace = graph.to_json()
    trace["tasks"].append({**trace["tasks"][0], "id": "b", "kwdeps": {"name": "a"}})
    with pytest.raises(GraphValidationError, match="reserved"):
        TaskGraph.from_json(trace)


def test_registry_names_of_tasks_added_at_run_time_are_checked_when_added():
    graph = TaskGraph()
    planner = graph.add_task(PythonTask("planner", id="planner"))
    graph.add_task(LLMTask("fmt", "parse", planner, id="paid"))

    def planner_fn(ctx: Any) -> int:
        ctx.add_task(PythonTask("not_registered", key="x"))
        return 1

    llm = OfflineLLM()
    with pytest.raises(TaskGraphError, match="planner") as info:
        graph.run({"planner": planner_fn, "fmt": lambda ctx, n: "hi", "parse": lambda ctx, t: t}, llm=llm)
    assert "not_registered" in str(graph.tasks["planner"].error.message)
    assert graph.tasks["planner"].error.type == MissingFunctionError.__name__
    assert llm.calls == 0 and graph.tasks["paid"].status == "blocked"
    assert isinstance(info.value, LLMTaskGraphError)


def test_the_duration_of_a_trace_with_huge_times_is_unknown_rather_than_a_crash():
    graph = TaskGraph()
    graph.add_task(PythonTask("a", id="a"))
    graph.run({"a": lambda ctx: 1})
    trace = graph.to_json()
    trace["tasks"][0]["started_at"], trace["tasks"][0]["finished_at"] = 1.5, 10**400
    assert TaskGraph.from_json(trace).tasks["a"].record.duration is None
