"""OpenTelemetry export with the real SDK and OTLP/HTTP exporter, received by a loopback receiver that decodes the
protobuf: the span tree (run > tasks > sub-graph tasks, each LLM call a CLIENT `chat {model}` span), GenAI
attributes with cost, real times from the trace, dependency links, errors, content only when asked; the same
from a live run (``on_event``) and from the CLI (``llmtaskgraph export``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_messages_api import FakeMessagesAPI
from otlp_receiver import OTLPReceiver, ReceivedSpan

from llmtaskgraph import LLMTask, PythonTask, TaskGraph, TaskGraphError, TaskGraphTask
from llmtaskgraph.cli import main
from llmtaskgraph.llm import AnthropicLLM
from llmtaskgraph.llm.prices import cost_of
from llmtaskgraph.trace.otel import ATTRIBUTES, OTelExporter, export_trace


def fail(ctx: Any) -> None:
    raise ValueError("no luck")


REGISTRY: dict[str, Callable[..., Any]] = {
    "load": lambda ctx: "the data",
    "ask": lambda ctx, data: {"system": "be brief", "messages": [{"role": "user", "content": f"about {data}"}]},
    "keep": lambda ctx, text: text,
    "sub_in": lambda ctx, data: data,
    "inner": lambda ctx: f"inner {ctx.graph_input}",
    "boom": fail,
}


def build() -> TaskGraph:
    sub = TaskGraph()
    sub.add_task(LLMTask("inner", "keep", params={"model": "claude-haiku-4-5"}, id="inner"))
    graph = TaskGraph()
    load = graph.add_task(PythonTask("load", id="load"))
    graph.add_task(LLMTask("ask", "keep", load, params={"model": "claude-sonnet-5-5", "max_tokens": 50}, id="ask"))
    graph.add_task(TaskGraphTask(sub, "sub_in", load, id="sub"))
    graph.add_task(PythonTask("boom", id="boom"))
    return graph


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as r:
        yield r


@pytest.fixture
def ran(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> TaskGraph:
    graph = build()
    with pytest.raises(TaskGraphError):
        graph.run(REGISTRY, llm=make_llm())
    return graph


def ns(t: float | None) -> int:
    assert t is not None
    return int(t * 1_000_000_000)


def check_tree(spans: dict[str, ReceivedSpan], graph: TaskGraph, exact_times: bool = True) -> None:
    root = spans["llmtaskgraph run"]
    assert root.parent_id == "" and len({s.trace_id for s in spans.values()}) == 1
    parent = {name: next((p for p, s in spans.items() if s.span_id == span.parent_id), None) for name, span in spans.items()}
    assert parent == {
        "llmtaskgraph run": None, "task load": "llmtaskgraph run", "task ask": "llmtaskgraph run",
        "chat claude-sonnet-5-5": "task ask", "subgraph sub": "llmtaskgraph run", "task inner": "subgraph sub",
        "chat claude-haiku-4-5": "task inner", "task boom": "llmtaskgraph run",
    }
    kinds = {name: s.kind for name, s in spans.items()}
    assert kinds.pop("chat claude-sonnet-5-5") == kinds.pop("chat claude-haiku-4-5") == "SPAN_KIND_CLIENT"
    assert set(kinds.values()) == {"SPAN_KIND_INTERNAL"}
    for path, name in (("load", "task load"), ("ask", "task ask"), ("sub", "subgraph sub"), ("sub > inner", "task inner"),
                       ("boom", "task boom")):
        rec = graph.find(path).record
        span = spans[name]
        if exact_times:
            assert (span.start, span.end) == (ns(rec.started_at), ns(rec.finished_at)), name
        assert span.attributes[ATTRIBUTES["task_path"]] == path
        assert root.start <= span.start <= span.end <= root.end
    for chat, task in (("chat claude-sonnet-5-5", "task ask"), ("chat claude-haiku-4-5", "task inner")):
        assert spans[task].start <= spans[chat].start <= spans[chat].end <= spans[task].end
    # dependencies are links: `ask` and `sub` read `load`
    assert spans["task ask"].links == [spans["task load"].span_id] == spans["subgraph sub"].links
    boom = spans["task boom"]
    assert boom.status == "STATUS_CODE_ERROR" and boom.status_message == "ValueError: no luck"
    assert boom.attributes["error.type"] == "ValueError"


def test_a_saved_trace_exports_as_a_span_tree_with_genai_attributes(
        ran: TaskGraph, receiver: OTLPReceiver, tmp_path: Path) -> None:
    ran.save(tmp_path / "trace.json")
    graph = TaskGraph.load(tmp_path / "trace.json")
    assert export_trace(graph, receiver.url) == 8
    spans = receiver.by_name()
    assert len(receiver.spans) == 8 and spans["llmtaskgraph run"].resource["service.name"] == "llmtaskgraph"
    check_tree(spans, graph)
    reply = graph.tasks["ask"].response
    assert reply is not None
    chat = spans["chat claude-sonnet-5-5"].attributes
    assert chat["gen_ai.operation.name"] == "chat" and chat["gen_ai.provider.name"] == "anthropic"
    assert chat["gen_ai.request.model"] == chat["gen_ai.response.model"] == "claude-sonnet-5-5"
    assert chat["gen_ai.request.max_tokens"] == 50 and chat["gen_ai.response.id"] == reply["id"]
    assert chat["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert chat["gen_ai.usage.input_tokens"] == reply["usage"]["input_tokens"]
    assert chat["gen_ai.usage.output_tokens"] == reply["usage"]["output_tokens"]
    assert chat["gen_ai.usage.cost"] == pytest.approx(cost_of(reply)) and chat["gen_ai.usage.cost"] > 0
    assert chat["llmtaskgraph.llm.cached"] is False
    assert spans["llmtaskgraph run"].attributes["llmtaskgraph.run.cost"] == pytest.approx(graph.usage().cost)
    # the call took the reply's latency, at the end of its task
    assert spans["chat claude-sonnet-5-5"].end == spans["task ask"].end
    assert not any(k.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.system")) for s in receiver.spans for k in s.attributes)


def test_prompts_and_replies_are_exported_only_when_asked(ran: TaskGraph, receiver: OTLPReceiver) -> None:
    export_trace(ran, receiver.url, include_content=True, service_name="my-app")
    chat = receiver.by_name()["chat claude-sonnet-5-5"].attributes
    assert json.loads(chat["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "about the data"}]}]
    assert json.loads(chat["gen_ai.system_instructions"]) == [{"type": "text", "content": "be brief"}]
    assert json.loads(chat["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "echo: about the data"}], "finish_reason": "end_turn"}]
    assert receiver.spans[0].resource["service.name"] == "my-app"


def test_a_live_run_exports_as_it_goes(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM],
                                       receiver: OTLPReceiver) -> None:
    graph = build()
    exporter = OTelExporter(receiver.url)
    with pytest.raises(TaskGraphError):
        graph.run(REGISTRY, llm=make_llm(), on_event=exporter)
    exporter.shutdown()
    spans = receiver.by_name()
    assert len(receiver.spans) == 8
    check_tree(spans, graph)
    chat, task = spans["chat claude-sonnet-5-5"], spans["task ask"]
    assert task.start < chat.start <= chat.end < task.end  # the call's own times, seen as it happened


def test_the_cli_exports_a_trace(ran: TaskGraph, receiver: OTLPReceiver, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    ran.save(tmp_path / "trace.json")
    assert main(["export", str(tmp_path / "trace.json"), "--otlp", receiver.url]) == 0
    assert len(receiver.spans) == 8
    assert f"8 spans sent to {receiver.url}" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.json"), "--otlp", receiver.url]) == 2
