"""Loading has one reader per task; its shortcuts give exactly what the careful checks give.

``from_json`` checks every task with one routine (``serialization._task``) that builds no field path
until it finds a problem. What it accepts and the message and path it gives are held here, on a grid
of odd values in every task field, to what the careful loader of format 1 gave (frozen in
``fixtures/load_grid_v1.json``, written by ``fixtures/make_load_grid.py``). The shortcuts that
remain are held to the full checks they skip: the reference and cycle check (skipped when every
reference points back) and the quick JSON check (``fingerprint._plainly_fine``, before the walk
that names a problem).
"""

from __future__ import annotations

import copy
import gc
import hashlib
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
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
from llmtaskgraph.trace import serialization

GRID = Path(__file__).parent / "fixtures" / "load_grid_v1.json"


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
    """Values at and around every boundary the checks draw (frozen with ``fixtures/load_grid_v1.json``)."""
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


# -- what loading gives, as comparable values ------------------------------------------------------
_ATTRS = ("id", "name", "key", "deps", "kwdeps", "inputs", "created_by", "fn_name", "formatter_name", "parser_name",
          "params", "sample", "input_formatter_name")
_RECORD_V1 = ("status", "output", "prompt", "response", "fingerprints", "reads_graph_input", "error", "started_at",
              "finished_at", "children")


def picture(graph: TaskGraph) -> Any:
    """What a loaded graph holds of format 1, as comparable values (the JSON alone would hide types)."""
    tasks = []
    for tid, task in graph.tasks.items():
        attrs = [(k, getattr(task, k)) for k in _ATTRS if hasattr(task, k)]
        record = [(k, getattr(task.record, k)) for k in _RECORD_V1]
        sub = picture(task.subgraph) if isinstance(task, TaskGraphTask) else None
        tasks.append((tid, type(task).__name__, _typed(attrs), _typed(record), sub, task.graph is graph))
    return (_typed(graph.graph_input), graph._output_id, tasks)


