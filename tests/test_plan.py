"""``graph.plan``: what the next run would execute and why, computed without running anything, and
``graph.invalidate``. The property at the end holds the plan to what the next run then does."""

from __future__ import annotations

import inspect
import itertools
import json
from typing import Any

import pytest
from core_helpers import CountingRegistry
from hypothesis import given
from hypothesis import strategies as st
from test_properties import SETTINGS, Case, RecordingLLM, Spec, all_tasks, build, cases, edits

from llmtaskgraph import LLMTask, OfflineLLM, PythonTask, ScriptedLLM, TaskGraph, TaskGraphTask
from llmtaskgraph.errors import GraphValidationError, UnknownTaskError
from llmtaskgraph.views.render import PLAN_COLOURS, to_dot


def small() -> tuple[TaskGraph, CountingRegistry, ScriptedLLM]:
    """A graph whose functions and LLM give a new result on every call, so no re-run stops a cascade."""
    calls = itertools.count()
    graph = TaskGraph({"topic": "owls", "tone": "dry"})
    plan = graph.add_task(PythonTask("plan", id="plan"))
    ask = graph.add_task(LLMTask("fmt", "parse_score", plan, id="ask"))
    other = graph.add_task(PythonTask("const", id="const"))
    graph.add_output_task(PythonTask("join", ask, other, id="join"))
    registry = CountingRegistry({
        "plan": lambda ctx: ctx.graph_input["topic"],
        "fmt": lambda ctx, topic: f"Score {topic} from 1 to 5.",
        "parse_score": lambda ctx, text: text.upper(),
        "const": lambda ctx: next(calls),
        "join": lambda ctx, a, b: [a, b],
    })
    return graph, registry, ScriptedLLM(lambda prompt: f"reply {next(calls)} to {prompt}")


def test_a_new_graph_plans_everything_and_runs_nothing_while_planning():
    graph, registry, llm = small()
    plan = graph.plan(registry, llm=llm)
    assert plan.will_run == ["plan", "ask", "const", "join"]
    assert plan.reasons["plan"] == ["never ran"]
    assert (plan.llm_calls, plan.llm_calls_certain) == (1, 1)
    assert registry.take() == {} and llm.calls == 0
    assert "4 of 4 task(s) will run, 1 LLM call(s)" in str(plan)


@pytest.mark.parametrize(("edit", "will_run", "reason", "calls"), [
    (lambda g: g.tasks["plan"].edit(output="bats"), ["ask", "join"], "output of `plan` changed", (1, 0)),
    (lambda g: g.tasks["ask"].edit(response="a new reply"), ["ask", "join"], "reply edited", (0, 0)),
    (lambda g: g.tasks["ask"].edit(prompt="Score bats."), ["ask", "join"], "prompt changed", (1, 1)),
    (lambda g: setattr(g, "graph_input", {"topic": "bats", "tone": "dry"}), ["plan", "ask", "join"],
     "graph input key `topic` changed", (1, 0)),
    (lambda g: g.resample(["ask"]), ["ask", "join"], "resample requested", (1, 1)),
    (lambda g: g.invalidate("const"), ["const", "join"], "invalidated (`graph.invalidate`)", (0, 0)),
    (lambda g: g.tasks["ask"].params.update(max_tokens=5), ["ask", "join"], "params changed", (1, 1)),
])
def test_each_edit_gets_its_reason_and_the_plan_matches_the_run(edit, will_run, reason, calls):
    graph, registry, llm = small()
    graph.run(registry, llm=llm)
    registry.take()
    edit(graph)
    plan = graph.plan(registry, llm=llm)
    assert plan.will_run == will_run
    assert reason in plan.reasons[will_run[0]]
    assert (plan.llm_calls, plan.llm_calls_certain) == calls
    graph.run(registry, llm=llm)
    assert graph.last_run is not None and graph.last_run.executed == will_run
    assert graph.last_run.llm_calls == calls[0]


def test_a_failed_task_is_planned_with_its_error_and_a_switch_of_backend_is_named():
    graph, registry, llm = small()
    registry.add("const", lambda ctx: 1 / 0)
    with pytest.raises(Exception, match="failed"):
        graph.run(registry, llm=llm)
    plan = graph.plan(registry, llm=llm)
    assert plan.will_run == ["const", "join"]
    assert plan.reasons["const"] == ["failed last time (ZeroDivisionError in run)"]
    other = graph.plan(registry, llm=OfflineLLM())
    assert any(r.startswith("LLM backend changed") for r in other.reasons["ask"])


