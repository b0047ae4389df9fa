"""OpenTelemetry export of a trace, saved or live, following the GenAI semantic conventions.

The run is the root span; a sub-graph task is a span holding its tasks' spans; every task that ran
is a span with the real start and end times the trace recorded; a task's LLM call is a child span
named ``chat {model}`` (kind CLIENT) with the ``gen_ai.*`` attributes: operation, provider, request
model and ``max_tokens``, response id and model, finish reasons, input/output/cache token usage,
and the cost in dollars. Plain tasks are INTERNAL spans. Dependencies become span links, so a
trace viewer can follow the graph. A failed task's span has status ERROR and ``error.type``.

Prompts and replies are exported only when asked (``include_content=True``): they may hold data
that must not leave the machine. The attribute names live in :data:`ATTRIBUTES`, in this one
place, because the GenAI conventions are still moving between releases.

Needs the ``otel`` extra (``pip install "llmtaskgraph[otel]"``: ``opentelemetry-sdk`` and the
OTLP/HTTP exporter), imported only when an export starts. Any OTLP/HTTP receiver works: Jaeger,
Arize Phoenix and Langfuse all listen on port 4318 (``/v1/traces``)::

    from llmtaskgraph.trace.otel import export_trace, OTelExporter
    export_trace(graph, "http://127.0.0.1:4318")              # a saved trace
    graph.run(registry, on_event=OTelExporter("http://127.0.0.1:4318"))   # live, as the run goes
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..llm.prices import cost_of
from ..model.tasks import PATH_SEP, Task, TaskGraphTask
from .usage import seconds

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from ..model.graph import TaskGraph
    from ..run.state import RunEvent

__all__ = ["ATTRIBUTES", "OTelExporter", "export_trace", "span_attributes"]

ATTRIBUTES: dict[str, str] = {
    # GenAI semantic conventions (development status; names as of semantic-conventions 1.37)
    "operation": "gen_ai.operation.name",
    "provider": "gen_ai.provider.name",
    "request_model": "gen_ai.request.model",
    "request_max_tokens": "gen_ai.request.max_tokens",
    "request_temperature": "gen_ai.request.temperature",
    "response_id": "gen_ai.response.id",
    "response_model": "gen_ai.response.model",
    "finish_reasons": "gen_ai.response.finish_reasons",
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "cache_read_tokens": "gen_ai.usage.cache_read.input_tokens",
    "cache_creation_tokens": "gen_ai.usage.cache_creation.input_tokens",
    "cost": "gen_ai.usage.cost",  # not in the conventions yet; the name Langfuse reads
    "input_messages": "gen_ai.input.messages",
    "system_instructions": "gen_ai.system_instructions",
    "output_messages": "gen_ai.output.messages",
    "error_type": "error.type",
    # llmtaskgraph's own
    "task_path": "llmtaskgraph.task.path",
    "task_type": "llmtaskgraph.task.type",
    "task_status": "llmtaskgraph.task.status",
    "task_created_by": "llmtaskgraph.task.created_by",
    "cached": "llmtaskgraph.llm.cached",
    "backend": "llmtaskgraph.llm.backend",
    "retries": "llmtaskgraph.llm.retries",
    "service_tier": "llmtaskgraph.llm.service_tier",
    "run_tasks": "llmtaskgraph.run.tasks",
    "run_cost": "llmtaskgraph.run.cost",
}
"""Our name -> the exported attribute name. Edit an entry to follow a newer convention release."""

PROVIDER = "anthropic"
_NS = 1_000_000_000


def _ns(value: Any) -> int | None:
    t = seconds(value)
    return None if t is None else int(t * _NS)


def span_attributes(task: Task, path: str, include_content: bool = False) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(attributes of the task's span, attributes of its ``chat`` span or None when it holds no reply)."""
    a = ATTRIBUTES
    rec = task.record
    own: dict[str, Any] = {a["task_path"]: path, a["task_type"]: task.type, a["task_status"]: rec.status}
    if task.created_by is not None:
        own[a["task_created_by"]] = task.created_by
    if rec.error is not None:
        own[a["error_type"]] = rec.error.type
    response = rec.response
    if not (isinstance(response, dict) and response.get("backend")):
        return own, None
    params = getattr(task, "params", None) or {}
    raw_usage = response.get("usage")
    usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    request_model = params.get("model") or response.get("model")
    chat: dict[str, Any] = {
        a["operation"]: "chat", a["provider"]: PROVIDER, a["backend"]: str(response.get("backend")),
        a["task_path"]: path,
    }
    for key, value in (("request_model", request_model), ("response_model", response.get("model")),
                       ("response_id", response.get("id")), ("request_max_tokens", params.get("max_tokens")),
                       ("request_temperature", params.get("temperature")), ("service_tier", usage.get("service_tier"))):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            chat[a[key]] = value
    if isinstance(response.get("stop_reason"), str):
        chat[a["finish_reasons"]] = [response["stop_reason"]]
    for key, field in (("input_tokens", "input_tokens"), ("output_tokens", "output_tokens"),
                       ("cache_read_tokens", "cache_read_input_tokens"),
                       ("cache_creation_tokens", "cache_creation_input_tokens")):
        value = usage.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() < 63:
            chat[a[key]] = value
    dollars = cost_of(response)
    if dollars is not None:
        chat[a["cost"]] = dollars
    chat[a["cached"]] = bool(response.get("cached"))
    if isinstance(response.get("retries"), int):
        chat[a["retries"]] = response["retries"]
    if include_content:
        chat.update(_content(rec.prompt, params, response))
    return own, chat


