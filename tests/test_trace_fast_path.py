"""Loading's shortcuts give exactly what the careful path gives.

``from_json`` checks the usual task with straight-line code (``serialization._task_fast``), skips
the reference and cycle check when every dependency points back, and checks JSON values without
building paths (``fingerprint._plainly_fine``). Each shortcut may only say "fine" where the
careful code says fine; on anything else the careful code runs and names the problem. These tests
hold every shortcut to the careful code on a grid of odd values in every task field: the same
graph when both load, the same error (message and path) when both refuse.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from llmtaskgraph import (
    InvalidTraceError,
    LLMTask,
    OfflineLLM,
    PythonTask,
    TaskGraph,
    TaskGraphError,
    TaskGraphTask,
    fingerprint,
)
from llmtaskgraph.model.tasks import Task
from llmtaskgraph.trace import serialization


class Text(str):
    pass


class Dict(dict[str, Any]):
    pass


class List(list[Any]):
    pass


class NoTruth:
    """A value whose truth cannot be asked: a check that asks before checking the type would raise."""

    def __bool__(self) -> bool:
        raise ValueError("ambiguous")


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def doubled(depth: int) -> Any:
    """2**depth paths through ``depth`` shared lists: a check that does not notice sharing would not end."""
    value: Any = ["leaf"]
    for _ in range(depth):
        value = [value, value]
    return value


def odd_values() -> list[Any]:
    """Values at and around every boundary the shortcuts draw."""
    loop: list[Any] = ["x"]
    loop.append(loop)
    self_dict: dict[str, Any] = {"text": "t"}
    self_dict["me"] = self_dict
    shared = ["x"]
    return [
        None, True, False, 0, -1, 1, 2**64, 2**64 - 1, 10**30, 10**3800, 10**5000, 1.5, -0.0, math.nan, math.inf,
        1795517396, 1795517396.5, "", "x", "t0", "a > b", " > ", "é ü", "\ud800", "x\udfff", "\x00", Text("x"),
        Text("run"), [], ["x"], ["t0"], ["é"], ["\ud800"], [1], [None], ["x", "x"], ("x",), List(["x"]), List(), {}, Dict(),
        {"x": "y"}, {"x": "é"}, {"x": "\ud800"}, {"\ud800": "x"}, {1: "y"}, {Text("x"): "y"}, {"x": 1},
        {"x": ("t",)}, Dict(x="y"), {"text": "t"}, {"text": 1}, {"text": "t", "usage": {"input_tokens": 2}},
        {"text": "t", "bad": (1,)}, {"text": "t", "n": math.inf}, {"run": "fp"}, {"run": 1}, {"run": "\ud800"},
        {"format": "a", "call": "b", "parse": "c"}, {Text("run"): "fp"}, [Text("run")], {"input": "a", "subgraph": "b"}, ["run"], ["parse"],
        ["format", "zzz"], "pending", "running", "done", "failed", "blocked", {"type": "E", "message": "m"},
        {"type": "E", "message": "m", "traceback": "tb", "stage": "run"}, {"type": "E"},
        {"type": "E", "message": "m", "extra": 1}, {"type": "E", "message": "\ud800"},
        {"type": "E", "message": "m", "traceback": None}, {"type": "E", "message": "m", "stage": 3},
        Dict(type="E", message="m"), nested(31), nested(33), nested(40), nested(255), nested(257), loop,
        self_dict, [shared, shared], {"a": shared, "b": shared}, [[shared, shared], [shared, shared]], {"max_tokens": 5},
        {"messages": [{"role": "user", "content": "hi"}]}, [{"role": "user", "content": "é"}], b"x", {"x"},
        object(), NoTruth(),
    ]


def base_trace() -> dict[str, Any]:
    """Every task type, kwdeps, inputs, params, children added at run time, a failure, a block."""
    registry: dict[str, Any] = {
        "load": lambda ctx: {"words": ["a", "é"], "n": 1.5},
        "ask": lambda ctx, v, **kw: f"Repeat: {v} {kw}",
        "parse": lambda ctx, text: {"reply": text},
        "spawn": lambda ctx, x: [ctx.add_task(PythonTask("leaf", ctx.task, key=f"k{i}")) and i for i in range(2)],
        "leaf": lambda ctx, x: x,
        "boom": lambda ctx, *a: 1 / 0,
        "sub_in": lambda ctx, *a: list(a),
        "inner": lambda ctx: ctx.graph_input,
        "use": lambda ctx, *a, **k: k,
    }
    graph = TaskGraph({"k": [1, 2.5, None, True, "ü"]})
    a = graph.add_task(PythonTask("load", name="loader"))
    b = graph.add_task(LLMTask("ask", "parse", a, params={"max_tokens": 20, "model": "m"}, sample=1, w=a))
    inner = TaskGraph()
    inner.add_task(PythonTask("inner"))
    c = graph.add_task(TaskGraphTask(inner, "sub_in", b))
    d = graph.add_task(PythonTask("spawn", c))
    e = graph.add_task(PythonTask("boom", d))
    graph.add_task(PythonTask("use", e))
    graph.add_output_task(PythonTask("use", d, name="ünï", inputs={"limit": 3, "tags": ["x", "é"]}, x=b))
    with pytest.raises(TaskGraphError):
        graph.run(registry, llm=OfflineLLM(), progress=False)
    data = graph.to_json()
    assert {t["status"] for t in data["tasks"]} >= {"done", "failed", "blocked"}
    assert any(t["children"] for t in data["tasks"]) and any(t["created_by"] for t in data["tasks"])
    return data


@pytest.fixture(scope="module")
def base() -> str:
    return json.dumps(base_trace())


def outcome(data: Any, fast: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    """What loading gives: a comparable picture of the graph, or the error's message and path."""
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(serialization, "_task_fast", lambda item: None)
            m.setattr(fingerprint, "_plainly_fine", lambda value: False)  # every value gets the full walk
        try:
            graph = TaskGraph.from_json(data)
        except InvalidTraceError as exc:
            return ("refused", str(exc), exc.path)
    if fast:
        for g in _graphs(graph):
            serialization._check_references(g, serialization._Reader(""))  # skipped only when it passes
    return ("loaded", picture(graph))


