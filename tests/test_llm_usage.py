"""graph.usage(): calls, tokens, cache tokens, LLM seconds and per-model counts, sub-graphs included."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from fake_messages_api import FakeMessagesAPI

from llmtaskgraph import LLMTask, OfflineLLM, TaskGraph, TaskGraphError, TaskGraphTask, Usage
from llmtaskgraph.llm import AnthropicLLM

REGISTRY: dict[str, Callable[..., Any]] = {
    "ask": lambda ctx, n=0: "word " * (n + 1),
    "keep": lambda ctx, text: text,
    "sub_in": lambda ctx: None,
}


def with_cache_tokens(body: dict[str, Any]) -> dict[str, Any]:
    words = len(str(body["messages"]).split())
    return {
        "content": [{"type": "text", "text": "ok " * words}],
        "usage": {"input_tokens": words, "output_tokens": 2 * words, "cache_read_input_tokens": 7 * words,
                  "cache_creation_input_tokens": 3},
    }


def build() -> TaskGraph:
    sub = TaskGraph()
    for i in range(3):
        sub.add_task(LLMTask("ask", "keep", params={"model": "claude-haiku-4-5"}, inputs={"n": i}, id=f"s{i}"))
    graph = TaskGraph()
    for i in range(2):
        graph.add_task(LLMTask("ask", "keep", params={"model": "claude-opus-4-5"}, inputs={"n": 10 + i}, id=f"o{i}"))
    graph.add_task(TaskGraphTask(sub, "sub_in", id="sub"))
    return graph


def test_usage_totals_match_what_the_server_sent(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> None:
    fake_api.reply = with_cache_tokens
    fake_api.latency = 0.05
    graph = build()
    graph.run(REGISTRY, llm=make_llm())
    usage = graph.usage()

    sent = [r.reply for r in fake_api.requests if r.reply is not None]
    assert len(sent) == fake_api.count == 5
    assert usage.calls == 5 and usage.retries == 0 and usage.cached == 0
    for field in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        assert getattr(usage, field) == sum(m["usage"][field] for m in sent), field
    assert dict(Counter(m["model"] for m in sent)) == {m: u.calls for m, u in usage.by_model.items()}
    assert usage.by_model["claude-haiku-4-5"].calls == 3 and usage.by_model["claude-opus-4-5"].calls == 2
    haiku = [m for m in sent if m["model"] == "claude-haiku-4-5"]
    assert usage.by_model["claude-haiku-4-5"].output_tokens == sum(m["usage"]["output_tokens"] for m in haiku)
    assert 5 * 0.05 <= usage.llm_seconds < 5
    assert "5 LLM calls (claude-opus-4-5: 2, claude-haiku-4-5: 3)" in str(usage)
    assert usage.to_json()["by_model"]["claude-opus-4-5"]["calls"] == 2


def test_usage_counts_replies_in_the_trace_not_failed_or_hand_written_ones(
    fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]
) -> None:
    graph = TaskGraph()
    graph.add_task(LLMTask("ask", "keep", id="good"))
    edited = graph.add_task(LLMTask("ask", "keep", inputs={"n": 1}, id="edited"))
    graph.add_task(LLMTask("ask", "keep", params={"bogus": 1}, id="rejected"))
    with pytest.raises(TaskGraphError):
        graph.run(REGISTRY, llm=make_llm())
    assert fake_api.count == 3
    edited.edit(response="a better reply")  # still a paid call behind it
    usage = graph.usage()
    assert usage.calls == 2 and list(usage.by_model) == ["claude-sonnet-5-5"]
    assert usage.input_tokens == sum(r.reply["usage"]["input_tokens"] for r in fake_api.requests if r.reply)

    data = graph.to_json()
    data["tasks"][0]["response"] = {"text": "typed into the JSON by hand"}  # no backend behind it
    reloaded = TaskGraph.from_json(data)  # the totals come from the trace alone
    assert reloaded.usage().calls == 1 and reloaded.usage().by_model["claude-sonnet-5-5"].calls == 1


def test_offline_usage_is_labelled_by_model() -> None:
    graph = build()
    graph.run(REGISTRY, llm=OfflineLLM())
    usage = graph.usage()
    assert usage.calls == 5 and list(usage.by_model) == ["offline"] and usage.input_tokens > 0
    assert Usage().calls == 0 and TaskGraph().usage() == Usage()


def hand_edited(**fields: Any) -> TaskGraph:
    """``build()`` run offline, saved, its first reply (`o0`) and its sub-graph's first (`s0`) given
    ``fields`` (``input_tokens`` and the like go into ``usage``), and loaded back as ``TaskGraph.load`` would."""
    graph = build()
    graph.run(REGISTRY, llm=OfflineLLM())
    data = json.loads(json.dumps(graph.to_json()))
    sub = next(t for t in data["tasks"] if t["id"] == "sub")
    for task in (data["tasks"][0], sub["subgraph"]["tasks"][0]):
        for key, value in fields.items():
            (task["response"]["usage"] if key.endswith("_tokens") else task["response"])[key] = value
    return TaskGraph.from_json(json.loads(json.dumps(data)))


def test_usage_of_a_trace_holding_numbers_beyond_a_float_leaves_them_out_of_the_seconds() -> None:
    usage = hand_edited(latency=10**400).usage()  # valid JSON; float(10**400) raises OverflowError
    assert usage.calls == 5 and usage.llm_seconds == 0.0  # the replies count, their latency does not
    assert usage.by_model["offline"].calls == 5
    assert hand_edited(latency=0.5).usage().llm_seconds == 1.0
    assert hand_edited(latency=True).usage().llm_seconds == 0.0  # not a number of seconds either


def test_usage_of_huge_counts_is_exact_and_shown_short() -> None:
    graph = hand_edited(input_tokens=10**3000, retries=10**20, latency=1e308)
    usage = graph.usage()
    replies = [t.record.response for _, t, _ in graph.walk() if isinstance(t, LLMTask) and t.record.response]
    assert usage.input_tokens == sum(r["usage"]["input_tokens"] for r in replies) > 2 * 10**3000
    assert usage.retries == 2 * 10**20
    assert usage.llm_seconds == float("inf")  # two latencies of 1e308 add up past a float
    text = str(usage)
    assert "2.00e+3000 input" in text and "2.00e+20 retries" in text and "? s waiting for the LLM" in text
    assert len(text) < 300
