"""AnthropicLLM over the real SDK against the loopback Messages API: replies, faults, limits, secrets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_API_KEY
from fake_content import every_block_type, full_usage
from fake_messages_api import FakeMessagesAPI, Fault

from llmtaskgraph import (
    LLMCallError,
    LLMTask,
    LLMTaskGraphError,
    PythonTask,
    RunOptionsError,
    TaskGraph,
    TaskGraphError,
    TaskGraphTask,
)
from llmtaskgraph.llm import DEFAULT_MODEL, AnthropicLLM

MakeLLM = Callable[..., AnthropicLLM]


def ask(ctx: Any, topic: str = "cats") -> str:
    return f"tell me about {topic}"


def keep(ctx: Any, text: str) -> str:
    return text


REGISTRY: dict[str, Callable[..., Any]] = {"ask": ask, "keep": keep, "topic": lambda ctx: ctx.graph_input}


def one_task(params: dict[str, Any] | None = None) -> tuple[TaskGraph, LLMTask]:
    graph = TaskGraph()
    task = graph.add_task(LLMTask("ask", "keep", params=params))
    return graph, task


def fan_out(n: int) -> TaskGraph:
    graph = TaskGraph()
    for i in range(n):
        graph.add_task(LLMTask("ask", "keep", graph.add_task(PythonTask("topic", id=f"t{i}")), id=f"q{i}"))
    return graph


def run_failing(graph: TaskGraph, llm: AnthropicLLM, **options: Any) -> TaskGraphError:
    with pytest.raises(TaskGraphError) as info:
        graph.run(REGISTRY, llm=llm, **options)
    return info.value


# -- replies ----------------------------------------------------------------------------------------
def test_reply_is_recorded_with_model_usage_latency(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    graph, task = one_task()
    out = graph.run(REGISTRY, llm=make_llm())
    assert out == "echo: tell me about cats"
    assert fake_api.count == 1
    sent = fake_api.requests[0]
    assert sent.path == "/v1/messages" and sent.api_key == TEST_API_KEY
    assert sent.body == {"model": DEFAULT_MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": "tell me about cats"}]}
    response = task.response
    assert response is not None
    assert response["text"] == out and response["model"] == DEFAULT_MODEL and response["stop_reason"] == "end_turn"
    assert sent.reply is not None and response["usage"] == sent.reply["usage"]
    assert response["retries"] == 0 and response["backend"] == "anthropic"
    assert 0 < response["latency"] < 2


def test_params_and_dict_prompts_are_merged_and_unknown_sdk_fields_reach_the_api(
    fake_api: FakeMessagesAPI, make_llm: MakeLLM
) -> None:
    graph = TaskGraph()
    graph.add_task(LLMTask("dict_prompt", "keep", params={"model": "claude-haiku-4-5", "max_tokens": 50, "temperature": 0.2}))
    reg = {**REGISTRY, "dict_prompt": lambda ctx: {"system": "be brief", "messages": [{"role": "user", "content": "hi"}]}}
    graph.run(reg, llm=make_llm())
    # temperature is not an argument of this SDK's messages.create: it travels in extra_body
    assert fake_api.requests[0].body == {
        "model": "claude-haiku-4-5", "max_tokens": 50, "temperature": 0.2, "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_cache_token_usage_is_recorded(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    usage = {"input_tokens": 12, "output_tokens": 3, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 400}
    fake_api.reply = lambda body: {"content": [{"type": "text", "text": "hi"}], "usage": usage}
    graph, task = one_task()
    graph.run(REGISTRY, llm=make_llm())
    assert task.response is not None and task.response["usage"] == usage


def test_switching_default_model_calls_again_but_replay_does_not(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    graph, task = one_task()
    graph.run(REGISTRY, llm=make_llm(model="claude-haiku-4-5"))
    graph.run(REGISTRY, llm=make_llm(model="claude-haiku-4-5"))
    assert fake_api.count == 1
    graph.run(REGISTRY, llm=make_llm(model="claude-opus-5-5"))
    assert fake_api.count == 2 and [r.body["model"] for r in fake_api.requests] == ["claude-haiku-4-5", "claude-opus-5-5"]
    assert task.response is not None and task.response["model"] == "claude-opus-5-5"


def test_default_llm_uses_the_sdk_environment(fake_api: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_api.url)
    graph, task = one_task()
    assert graph.run(REGISTRY) == "echo: tell me about cats"
    assert fake_api.count == 1 and task.response is not None and task.response["backend"] == "anthropic"


def test_no_key_is_refused_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with pytest.raises(RunOptionsError, match="ANTHROPIC_API_KEY") as info:
        AnthropicLLM()
    assert isinstance(info.value, LLMTaskGraphError) and isinstance(info.value, ValueError)
    assert str(info.value) == (
        "AnthropicLLM needs an API key: set ANTHROPIC_API_KEY or pass `api_key=`; "
        "without one, run with the offline default (omit `llm=`) or `ScriptedLLM`"
    )


# -- the whole reply ----------------------------------------------------------------------------------
FULL_REPLY: dict[str, Any] = {
    "content": every_block_type(),
    "stop_reason": "pause_turn",
    "stop_details": {"type": "server_tool_pause", "explanation": "the search tool ran long"},
    "usage": full_usage(120, 45, cache_read=300, cache_write_5m=20, cache_write_1h=7, web_searches=1, thinking_tokens=30,
                        service_tier="priority", inference_geo="us"),
    "container": {"id": "container_01", "expires_at": "2026-05-01T12:00:00.000Z"},
    "context_management": {"applied_edits": []},
}


def test_every_block_and_field_is_recorded_as_sent(fake_api: FakeMessagesAPI, make_llm: MakeLLM, tmp_path: Path) -> None:
    fake_api.reply = lambda body: FULL_REPLY
    graph, task = one_task()
    graph.run(REGISTRY, llm=make_llm())
    sent = fake_api.requests[0]
    assert sent.reply is not None and task.response is not None
    response = task.response
    assert response["content"] == sent.reply["content"] == FULL_REPLY["content"]
    assert response["text"] == "The tallest is the Burj Khalifa." + FULL_REPLY["content"][5]["text"]
    assert response["usage"] == FULL_REPLY["usage"]
    assert (response["stop_reason"], response["stop_details"]) == ("pause_turn", FULL_REPLY["stop_details"])
    assert response["extra"] == {"container": FULL_REPLY["container"], "context_management": {"applied_edits": []}}
    assert response["id"] == sent.reply["id"] and response["request_id"] == sent.request_id
    assert "stop_sequence" not in response  # None is not written

    # Byte for byte: what must go back to the API unchanged, and what a reader quotes.
    def dumped(reply: dict[str, Any]) -> list[str]:
        return [json.dumps(b[k], ensure_ascii=False) for b in reply["content"]
                for k in ("signature", "data", "input", "citations", "encrypted_content", "content") if k in b]

    assert dumped(response) == dumped(FULL_REPLY) and len(dumped(response)) == 6

    # The trace keeps it all: save, load, replay with no call.
    graph.save(tmp_path / "trace.json")
    loaded = TaskGraph.load(tmp_path / "trace.json")
    assert loaded.tasks[str(task.id)].response == response
    loaded.run(REGISTRY, llm=make_llm())
    assert fake_api.count == 1


@pytest.mark.parametrize(("stop_reason", "stop_sequence"), [
    ("tool_use", None), ("max_tokens", None), ("refusal", None), ("pause_turn", None),
    ("model_context_window_exceeded", None), ("stop_sequence", "###"),
])
def test_stop_reasons_are_recorded(fake_api: FakeMessagesAPI, make_llm: MakeLLM, stop_reason: str,
                                   stop_sequence: str | None) -> None:
    fake_api.reply = lambda body: {"content": [{"type": "text", "text": "part"}], "stop_reason": stop_reason,
                                   "stop_sequence": stop_sequence}
    graph, task = one_task({"stop_sequences": ["###"]})
    graph.run(REGISTRY, llm=make_llm())
    assert task.response is not None and task.response["stop_reason"] == stop_reason
    assert task.response.get("stop_sequence") == stop_sequence


def test_a_reply_that_is_not_a_message_is_malformed(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    fake_api.reply = lambda body: {"content": "just text"}
    graph, task = one_task()
    run_failing(graph, make_llm())
    assert task.error is not None
    assert task.error.message.startswith("malformed reply: `content` is not a list of content blocks [request-id req_")


# -- faults that are retried and then succeed -------------------------------------------------------
@pytest.mark.parametrize(
    "fault",
    [
        Fault.rate_limit(retry_after=0.3),
        Fault.overloaded(retry_after=0.01),
        Fault.server_error(retry_after=0.01),
        Fault.drop(),
        Fault.slow(1.5),  # past the 0.5 s timeout below
    ],
    ids=["429", "529", "500", "dropped", "slow"],
)
def test_transient_fault_is_retried_and_counted(fake_api: FakeMessagesAPI, make_llm: MakeLLM, fault: Fault) -> None:
    fake_api.enqueue(fault)
    graph, task = one_task()
    out = graph.run(REGISTRY, llm=make_llm(timeout=0.5))
    assert out == "echo: tell me about cats"
    assert fake_api.count == 2
    assert task.response is not None and task.response["retries"] == 1
    assert graph.usage().retries == 1
    first, second = fake_api.requests
    if fault.status == 429:  # retry-after was honoured: the server saw the retry that much later
        assert first.finished is not None and second.started - first.finished >= 0.29


# -- faults that persist: the task fails with the status and the API's message ----------------------
@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault.rate_limit(retry_after=0.01), "429 rate_limit_error: Number of requests has exceeded your rate limit (after 2 retries)"),
        (Fault.overloaded(retry_after=0.01), "529 overloaded_error: Overloaded (after 2 retries)"),
        (Fault.server_error(retry_after=0.01), "500 api_error: Internal server error (after 2 retries)"),
    ],
    ids=["429", "529", "500"],
)
def test_persistent_status_error_fails_the_task_with_status_and_message(
    fake_api: FakeMessagesAPI, make_llm: MakeLLM, fault: Fault, expected: str
) -> None:
    fake_api.enqueue(fault, fault, fault)
    graph, task = one_task()
    error = run_failing(graph, make_llm(max_retries=2))
    assert fake_api.count == 3 and fake_api.status_counts[fault.status] == 3
    assert task.status == "failed" and task.error is not None
    assert task.error.type == "LLMCallError" and task.error.stage == "call"
    assert task.error.message.startswith(expected + " [request-id req_")
    assert f"`{task.id}`: LLMCallError in call: {expected}" in str(error)
    assert task.response is None


def test_persistent_timeout_and_dropped_connection(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    fake_api.enqueue(Fault.slow(1.0), Fault.slow(1.0))
    graph, task = one_task()
    run_failing(graph, make_llm(timeout=0.3, max_retries=1))
    assert fake_api.count == 2
    assert task.error is not None and task.error.message.startswith("timeout: no reply within 0.3 s (after 1 retry)")

    fake_api.reset()
    fake_api.enqueue(Fault.drop(), Fault.drop())
    run_failing(graph, make_llm(max_retries=1))
    assert fake_api.count == 2
    assert task.error is not None and task.error.message.startswith(f"connection error talking to {fake_api.url}")
    assert "(after 1 retry)" in task.error.message


def test_malformed_json_fails_without_retry(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    fake_api.enqueue(Fault.malformed())
    graph, task = one_task()
    run_failing(graph, make_llm())
    assert fake_api.count == 1
    assert task.error is not None and task.error.message.startswith("malformed reply: the API's answer is not valid JSON")
    # fixed server: the next run calls again and succeeds
    assert graph.run(REGISTRY, llm=make_llm()) == "echo: tell me about cats" and fake_api.count == 2


@pytest.mark.parametrize(("reply", "where", "why"), [
    ({"content": [{"type": "text", "text": "half \ud800 a pair"}]}, 'reply["content"][0]["text"]', "lone surrogate"),
    ({"content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"x": float("nan")}}]},
     'reply["content"][0]["input"]["x"]', "is nan"),
    ({"usage": {"input_tokens": 10**3950, "output_tokens": 1}}, 'reply["usage"]["input_tokens"]', "integer too long"),
    ({"model": float("nan")}, 'reply["model"]', "is nan"),
    ({"stop_reason": float("inf")}, 'reply["stop_reason"]', "is inf"),
    ({"model": "claude-\udfff"}, 'reply["model"]', "lone surrogate"),
])
def test_a_reply_a_trace_cannot_store_fails_the_call_stage(
        fake_api: FakeMessagesAPI, make_llm: MakeLLM, tmp_path: Path, reply: dict[str, Any], where: str, why: str) -> None:
    fake_api.reply = lambda body: reply
    graph, task = one_task()
    run_failing(graph, make_llm())
    assert task.status == "failed" and task.error is not None and task.error.stage == "call"
    assert task.error.type == "LLMCallError" and task.response is None
    assert task.error.message.startswith(f"malformed reply: `{where}`") and why in task.error.message
    assert "[request-id req_" in task.error.message
    graph.save(tmp_path / "trace.json")  # the failure is stored, and the trace loads
    assert TaskGraph.load(tmp_path / "trace.json").tasks[str(task.id)].error == task.error


def test_empty_content_gives_the_parser_an_empty_reply(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    fake_api.enqueue(Fault.empty())
    graph, task = one_task()
    assert graph.run(REGISTRY, llm=make_llm()) == ""
    assert fake_api.count == 1 and task.status == "done"
    assert task.response is not None and task.response["text"] == "" and task.response["stop_reason"] == "end_turn"


def test_unknown_param_shows_the_api_400_on_the_task(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    graph, task = one_task(params={"temprature": 0.5})
    run_failing(graph, make_llm())
    assert fake_api.count == 1  # a 400 is not retried
    assert task.error is not None
    assert task.error.message.startswith("400 invalid_request_error: temprature: Extra inputs are not permitted")


def test_wrong_key_is_reported_without_the_key(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    graph, task = one_task()
    run_failing(graph, make_llm(api_key="sk-ant-wrong-key-123"))
    assert fake_api.count == 1
    assert task.error is not None and task.error.message.startswith("401 authentication_error: invalid x-api-key")
    assert "sk-ant-wrong-key-123" not in task.error.message + task.error.traceback


def test_llm_call_error_carries_status_and_retries(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    fake_api.enqueue(Fault.rate_limit(0.01), Fault.rate_limit(0.01))
    llm = make_llm(max_retries=1)

    async def call() -> None:
        await llm.complete({"messages": [{"role": "user", "content": "hi"}]})

    import asyncio

    with pytest.raises(LLMCallError) as info:
        asyncio.run(call())
    assert (info.value.status, info.value.error_type, info.value.retries) == (429, "rate_limit_error", 1)
    assert info.value.request_id is not None and info.value.request_id.startswith("req_")


# -- concurrency ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("limit", "tasks"), [(5, 30), (None, 40)], ids=["limit-5", "default-16"])
def test_concurrent_calls_never_exceed_the_limit(
    fake_api: FakeMessagesAPI, make_llm: MakeLLM, limit: int | None, tasks: int
) -> None:
    fake_api.latency = 0.1
    graph = fan_out(tasks)
    graph.graph_input = "dogs"
    options = {} if limit is None else {"max_concurrency": limit}
    graph.run(REGISTRY, llm=make_llm(), **options)
    expected = limit or 16
    assert fake_api.count == tasks
    # every slot was used, none more: the server saw exactly `expected` requests at once
    assert fake_api.max_in_flight == expected


def test_server_serves_150_concurrent_calls(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    # Each reply takes long enough (the client spends a few ms of CPU per request even on a quiet
    # machine) that every request is sent before the first one is answered.
    fake_api.latency = 2.5
    graph = fan_out(150)
    graph.graph_input = "owls"
    graph.run(REGISTRY, llm=make_llm(timeout=10.0), max_concurrency=150)
    assert fake_api.count == 150 and fake_api.status_counts[200] == 150
    assert fake_api.max_in_flight == 150


# -- bad input --------------------------------------------------------------------------------------------
def test_parser_error_keeps_the_reply_so_fixing_the_parser_costs_no_call(
    fake_api: FakeMessagesAPI, make_llm: MakeLLM
) -> None:
    def strict(ctx: Any, text: str) -> dict[str, Any]:
        return dict(json.loads(text))

    graph = TaskGraph()
    task = graph.add_task(LLMTask("ask", "parse"))
    with pytest.raises(TaskGraphError):
        graph.run({**REGISTRY, "parse": strict}, llm=make_llm())
    assert fake_api.count == 1
    assert task.status == "failed" and task.error is not None and task.error.stage == "parse"
    assert task.response is not None and task.response["text"] == "echo: tell me about cats"

    out = graph.run({**REGISTRY, "parse": lambda ctx, text: {"said": text}}, llm=make_llm())
    assert out == {"said": "echo: tell me about cats"}
    assert fake_api.count == 1  # no new request


@pytest.mark.parametrize(
    ("prompt", "got"),
    [(42, "got int 42"), (None, "got None (does the formatter `return` its prompt?)"), ({"system": "x"}, "`messages` key")],
)
def test_formatter_returning_a_non_prompt_names_the_task_and_the_value(
    fake_api: FakeMessagesAPI, make_llm: MakeLLM, prompt: Any, got: str
) -> None:
    graph = TaskGraph()
    task = graph.add_task(LLMTask("bad", "keep", id="summarize"))
    with pytest.raises(TaskGraphError):
        graph.run({**REGISTRY, "bad": lambda ctx: prompt}, llm=make_llm())
    assert fake_api.count == 0
    assert task.error is not None and task.error.stage == "format"
    assert task.error.message.startswith("formatter `bad` of task `summarize`: ")
    assert got in task.error.message


# -- fresh samples ----------------------------------------------------------------------------------------
def test_fresh_samples_call_again_and_replay_does_not(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    graph = fan_out(3)
    graph.graph_input = "bees"
    llm = make_llm()
    graph.run(REGISTRY, llm=llm)
    assert fake_api.count == 3
    graph.run(REGISTRY, llm=llm)
    assert fake_api.count == 3  # replay: no call

    task = graph.tasks["q1"]
    assert isinstance(task, LLMTask)
    task.resample()
    graph.run(REGISTRY, llm=llm)
    assert fake_api.count == 4
    graph.resample(["q0"])
    graph.run(REGISTRY, llm=llm)
    assert fake_api.count == 5
    graph.run(REGISTRY, llm=llm, resample=["q2"])
    assert fake_api.count == 6
    graph.run(REGISTRY, llm=llm, resample=True)
    assert fake_api.count == 9
    graph.run(REGISTRY, llm=llm)
    assert fake_api.count == 9
    assert sorted(t.sample for t in graph.tasks.values() if isinstance(t, LLMTask)) == [2, 2, 2]
    # the sample number is ours, not the API's: every request sent was the same body
    assert len({json.dumps(b, sort_keys=True) for b in fake_api.bodies()}) == 1


def test_sample_number_is_part_of_the_call_fingerprint(fake_api: FakeMessagesAPI, make_llm: MakeLLM) -> None:
    graph = TaskGraph()
    graph.add_task(LLMTask("ask", "keep", sample=0, id="a"))
    graph.add_task(LLMTask("ask", "keep", sample=1, id="b"))
    graph.run(REGISTRY, llm=make_llm())
    assert fake_api.count == 2  # same request, different samples: two calls


# -- the key never leaks -----------------------------------------------------------------------------------
def test_api_key_never_appears_in_trace_errors_reprs_or_rendering(
    fake_api: FakeMessagesAPI, make_llm: MakeLLM, tmp_path: Path
) -> None:
    sub = TaskGraph()
    sub.add_task(LLMTask("ask", "keep", params={"max_tokens": 7}, id="inner"))
    graph = TaskGraph(graph_input="x")
    graph.add_task(LLMTask("ask", "keep", id="ok"))
    graph.add_task(LLMTask("ask", "keep", params={"temprature": 1}, id="bad_param"))
    graph.add_task(TaskGraphTask(sub, "topic", id="sub"))
    # the inner task is rate limited on every attempt: it retries once, then fails
    fake_api.fault_fn = lambda n, body: Fault.rate_limit(0.01) if body.get("max_tokens") == 7 else None
    llm = make_llm(max_retries=1)
    error = run_failing(graph, llm, cache=tmp_path / "cache")

    seen: list[str] = [str(error), repr(error), repr(llm), llm.kind, repr(graph), json.dumps(graph.to_json())]
    seen += [p.read_text() for p in (tmp_path / "cache").glob("*/*.json")]
    for g in (graph, sub):
        seen.append(json.dumps(g._repr_mimebundle_()))
        for task in g.tasks.values():
            seen += [repr(task), json.dumps(task._repr_mimebundle_())]
            if task.error is not None:
                seen += [task.error.message, task.error.traceback]
    assert sum(t.error is not None for t in [*graph.tasks.values(), *sub.tasks.values()]) >= 2
    text = "\n".join(seen)
    assert "429 rate_limit_error" in text and "400 invalid_request_error" in text
    assert TEST_API_KEY not in text
    assert TEST_API_KEY[-12:] not in text
