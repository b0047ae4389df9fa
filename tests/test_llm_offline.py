"""The offline default (announced once, honestly labelled) and scripted replies as a first-class backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import llmtaskgraph.model.graph as graph_module
from llmtaskgraph import LLMCallError, LLMTask, LLMTaskGraphError, OfflineLLM, ScriptedLLM, TaskGraph, TaskGraphError
from llmtaskgraph.llm import OFFLINE_NOTICE

REGISTRY: dict[str, Callable[..., Any]] = {
    "ask": lambda ctx, topic="cats": f"tell me about {topic}",
    "keep": lambda ctx, text: text,
}


def two_questions() -> TaskGraph:
    graph = TaskGraph()
    graph.add_task(LLMTask("ask", "keep", inputs={"topic": "cats"}, id="cats"))
    graph.add_task(LLMTask("ask", "keep", inputs={"topic": "dogs"}, id="dogs", params={"system": "be brief"}))
    return graph


def test_no_key_runs_offline_and_says_so_once(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setattr(graph_module, "_offline_notice_shown", False)
    first, second = two_questions(), two_questions()
    first.run(REGISTRY)
    second.run(REGISTRY)
    out = capsys.readouterr().out  # one line of ordinary output (tests/test_offline_notice.py: when exactly)
    assert out.count(OFFLINE_NOTICE) == 1 and "ANTHROPIC_API_KEY" in OFFLINE_NOTICE
    for task in first.tasks.values():
        response = task.response
        assert response is not None and response["backend"] == "offline" and response["model"] == "offline"
        assert response["text"].startswith("[offline reply ") and response["text"].endswith(f"tell me about {task.id}")
    # deterministic: a second graph gets the very same replies
    assert [t.output for t in first.tasks.values()] == [t.output for t in second.tasks.values()]


def test_an_explicit_backend_prints_no_notice(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setattr(graph_module, "_offline_notice_shown", False)
    two_questions().run(REGISTRY, llm=OfflineLLM())
    assert OFFLINE_NOTICE not in capsys.readouterr().out


def test_scripted_mapping_matches_exactly_then_by_phrase() -> None:
    llm = ScriptedLLM({"tell me about cats": "Cats purr.", "dogs": "Dogs bark."})
    graph = two_questions()
    graph.run(REGISTRY, llm=llm)
    assert [t.output for t in graph.tasks.values()] == ["Cats purr.", "Dogs bark."]
    assert llm.calls == 2
    response = graph.tasks["cats"].response
    assert response is not None and response["backend"] == "scripted" and response["model"] == "scripted"


def test_editing_a_scripted_mapping_asks_again_but_replay_does_not() -> None:
    graph = two_questions()
    graph.run(REGISTRY, llm=ScriptedLLM({"cats": "Cats purr.", "dogs": "Dogs bark."}))
    same = ScriptedLLM({"cats": "Cats purr.", "dogs": "Dogs bark."})
    graph.run(REGISTRY, llm=same)
    assert same.calls == 0
    edited = ScriptedLLM({"cats": "Cats sleep.", "dogs": "Dogs bark."})
    graph.run(REGISTRY, llm=edited)
    assert edited.calls == 2 and graph.tasks["cats"].output == "Cats sleep."


def test_scripted_function_of_the_whole_request() -> None:
    def reply(request: dict[str, Any]) -> str:
        return f"{request.get('system', 'no system')} / {request['messages'][-1]['content']}"

    llm = ScriptedLLM(reply, whole_request=True, name="v1")
    graph = two_questions()
    graph.run(REGISTRY, llm=llm)
    assert graph.tasks["cats"].output == "no system / tell me about cats"
    assert graph.tasks["dogs"].output == "be brief / tell me about dogs"
    assert llm.kind == "scripted:v1"


def test_scripted_errors_fail_the_task_with_a_clear_message() -> None:
    graph = two_questions()
    with pytest.raises(TaskGraphError):
        graph.run(REGISTRY, llm=ScriptedLLM({"cats": "Cats purr."}))
    error = graph.tasks["dogs"].error
    assert error is not None and error.stage == "call" and error.type == "LLMCallError"
    assert error.message == "ScriptedLLM has no reply for the prompt 'tell me about dogs'; add an entry to the script"

    graph = two_questions()
    with pytest.raises(TaskGraphError):
        graph.run(REGISTRY, llm=ScriptedLLM(lambda prompt: len(prompt)))  # type: ignore[arg-type,return-value]
    error = graph.tasks["cats"].error
    assert error is not None and error.type == "LLMCallError"
    assert error.message == "the ScriptedLLM script must return the reply text (str), got int (or a dict of `content` blocks)"


def test_scripted_errors_are_llm_call_errors() -> None:
    import asyncio

    request = {"messages": [{"role": "user", "content": "tell me about dogs"}]}
    with pytest.raises(LLMCallError, match="ScriptedLLM has no reply for the prompt 'tell me about dogs'") as info:
        asyncio.run(ScriptedLLM({"cats": "Cats purr."}).complete(request))
    assert isinstance(info.value, LLMTaskGraphError) and not isinstance(info.value, KeyError)
    with pytest.raises(LLMCallError, match=r"must return the reply text \(str\), got int") as info:
        asyncio.run(ScriptedLLM(lambda prompt: len(prompt)).complete(request))  # type: ignore[arg-type,return-value]
    assert isinstance(info.value, LLMTaskGraphError) and not isinstance(info.value, TypeError)


def test_the_core_runs_offline_without_importing_the_sdk() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llmtaskgraph as l\n"
        "g = l.TaskGraph(); g.add_task(l.LLMTask('f', 'p'))\n"
        "print(g.run({'f': lambda c: 'hi', 'p': lambda c, t: t}, llm=l.OfflineLLM()))\n"
        "assert 'anthropic' not in sys.modules, 'the SDK was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[offline reply ")
