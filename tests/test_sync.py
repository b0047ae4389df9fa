"""graph.run from synchronous code: outside an event loop, and inside one (as in Jupyter)."""

from __future__ import annotations

import traceback
from typing import Any

import pytest

from llmtaskgraph import MissingFunctionError, OfflineLLM, PythonTask, TaskGraph, TaskGraphError


def failing_graph() -> tuple[TaskGraph, dict[str, Any]]:
    graph = TaskGraph()
    graph.add_task(PythonTask("boom", id="boom"))
    return graph, {"boom": lambda ctx: 1 / 0}


def assert_not_chained_to_the_loop_check(exc: BaseException) -> None:
    assert exc.__context__ is None or not isinstance(exc.__context__, RuntimeError), repr(exc.__context__)
    assert "no running event loop" not in "".join(traceback.format_exception(exc))


def test_a_failed_run_outside_a_loop_raises_without_a_chained_loop_error() -> None:
    graph, registry = failing_graph()
    with pytest.raises(TaskGraphError) as info:
        graph.run(registry, llm=OfflineLLM(), progress=False)
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert_not_chained_to_the_loop_check(info.value)


def test_an_error_before_running_is_not_chained_either() -> None:
    graph, _ = failing_graph()
    with pytest.raises(MissingFunctionError) as info:
        graph.run({}, llm=OfflineLLM(), progress=False)
    assert info.value.__context__ is None
    assert_not_chained_to_the_loop_check(info.value)


async def test_inside_a_running_loop_the_run_works_and_its_error_is_not_chained() -> None:
    graph, registry = failing_graph()
    with pytest.raises(TaskGraphError) as info:
        graph.run(registry, llm=OfflineLLM(), progress=False)  # on a helper thread: this loop is busy
    assert_not_chained_to_the_loop_check(info.value)
    registry["boom"] = lambda ctx: "fixed"
    assert graph.run(registry, llm=OfflineLLM(), progress=False) == "fixed"