def _content(prompt: Any, params: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """The prompt and reply as the conventions' JSON messages (``parts`` of type ``text``)."""
    a = ATTRIBUTES
    from ..llm.base import build_request

    out: dict[str, Any] = {}
    try:
        request = build_request(prompt, params)
    except Exception:
        request = {"messages": []}
    messages = [{"role": m.get("role"), "parts": _parts(m.get("content"))} for m in request.get("messages", [])]
    out[a["input_messages"]] = json.dumps(messages, ensure_ascii=False)
    if request.get("system"):
        out[a["system_instructions"]] = json.dumps(_parts(request["system"]), ensure_ascii=False)
    reply = [{"role": "assistant", "parts": _parts(response.get("content") or response.get("text", "")),
              "finish_reason": response.get("stop_reason")}]
    out[a["output_messages"]] = json.dumps(reply, ensure_ascii=False)
    return out


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts = []
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append({"type": "text", "content": block.get("text", "")})
        elif isinstance(block, dict):
            parts.append({"type": str(block.get("type")), "content": json.dumps(block, ensure_ascii=False)})
    return parts


class _Builder:
    """Makes the spans of tasks, nested by path, with the SDK's tracer."""

    def __init__(self, tracer: Tracer, include_content: bool) -> None:
        self.tracer = tracer
        self.include_content = include_content
        self.contexts: dict[str, Any] = {}
        """Path -> span context of the task's span (for links from its dependents)."""

    def start_root(self, name: str, start: int | None) -> Span:
        return self.tracer.start_span(name, start_time=start)

    def start_task(self, task: Task, path: str, parent: Span, prefix: str) -> Span:
        from opentelemetry import trace
        from opentelemetry.trace import Link, SpanKind

        own, _ = span_attributes(task, path, self.include_content)
        links = [Link(ctx) for dep in dict.fromkeys(task.all_deps()) if (ctx := self.contexts.get(prefix + dep)) is not None]
        name = f"subgraph {task.id}" if isinstance(task, TaskGraphTask) else f"task {task.id}"
        span = self.tracer.start_span(name, context=trace.set_span_in_context(parent), kind=SpanKind.INTERNAL,
                                      attributes=own, links=links, start_time=_ns(task.record.started_at))
        self.contexts[path] = span.get_span_context()
        return span

    def end_task(self, task: Task, path: str, span: Span, call: tuple[int | None, int | None] | None = None) -> None:
        """End the task's span, after adding its ``chat`` span (between ``call`` times if known, else the
        reply's latency before the task's end)."""
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        rec = task.record
        end = _ns(rec.finished_at)
        _, chat = span_attributes(task, path, self.include_content)
        if chat is not None:
            model = chat.get(ATTRIBUTES["request_model"]) or "unknown"
            start, stop = call if call is not None else (None, None)
            if stop is None:
                stop = end
            if start is None and stop is not None:
                latency = seconds((rec.response or {}).get("latency")) or 0.0
                begin = _ns(rec.started_at)
                start = max(stop - int(latency * _NS), begin if begin is not None else stop - int(latency * _NS))
            llm = self.tracer.start_span(f"chat {model}", context=trace.set_span_in_context(span), kind=SpanKind.CLIENT,
                                         attributes=chat, start_time=start)
            llm.end(end_time=stop)
        if rec.status == "failed" and rec.error is not None:
            span.set_status(Status(StatusCode.ERROR, f"{rec.error.type}: {rec.error.message}"[:500]))
        span.end(end_time=end)


def _provider(endpoint: str | None, exporter: SpanExporter | None, service_name: str, headers: dict[str, str] | None,
              timeout: float) -> TracerProvider:
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:  # pragma: no cover - the extra is part of dev
        raise ImportError('OpenTelemetry export needs `pip install "llmtaskgraph[otel]"`') from exc
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        if endpoint is None:
            raise ValueError("give the OTLP/HTTP endpoint (e.g. http://127.0.0.1:4318) or an exporter")
        url = endpoint if endpoint.rstrip("/").endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"
        exporter = OTLPSpanExporter(endpoint=url, headers=headers, timeout=timeout)
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def export_trace(
    graph: TaskGraph, endpoint: str | None = None, *, exporter: SpanExporter | None = None, include_content: bool = False,
    service_name: str = "llmtaskgraph", headers: dict[str, str] | None = None, timeout: float = 10.0,
    name: str = "llmtaskgraph run",
) -> int:
    """Send ``graph``'s trace as spans to an OTLP/HTTP ``endpoint`` (or any SDK ``exporter``); returns how many.

    Tasks that never ran (no start time) have no span.
    """
    provider = _provider(endpoint, exporter, service_name, headers, timeout)
    tracer = provider.get_tracer("llmtaskgraph")
    builder = _Builder(tracer, include_content)
    tasks = [(p, t) for p, t, _ in graph.walk() if _ns(t.record.started_at) is not None]
    starts = [s for _, t in tasks if (s := _ns(t.record.started_at)) is not None]
    ends = [e for _, t in tasks if (e := _ns(t.record.finished_at)) is not None]
    root = builder.start_root(name, min(starts) if starts else None)
    from .usage import graph_usage

    usage = graph_usage(graph)
    root.set_attribute(ATTRIBUTES["run_tasks"], len(tasks))
    root.set_attribute(ATTRIBUTES["run_cost"], usage.cost)
    count = 1 + _export_graph(builder, graph, "", root)
    root.end(end_time=max(ends) if ends else None)
    provider.force_flush()
    provider.shutdown()
    return count


def _export_graph(builder: _Builder, graph: TaskGraph, prefix: str, parent: Span) -> int:
    count = 0
    for tid, task in graph.tasks.items():
        if _ns(task.record.started_at) is None:
            continue
        path = prefix + tid
        span = builder.start_task(task, path, parent, prefix)
        count += 1 + (task.record.response is not None and bool((task.record.response or {}).get("backend")))
        if isinstance(task, TaskGraphTask):
            count += _export_graph(builder, task.subgraph, path + PATH_SEP, span)
        builder.end_task(task, path, span)
    return count


class OTelExporter:
    """A run listener that exports spans as the run goes: ``graph.run(registry, on_event=OTelExporter(url))``.

    Each task's span is sent when the task ends (a sub-graph's is opened when it starts, so its
    tasks nest in it); the root span ends, and everything is flushed, when the run finishes. One
    exporter serves one run at a time; make another for another run.
    """

    def __init__(self, endpoint: str | None = None, *, exporter: SpanExporter | None = None, include_content: bool = False,
                 service_name: str = "llmtaskgraph", headers: dict[str, str] | None = None, timeout: float = 10.0,
                 name: str = "llmtaskgraph run") -> None:
        self._provider = _provider(endpoint, exporter, service_name, headers, timeout)
        self._builder = _Builder(self._provider.get_tracer("llmtaskgraph"), include_content)
        self.name = name
        self._root: Span | None = None
        self._open: dict[str, Span] = {}
        self._calls: dict[str, list[int | None]] = {}
        self._tasks = 0

    def __call__(self, event: RunEvent) -> None:
        self.on_event(event)

    def on_event(self, event: RunEvent) -> None:
        kind, path, task = event.kind, event.path, event.task
        when = int(event.time * _NS)
        if self._root is None:
            self._root = self._builder.start_root(self.name, when)
        if kind == "run_finished":
            for path_open, span in list(self._open.items()):  # sub-graphs a bound stopped inside: end them here
                span.end(end_time=when)
                del self._open[path_open]
            self._root.set_attribute(ATTRIBUTES["run_tasks"], self._tasks)
            self._root.end(end_time=when)
            self._root = None
            self._provider.force_flush()
            return
        if task is None:
            return
        if kind == "llm_started":
            self._calls[path] = [when, None]
        elif kind == "llm_finished" and path in self._calls:
            self._calls[path][1] = when
        elif kind == "task_started" and isinstance(task, TaskGraphTask):
            self._open[path] = self._builder.start_task(task, path, self._parent(path), _prefix(path))
        elif kind in ("task_finished", "task_failed"):
            span = self._open.pop(path) if path in self._open else self._builder.start_task(task, path, self._parent(path), _prefix(path))
            call = self._calls.pop(path, None)
            self._builder.end_task(task, path, span, None if call is None else (call[0], call[1]))
            self._tasks += 1

    def _parent(self, path: str) -> Span:
        head, sep, _ = path.rpartition(PATH_SEP)
        parent = self._open.get(head) if sep else None
        assert self._root is not None
        return parent or self._root

    def shutdown(self) -> None:
        """Flush what is left and stop the exporter (call when done with it)."""
        self._provider.shutdown()


def _prefix(path: str) -> str:
    head, sep, _ = path.rpartition(PATH_SEP)
    return head + sep

