"""Edit-and-replay: each kind of edit re-runs exactly the stages that depend on it.

Functions are counted independently of the run report; LLM calls are counted by the backend.
"""

from __future__ import annotations

import json

import pytest
from core_helpers import CountingRegistry

from llmtaskgraph import LLMTask, OfflineLLM, PythonTask, TaskGraph, TaskGraphTask


def registry() -> CountingRegistry:
    return CountingRegistry({
        "topic": lambda ctx: ctx.graph_input["topic"],
        "const": lambda ctx: "cats",
        "ask": lambda ctx, subject: f"Write one line about {subject}.",
        "parse": lambda ctx, text: text.split("] ", 1)[-1].upper(),
        "combine": lambda ctx, a, b: f"{a} + {b}",
        "final": lambda ctx, c: {"result": c, "length": len(c)},
    })


def build() -> TaskGraph:
    graph = TaskGraph({"topic": "dogs"})
    topic = graph.add_task(PythonTask("topic"))
    const = graph.add_task(PythonTask("const"))
    a = graph.add_task(LLMTask("ask", "parse", topic, name="ask_topic"))
    b = graph.add_task(LLMTask("ask", "parse", const, name="ask_const"))
    c = graph.add_task(PythonTask("combine", a, b))
    graph.add_task(PythonTask("final", c))
    return graph


@pytest.fixture
def ran():
    """A completed graph, its counting registry (counts cleared) and its LLM backend (calls reset)."""
    reg, llm, graph = registry(), OfflineLLM(), build()
    graph.run(reg, llm=llm)
    assert reg.take() == {"topic": 1, "const": 1, "ask": 2, "parse": 2, "combine": 1, "final": 1}
    llm.calls = 0
    return graph, reg, llm


def via_json(graph: TaskGraph) -> TaskGraph:
    return TaskGraph.from_json(json.loads(json.dumps(graph.to_json())))


def test_replay_without_edits_runs_nothing(ran):
    graph, reg, llm = ran
    out = graph.output
    assert via_json(graph).run(reg, llm=llm) == out
    assert (reg.take(), llm.calls) == ({}, 0)


@pytest.mark.parametrize("how", ["python", "json"])
def test_edit_reply_reruns_only_the_parser_and_descendants(ran, how):
    graph, reg, llm = ran
    if how == "python":
        graph.tasks["ask_topic"].edit(response="[edited] a reply about wolves")
    else:
        data = graph.to_json()
        data["tasks"][2]["response"]["text"] = "[edited] a reply about wolves"
        graph = TaskGraph.from_json(data)
    out = graph.run(reg, llm=llm)
    assert (reg.take(), llm.calls) == ({"parse": 1, "combine": 1, "final": 1}, 0)
    assert out["result"].startswith("A REPLY ABOUT WOLVES + ")


@pytest.mark.parametrize("how", ["python", "json"])
def test_edit_prompt_calls_the_llm_again_and_keeps_the_edited_prompt(ran, how):
    graph, reg, llm = ran
    edited = [{"role": "user", "content": "Write one line about owls."}]
    if how == "python":
        graph.tasks["ask_topic"].edit(prompt=edited)
    else:
        data = graph.to_json()
        data["tasks"][2]["prompt"] = edited
        graph = TaskGraph.from_json(data)
    out = graph.run(reg, llm=llm)
    assert (reg.take(), llm.calls) == ({"parse": 1, "combine": 1, "final": 1}, 1)
    assert graph.tasks["ask_topic"].prompt == edited  # the formatter did not overwrite it
    assert "OWLS" in out["result"]


@pytest.mark.parametrize("how", ["python", "json"])
def test_edit_output_reruns_exactly_the_descendants(ran, how):
    graph, reg, llm = ran
    if how == "python":
        graph.tasks["ask_const"].edit(output="EDITED")
    else:
        data = graph.to_json()
        data["tasks"][3]["output"] = "EDITED"
        graph = TaskGraph.from_json(data)
    out = graph.run(reg, llm=llm)
    assert (reg.take(), llm.calls) == ({"combine": 1, "final": 1}, 0)
    assert out["result"].endswith(" + EDITED")
    assert graph.tasks["ask_const"].output == "EDITED"


