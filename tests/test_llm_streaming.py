"""AnthropicLLM streaming under the hood, with the real SDK against the loopback server's server-sent events.

What is checked: a streamed reply is the same reply (every block type) as a plain one; ``on_text``
gets the growing text in order; when calls stream (asked, thinking, long ``max_tokens``, a text
listener) and when they do not; a stream cut mid-reply, an ``error`` event or a stream ending
without ``message_stop`` becomes a clear :class:`LLMCallError` (sent again while retries last, never
stored half); a trickling stream ends at the call's deadline, or within ``timeout`` when it is a
plain call streamed only for its listeners.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_content import every_block_type, full_usage, thinking
from fake_messages_api import FakeMessagesAPI, Fault

from llmtaskgraph import LLMCallError, LLMTask, TaskGraph, TaskGraphError
from llmtaskgraph.llm import AnthropicLLM, LLMResponse

MakeLLM = Callable[..., AnthropicLLM]
HI: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
REGISTRY: dict[str, Callable[..., Any]] = {"ask": lambda ctx: "tell me", "keep": lambda ctx, text: text}
FULL: dict[str, Any] = {
    "content": every_block_type(), "stop_reason": "tool_use",
    "usage": full_usage(50, 60, cache_read=10, cache_write_5m=4, cache_write_1h=2, web_searches=1,
                        thinking_tokens=17, inference_geo="eu"),
    "container": {"id": "container_01", "expires_at": "2026-05-01T12:00:00Z"},
}


def complete(llm: AnthropicLLM, request: dict[str, Any], on_text: Callable[[str], None] | None = None) -> LLMResponse:
    return asyncio.run(llm.complete(request, on_text=on_text))


def comparable(response: LLMResponse) -> dict[str, Any]:
    """The reply without what differs between two calls (timing, ids)."""
    data = response.to_json()
    for name in ("latency", "id", "request_id"):
        data.pop(name, None)
    return data


def test_a_streamed_reply_is_the_plain_reply_block_for_block(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    fake_api.reply = lambda body: FULL
    seen: list[str] = []
    plain = complete(make_llm(), HI)
    streamed = complete(make_llm(), HI, on_text=seen.append)
    assert [r.stream for r in fake_api.requests] == [False, True]
    assert comparable(streamed) == comparable(plain)
    assert streamed.content == FULL["content"] and streamed.usage == FULL["usage"]
    assert streamed.extra == {"container": FULL["container"]}
    last = fake_api.requests[1]
    assert last.reply is not None and (streamed.id, streamed.request_id) == (last.reply["id"], last.request_id)
    # on_text: the text so far, growing in order, ending with the whole text
    assert seen and seen[-1] == streamed.text
    assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(seen))
    assert seen[0] == "The "


def test_stream_true_in_params_streams_and_the_trace_stores_the_whole_reply(
        fake_api: FakeMessagesAPI, make_llm: MakeLLM, tmp_path: Path) -> None:
    fake_api.reply = lambda body: FULL
    graph = TaskGraph()
    task = graph.add_task(LLMTask("ask", "keep", params={"stream": True}))
    graph.run(REGISTRY, llm=make_llm())
    assert fake_api.count == 1 and fake_api.requests[0].stream
    assert task.response is not None and task.response["content"] == FULL["content"]
    graph.save(tmp_path / "trace.json")
    loaded = TaskGraph.load(tmp_path / "trace.json")
    assert loaded.run(REGISTRY, llm=make_llm()) == task.output and fake_api.count == 1  # replay: no call
    assert loaded.tasks[str(task.id)].response == task.response


@pytest.mark.parametrize(("request_fields", "streams"), [
    ({}, False),
    ({"on_text": True}, True),
    ({"stream": False}, False),
    ({"thinking": {"type": "enabled", "budget_tokens": 2000}, "max_tokens": 4000}, True),
    ({"thinking": {"type": "adaptive"}}, True),
    ({"thinking": {"type": "disabled"}}, False),
    ({"max_tokens": 21_333}, False),  # the SDK expects this to take just under ten minutes
    ({"max_tokens": 21_334}, True),   # ... and refuses a plain call for this
    ({"max_tokens": 9000, "model": "claude-opus-4-1@20250805"}, True),  # this model caps plain calls at 8192
])
def test_which_calls_stream(fake_api: FakeMessagesAPI, make_llm: MakeLLM, request_fields: dict[str, Any],
                            streams: bool) -> None:
    fake_api.reply = lambda body: [thinking("so"), {"type": "text", "text": "ok"}] if "thinking" in body else "ok"
    listener = (lambda text: None) if request_fields.pop("on_text", False) else None
    llm = make_llm()
    assert llm.streams({**HI, **request_fields}, listener) is streams
    response = complete(llm, {**HI, **request_fields}, listener)
    assert fake_api.requests[0].stream is streams and response.text == "ok"
    assert "stream" not in fake_api.requests[0].body or streams  # a plain call sends no `stream`


def test_thinking_blocks_come_back_byte_identical_through_a_stream(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    """The signature assembled from signature_delta is the one the server issued: the next turn is accepted."""
    fake_api.reply = lambda body: [thinking("step one, then step two"), {"type": "tool_use", "id": "toolu_1",
                                   "name": "f", "input": {"q": "x"}}]
    llm = make_llm()
    params = {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048}
    first = complete(llm, {**HI, **params})
    sent = fake_api.requests[0].reply
    assert sent is not None and first.content is not None and first.content[0]["signature"] == sent["content"][0]["signature"]
    follow = {**params, "messages": [*HI["messages"], {"role": "assistant", "content": first.content},
                                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}]}]}
    complete(llm, follow)
    assert fake_api.status_counts[200] == 2
    tampered = [{**first.content[0], "thinking": "step one, then step three"}, first.content[1]]
    follow["messages"][1] = {"role": "assistant", "content": tampered}
    with pytest.raises(LLMCallError) as info:
        complete(llm, follow)
    assert str(info.value).startswith("400 invalid_request_error: messages.1.content.0: Invalid `signature` in `thinking` block")


# -- streams that break -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fault", "message", "error_type"), [
    (Fault.cut(after=5), "connection error: the stream from {url} broke mid-reply (", "connection_error"),
    (Fault.stream_error(after=5), "error event overloaded_error: Overloaded", "overloaded_error"),
    (Fault.truncated(after=5), "connection error: the stream ended before `message_stop`", "connection_error"),
], ids=["cut", "error-event", "truncated"])
def test_a_broken_stream_fails_the_call_clearly_and_stores_nothing(
        fake_api: FakeMessagesAPI, make_llm: MakeLLM, fault: Fault, message: str, error_type: str) -> None:
    fake_api.reply = lambda body: "one two three four five six seven"
    fake_api.enqueue(fault)
    seen: list[str] = []
    with pytest.raises(LLMCallError) as info:
        complete(make_llm(max_retries=0), {**HI, "stream": True}, on_text=seen.append)
    error = info.value
    assert str(error).startswith(message.format(url=fake_api.url))
    assert str(error).endswith("; the partial reply was not stored")
    assert f"[request-id {fake_api.requests[0].request_id}]" in str(error)
    assert (error.error_type, error.retries, error.request_id) == (error_type, 0, fake_api.requests[0].request_id)
    assert seen == ["one ", "one two "]  # the part that arrived was shown, then the call failed
    assert fake_api.count == 1 and fake_api.requests[0].reply is None

    # in a graph: the task fails at its call stage with that message, and has no reply
    fake_api.enqueue(fault)
    graph = TaskGraph()
    task = graph.add_task(LLMTask("ask", "keep", params={"stream": True}))
    with pytest.raises(TaskGraphError):
        graph.run(REGISTRY, llm=make_llm(max_retries=0))
    assert task.error is not None and task.error.stage == "call" and task.response is None
    assert task.error.message.startswith(message.format(url=fake_api.url))


@pytest.mark.parametrize("fault", [Fault.cut(after=6), Fault.stream_error(after=6), Fault.truncated(after=6)],
                         ids=["cut", "error-event", "truncated"])
def test_a_broken_stream_is_sent_again_while_retries_last(fake_api: FakeMessagesAPI, make_llm: MakeLLM,
                                                           fault: Fault) -> None:
    fake_api.reply = lambda body: "one two three four five"
    fake_api.enqueue(fault)
    seen: list[str] = []
    response = complete(make_llm(max_retries=2), HI, on_text=seen.append)
    assert response.text == "one two three four five" and response.retries == 1
    assert fake_api.count == 2 and [r.reply is not None for r in fake_api.requests] == [False, True]
    assert seen == ["one ", "one two ", "one two three ", "", "one ", "one two ", "one two three ",
                    "one two three four ", "one two three four five"]  # "" clears what the broken stream had shown


def test_retries_of_broken_streams_are_bounded_by_max_retries(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    fake_api.enqueue(*[Fault.stream_error(after=3)] * 3)
    with pytest.raises(LLMCallError) as info:
        complete(make_llm(max_retries=2), {**HI, "stream": True})
    assert str(info.value).startswith("error event overloaded_error: Overloaded (after 2 retries) [request-id req_")
    assert fake_api.count == 3 and info.value.retries == 2


def test_an_error_event_the_sdk_would_not_retry_is_not_retried(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    fake_api.enqueue(Fault.stream_error(after=3, error_type="invalid_request_error", message="prompt is too long"))
    with pytest.raises(LLMCallError) as info:
        complete(make_llm(max_retries=3), {**HI, "stream": True})
    assert str(info.value).startswith("error event invalid_request_error: prompt is too long [request-id req_")
    assert fake_api.count == 1


def test_a_status_error_before_the_stream_begins_is_the_sdks_to_retry(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    fake_api.enqueue(Fault.overloaded(retry_after=0.01))
    response = complete(make_llm(), {**HI, "stream": True})
    assert response.text == "echo: hi" and response.retries == 1 and fake_api.count == 2


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")  # the SDK's, on reading NaN as a model name
def test_an_unstorable_value_in_a_stream_is_refused_not_turned_into_null(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    fake_api.reply = lambda body: {"content": [{"type": "text", "text": "x"}], "model": float("nan")}
    with pytest.raises(LLMCallError) as info:
        complete(make_llm(), {**HI, "stream": True})
    assert str(info.value).startswith('malformed reply: `reply["model"]` is nan; the reply was not stored')
    assert info.value.error_type == "malformed_reply"


def test_a_trickling_stream_ends_at_the_deadline(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    """One byte every 0.05 s never trips the per-read timeout; only the call's deadline ends it."""
    fake_api.enqueue(Fault.trickle(0.05))
    started = time.monotonic()
    with pytest.raises(LLMCallError) as info:
        complete(make_llm(timeout=1.0, deadline=1.5), {**HI, "stream": True})
    took = time.monotonic() - started
    assert str(info.value).startswith("deadline: no complete reply within the call's deadline of 1.5 s [request-id req_")
    assert info.value.error_type == "timeout"
    assert took < 15  # ended (the whole reply would take over a minute at this pace)


def test_a_plain_call_streamed_for_its_listener_keeps_a_plain_calls_bound(
        fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    """Watching a run must not let a trickling server hang it: the whole stream must arrive within
    ``timeout``, as a plain reply must, and the attempt is retried like any timeout."""
    fake_api.enqueue(Fault.trickle(0.05), Fault.trickle(0.05))
    started = time.monotonic()
    with pytest.raises(LLMCallError) as info:
        complete(make_llm(timeout=0.5, max_retries=1), HI, on_text=lambda text: None)
    assert str(info.value).startswith("timeout: no reply within 0.5 s (after 1 retry) [request-id req_")
    assert info.value.error_type == "timeout" and fake_api.count == 2
    assert time.monotonic() - started < 15