def test_the_response_cache_is_looked_up_and_bounds_are_noted(tmp_path):
    graph, registry, llm = small()
    graph.run(registry, llm=llm, cache=tmp_path)
    graph.resample(["ask"])
    graph.tasks["ask"].sample -= 1  # back to the cached sample: the cache answers the call
    graph.tasks["ask"].record.fingerprints["call"] = "invalidated"
    plan = graph.plan(registry, llm=llm, cache=tmp_path, max_tasks=3)
    assert plan.will_run == ["ask", "join"] and plan.llm_calls == 0  # (the cached reply is the old one: `join` at most)
    assert any("bounds" in n for n in plan.notes)


def test_plan_without_a_registry_says_code_is_not_compared_and_draws_will_run():
    graph, registry, llm = small()
    graph.run(registry, llm=llm)
    graph.tasks["plan"].edit(output="bats")
    plan = graph.plan(None, llm=llm)
    assert plan.will_run == ["ask", "join"] and any("no registry" in n for n in plan.notes)
    dot = to_dot(graph, plan=plan)
    assert PLAN_COLOURS["will run"] in dot and PLAN_COLOURS["reused"] in dot
    assert "ask: will run\\nwhy: output of `plan` changed\\nlast run: done" in dot  # the node's tooltip
    assert "<table" in plan._repr_html_() and "ask" in plan._repr_html_()


def test_invalidate_a_stage_or_all_of_them_by_object_or_path():
    graph, registry, llm = small()
    sub = TaskGraph()
    sub.add_task(PythonTask("const", id="inner"))
    graph.add_task(TaskGraphTask(sub, "const", id="box"))
    graph.run(registry, llm=llm)
    registry.take()
    graph.invalidate(graph.tasks["ask"], stage="parse")
    graph.run(registry, llm=llm)
    assert registry.take() == {"parse_score": 1}  # the same reply parsed again: the join's input is the same
    assert graph.last_run is not None and graph.last_run.llm_calls == 0
    graph.invalidate("ask", stage="call")
    graph.run(registry, llm=llm)
    assert graph.last_run.llm_calls == 1 and graph.tasks["ask"].sample == 1
    assert registry.take() == {"parse_score": 1, "join": 1}
    graph.invalidate("box > inner")
    assert graph.plan(registry, llm=llm).will_run == ["box", "box > inner"]
    graph.run(registry, llm=llm)
    assert registry.take() == {"const": 1}
    with pytest.raises(GraphValidationError, match="no stage `nope`"):
        graph.invalidate("ask", stage="nope")
    with pytest.raises(UnknownTaskError, match="did you mean `ask`"):
        graph.invalidate("aks")


def test_unknown_paths_are_errors_everywhere_a_task_is_named():
    graph, registry, llm = small()
    with pytest.raises(UnknownTaskError, match=r"`jion`.*did you mean `join`"):
        graph.run(registry, llm=llm, break_before=["jion"])
    with pytest.raises(UnknownTaskError, match="`aks`"):
        graph.resample(["aks"])
    with pytest.raises(UnknownTaskError, match="`plan > x`"):
        graph.remove_tasks(["plan > x"])
    with pytest.raises(UnknownTaskError, match="`nope`"):
        graph.plan(registry, llm=llm, resample=["nope"])
    with pytest.raises(GraphValidationError, match="list of tasks"):
        graph.remove_tasks("plan")  # a bare string is not a list of ids


# -- the plan agrees with the run that follows --------------------------------------------------------
def _no_cut_offs(specs: list[Spec]) -> list[Spec]:
    """Specs whose functions always change their result when their inputs change (no early cut-off)."""
    for spec in specs:
        spec.none_out = spec.const_prompt = False
        _no_cut_offs(spec.sub)
    return specs


