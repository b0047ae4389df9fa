"""The offline notice: one line on stdout, once, only when an LLM task is about to call the offline backend."""

from __future__ import annotations

import pytest

import llmtaskgraph.model.graph as graph_module
from llmtaskgraph import LLMTask, PythonTask, TaskGraph
from llmtaskgraph.llm import OFFLINE_NOTICE

REGISTRY = {"ask": lambda ctx: "hello", "keep": lambda ctx, text: text, "f": lambda ctx: 1}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setattr(graph_module, "_offline_notice_shown", False)


def test_a_graph_without_llm_tasks_runs_without_the_notice(capsys: pytest.CaptureFixture[str]) -> None:
    graph = TaskGraph()
    graph.add_task(PythonTask("f"))
    graph.run(REGISTRY)
    assert capsys.readouterr() == ("", "")


def test_the_notice_is_one_line_of_ordinary_output_when_a_call_is_made(capsys: pytest.CaptureFixture[str]) -> None:
    graph = TaskGraph()
    graph.add_task(LLMTask("ask", "keep", id="ask"))
    graph.run(REGISTRY)
    out, err = capsys.readouterr()
    assert out == OFFLINE_NOTICE + "\n" and "\n" not in OFFLINE_NOTICE
    assert err == ""  # not a red stderr block in a notebook


def test_stored_replies_need_no_call_and_so_no_notice(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    graph = TaskGraph()
    graph.add_task(LLMTask("ask", "keep", id="ask"))
    graph.run(REGISTRY)
    capsys.readouterr()
    monkeypatch.setattr(graph_module, "_offline_notice_shown", False)
    graph.run(REGISTRY)  # every stage reused: the offline backend is never called
    assert capsys.readouterr().out == ""
    assert graph.tasks["ask"].output.startswith("[offline reply ")
