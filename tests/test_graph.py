"""Building graphs and registries: the public API and the errors it gives for bad input."""

from __future__ import annotations

import pytest

import llmtaskgraph
from llmtaskgraph import (
    FunctionRegistry,
    GraphValidationError,
    LLMTask,
    MissingFunctionError,
    PythonTask,
    TaskContext,
    TaskGraph,
    TaskGraphTask,
)


def test_public_api_is_complete_and_sorted():
    for name in ("TaskGraph", "LLMTask", "PythonTask", "TaskGraphTask", "TaskContext", "FunctionRegistry"):
        assert name in llmtaskgraph.__all__
    assert llmtaskgraph.__all__ == sorted(llmtaskgraph.__all__)
    for name in llmtaskgraph.__all__:
        assert getattr(llmtaskgraph, name) is not None


def test_core_import_does_not_import_jupyter_dask_or_anthropic():
    import subprocess
    import sys

    code = (
        "import sys, llmtaskgraph\n"
        "g = llmtaskgraph.TaskGraph(); g.add_task(llmtaskgraph.PythonTask('f')); g.run({'f': lambda ctx: 1}, progress=False)\n"
        "heavy = [m for m in ('ipywidgets', 'IPython', 'dask', 'distributed', 'anthropic', 'graphviz', 'tqdm') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_add_task_returns_the_task_with_a_stable_readable_id():
    graph = TaskGraph()
    first = graph.add_task(PythonTask("load"))
    second = graph.add_task(PythonTask("load"))
    named = graph.add_task(LLMTask("ask", "parse", first, name="question"))
    explicit = graph.add_task(PythonTask("load", id="custom"))
    assert [first.id, second.id, named.id, explicit.id] == ["load", "load#2", "question", "custom"]
    assert list(graph.tasks) == ["load", "load#2", "question", "custom"]
    assert named.deps == ["load"] and named.created_by is None and named.status == "pending"


def test_dependency_not_in_graph_names_both_tasks():
    graph = TaskGraph()
    stray = PythonTask("stray")
    with pytest.raises(ValueError, match=r"task `summary` depends on task `stray`, which is not in this graph"):
        graph.add_task(PythonTask("f", stray, name="summary"))
    with pytest.raises(GraphValidationError, match=r"task `summary` depends on `nope`, which is not in the graph"):
        graph.add_task(PythonTask("f", key_dep="nope", name="summary"))
    assert graph.tasks == {}


def test_task_from_another_graph_is_not_a_valid_dependency():
    other = TaskGraph()
    elsewhere = other.add_task(PythonTask("f"))
    graph = TaskGraph()
    graph.add_task(PythonTask("f"))  # same id "f" exists here, but it is not the same task
    with pytest.raises(GraphValidationError, match="not in this graph"):
        graph.add_task(PythonTask("g", elsewhere))


def test_duplicate_ids_and_reused_tasks_are_refused():
    graph = TaskGraph()
    task = graph.add_task(PythonTask("f", id="x"))
    with pytest.raises(GraphValidationError, match="`x` is already in the graph"):
        graph.add_task(PythonTask("g", id="x"))
    with pytest.raises(GraphValidationError, match="already belongs to a graph"):
        TaskGraph().add_task(task)


def test_bad_dependency_types_are_refused():
    with pytest.raises(GraphValidationError, match="a Task or a task id"):
        PythonTask("f", 3)


def test_output_task_can_be_set_and_must_be_in_the_graph():
    graph = TaskGraph()
    a = graph.add_output_task(PythonTask("a"))
    graph.add_task(PythonTask("b"))
    assert graph.output_task is a
    assert graph.run({"a": lambda ctx: "A", "b": lambda ctx: "B"}) == "A"
    graph.output_task = "b"
    assert graph.run({"a": lambda ctx: "A", "b": lambda ctx: "B"}) == "B"
    with pytest.raises(GraphValidationError, match="`zzz`"):
        graph.output_task = "zzz"


def test_all_missing_registry_names_are_reported_before_anything_runs():
    ran = []
    inner = TaskGraph()
    inner.add_task(PythonTask("inner_fn"))
    graph = TaskGraph()
    graph.add_task(PythonTask("present"))
    graph.add_task(LLMTask("fmt", "parse", name="ask"))
    graph.add_task(TaskGraphTask(inner, "to_sub", name="sub"))
    graph.add_task(PythonTask("fmt", name="again"))
    with pytest.raises(MissingFunctionError) as info:
        graph.run({"present": lambda ctx: ran.append(1), "parse": 42})
    message = str(info.value)
    assert ran == []
    assert "cannot serve 4 name(s)" in message
    assert "`fmt` is missing (needed by `ask`, `again`)" in message
    assert "`parse` is a int, not a function (needed by `ask`)" in message
    assert "`inner_fn` is missing (needed by `sub > inner_fn`)" in message
    assert "`to_sub`" in message
    assert set(info.value.problems) == {"fmt", "parse", "to_sub", "inner_fn"}
    assert isinstance(info.value, KeyError)


def test_registry_lookups_never_resolve_attributes_or_builtins():
    graph = TaskGraph()
    for name in ("__class__", "__init__", "eval", "__import__", "keys"):
        graph.add_task(PythonTask(name))
    with pytest.raises(MissingFunctionError) as info:
        graph.run(FunctionRegistry(ok=lambda ctx: 1))
    assert set(info.value.problems) == {"__class__", "__init__", "eval", "__import__", "keys"}
    with pytest.raises(MissingFunctionError):
        graph.run({})


def test_function_registry_decorator_validation_and_merge():
    registry = FunctionRegistry()

    @registry.register
    def hello(ctx: TaskContext) -> str:
        return "hi"

    @registry.register("renamed")
    def whatever(ctx: TaskContext) -> str:
        return "renamed"

    assert registry["hello"] is hello and registry["renamed"] is whatever and len(registry) == 2
    with pytest.raises(GraphValidationError, match="registry entry `x` must be callable, got int"):
        registry.add("x", 3)
    with pytest.raises(GraphValidationError, match="non-empty strings"):
        registry.add("", hello)
    merged = registry | {"hello": whatever}
    assert merged["hello"] is whatever and registry["hello"] is hello
    assert "FunctionRegistry(['hello', 'renamed'])" == repr(registry)


def test_context_gives_task_and_graph_input_and_records_the_read():
    seen = {}

    def look(ctx: TaskContext) -> str:
        seen["task"] = ctx.task.id
        seen["stage"] = ctx.stage
        return ctx.graph_input

    graph = TaskGraph("input!")
    graph.add_task(PythonTask("look"))
    assert graph.run({"look": look}) == "input!"
    assert seen == {"task": "look", "stage": "run"}
    assert graph.tasks["look"].record.reads_graph_input == ["run"]


def test_edit_refuses_what_cannot_be_stored():
    graph = TaskGraph()
    py = graph.add_task(PythonTask("f"))
    llm = graph.add_task(LLMTask("fmt", "parse"))
    with pytest.raises(ValueError, match="only `output` can be edited"):
        py.edit(prompt="x")
    with pytest.raises(TypeError, match=r"`output\[0\]` is of type object"):
        py.edit(output=[object()])
    with pytest.raises(TypeError, match="prompt edit of task `fmt`: expected a str, a list of messages"):
        llm.edit(prompt=5)
    with pytest.raises(GraphValidationError, match="reply text"):
        llm.edit(response=5)


def test_ctx_add_task_outside_a_run_is_refused():
    graph = TaskGraph()
    task = graph.add_task(PythonTask("f"))
    with pytest.raises(GraphValidationError, match="only be called while the graph runs"):
        graph._add_child(task, PythonTask("g"), None)


def test_repr_summarises():
    graph = TaskGraph()
    graph.add_task(PythonTask("f"))
    assert repr(graph) == "<TaskGraph 1 tasks: 1 pending>"
    assert repr(graph.tasks["f"]) == "<PythonTask 'f' pending>"


def test_ids_may_not_contain_the_subgraph_path_separator():
    graph = TaskGraph()
    with pytest.raises(GraphValidationError, match="never contain ` > `"):
        graph.add_task(PythonTask("f", name="a > b"))
    data = TaskGraph().to_json()
    data["tasks"] = [{"id": "x > y", "type": "python", "fn": "f"}]
    with pytest.raises(llmtaskgraph.InvalidTraceError, match=r"`tasks\[0\].id`: expected a non-empty string without ' > '"):
        TaskGraph.from_json(data)


def test_walk_yields_every_task_with_its_path_and_depth():
    inner = TaskGraph()
    inner.add_task(PythonTask("leaf"))
    graph = TaskGraph()
    graph.add_task(PythonTask("first"))
    graph.add_task(TaskGraphTask(inner, "fmt", name="sub"))
    assert [(p, d) for p, _, d in graph.walk()] == [("first", 0), ("sub", 0), ("sub > leaf", 1)]