def _typed(value: Any) -> Any:
    """``value`` with the type of every part spelled out, so 1 and 1.0 and True differ."""
    if isinstance(value, dict):
        return (type(value).__name__, tuple((_typed(k), _typed(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_typed(v) for v in value))
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, repr(value))


def outcome(data: Any) -> list[str]:
    """``["loaded", digest of its picture]`` or ``["refused", path, message]``; the lists of fields and
    task types an unknown one is told apart from are left out (they grow with the format)."""
    try:
        graph = TaskGraph.from_json(data)
    except InvalidTraceError as exc:
        message = re.sub(r"unknown field \(expected one of [^)]*\)", "unknown field", str(exc))
        return ["refused", exc.path, re.sub(r" \(expected one of python[^)]*\)", " (expected one of python, llm, graph)", message)]
    return ["loaded", hashlib.sha256(repr(picture(graph)).encode()).hexdigest()[:16]]


def changed_on_purpose(field: str, value: Any) -> bool:
    """Where format 2's loader differs from format 1's on purpose: an empty non-object ``params``
    (``0``, ``""``, ``[]``, ``false``) was read as ``{}``; it is refused now, like any non-object."""
    return field == "params" and type(value) in (bool, int, float, str, list) and not value


def grid(base: dict[str, Any]) -> Iterator[tuple[str, int, Any, dict[str, Any]]]:
    """``(group, index in odd_values(), value, trace)``: each task field set to each odd value, or deleted."""
    text = json.dumps(base)
    for i, task in enumerate(base["tasks"]):
        for field in [*task, "extra", "__class__"]:
            for j, value in enumerate([*odd_values(), "<deleted>"]):
                mutated = json.loads(text)
                if value == "<deleted>":
                    mutated["tasks"][i].pop(field, None)
                else:
                    mutated["tasks"][i][field] = value
                yield f"{i}/{field}", j, value, mutated


def group_digest(outcomes: list[Any]) -> str:
    return hashlib.sha256(json.dumps(outcomes, ensure_ascii=True).encode()).hexdigest()[:16]


# -- the tests ---------------------------------------------------------------------------------------
def test_every_odd_value_in_every_task_field_loads_or_fails_as_the_careful_loader_of_format_1_did(
        capsys: pytest.CaptureFixture[str]) -> None:
    frozen = json.loads(GRID.read_text(encoding="utf-8"))
    groups: dict[str, list[Any]] = {}
    tally: dict[str, int] = {}
    for group, _, value, mutated in grid(frozen["base"]):
        field = group.split("/", 1)[1]
        result = ["changed on purpose"] if changed_on_purpose(field, value) else outcome(mutated)
        groups.setdefault(group, []).append(result)
        tally[result[0]] = tally.get(result[0], 0) + 1
    assert groups.keys() == frozen["groups"].keys()
    differ = {g: outcomes for g, outcomes in groups.items() if group_digest(outcomes) != frozen["groups"][g]}
    assert not differ, f"loading differs from the careful loader in {sorted(differ)}: {next(iter(differ.values()))}"
    assert tally["loaded"] > 2000 and tally["refused"] > 15000
    with capsys.disabled():
        print(f"\none field changed, against the careful loader of format 1: {tally}")


def test_what_format_1_read_as_empty_params_is_refused_now() -> None:
    base = json.loads(GRID.read_text(encoding="utf-8"))["base"]
    i = next(i for i, t in enumerate(base["tasks"]) if t["type"] == "llm")
    empty: list[Any] = [0, 0.0, False, "", []]
    for value in empty:
        base["tasks"][i]["params"] = value
        with pytest.raises(InvalidTraceError, match=rf"`tasks\[{i}\]\.params`: expected an object of Messages API"):
            TaskGraph.from_json(base)
    base["tasks"][i]["params"] = None
    assert TaskGraph.from_json(base).tasks[base["tasks"][i]["id"]].params == {}  # type: ignore[attr-defined]


@pytest.mark.parametrize("field", ["versions", "basis"])
def test_versions_and_basis_load_or_are_refused_naming_the_field(field: str) -> None:
    data = base_trace()
    for i, task in enumerate(data["tasks"]):
        stages = serialization._TYPES[task["type"]].stages
        values: list[Any] = [*odd_values(), {stages[0]: "v1"}, {s: "x" for s in stages}, {"dep:t0": "ab12", "": ""}]
        for value in values:
            mutated = copy.deepcopy(data)
            mutated["tasks"][i][field] = value
            try:
                graph = TaskGraph.from_json(mutated)
            except InvalidTraceError as exc:
                assert exc.path.startswith(f"tasks[{i}].{field}"), (value, exc)
                continue
            assert type(value) is dict and all(type(k) is str and type(v) is str for k, v in value.items())
            assert field == "basis" or set(value) <= set(stages)
            loaded = graph.to_json()["tasks"][i][field]
            assert loaded == value and type(loaded) is dict
    for version in ("llmtaskgraph/1", "llmtaskgraph/2"):
        absent = copy.deepcopy(data)
        absent["format"] = version
        for task in absent["tasks"]:
            task.pop("versions", None)
            task.pop("basis", None)
        assert all(t.record.versions == {} and t.record.basis == {} for t in TaskGraph.from_json(absent).tasks.values())


def full_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn off every shortcut: each graph gets the full reference check, each value the full walk."""
    monkeypatch.setattr(serialization, "_points_back", lambda *args: False)
    monkeypatch.setattr(fingerprint, "_plainly_fine", lambda value: False)
    monkeypatch.setattr(serialization, "_plainly_fine", lambda value: False)


def assert_same(data: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    quick = outcome(copy.deepcopy(data))
    with monkeypatch.context() as m:
        full_check(m)
        full = outcome(data)
    assert quick == full
    return quick[0]


@pytest.mark.parametrize("change", [
    "dep_forward", "dep_self", "dep_missing", "kwdep_forward", "kwdep_cycle", "child_earlier", "child_missing",
    "creator_later", "creator_self", "creator_missing", "swap_order", "reverse_order", "duplicate_id",
])
def test_references_in_any_order_load_or_fail_as_with_the_full_check(change: str, monkeypatch: pytest.MonkeyPatch) -> None:
    base = json.dumps(base_trace())
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


def test_the_grid_loads_alike_with_every_shortcut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    base = base_trace()
    kinds = {assert_same(mutated, monkeypatch) for _, j, _, mutated in grid(base) if j % 7 == 0}
    assert kinds == {"loaded", "refused"}


def test_tasks_as_to_json_writes_them_are_fetched_all_at_once() -> None:
    """Else loading would silently take the slower field-by-field way (say, after a new field)."""
    for task in base_trace()["tasks"]:
        assert task.keys() == serialization._SHAPES[task["type"]].set


def test_a_loaded_task_has_what_its_constructor_gives_it() -> None:
    """The reader builds tasks as pickle does (no constructor): it must set every attribute, each in its place."""
    data = base_trace()
    loaded = TaskGraph.from_json(data)
    made = {"python": PythonTask("f"), "llm": LLMTask("f", "p"), "graph": TaskGraphTask(TaskGraph(), "f")}
    for task in loaded.tasks.values():
        assert vars(task).keys() == vars(made[task.type]).keys(), task.type
        assert vars(task.record).keys() == vars(made[task.type].record).keys()
    marked = copy.deepcopy(data["tasks"][0])
    marked.update(status="done", prompt="P", response={"text": "R"}, output="O", fingerprints={"run": "F"},
                  versions={"run": "V"}, basis={"b": "B"}, reads_graph_input=["run"], error={"type": "T", "message": "M"},
                  started_at=1.0, finished_at=2.0, children=[])
    record = TaskGraph.from_json({"format": serialization.FORMAT, "tasks": [marked]}).tasks[marked["id"]].record
    assert record.error is not None
    assert (record.status, record.prompt, record.response, record.output, record.fingerprints, record.versions,
            record.basis, record.reads_graph_input, record.error.type, record.started_at, record.finished_at,
            record.children) == ("done", "P", {"text": "R"}, "O", {"run": "F"}, {"run": "V"}, {"b": "B"}, ["run"],
                                 "T", 1.0, 2.0, [])


def test_loading_shares_no_container_with_its_input() -> None:
    data = json.loads(json.dumps(base_trace()))
    before = copy.deepcopy(data)
    graph = TaskGraph.from_json(data)
    given = {id(v) for t in data["tasks"] for v in t.values() if isinstance(v, (list, dict))}
    for task in graph.tasks.values():
        rec = task.record
        held = [task.deps, task.kwdeps, task.inputs, rec.fingerprints, rec.versions, rec.basis, rec.reads_graph_input,
                rec.children, rec.response, getattr(task, "params", None)]
        assert not [h for h in held if h is not None and id(h) in given], task.id
    assert graph.to_json() == data == before


def test_loading_leaves_the_collector_as_it_found_it(tmp_path: Path) -> None:
    data = base_trace()
    bad = copy.deepcopy(data)
    bad["tasks"][3]["deps"] = [7]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    (tmp_path / "broken.json").write_text("{")
    assert gc.isenabled()
    TaskGraph.from_json(data)
    with pytest.raises(InvalidTraceError):
        TaskGraph.from_json(bad)
    for name in ("bad.json", "broken.json"):
        with pytest.raises(InvalidTraceError):
            TaskGraph.load(tmp_path / name)
    assert gc.isenabled()
    gc.disable()
    try:
        TaskGraph.from_json(data)
        assert not gc.isenabled()
    finally:
        gc.enable()


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
