"""The loopback server itself: seeded fault mixes are reproducible and a graph survives them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from fake_messages_api import FakeMessagesAPI, Fault, random_fault_mix, random_faults

from llmtaskgraph import LLMTask, TaskGraph
from llmtaskgraph.llm import AnthropicLLM

REGISTRY: dict[str, Callable[..., Any]] = {"ask": lambda ctx, i: f"question {i}", "keep": lambda ctx, text: text}


def test_seeded_mix_depends_only_on_seed_and_request_number() -> None:
    rates = {"rate_limit": 0.2, "overloaded": 0.1, "drop": 0.1}
    a, b, c = random_faults(7, rates), random_faults(7, rates), random_faults(8, rates)
    seq_a = [a(n, {}) for n in range(500)]
    assert seq_a == [b(n, {}) for n in reversed(range(500))][::-1]  # order of asking does not matter
    assert seq_a != [c(n, {}) for n in range(500)]
    kinds = Counter(f.status if f is not None and f.kind == "status" else (f.kind if f else None) for f in seq_a)
    assert 60 < kinds[429] < 140 and 20 < kinds[529] < 80 and 20 < kinds["drop"] < 80


def test_graph_completes_through_a_fault_mix(make_llm: Callable[..., AnthropicLLM], fake_api: FakeMessagesAPI) -> None:
    fake_api.fault_fn = random_fault_mix(
        3, [(0.1, Fault.rate_limit(0.01)), (0.08, Fault.overloaded(retry_after=0.01)), (0.08, Fault.drop()),
            (0.04, Fault.server_error(retry_after=0.01))]
    )  # 30% of requests fail; 13 failures in a row (0.3**13 per task) would exhaust the retries
    graph = TaskGraph()
    for i in range(60):
        graph.add_task(LLMTask("ask", "keep", inputs={"i": i}))
    graph.run(REGISTRY, llm=make_llm(max_retries=12), max_concurrency=20)
    faults = sum(r.fault is not None for r in fake_api.requests)
    assert faults > 0 and fake_api.count == 60 + faults  # every fault cost exactly one retry
    assert graph.usage().retries == faults and graph.usage().calls == 60
    assert all(t.status == "done" for t in graph.tasks.values())


def test_reply_function_sees_the_request_and_shapes_the_message(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> None:
    fake_api.reply = lambda body: {"content": [{"type": "text", "text": body["model"]}], "stop_reason": "max_tokens"}
    graph = TaskGraph()
    task = graph.add_task(LLMTask("ask", "keep", inputs={"i": 1}, params={"model": "claude-opus-4-5"}))
    assert graph.run(REGISTRY, llm=make_llm()) == "claude-opus-4-5"
    assert task.response is not None and task.response["stop_reason"] == "max_tokens"


def test_per_request_latency(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> None:
    fake_api.latency = lambda n, body: 0.3 if "question 1" in str(body["messages"]) else 0.0
    graph = TaskGraph()
    for i in range(3):
        graph.add_task(LLMTask("ask", "keep", inputs={"i": i}, id=f"q{i}"))
    graph.run(REGISTRY, llm=make_llm())
    took = {str(r.body["messages"][0]["content"]): r.finished - r.started for r in fake_api.requests}
    assert took["question 1"] >= 0.3 and took["question 0"] < 0.3 and took["question 2"] < 0.3
