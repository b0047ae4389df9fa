"""Dollars in ``graph.usage()`` (per task, per model, total, sub-graphs included), in ``llmtaskgraph show``, and
the plan's cost range (token counts from the API's counting endpoint when it answers, a local estimate else)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_messages_api import Exchange, FakeMessagesAPI

from llmtaskgraph import LLMTask, OfflineLLM, TaskGraph, TaskGraphTask
from llmtaskgraph.cli import main
from llmtaskgraph.llm import AnthropicLLM
from llmtaskgraph.llm.prices import cost_of

REGISTRY: dict[str, Callable[..., Any]] = {
    "ask": lambda ctx, i: f"question number {i}",
    "keep": lambda ctx, text: text,
    "sub_in": lambda ctx: None,
}


def billed(body: dict[str, Any]) -> dict[str, Any]:
    n = len(body["messages"][0]["content"])
    return {"content": [{"type": "text", "text": "ok"}], "usage": {"input_tokens": 1000 * n, "output_tokens": 100 * n}}


def build() -> TaskGraph:
    sub = TaskGraph()
    for i in range(2):
        sub.add_task(LLMTask("ask", "keep", params={"model": "claude-haiku-4-5", "max_tokens": 200}, inputs={"i": i}, id=f"s{i}"))
    graph = TaskGraph()
    for i in range(3):
        graph.add_task(LLMTask("ask", "keep", params={"model": "claude-opus-5-5", "max_tokens": 200}, inputs={"i": 10 + i},
                               id=f"o{i}"))
    graph.add_task(TaskGraphTask(sub, "sub_in", id="sub"))
    return graph


def test_cost_per_task_per_model_and_total(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM],
                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_api.reply = billed
    graph = build()
    graph.run(REGISTRY, llm=make_llm())
    usage = graph.usage()
    expected = {path: cost_of(task.response or {}) for path, task, _ in graph.walk() if task.response}
    assert usage.by_task == expected and set(expected) == {"o0", "o1", "o2", "sub > s0", "sub > s1"}
    chars = {i: len(f"question number {i}") for i in (0, 1, 10, 11, 12)}
    opus = sum((1000 * chars[i] * 4 + 100 * chars[i] * 20) / 1e6 for i in (10, 11, 12))
    haiku = sum((1000 * chars[i] * 1 + 100 * chars[i] * 5) / 1e6 for i in (0, 1))
    assert usage.by_model["claude-opus-5-5"].cost == pytest.approx(opus)
    assert usage.by_model["claude-haiku-4-5"].cost == pytest.approx(haiku)
    assert usage.cost == pytest.approx(opus + haiku) and usage.unpriced == 0
    assert graph.last_run is not None and graph.last_run.cost == pytest.approx(usage.cost)
    assert f"cost {usage.cost_text}" in str(usage) and usage.to_json()["by_task"] == expected

    graph.save(tmp_path / "t.json")
    assert main(["show", str(tmp_path / "t.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[7] == "COST"
    row = next(line for line in out if line.split()[0] == "o0")
    assert usage.by_task["o0"] is not None and f"${usage.by_task['o0']:.4f}" in row
    assert f"cost {usage.cost_text}" in out[-2]
    assert out[-1] == (f"cost by model: claude-opus-5-5 3 calls {usage.by_model['claude-opus-5-5'].cost_text}; "
                       f"claude-haiku-4-5 2 calls {usage.by_model['claude-haiku-4-5'].cost_text}")


def test_offline_replies_cost_nothing_and_say_so() -> None:
    graph = build()
    graph.run(REGISTRY, llm=OfflineLLM())
    usage = graph.usage()
    assert usage.cost == 0 and usage.unpriced == 0 and usage.cost_text == "$0"


def test_plan_gives_a_cost_range_counted_by_the_api(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> None:
    counted: list[Any] = []

    def count_tokens(exchange: Exchange) -> None:
        counted.append(exchange.body)
        exchange.send_json(200, {"input_tokens": 1000})

    fake_api.routes["/v1/messages/count_tokens"] = count_tokens
    graph = build()
    plan = graph.plan(REGISTRY, llm=make_llm())
    # no prompt is formatted yet: nothing can be priced
    assert plan.llm_calls == 5 and plan.cost_unknown == 5 and plan.cost_text() == ", cost ?" and counted == []

    graph.run(REGISTRY, llm=OfflineLLM())  # formats every prompt (offline: free)
    graph.resample()  # every call again, on the real backend: the requests are known now
    plan = graph.plan(REGISTRY, llm=make_llm())
    assert plan.llm_calls == 5 and plan.cost_unknown == 0 and plan.tokens_counted and len(counted) == 5
    assert {c["model"] for c in counted} == {"claude-opus-5-5", "claude-haiku-4-5"}
    low = 3 * 1000 * 4 / 1e6 + 2 * 1000 * 1 / 1e6
    high = low + 3 * 200 * 20 / 1e6 + 2 * 200 * 5 / 1e6
    assert (plan.cost_low, plan.cost_high) == (pytest.approx(low), pytest.approx(high))
    assert "cost $0.0140 to $0.0280" in str(plan).splitlines()[0]

    del fake_api.routes["/v1/messages/count_tokens"]  # the endpoint fails: a local estimate, and a note saying so
    plan = graph.plan(REGISTRY, llm=make_llm())
    assert not plan.tokens_counted and 0 < plan.cost_low < plan.cost_high
    assert any("input tokens estimated locally" in note for note in plan.notes)


def test_the_task_card_and_the_report_show_cost(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> None:
    from llmtaskgraph.trace.usage import dollars_text
    from llmtaskgraph.views.cards import task_html
    from llmtaskgraph.views.report import render_report

    fake_api.reply = billed
    graph = build()
    graph.run(REGISTRY, llm=make_llm())
    usage = graph.usage()
    card = task_html(graph.tasks["o0"])
    assert f"cost {dollars_text(usage.by_task['o0'])}" in card
    report = render_report(graph)
    assert "Cost" in report and usage.cost_text in report