@pytest.mark.parametrize("how", ["python", "json"])
def test_edit_graph_input_reruns_the_tasks_that_read_it_and_their_descendants(ran, how):
    graph, reg, llm = ran
    if how == "python":
        graph.graph_input = {"topic": "owls"}
    else:
        data = graph.to_json()
        data["graph_input"] = {"topic": "owls"}
        graph = TaskGraph.from_json(data)
    graph.run(reg, llm=llm)
    # `topic` reads the input; `const` does not and neither does `ask_const`.
    assert (reg.take(), llm.calls) == ({"topic": 1, "ask": 1, "parse": 1, "combine": 1, "final": 1}, 1)


def test_unchanged_output_after_a_rerun_stops_the_cascade(ran):
    graph, reg, llm = ran
    graph.graph_input = {"topic": "dogs", "unused": True}  # `topic` re-runs but returns the same value
    graph.run(reg, llm=llm)
    assert (reg.take(), llm.calls) == ({"topic": 1}, 0)


def test_none_outputs_are_memoized_too():
    reg = CountingRegistry({"nothing": lambda ctx: None, "use": lambda ctx, x: x is None})
    graph = TaskGraph()
    n = graph.add_task(PythonTask("nothing"))
    graph.add_task(PythonTask("use", n))
    assert graph.run(reg) is True
    reg.take()
    assert via_json(graph).run(reg) is True
    assert reg.take() == {}


def test_resample_draws_a_fresh_reply_without_editing(ran):
    graph, reg, llm = ran
    graph.run(reg, llm=llm, resample=["ask_const"])
    assert llm.calls == 1 and graph.tasks["ask_const"].sample == 1
    # the offline backend answers equal requests equally, so the reply text is unchanged: the cascade stops
    assert reg.take() == {}
    llm.calls = 0
    graph.run(reg, llm=llm)
    assert (reg.take(), llm.calls) == ({}, 0)


def test_switching_llm_backend_calls_the_llm_again(ran):
    from llmtaskgraph import ScriptedLLM

    graph, reg, _ = ran
    scripted = ScriptedLLM({"cats": "[s] purr", "dogs": "[s] woof"})
    out = graph.run(reg, llm=scripted)
    assert scripted.calls == 2 and out["result"] == "WOOF + PURR"


# -- sub-graphs --------------------------------------------------------------------------------------
def subgraph_setup():
    reg = CountingRegistry({
        "seed": lambda ctx: ctx.graph_input,
        "to_sub": lambda ctx, s: {"n": s},
        "double": lambda ctx: ctx.graph_input["n"] * 2,
        "inc": lambda ctx, x: x + 1,
        "after": lambda ctx, x: [x],
    })
    inner = TaskGraph()
    d = inner.add_task(PythonTask("double"))
    inner.add_output_task(PythonTask("inc", d))
    graph = TaskGraph(5)
    seed = graph.add_task(PythonTask("seed"))
    sub = graph.add_task(TaskGraphTask(inner, "to_sub", seed, name="sub"))
    graph.add_task(PythonTask("after", sub))
    return graph, reg


def test_edit_inside_a_subgraph_reruns_inner_descendants_and_outer_descendants():
    graph, reg = subgraph_setup()
    assert graph.run(reg) == [11]
    reg.take()
    graph.find("sub > double").edit(output=100)
    assert graph.run(reg) == [101]
    assert reg.take() == {"inc": 1, "after": 1}
    # the same edit by hand in JSON
    data = graph.to_json()
    data["tasks"][1]["subgraph"]["tasks"][0]["output"] = 7
    loaded = TaskGraph.from_json(data)
    assert loaded.run(reg) == [8]
    assert reg.take() == {"inc": 1, "after": 1}