def _graphs(graph: TaskGraph) -> Iterator[TaskGraph]:
    yield graph
    for task in graph.tasks.values():
        if isinstance(task, TaskGraphTask):
            yield from _graphs(task.subgraph)


def picture(graph: TaskGraph) -> Any:
    """Everything a loaded graph holds, as comparable values (the JSON alone would hide types)."""
    tasks = []
    for tid, task in graph.tasks.items():
        attrs = {k: v for k, v in vars(task).items() if k not in ("graph", "record", "subgraph")}
        record = {k: v for k, v in vars(task.record).items() if k != "_output_fp"}
        sub = picture(task.subgraph) if isinstance(task, TaskGraphTask) else None
        tasks.append((tid, type(task), _typed(attrs), _typed(record), sub, task.graph is graph))
    return (_typed(graph.graph_input), graph._output_id, tasks)


def _typed(value: Any) -> Any:
    """``value`` with the type of every part spelled out, so 1 and 1.0 and True differ."""
    if isinstance(value, dict):
        return (type(value), tuple((_typed(k), _typed(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_typed(v) for v in value))
    if isinstance(value, float) and math.isnan(value):
        return (float, "nan")
    return (type(value), value)


def assert_same(data: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    fast = outcome(data, True, monkeypatch)
    careful = outcome(data, False, monkeypatch)
    assert fast == careful
    return str(fast[0])


def test_the_usual_tasks_take_the_fast_path(base: str) -> None:
    """Else the shortcut would be dead code and loading silently slow (say, after a new field)."""
    data = json.loads(base)
    usual = [t for t in data["tasks"] if t["type"] in ("python", "llm")]
    assert len(usual) == len(data["tasks"]) - 1
    assert all(isinstance(serialization._task_fast(t), Task) for t in usual)


def test_every_odd_value_in_every_task_field_loads_or_fails_as_on_the_careful_path(
        base: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(base)
    tally: dict[str, int] = {}
    for i, task in enumerate(data["tasks"]):
        for field in [*task, "extra", "__class__"]:
            for value in [*odd_values(), "<deleted>"]:
                mutated = json.loads(base)
                if value == "<deleted>":
                    mutated["tasks"][i].pop(field, None)
                else:
                    mutated["tasks"][i][field] = value
                kind = assert_same(mutated, monkeypatch)
                tally[kind] = tally.get(kind, 0) + 1
    assert tally["loaded"] > 500 and tally["refused"] > 2000
    with capsys.disabled():
        print(f"\nfast vs careful path, one field changed: {tally}")


@pytest.mark.parametrize("change", [
    "dep_forward", "dep_self", "dep_missing", "kwdep_forward", "kwdep_cycle", "child_earlier", "child_missing",
    "creator_later", "creator_self", "creator_missing", "swap_order", "reverse_order", "duplicate_id",
])
def test_references_in_any_order_load_or_fail_as_on_the_careful_path(
        base: str, change: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(7):
        data = json.loads(base)
        tasks = data["tasks"]
        ids = [t["id"] for t in tasks]
        later = ids[min(i + 2, len(ids) - 1)]
        t = tasks[i]
        if change == "dep_forward":
            t["deps"] = [*t["deps"], later]
        elif change == "dep_self":
            t["deps"] = [ids[i]]
        elif change == "dep_missing":
            t["deps"] = ["ghost"]
        elif change == "kwdep_forward":
            t["kwdeps"] = {"later": later}
        elif change == "kwdep_cycle":
            t["kwdeps"] = {"later": later}
            tasks[ids.index(later)]["deps"] = [ids[i]]
        elif change == "child_earlier":
            t["children"] = [ids[0]]
        elif change == "child_missing":
            t["children"] = ["ghost"]
        elif change == "creator_later":
            t["created_by"] = later
        elif change == "creator_self":
            t["created_by"] = ids[i]
        elif change == "creator_missing":
            t["created_by"] = "ghost"
        elif change == "swap_order":
            tasks[i], tasks[-1] = tasks[-1], tasks[i]
        elif change == "reverse_order":
            tasks.reverse()
        else:
            t["id"] = ids[0] if i else ids[1]
        assert_same(data, monkeypatch)


def test_loading_shares_no_container_with_its_input(base: str) -> None:
    data = json.loads(base)
    graph = TaskGraph.from_json(data)
    given = {id(v) for t in data["tasks"] for v in t.values() if isinstance(v, (list, dict))}
    for task in graph.tasks.values():
        rec = task.record
        held = [task.deps, task.kwdeps, task.inputs, rec.fingerprints, rec.reads_graph_input, rec.children,
                rec.response, getattr(task, "params", None)]
        assert not [h for h in held if h is not None and id(h) in given], task.id
    assert graph.to_json() == data == json.loads(base)


def test_plain_values_are_plain_exactly_when_the_full_walk_finds_no_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    values = odd_values()
    values += [copy.deepcopy(v) for v in values if isinstance(v, (list, dict))]
    values += [[v] for v in values] + [{"k": v} for v in values] + [doubled(30)]
    for value in values:
        quick = fingerprint._find_problem(value, "x")
        with monkeypatch.context() as m:
            m.setattr(fingerprint, "_plainly_fine", lambda v: False)
            walked = fingerprint._find_problem(value, "x")
        assert quick == walked, value if not isinstance(value, (list, dict)) else type(value)
