"""The JSON trace: lossless round trips, atomic saves and errors that name the bad field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from llmtaskgraph import (
    InvalidTraceError,
    LLMTask,
    OfflineLLM,
    PythonTask,
    TaskGraph,
    TaskGraphError,
    TaskGraphTask,
)
from llmtaskgraph.errors import OutputNotJSONError


def full_graph() -> TaskGraph:
    """A graph exercising every field: prompt shapes, None outputs, errors, sub-graphs, children."""
    inner = TaskGraph()
    inner.add_task(LLMTask("fmt_dict", "parse", params={"temperature": 0.2}))
    graph = TaskGraph({"q": "why?", "n": [1, 2.5, None, True]})
    a = graph.add_task(PythonTask("none"))
    b = graph.add_task(LLMTask("fmt_str", "parse", a, params={"max_tokens": 50}, name="str prompt"))
    graph.add_task(LLMTask("fmt_list", "parse", b, sample=2, extra=a))
    graph.add_task(TaskGraphTask(inner, "to_sub", a, name="sub"))
    graph.add_task(PythonTask("spawn", key="k"))
    graph.add_task(PythonTask("boom", b))
    return graph


REGISTRY = {
    "none": lambda ctx: None,
    "fmt_str": lambda ctx, x: "plain string prompt é ✓",
    "fmt_list": lambda ctx, x, extra: [{"role": "user", "content": [{"type": "text", "text": "blocks"}]}],
    "fmt_dict": lambda ctx: {"system": "be brief", "messages": [{"role": "user", "content": ctx.graph_input}]},
    "parse": lambda ctx, text: {"text": text, "chars": len(text)},
    "to_sub": lambda ctx, x: "sub input",
    "spawn": lambda ctx: [ctx.add_task(PythonTask("none", name="kid")).id],
    "boom": lambda ctx, x: 1 / 0,
}


@pytest.fixture
def ran_graph() -> TaskGraph:
    graph = full_graph()
    with pytest.raises(TaskGraphError):
        graph.run(REGISTRY, llm=OfflineLLM())
    return graph


def test_round_trip_is_identical_and_plain_json(ran_graph):
    data = ran_graph.to_json()
    text = json.dumps(data, allow_nan=False)
    assert data["format"] == "llmtaskgraph/3"
    again = TaskGraph.from_json(json.loads(text)).to_json()
    assert again == data
    assert json.dumps(again, allow_nan=False) == text


def test_round_trip_keeps_every_field(ran_graph):
    loaded = TaskGraph.from_json(json.loads(json.dumps(ran_graph.to_json())))
    assert loaded.graph_input == {"q": "why?", "n": [1, 2.5, None, True]}
    assert loaded.tasks["none"].output is None and loaded.tasks["none"].is_complete
    s = loaded.tasks["str prompt"]
    assert s.prompt == "plain string prompt é ✓" and s.params == {"max_tokens": 50} and s.name == "str prompt"
    assert s.response["backend"] == "offline" and s.response["usage"]["input_tokens"] > 0
    assert s.record.started_at <= s.record.finished_at
    lst = loaded.tasks["fmt_list"]
    assert lst.prompt[0]["content"][0]["text"] == "blocks" and lst.sample == 2 and lst.kwdeps == {"extra": "none"}
    sub = loaded.tasks["sub"]
    assert sub.subgraph.graph_input == "sub input"
    assert sub.subgraph.tasks["fmt_dict"].prompt["system"] == "be brief"
    assert sub.subgraph.tasks["fmt_dict"].params == {"temperature": 0.2}
    assert loaded.tasks["spawn"].key == "k" and loaded.tasks["spawn"].record.children == ["spawn/kid#1"]
    assert loaded.tasks["spawn/kid#1"].created_by == "spawn"
    boom = loaded.tasks["boom"]
    assert boom.status == "failed" and boom.error.type == "ZeroDivisionError" and "1 / 0" in boom.error.traceback


def test_from_json_never_mutates_its_input(ran_graph):
    data = ran_graph.to_json()
    frozen = copy.deepcopy(data)
    loaded = TaskGraph.from_json(data)
    loaded.tasks["str prompt"].edit(response="edited", prompt="edited prompt")
    loaded.tasks["none"].edit(output={"new": 1})
    loaded.graph_input = {"q": "replaced after load"}
    loaded.run(REGISTRY | {"boom": lambda ctx, x: "ok"}, llm=OfflineLLM())
    assert data == frozen


def test_save_and_load(tmp_path, ran_graph):
    path = tmp_path / "trace.json"
    ran_graph.save(path)
    assert TaskGraph.load(path).to_json() == ran_graph.to_json()
    assert [p.name for p in tmp_path.iterdir()] == ["trace.json"]  # no temporary file left behind


def test_saved_traces_get_the_mode_an_ordinary_new_file_gets(tmp_path):
    import os

    graph = TaskGraph()
    graph.add_task(PythonTask("f"))
    graph.save(tmp_path / "trace.json")
    (tmp_path / "plain.json").write_text("{}")
    assert os.stat(tmp_path / "trace.json").st_mode == os.stat(tmp_path / "plain.json").st_mode


def test_save_is_atomic_when_serialization_fails(tmp_path):
    graph = TaskGraph()
    graph.add_task(PythonTask("f"))
    path = tmp_path / "trace.json"
    graph.save(path)
    before = path.read_text()
    graph.tasks["f"].record.output = {"bad": float("nan")}  # cannot be written as JSON (set past every check)
    with pytest.raises(ValueError):
        graph.save(path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["trace.json"]


def test_running_status_from_a_killed_process_loads_as_pending(ran_graph):
    data = ran_graph.to_json()
    data["tasks"][0]["status"] = "running"
    assert TaskGraph.from_json(data).tasks["none"].status == "pending"


# -- errors name the problem -------------------------------------------------------------------------
def simple_trace():
    graph = TaskGraph()
    a = graph.add_task(PythonTask("f", name="a"))
    graph.add_task(PythonTask("f", a, name="b"))
    return graph.to_json()


def mutate(fn):
    data = simple_trace()
    fn(data)
    return data


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        (lambda d: d.update(format="llmtaskgraph/99"), "`format`", "unsupported format 'llmtaskgraph/99'"),
        (lambda d: d.pop("format"), "`format`", "unsupported format None"),
        (lambda d: d["tasks"][1].update(type="shell"), "`tasks[1].type`", "unknown task type 'shell'"),
        (lambda d: d["tasks"][1].pop("fn"), "`tasks[1].fn`", "required field is missing"),
        (lambda d: d["tasks"][1].pop("id"), "`tasks[1].id`", "required field is missing"),
        (lambda d: d["tasks"][1].update(deps="a"), "`tasks[1].deps`", "expected a list of task ids"),
        (lambda d: d["tasks"][1].update(deps=[3]), "`tasks[1].deps`", "expected a list of task ids"),
        (lambda d: d["tasks"][1].update(id="a"), "`tasks[1].id`", "duplicate task id `a`"),
        (lambda d: d["tasks"][1].update(deps=["ghost"]), "`tasks[1].deps`", "task `b` refers to `ghost`"),
        (lambda d: d["tasks"][0].update(deps=["b"]), "`tasks`", "cycle"),
        (lambda d: d["tasks"][0].update(status="finished"), "`tasks[0].status`", "expected one of pending"),
        (lambda d: d["tasks"][0].update(fingerprints={"format": "x"}), "`tasks[0].fingerprints`", "stage (run)"),
        (lambda d: d["tasks"][0].update(created_by="nobody"), "`tasks[0].created_by`", "`nobody`"),
        (lambda d: d.update(output_task="ghost"), "`output_task`", "`ghost` is not a task"),
        (lambda d: d["tasks"][0].update(outptu=1), "`tasks[0].outptu`", "unknown field"),
        (lambda d: d["tasks"][0].update(error={"type": "X"}), "`tasks[0].error.message`", "required"),
        (lambda d: d["tasks"][0].update(started_at="yesterday"), "`tasks[0].started_at`", "a number or null"),
        (lambda d: d.update(tasks={}), "`tasks`", "expected a list of tasks"),
        (lambda d: d["tasks"].append(7), "`tasks[2]`", "expected an object, got a number 7"),
    ],
)
def test_invalid_traces_raise_naming_the_field(change, where, says):
    with pytest.raises(InvalidTraceError) as info:
        TaskGraph.from_json(mutate(change))
    assert where in str(info.value)
    assert says in str(info.value)


def test_llm_fields_are_validated():
    graph = TaskGraph()
    graph.add_task(LLMTask("f", "p"))
    data = graph.to_json()
    data["tasks"][0]["response"] = {"txt": "no text key"}
    with pytest.raises(InvalidTraceError, match=r"`tasks\[0\].response`.*string `text`"):
        TaskGraph.from_json(data)
    data["tasks"][0]["response"] = None
    data["tasks"][0]["sample"] = -1
    with pytest.raises(InvalidTraceError, match=r"`tasks\[0\].sample`"):
        TaskGraph.from_json(data)


def test_errors_inside_subgraphs_give_the_nested_path():
    inner = TaskGraph()
    inner.add_task(PythonTask("f"))
    graph = TaskGraph()
    graph.add_task(TaskGraphTask(inner, "g"))
    data = graph.to_json()
    data["tasks"][0]["subgraph"]["tasks"][0]["deps"] = ["missing"]
    with pytest.raises(InvalidTraceError, match=r"`tasks\[0\].subgraph.tasks\[0\].deps`"):
        TaskGraph.from_json(data)


def test_load_reports_invalid_json_files(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"format": "llmtaskgraph/1", "tasks": [')
    with pytest.raises(InvalidTraceError, match="not valid JSON"):
        TaskGraph.load(path)


def test_a_hand_edited_prompt_that_is_not_a_prompt_fails_that_task_only():
    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "parse", name="x"))
    graph.add_task(PythonTask("other"))
    reg = {"fmt": lambda ctx: "hello", "parse": lambda ctx, t: t, "other": lambda ctx: 1}
    graph.run(reg, llm=OfflineLLM())
    data = graph.to_json()
    data["tasks"][0]["prompt"] = 42
    loaded = TaskGraph.from_json(data)
    with pytest.raises(TaskGraphError, match="`x`"):
        loaded.run(reg, llm=OfflineLLM())
    assert "got int" in loaded.tasks["x"].error.message
    assert loaded.tasks["other"].status == "done"


# -- older formats still load ------------------------------------------------------------------------
FIXTURES = Path(__file__).parent / "fixtures"


def _v1_words(ctx):
    return ctx.graph_input["text"].split()


def _v1_plan(ctx, ws):
    for w in ws[:2]:
        ctx.add_task(PythonTask("shout", key=w, inputs={"word": w}))
    return len(ws)


V1_REGISTRY = {
    "words": _v1_words,
    "fmt": lambda ctx, ws: f"Give a rhyme for {ws[0]}.",
    "parse": lambda ctx, text: text.strip(),
    "plan": _v1_plan,
    "shout": lambda ctx, word: word.upper(),
    "to_sub": lambda ctx, n: {"n": n},
    "double": lambda ctx: ctx.graph_input["n"] * 2,
}
"""The registry ``tests/fixtures/trace_v1.json`` was run with (by llmtaskgraph before format 2):
``words`` -> LLMTask ``rhyme`` on OfflineLLM, ``plan`` (adds ``plan/cat``, ``plan/hat`` at run time)
-> TaskGraphTask ``sub`` (one PythonTask ``doubled`` inside)."""


def test_a_format_1_trace_loads_and_replays_without_running_anything():
    graph = TaskGraph.load(FIXTURES / "trace_v1.json")
    assert list(graph.tasks) == ["words", "rhyme", "plan", "sub", "plan/cat", "plan/hat"]
    assert graph.tasks["plan/cat"].created_by == "plan" and graph.tasks["plan/cat"].inputs == {"word": "cat"}
    assert graph.tasks["rhyme"].response["backend"] == "offline"
    assert all(t.record.versions == {} and t.record.basis == {} for t in graph.tasks.values())
    llm = OfflineLLM()
    graph.run(V1_REGISTRY, llm=llm, progress=False)
    assert graph.last_run.executed == [] and graph.last_run.llm_calls == 0 and llm.calls == 0
    assert graph.tasks["sub"].output == 6 and graph.tasks["plan/hat"].output == "HAT"


def _v2_plan(ctx, words):
    from llmtaskgraph import PythonTask

    for w in words:
        ctx.add_task(PythonTask("shout", key=w, inputs={"word": w}))
    return len(words)


V2_REGISTRY = {**V1_REGISTRY, "words": lambda ctx: ctx.graph_input["words"], "plan": _v2_plan}
"""The registry ``tests/fixtures/trace_v2.json`` was run with (``fixtures/make_trace_v2.py``)."""


def test_a_format_2_trace_loads_and_replays_without_running_anything():
    graph = TaskGraph.load(FIXTURES / "trace_v2.json")
    assert list(graph.tasks) == ["words", "rhyme", "plan", "sub", "plan/cat", "plan/hat"]
    rhyme = graph.tasks["rhyme"]
    assert rhyme.response["backend"] == "offline" and rhyme.response["text"].startswith("[offline reply")
    assert graph.plan(V2_REGISTRY, llm=OfflineLLM()).will_run == []
    llm = OfflineLLM()
    graph.run(V2_REGISTRY, llm=llm, progress=False)
    assert graph.last_run.executed == [] and graph.last_run.llm_calls == 0 and llm.calls == 0
    assert graph.tasks["sub"].output == 4 and rhyme.output == rhyme.response["text"].strip()


# -- every trace the library saves loads --------------------------------------------------------------
def test_a_scripted_reply_a_trace_cannot_store_fails_the_call_stage(tmp_path):
    from llmtaskgraph import ScriptedLLM

    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "parse", name="x"))
    reg = {"fmt": lambda ctx: "hello", "parse": lambda ctx, text: text}
    with pytest.raises(TaskGraphError, match="`x`"):
        graph.run(reg, llm=ScriptedLLM(lambda prompt: "half \ud800 a pair"), progress=False)
    task = graph.tasks["x"]
    assert task.error.stage == "call" and task.error.type == "OutputNotJSONError" and task.response is None
    assert "ScriptedLLM script gave a reply that cannot be stored: `text` contains a lone surrogate" in task.error.message
    graph.save(tmp_path / "trace.json")
    assert TaskGraph.load(tmp_path / "trace.json").tasks["x"].error == task.error
    with pytest.raises(OutputNotJSONError, match=r'script that cannot be stored: `script\["hello"\]` contains a lone'):
        ScriptedLLM({"hello": "half \ud800 a pair"})
