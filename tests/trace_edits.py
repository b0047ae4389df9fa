"""Hand edits of a saved trace's JSON, for tests of what views make of odd but loadable traces."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from llmtaskgraph import LLMTask, OfflineLLM, PythonTask, TaskGraph

Edit = Callable[[list[dict[str, Any]]], object]


def three_tasks() -> TaskGraph:
    """`a` (python), `b` (LLM, with a backend reply) and `c` (python), all done."""
    graph = TaskGraph()
    graph.add_task(PythonTask("f", id="a"))
    graph.add_task(LLMTask("ask", "keep", id="b"))
    graph.add_task(PythonTask("f", id="c"))
    graph.run({"f": lambda ctx: 1, "ask": lambda ctx: "hi", "keep": lambda ctx, text: text}, llm=OfflineLLM(), progress=False)
    return graph


def edited(graph: TaskGraph, edit: Edit) -> TaskGraph:
    """``graph`` after ``edit`` changed its tasks' JSON, loaded back the way `show` loads a file."""
    data = json.loads(json.dumps(graph.to_json()))
    edit(data["tasks"])
    return TaskGraph.from_json(json.loads(json.dumps(data)))


def times(**spans: tuple[Any, Any]) -> Edit:
    """Set ``started_at``/``finished_at`` of the named tasks."""
    def edit(tasks: list[dict[str, Any]]) -> None:
        for task in tasks:
            if task["id"] in spans:
                task["started_at"], task["finished_at"] = spans[task["id"]]
    return edit


def reply(**fields: Any) -> Edit:
    """Set fields of the LLM task's reply (``*_tokens`` go into its usage)."""
    def edit(tasks: list[dict[str, Any]]) -> None:
        for key, value in fields.items():
            (tasks[1]["response"]["usage"] if key.endswith("_tokens") else tasks[1]["response"])[key] = value
    return edit
