"""A loopback OTLP/HTTP receiver: ``POST /v1/traces`` with protobuf bodies, decoded with ``opentelemetry-proto``.

Tests point the real OTLP exporter at it (``endpoint=receiver.url``) and read back what arrived::

    with OTLPReceiver() as receiver:
        export_trace(graph, receiver.url)
        spans = receiver.spans          # [ReceivedSpan(name, trace_id, span_id, parent_id, kind, start, end, ...)]
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass
class ReceivedSpan:
    """One span as decoded from the protobuf request."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    """Hex id of the parent span; empty for a root span."""
    kind: str
    """``SPAN_KIND_INTERNAL``, ``SPAN_KIND_CLIENT``, ..."""
    start: int
    """Unix nanoseconds."""
    end: int
    attributes: dict[str, Any]
    status: str
    """``STATUS_CODE_UNSET``, ``STATUS_CODE_OK`` or ``STATUS_CODE_ERROR``."""
    status_message: str
    links: list[str]
    """Hex span ids the span links to."""
    resource: dict[str, Any] = field(default_factory=dict)


def value_of(value: AnyValue) -> Any:
    """A decoded OTLP ``AnyValue``."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in value.kvlist_value.values}
    return None if kind is None else getattr(value, kind)


class OTLPReceiver:
    """The receiver; use as a context manager. ``spans`` holds every span received, ``requests`` counts posts."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> OTLPReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    data = gzip.decompress(data)
                if self.path != "/v1/traces" or self.headers.get("content-type") != "application/x-protobuf":
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(data)
                receiver._take(request)
                body = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _take(self, request: ExportTraceServiceRequest) -> None:
        from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

        spans = []
        for resource_spans in request.resource_spans:
            resource = {kv.key: value_of(kv.value) for kv in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    spans.append(ReceivedSpan(
                        name=s.name, trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_id=s.parent_span_id.hex(),
                        kind=Span.SpanKind.Name(s.kind), start=s.start_time_unix_nano, end=s.end_time_unix_nano,
                        attributes={kv.key: value_of(kv.value) for kv in s.attributes},
                        status=Status.StatusCode.Name(s.status.code), status_message=s.status.message,
                        links=[link.span_id.hex() for link in s.links], resource=resource,
                    ))
        with self._lock:
            self.requests += 1
            self.spans.extend(spans)

    def by_name(self) -> dict[str, ReceivedSpan]:
        """Span name -> span (names must be unique in the test's trace)."""
        return {s.name: s for s in self.spans}
