"""The loopback server itself: seeded fault mixes are reproducible and a graph survives them; it holds tool
loops and thinking to the API's rules, answers structured-output requests, streams the API's event
sequence, and serves extra endpoints through ``routes``."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from conftest import TEST_API_KEY
from fake_content import redacted_thinking, thinking, tool_use
from fake_messages_api import Exchange, FakeMessagesAPI, Fault, random_fault_mix, random_faults

from llmtaskgraph import LLMCallError, LLMTask, TaskGraph
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
    task = graph.add_task(LLMTask("ask", "keep", inputs={"i": 1}, params={"model": "claude-opus-5-5"}))
    assert graph.run(REGISTRY, llm=make_llm()) == "claude-opus-5-5"
    assert task.response is not None and task.response["stop_reason"] == "max_tokens"


def test_per_request_latency(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> None:
    fake_api.latency = lambda n, body: 0.3 if "question 1" in str(body["messages"]) else 0.0
    graph = TaskGraph()
    for i in range(3):
        graph.add_task(LLMTask("ask", "keep", inputs={"i": i}, id=f"q{i}"))
    graph.run(REGISTRY, llm=make_llm())
    took = {str(r.body["messages"][0]["content"]): r.finished - r.started for r in fake_api.requests}
    assert took["question 1"] >= 0.3 and took["question 0"] < 0.3 and took["question 2"] < 0.3


# -- the API's rules for tool loops and thinking -------------------------------------------------------------
def call(llm: AnthropicLLM, request: dict[str, Any]) -> Any:
    return asyncio.run(llm.complete(request))


def refused(llm: AnthropicLLM, request: dict[str, Any]) -> str:
    with pytest.raises(LLMCallError) as info:
        call(llm, request)
    assert info.value.status == 400
    return str(info.value)


def test_a_tool_loop_is_held_to_the_apis_rules(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> None:
    use_a, use_b = tool_use("add", {"a": 1, "b": 2}), tool_use("add", {"a": 1, "b": 2}, n=1)
    assert use_a["id"] != use_b["id"] and use_a["id"].startswith("toolu_01")
    fake_api.reply = lambda body: [use_a, use_b] if len(body["messages"]) == 1 else "3 and 3"
    llm = make_llm()
    first = call(llm, {"messages": [{"role": "user", "content": "add twice"}]})
    assert first.stop_reason == "tool_use" and first.content == [use_a, use_b]

    def results(*ids: str) -> dict[str, Any]:
        return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": i, "content": "3"} for i in ids]}

    turn = [{"role": "user", "content": "add twice"}, {"role": "assistant", "content": first.content}]
    assert call(llm, {"messages": [*turn, results(use_a["id"], use_b["id"])]}).text == "3 and 3"
    assert refused(llm, {"messages": [*turn, results(use_a["id"], use_b["id"], "toolu_unknown")]}).startswith(
        "400 invalid_request_error: messages.2.content.2: unexpected `tool_use_id` found in `tool_result` blocks: "
        "toolu_unknown. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
    assert refused(llm, {"messages": [*turn, results(use_a["id"])]}).startswith(
        f"400 invalid_request_error: messages.2: `tool_use` ids were found without `tool_result` blocks immediately "
        f"after: {use_b['id']}.")


def test_thinking_must_come_back_as_issued(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> None:
    think, hidden, use = thinking("add them"), redacted_thinking("secret"), tool_use("add", {"a": 1})
    assert think == thinking("add them")  # deterministic: the same on every server and run
    fake_api.reply = lambda body: [think, hidden, use] if len(body["messages"]) == 1 else "1"
    params = {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2000}
    llm = make_llm()
    first = call(llm, {**params, "messages": [{"role": "user", "content": "go"}]})
    assert first.content == [think, hidden, use]

    def follow(assistant: list[dict[str, Any]]) -> dict[str, Any]:
        return {**params, "messages": [
            {"role": "user", "content": "go"}, {"role": "assistant", "content": assistant},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "1"}]}]}

    assert call(llm, follow(first.content)).text == "1"
    assert refused(llm, follow([{**think, "thinking": "add them!"}, hidden, use])).startswith(
        "400 invalid_request_error: messages.1.content.0: Invalid `signature` in `thinking` block")
    assert refused(llm, follow([{**think, "signature": think["signature"][:-4] + "AAAA"}, hidden, use])).startswith(
        "400 invalid_request_error: messages.1.content.0: Invalid `signature` in `thinking` block")
    assert refused(llm, follow([think, {**hidden, "data": hidden["data"] + "x"}, use])).startswith(
        "400 invalid_request_error: messages.1.content.1: Invalid `data` in `redacted_thinking` block")
    assert refused(llm, follow([use])).startswith(
        "400 invalid_request_error: messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
        "`tool_use`. When `thinking` is enabled, a final `assistant` message must start with a thinking block")
    assert refused(llm, {**params, "max_tokens": 1024, "messages": [{"role": "user", "content": "go"}]}).startswith(
        "400 invalid_request_error: `max_tokens` must be greater than `thinking.budget_tokens`.")
    # without thinking the same conversation may drop the thinking blocks
    assert call(llm, {**follow([use]), "thinking": {"type": "disabled"}}).text == "1"


# -- structured outputs --------------------------------------------------------------------------------------
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 10},
        "age": {"type": "integer", "minimum": 3},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "minItems": 2},
        "kind": {"enum": ["cat", "dog"]},
        "score": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        "ok": {"type": "boolean"},
    },
    "required": ["name", "age", "tags", "kind", "score", "ok"],
    "additionalProperties": False,
    "$defs": {"tag": {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"],
                      "additionalProperties": False}},
}


def test_a_structured_output_request_gets_a_document_valid_for_its_schema(
        fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> None:
    import jsonschema

    request = {"messages": [{"role": "user", "content": "a pet"}],
               "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}}
    reply = call(make_llm(), request)
    document = json.loads(reply.text)
    jsonschema.validate(document, SCHEMA)
    assert document == {"name": "examplexxx", "age": 3, "tags": [{"label": "example"}] * 2, "kind": "cat",
                        "score": 0.0, "ok": True}
    assert fake_api.requests[0].body["output_config"] == request["output_config"]
    assert call(make_llm(), {"messages": request["messages"]}).text == "echo: a pet"  # no schema: the echo


# -- streams on the wire -------------------------------------------------------------------------------------
def raw_events(url: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """POST with stream: true and read the server-sent events as sent (no SDK)."""
    request = urllib.request.Request(f"{url}/v1/messages", data=json.dumps({**body, "stream": True}).encode(),
                                     headers={"x-api-key": TEST_API_KEY, "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    events = []
    for chunk in text.strip().split("\n\n"):
        name, data = chunk.split("\n")
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def test_a_stream_is_the_streaming_apis_event_sequence(fake_api: FakeMessagesAPI) -> None:
    fake_api.reply = lambda body: [thinking("hm ok"), {"type": "text", "text": "Hi there", "citations": None},
                                   tool_use("f", {"x": [1, 2]})]
    events = raw_events(fake_api.url, {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "x"}]})
    names = [name for name, _ in events]
    assert all(name == data["type"] for name, data in events)
    assert names == ["message_start", "ping",
                     "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta",
                     "content_block_stop",
                     "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
                     "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["output_tokens"] == 1
    assert [d["delta"]["type"] for _, d in events[3:6]] == ["thinking_delta", "thinking_delta", "signature_delta"]
    assert events[5][1]["delta"]["signature"] == thinking("hm ok")["signature"]
    assert events[7][1]["content_block"] == {"type": "text", "text": "", "citations": None}
    assert "".join(d["delta"]["partial_json"] for _, d in events[12:15]) == '{"x": [1, 2]}'
    assert events[16][1] == {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                             "usage": {"input_tokens": start["usage"]["input_tokens"], "output_tokens": 4}}


def test_a_cut_plain_reply_is_retried_by_the_sdk(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> None:
    fake_api.enqueue(Fault.cut())
    reply = call(make_llm(), {"messages": [{"role": "user", "content": "x"}]})
    assert reply.text == "echo: x" and reply.retries == 1 and fake_api.count == 2


# -- extra endpoints ---------------------------------------------------------------------------------------
def test_routes_serve_extra_paths_behind_the_same_key_check_and_faults(fake_api: FakeMessagesAPI) -> None:
    def things(exchange: Exchange) -> None:
        if exchange.method == "GET":
            return exchange.send_json(200, {"path": exchange.path, "query": exchange.query})
        status, payload = exchange.api.answer(exchange.body)
        return exchange.send_json(status, payload)

    fake_api.routes["/v1/things"] = things

    def send(method: str, path: str, body: Any = None, key: str = TEST_API_KEY) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(fake_api.url + path, data=data, method=method, headers={"x-api-key": key})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    assert send("GET", "/v1/things/t1?limit=2") == (200, {"path": "/v1/things/t1", "query": {"limit": ["2"]}})
    status, message = send("POST", "/v1/things", {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "q"}]})
    assert status == 200 and message["content"] == [{"type": "text", "text": "echo: q"}]
    assert send("POST", "/v1/things", {"model": "m"})[1]["error"]["message"] == "max_tokens: Field required"
    assert send("GET", "/v1/things", key="wrong")[0] == 401
    assert send("GET", "/v1/thingsmore")[0] == 404 and send("GET", "/v1/messages/other")[0] == 404
    fake_api.enqueue(Fault.overloaded())
    assert send("GET", "/v1/things")[0] == 529
    assert fake_api.count == 0  # only POST /v1/messages counts as a Messages call
    assert [r.method for r in fake_api.requests][:2] == ["GET", "POST"]
