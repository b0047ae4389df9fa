"""Graphs shared by the Jupyter-layer tests (render, widgets, progress): small, offline, varied."""

from __future__ import annotations

import json
from typing import Any

from core_helpers import CountingRegistry

from llmtaskgraph import LLMTask, PythonTask, ScriptedLLM, TaskGraph, TaskGraphTask


def planner_graph() -> tuple[TaskGraph, CountingRegistry, ScriptedLLM]:
    """An LLM plans steps, a task spawns one child per step, a sub-graph works on the plan's size.

    Task ids: ``plan`` (LLM), ``spawn`` (adds ``spawn/<step>``), ``subgraph`` (> ``double``, ``inc``),
    ``report`` (joins spawn and subgraph).
    """
    sub = TaskGraph()
    double = sub.add_task(PythonTask("double", id="double"))
    sub.add_output_task(PythonTask("inc", double, id="inc"))
    graph = TaskGraph({"topic": "cats"})
    plan = graph.add_task(LLMTask("plan_prompt", "plan_parse", id="plan"))
    spawn = graph.add_task(PythonTask("spawn", plan, id="spawn"))
    subgraph = graph.add_task(TaskGraphTask(sub, "sub_in", plan, id="subgraph", name="size twice plus one"))
    graph.add_output_task(PythonTask("report", spawn, subgraph, id="report"))

    def spawn_fn(ctx: Any, steps: list[str]) -> int:
        for step in steps:
            ctx.add_task(PythonTask("work", key=step))
        return len(steps)

    registry = CountingRegistry({
        "plan_prompt": lambda ctx: f"Plan steps about {ctx.graph_input['topic']}",
        "plan_parse": lambda ctx, text: json.loads(text),
        "spawn": spawn_fn,
        "work": lambda ctx: "worked",
        "sub_in": lambda ctx, steps: len(steps),
        "double": lambda ctx: ctx.graph_input * 2,
        "inc": lambda ctx, x: x + 1,
        "report": lambda ctx, n, size: f"{n} steps, size {size}",
    })
    return graph, registry, ScriptedLLM({"Plan steps": '["a", "b", "c"]'})


def chain_graph(n: int) -> tuple[TaskGraph, dict[str, Any]]:
    """``n`` PythonTasks in a chain, each adding one to the previous output."""
    graph = TaskGraph()
    prev = graph.add_task(PythonTask("start", id="t0"))
    for i in range(1, n):
        prev = graph.add_task(PythonTask("inc", prev, id=f"t{i}"))
    return graph, {"start": lambda ctx: 0, "inc": lambda ctx, x: x + 1}
