"""The seed example from the brief, exactly as written (second run on task_graph_2)."""

import json

from core_helpers import CountingRegistry

from llmtaskgraph import LLMTask, PythonTask, TaskGraph


def test_seed_example_runs_twice_with_same_output_and_no_repeated_calls(capsys):
    task_graph = TaskGraph()
    function_registry = {}
    calls = []

    def python_func(ctx):
        calls.append("python_func")
        return {"words": [ctx.graph_input["foo"], "baz"]}

    def prompt_formatter(ctx, value):
        calls.append("prompt_formatter")
        return "Repeat these words: " + " ".join(value["words"])

    def output_parser(ctx, text):
        calls.append("output_parser")
        return {"reply": text, "length": len(text)}

    function_registry["python_func"] = python_func
    python_task = task_graph.add_task(PythonTask("python_func"))
    function_registry["prompt_formatter"] = prompt_formatter
    function_registry["output_parser"] = output_parser
    task_graph.add_task(LLMTask("prompt_formatter", "output_parser", python_task))
    task_graph.graph_input = {"foo": "bar"}
    graph_output = task_graph.run(function_registry)
    trace = json.dumps(task_graph.to_json())
    task_graph_2 = TaskGraph.from_json(json.loads(trace))
    assert calls == ["python_func", "prompt_formatter", "output_parser"]

    output_2 = task_graph_2.run(function_registry)

    assert output_2 == graph_output
    assert "Repeat these words: bar baz" in graph_output["reply"]
    assert "offline" in graph_output["reply"]  # the offline default labels its replies
    assert calls == ["python_func", "prompt_formatter", "output_parser"]  # nothing ran again
    assert task_graph_2.last_run.llm_calls == 0
    assert task_graph_2.last_run.executed == []


def test_counting_registry_counts_calls():
    registry = CountingRegistry({"f": lambda ctx: 1})
    graph = TaskGraph()
    graph.add_task(PythonTask("f"))
    assert graph.run(registry) == 1
    assert registry.take() == {"f": 1}
    graph.graph_input = "changed"  # f does not read the input, so nothing re-runs
    graph.run(registry)
    assert registry.take() == {}
