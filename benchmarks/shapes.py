"""The same task graphs built three ways: as a TaskGraph, as a Dask task dict, as a LangGraph.

Shapes: ``fan`` (one root, every other task depends on it), ``chain`` (each task depends on the
previous one) and ``lattice`` (layers of ``width`` tasks; a task depends on the tasks at its column
and the column before it in the previous layer, so every edit has a cone of descendants).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmtaskgraph import PythonTask, TaskGraph

SHAPES = ("fan", "chain", "lattice")
LATTICE_WIDTH = 100


def edges(shape: str, n: int) -> dict[str, list[str]]:
    """Task id -> ids it depends on, in insertion (topological) order."""
    if shape == "fan":
        return {"t0": [], **{f"t{i}": ["t0"] for i in range(1, n)}}
    if shape == "chain":
        return {"t0": [], **{f"t{i}": [f"t{i - 1}"] for i in range(1, n)}}
    if shape == "lattice":
        w = LATTICE_WIDTH
        deps: dict[str, list[str]] = {}
        for i in range(n):
            layer, col = divmod(i, w)
            deps[f"t{i}"] = [] if layer == 0 else [f"t{i - w}"] + ([f"t{i - w - 1}"] if col > 0 else [])
        return deps
    raise ValueError(f"unknown shape `{shape}`; use one of {', '.join(SHAPES)}")


def task_graph(shape: str, n: int, fn: str = "noop") -> TaskGraph:
    graph = TaskGraph()
    for tid, deps in edges(shape, n).items():
        graph.add_task(PythonTask(fn, *deps, id=tid))
    return graph


def sinks(dag: dict[str, list[str]]) -> list[str]:
    used = {d for deps in dag.values() for d in deps}
    return [t for t in dag if t not in used]


def dask_graph(dag: dict[str, list[str]], fn: Callable[..., Any]) -> dict[str, tuple[Any, ...]]:
    """The Dask spec: ``{key: (fn, *dep_keys)}``, where Dask substitutes each dep key by its result."""
    return {tid: (fn, *deps) for tid, deps in dag.items()}


def lang_graph(dag: dict[str, list[str]], node: Callable[..., Any]) -> Any:
    """A compiled LangGraph: one node per task, a join edge from all its deps (START for roots)."""
    import operator
    from typing import Annotated, TypedDict

    from langgraph.graph import START, StateGraph

    # Functional syntax: evaluated now, unlike class annotations under `from __future__ import annotations`.
    State = TypedDict("State", {"ran": Annotated[int, operator.add]})  # type: ignore[misc]  # noqa: UP013
    builder = StateGraph(State)
    for tid in dag:
        builder.add_node(tid, node)
    for tid, deps in dag.items():
        if not deps:
            builder.add_edge(START, tid)
        elif len(deps) == 1:
            builder.add_edge(deps[0], tid)
        else:
            builder.add_edge(deps, tid)  # waits for every dep, like our in-degree count
    return builder.compile()