def test_graph_input_edit_flows_into_the_subgraph():
    graph, reg = subgraph_setup()
    graph.run(reg)
    reg.take()
    graph.graph_input = 6
    assert via_json(graph).run(reg) == [13]
    assert reg.take() == {"seed": 1, "to_sub": 1, "double": 1, "inc": 1, "after": 1}


def test_editing_a_subgraph_tasks_output_edits_its_output_task():
    graph, reg = subgraph_setup()
    graph.run(reg)
    reg.take()
    graph.tasks["sub"].edit(output=0)
    assert graph.run(reg) == [0]
    assert reg.take() == {"after": 1}


# -- dynamic children --------------------------------------------------------------------------------
def dynamic_setup():
    def plan(ctx, n):
        steps = [ctx.add_task(PythonTask("step", key=f"s{i}")) for i in range(n)]
        ctx.add_output_task(PythonTask("join", *steps, key="join"))
        return n

    reg = CountingRegistry({
        "n": lambda ctx: ctx.graph_input,
        "plan": plan,
        "step": lambda ctx: ctx.task.key * 2,
        "join": lambda ctx, *parts: "".join(parts),
    })
    graph = TaskGraph(3)
    n = graph.add_task(PythonTask("n"))
    graph.add_task(PythonTask("plan", n))
    return graph, reg


def test_rerun_creator_keeps_recreated_children_and_removes_the_rest():
    graph, reg = dynamic_setup()
    assert graph.run(reg) == "s0s0s1s1s2s2"
    reg.take()
    graph.graph_input = 2
    loaded = via_json(graph)
    assert loaded.run(reg) == "s0s0s1s1"
    # n and plan re-ran (the input changed), join lost an input; no step re-ran (memoized children)
    assert reg.take() == {"n": 1, "plan": 1, "join": 1}
    assert "plan/s2" not in loaded.tasks
    assert loaded.tasks["plan"].record.children == ["plan/s0", "plan/s1", "plan/join"]


def test_edit_of_a_dynamic_child_reruns_its_descendants_only():
    graph, reg = dynamic_setup()
    graph.run(reg)
    reg.take()
    graph.tasks["plan/s1"].edit(output="XX")
    loaded = via_json(graph)
    assert loaded.run(reg) == "s0s0XXs2s2"
    assert reg.take() == {"join": 1}
    assert loaded.tasks["plan/join"].created_by == "plan"


def test_removed_child_takes_its_descendants_with_it():
    def plan(ctx, n):
        if n:
            first = ctx.add_task(PythonTask("step", key="first"))
            ctx.add_task(PythonTask("after_first", first, key="second"))
        return n

    reg = CountingRegistry({"n": lambda ctx: ctx.graph_input, "plan": plan, "step": lambda ctx: 1,
                            "after_first": lambda ctx, x: x + 1})
    graph = TaskGraph(1)
    n = graph.add_task(PythonTask("n"))
    graph.add_task(PythonTask("plan", n))
    graph.run(reg)
    assert set(graph.tasks) == {"n", "plan", "plan/first", "plan/second"}
    graph.graph_input = 0
    graph.run(reg)
    assert set(graph.tasks) == {"n", "plan"}


def test_a_new_graph_input_plans_its_readers_and_their_descendants(ran):
    graph, reg, llm = ran
    graph.graph_input = {"topic": "dogs"}  # the same value: nothing would run
    assert graph.plan(reg, llm=llm).will_run == []
    graph.graph_input = {"topic": "owls"}
    plan = graph.plan(reg, llm=llm)
    assert set(plan.will_run) == {"topic", "ask_topic", "combine", "final"}
    assert plan.reasons["topic"] == ["graph input key `topic` changed"]
    assert {t.status for t in graph.tasks.values()} == {"done"}, "will-run is computed, not stored as a status"
    graph.run(reg, llm=llm)
    assert graph.last_run is not None and set(graph.last_run.executed) == set(plan.will_run)