def _edit_code(registry: dict[str, Any], name: str, salt: int) -> None:
    """Replace a registry function by one with other code and another result (a person's code edit)."""
    original = registry[name]

    def changed(value: Any) -> Any:
        if name.startswith("fmt:"):
            if isinstance(value, str):
                return f"{value} v{salt}"
            if isinstance(value, list):
                return [*value[:-1], {**value[-1], "content": f"{value[-1]['content']} v{salt}"}]
            return {**value, "system": f"v{salt}"}
        return {"v": salt, "was": value}

    if inspect.iscoroutinefunction(original):
        async def edited_async(ctx: Any, *args: Any, **kwargs: Any) -> Any:
            return changed(await original(ctx, *args, **kwargs))

        registry[name] = edited_async
    else:
        def edited(ctx: Any, *args: Any, **kwargs: Any) -> Any:
            return changed(original(ctx, *args, **kwargs))

        registry[name] = edited


@st.composite
def plan_edits(draw: st.DrawFn, case: Case) -> tuple[str, str, Any]:
    tasks = all_tasks(case.specs)
    llm_tasks = [t for t in tasks if t[1][-1].kind == "llm"]
    kind = draw(st.sampled_from(["data", "code", "invalidate", *(["resample"] if llm_tasks else [])]))
    if kind == "data":
        return draw(edits(case))
    path, chain = draw(st.sampled_from(llm_tasks if kind == "resample" else tasks))
    spec = chain[-1]
    if kind == "code":
        role = {"py": "run", "spawn": "run", "llm": draw(st.sampled_from(["fmt", "parse"])), "graph": "in",
                "child": "child"}[spec.kind]
        owner = path.rsplit("/", 1)[0] if spec.kind == "child" else path
        return "code", f"{role}:{owner}", draw(st.integers(0, 10**6))
    if kind == "resample":
        return "resample", path, None
    stages = {"py": ["run"], "spawn": ["run"], "child": ["run"], "llm": ["format", "call", "parse"],
              "graph": ["input", "subgraph"]}[spec.kind]
    return "invalidate", path, draw(st.sampled_from([None, *stages]))


@SETTINGS
@given(data=st.data(), case=cases())
def test_the_plan_names_exactly_what_the_next_run_executes_and_its_llm_calls(data: st.DataObject, case: Case) -> None:
    _no_cut_offs(case.specs)
    log: list[tuple[str, str]] = []
    registry: dict[str, Any] = {}
    graph = build(case.specs, log, registry, graph_input=case.graph_input, output=case.output)
    graph.run(registry, llm=RecordingLLM(log), progress=False)
    graph = TaskGraph.from_json(json.loads(json.dumps(graph.to_json())))
    kind, path, value = data.draw(plan_edits(case))
    if kind == "graph_input":
        graph.graph_input = value
    elif kind in ("output", "prompt", "response"):
        graph.find(path).edit(**{kind: value})
    elif kind == "code":
        _edit_code(registry, path, value)
    elif kind == "invalidate":
        graph.invalidate(path, stage=value)
    else:
        graph.resample([path])
    calls_before = len(log)
    plan = graph.plan(registry, llm=RecordingLLM(log))
    assert len(log) == calls_before, "planning ran something"
    graph.run(registry, llm=RecordingLLM(log), progress=False)
    report = graph.last_run
    assert report is not None
    if kind in ("invalidate", "resample"):
        # the functions are pure and the offline LLM answers a request the same way every time: the
        # forced task runs, and what follows it at most (its output may come out the same)
        assert set(report.executed) <= set(plan.will_run) and path in report.executed, (kind, path, plan)
        assert plan.llm_calls >= report.llm_calls >= plan.llm_calls_certain, (kind, path, plan)
    else:
        assert sorted(plan.will_run) == sorted(report.executed), (kind, path, plan)
        assert plan.llm_calls == report.llm_calls >= plan.llm_calls_certain, (kind, path, plan)
    again = graph.plan(registry, llm=RecordingLLM(log))
    assert again.will_run == [] and again.llm_calls == 0


def test_an_edit_of_a_sub_graph_output_task_plans_what_reads_the_sub_graph():
    """The sub-graph task hands the edited output on when the run enters it: its readers run."""
    from jupyter_helpers import planner_graph

    graph, registry, llm = planner_graph()
    graph.run(registry, llm=llm, progress=False)
    graph.find("subgraph > inc").edit(output=8)
    plan = graph.plan(registry, llm=llm)
    assert plan.will_run == ["report"] and plan.reasons["report"] == ["output of `subgraph` may change (it runs first)"]
    graph.run(registry, llm=llm, progress=False)
    assert graph.last_run.executed == ["report"] and graph.tasks["subgraph"].output == 8
