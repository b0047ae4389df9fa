"""Budgets: ``max_cost`` and ``max_tokens_total`` start no call that could pass them, stop the run cleanly
(trace saved, ``last_run`` and the progress line say so), report any overshoot, and a resumed run with a
bigger budget finishes without repeating a call."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_messages_api import FakeMessagesAPI

from llmtaskgraph import LLMTask, RunOptionsError, ScriptedLLM, TaskGraph, TaskGraphTask
from llmtaskgraph.llm import AnthropicLLM
from llmtaskgraph.run.progress import TerminalDisplay

REGISTRY: dict[str, Callable[..., Any]] = {
    "ask": lambda ctx, i: f"question {i}",
    "keep": lambda ctx, text: text,
    "sub_in": lambda ctx: None,
}


def costly(output_tokens: int = 1000, input_tokens: int | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A reply whose usage the server reports as given: its cost is known in advance."""

    def reply(body: dict[str, Any]) -> dict[str, Any]:
        usage: dict[str, Any] = {"input_tokens": input_tokens if input_tokens is not None else 10, "output_tokens": output_tokens}
        return {"content": [{"type": "text", "text": "answer " + body["messages"][0]["content"]}], "usage": usage}

    return reply


def fan_out(n: int, max_tokens: int = 1000, model: str = "claude-sonnet-5-5") -> TaskGraph:
    graph = TaskGraph()
    for i in range(n):
        graph.add_task(LLMTask("ask", "keep", params={"model": model, "max_tokens": max_tokens}, inputs={"i": i}, id=f"q{i}"))
    return graph


def test_max_cost_starts_no_call_that_could_pass_it_and_a_bigger_budget_resumes(
    fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM], tmp_path: Path
) -> None:
    fake_api.reply = costly(output_tokens=1000)  # each call: 10 in at $2/M + 1,000 out at $10/M = $0.01002
    graph = fan_out(10)
    stream = io.StringIO()
    checkpoint = tmp_path / "trace.json"
    graph.run(REGISTRY, llm=make_llm(), max_cost=0.035, max_concurrency=4, checkpoint=checkpoint,
              progress=TerminalDisplay(stream))  # type: ignore[arg-type]
    report = graph.last_run
    assert report is not None and report.stopped == "max_cost" and report.failed == []
    # the fourth call's bound ($0.01 of output + its input) no longer fitted next to three in flight
    assert fake_api.count == 3 and report.llm_calls == 3
    assert report.cost == pytest.approx(3 * 0.01002) and report.cost <= 0.035 and report.overshoot == 0
    assert report.stopped_why is not None and "max_cost=$0.035" in report.stopped_why and "could cost up to" in report.stopped_why
    statuses = [t.status for t in graph.tasks.values()]
    assert statuses.count("done") == 3 and statuses.count("pending") == 7
    assert "stopped by the budget: budget max_cost=$0.035" in stream.getvalue().splitlines()[-1]
    saved = TaskGraph.load(checkpoint)  # the trace was saved as for any stopped run
    assert [t.status for t in saved.tasks.values()] == statuses
    assert graph.usage().cost == pytest.approx(report.cost)

    saved.run(REGISTRY, llm=make_llm(), max_cost=1.0)  # resumed from the file with a bigger budget
    assert saved.last_run is not None and saved.last_run.stopped is None and saved.last_run.llm_calls == 7
    assert fake_api.count == 10  # nothing called twice
    assert sorted(json.dumps(b["messages"]) for b in fake_api.bodies()) == sorted(
        json.dumps([{"role": "user", "content": f"question {i}"}]) for i in range(10))
    assert all(t.status == "done" for t in saved.tasks.values())
    assert saved.usage().cost == pytest.approx(10 * 0.01002)


def test_overshoot_is_bounded_by_the_calls_in_flight_and_reported(
    fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]
) -> None:
    # The request is tiny (its estimate is a few tokens) but the server bills 300,000 input tokens: $0.60.
    fake_api.reply = costly(output_tokens=5, input_tokens=300_000)
    graph = fan_out(6, max_tokens=10)
    graph.run(REGISTRY, llm=make_llm(), max_cost=1.0, max_concurrency=1)
    report = graph.last_run
    assert report is not None and report.stopped == "max_cost"
    # call 1 spends $0.60; call 2 still fits by its estimate and spends $0.60 more; call 3 does not start
    assert fake_api.count == 2
    assert report.cost == pytest.approx(1.2001) and report.overshoot == pytest.approx(0.2001)


def test_max_tokens_total_counts_input_output_and_calls_in_flight(
    fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]
) -> None:
    fake_api.reply = costly(output_tokens=90, input_tokens=10)  # 100 tokens a call
    graph = fan_out(8, max_tokens=100)
    graph.run(REGISTRY, llm=make_llm(), max_tokens_total=450, max_concurrency=8)
    report = graph.last_run
    assert report is not None and report.stopped == "max_tokens_total"
    # each call is held at ~100 + its estimated input until it ends: 3 fit in 450, the 4th does not
    assert fake_api.count == 3 and report.tokens == 300 and report.overshoot_tokens == 0
    assert report.stopped_why is not None and "max_tokens_total=450" in report.stopped_why


def test_a_model_without_a_price_cannot_run_under_max_cost(
    fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]
) -> None:
    graph = fan_out(3, model="claude-unpriced-1")
    graph.run(REGISTRY, llm=make_llm(), max_cost=5.0)
    report = graph.last_run
    assert report is not None and report.stopped == "max_cost" and fake_api.count == 0
    assert report.stopped_why is not None and "the price of model `claude-unpriced-1` is unknown" in report.stopped_why

    graph.run(REGISTRY, llm=make_llm())  # without a budget it runs, and its cost is unknown, never zero
    report = graph.last_run
    assert report is not None and report.unpriced_calls == 3 and report.cost == 0 and fake_api.count == 3
    usage = graph.usage()
    assert usage.unpriced == 3 and usage.cost_text == "?"
    assert "3 replies of unknown price (claude-unpriced-1)" in str(usage)


def test_a_budget_stop_inside_a_sub_graph_resumes_there(
    fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]
) -> None:
    fake_api.reply = costly(output_tokens=1000)
    graph = TaskGraph()
    graph.add_task(TaskGraphTask(fan_out(4), "sub_in", id="sub"))
    graph.run(REGISTRY, llm=make_llm(), max_cost=0.025, max_concurrency=1)
    report = graph.last_run
    assert report is not None and report.stopped == "max_cost" and fake_api.count == 2
    assert graph.tasks["sub"].status == "pending"
    graph.run(REGISTRY, llm=make_llm(), max_cost=0.05)
    assert graph.tasks["sub"].status == "done" and fake_api.count == 4
    assert graph.usage().by_task.keys() == {f"sub > q{i}" for i in range(4)}


def test_local_backends_are_free_under_a_dollar_budget() -> None:
    graph = fan_out(5)
    graph.run(REGISTRY, llm=ScriptedLLM(lambda prompt: "ok"), max_cost=0)
    report = graph.last_run
    assert report is not None and report.stopped is None and report.cost == 0 and report.llm_calls == 5


@pytest.mark.parametrize(("options", "message"), [
    ({"max_cost": -1}, "`max_cost` must be a number >= 0 (US dollars, or None for no bound), got int -1"),
    ({"max_cost": float("nan")}, "`max_cost` must be a number >= 0"),
    ({"max_tokens_total": 1.5}, "`max_tokens_total` must be a whole number >= 0 (tokens, or None for no bound)"),
])
def test_budget_options_are_checked_before_anything_runs(options: dict[str, Any], message: str) -> None:
    llm = ScriptedLLM(lambda prompt: "ok")
    with pytest.raises(RunOptionsError, match=message.replace("$", r"\$").replace("(", r"\(").replace(")", r"\)")):
        fan_out(1).run(REGISTRY, llm=llm, **options)
    assert llm.calls == 0
