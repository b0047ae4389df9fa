"""A real HTTP server on 127.0.0.1 that speaks the Anthropic Messages API.

Tests point the real ``anthropic`` SDK at it (``base_url=api.url``), so retries, timeouts, streaming
and error parsing are the SDK's own; nothing is patched. Use it as a context manager or through the
``fake_api`` fixture in ``conftest.py``::

    with FakeMessagesAPI(latency=0.1) as api:
        llm = AnthropicLLM(api_key="sk-test", base_url=api.url)
        api.enqueue(Fault.rate_limit(retry_after=0.05))   # the next request gets a 429
        ...
        assert api.count == 2 and api.max_in_flight <= 16

Replies
    ``reply`` is a function of the decoded request body. It returns the reply text (``str``), a list
    of content blocks, or a dict merged over the default message (``{"content": [...],
    "stop_reason": "tool_use", "usage": ..., "stop_details": ..., "container": ...}``). Block
    builders live in :mod:`fake_content` (``tool_use``, ``thinking`` with a signature this server
    verifies, ``redacted_thinking``, ``text`` with ``citation``\\ s, ``server_tool_use``,
    ``web_search_result``) and :func:`fake_content.full_usage` builds usage with cache and server
    tool details. The default reply, :func:`default_reply`, echoes the last user message as
    ``echo: <text>``, or, when the request asks for structured output
    (``output_config.format.type == "json_schema"``), is a JSON document valid for the schema.

Streaming
    A request with ``stream: true`` is answered with server-sent events, exactly the event sequence
    of the streaming API (see :mod:`fake_sse`), sent with chunked transfer encoding; the same reply
    function serves both, so a streamed reply reassembles to the non-streamed one.

Validation
    As the API does: unknown top-level fields, a missing ``model``, ``max_tokens`` or ``messages``,
    a thinking budget not below ``max_tokens``, or a missing key give a 400/401 with the API's JSON
    error body. Tool loops and thinking are held to the API's rules
    (:func:`fake_content.check_conversation`): a ``tool_result`` must answer a ``tool_use`` of the
    previous assistant turn, and thinking blocks must come back exactly as this server issued them.

Faults (see :class:`Fault`)
    ``enqueue(*faults)`` makes the next requests fail in order (``None`` in the queue means a
    normal reply). ``fault_fn(n, body) -> Fault | None`` decides for every request not served from
    the queue, e.g. :func:`random_faults` for a seeded mix. Each fault kind is a classmethod:
    ``rate_limit`` (429 + ``retry-after``), ``overloaded`` (529), ``server_error`` (500),
    ``bad_request`` (400), ``slow`` (replies after a delay), ``drop`` (closes the connection with no
    reply), ``malformed`` (200 with a body that is not JSON), ``empty`` (200 with no content blocks),
    ``trickle`` (the reply's bytes dribbled slowly), and for streams ``cut`` (connection closed
    mid-reply), ``stream_error`` (an ``error`` event mid-reply) and ``truncated`` (the stream ends
    cleanly but without ``message_stop``).

Latency
    ``latency`` is seconds per request, or a function ``(n, body) -> seconds``.

Observations
    ``requests`` (every :class:`Received` request, in arrival order), ``count`` (requests to
    ``POST /v1/messages``), ``in_flight``, ``max_in_flight``, ``status_counts``; ``reset()`` clears
    them between phases of a test.

Extra endpoints (the routing hook)
    ``routes`` maps a path prefix to a handler ``(exchange: Exchange) -> None``; the longest prefix
    that matches a request's path (the whole path, or up to a ``/``) serves it, for any method
    (``GET``, ``POST``, ``DELETE``). ``/v1/messages`` is itself such a route. A handler reads
    ``exchange.method``, ``.path``, ``.query``, ``.body``, ``.headers`` and answers once with
    ``exchange.send_json(status, payload)``, ``.send_error(status, type, message)`` or
    ``.send_bytes(...)``; ``api.answer(body)`` gives the ``(status, JSON)`` a ``POST /v1/messages``
    with that body would get (validation and the reply function, no faults), e.g. for a Message
    Batches route::

        api = FakeMessagesAPI(routes={"/v1/messages/batches": batches_handler})

    Latency, the key check and the queued/``fault_fn`` faults of kinds ``status``, ``slow`` and
    ``drop`` apply to every route before its handler runs.

A ``ThreadingHTTPServer`` with a deep listen backlog serves hundreds of concurrent connections.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from fake_content import check_conversation, example_for_schema, output_schema
from fake_sse import encode, error_event, message_events

#: Top-level request fields the fake accepts; anything else is rejected like the real API does.
KNOWN_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "temperature", "top_p", "top_k", "stop_sequences",
    "metadata", "stream", "tools", "tool_choice", "thinking", "service_tier", "container",
    "output_config", "cache_control", "inference_geo", "speed", "diagnostics", "user_profile_id", "workspace_id",
    "context_management", "mcp_servers",
})

Reply = Callable[[dict[str, Any]], "str | list[dict[str, Any]] | dict[str, Any]"]
Latency = Callable[[int, Any], float]
Route = Callable[["Exchange"], None]


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour for one request. Build it with the classmethods."""

    kind: str
    """``status``, ``slow``, ``drop``, ``malformed``, ``empty``, ``trickle``, ``cut``, ``stream_error``
    or ``truncated``."""
    status: int = 200
    """HTTP status of the reply (for ``status`` faults)."""
    error_type: str = ""
    """``error.type`` in the JSON error body (or ``error`` event), e.g. ``rate_limit_error``."""
    message: str = ""
    """``error.message`` in the JSON error body (or ``error`` event)."""
    delay: float = 0.0
    """Extra seconds before replying (``slow``); seconds between bytes (``trickle``)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra response headers, e.g. ``{"x-should-retry": "false"}``."""
    after: int = 0
    """Stream faults: how many events are sent before the fault."""

    @classmethod
    def rate_limit(cls, retry_after: float = 0.05, message: str = "Number of requests has exceeded your rate limit") -> Fault:
        """429 ``rate_limit_error`` asking the client to wait ``retry_after`` seconds."""
        return cls("status", 429, "rate_limit_error", message, headers=_retry_after(retry_after))

    @classmethod
    def overloaded(cls, message: str = "Overloaded", retry_after: float | None = None) -> Fault:
        """529 ``overloaded_error``: the API is busy; clients retry (after ``retry_after`` s if given)."""
        return cls("status", 529, "overloaded_error", message, headers=_retry_after(retry_after))

    @classmethod
    def server_error(cls, message: str = "Internal server error", retry_after: float | None = None) -> Fault:
        """500 ``api_error``; clients retry (after ``retry_after`` s if given)."""
        return cls("status", 500, "api_error", message, headers=_retry_after(retry_after))

    @classmethod
    def bad_request(cls, message: str = "Invalid request") -> Fault:
        """400 ``invalid_request_error``: never retried."""
        return cls("status", 400, "invalid_request_error", message)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """A normal reply sent only after ``seconds`` (set it past the client's timeout)."""
        return cls("slow", delay=seconds)

    @classmethod
    def drop(cls) -> Fault:
        """Read the request, then close the connection without replying."""
        return cls("drop")

    @classmethod
    def malformed(cls) -> Fault:
        """200 with ``content-type: application/json`` and a body that is not JSON."""
        return cls("malformed")

    @classmethod
    def empty(cls) -> Fault:
        """200 with a valid message whose ``content`` list is empty."""
        return cls("empty")

    @classmethod
    def trickle(cls, seconds_per_byte: float = 0.2) -> Fault:
        """The normal reply (JSON or events), one byte every ``seconds_per_byte``: never silent for
        long, so a per-read timeout never fires, yet a short reply takes minutes."""
        return cls("trickle", delay=seconds_per_byte)

    @classmethod
    def cut(cls, after: int = 4) -> Fault:
        """Close the connection mid-reply, after ``after`` events (a streamed reply) or half the body
        (a JSON reply), without ending the HTTP body: the client sees a broken transfer."""
        return cls("cut", after=after)

    @classmethod
    def stream_error(cls, after: int = 4, error_type: str = "overloaded_error", message: str = "Overloaded") -> Fault:
        """Streams only: an ``error`` event after ``after`` events, then the end of the stream (the
        API's way to fail a reply that already began). A JSON request gets a normal reply."""
        return cls("stream_error", error_type=error_type, message=message, after=after)

    @classmethod
    def truncated(cls, after: int = 4) -> Fault:
        """Streams only: end the HTTP body cleanly after ``after`` events, with no ``message_stop``."""
        return cls("truncated", after=after)


FAULT_KINDS: dict[str, Callable[[], Fault]] = {
    "rate_limit": Fault.rate_limit,
    "overloaded": Fault.overloaded,
    "server_error": Fault.server_error,
    "drop": Fault.drop,
    "malformed": Fault.malformed,
    "empty": Fault.empty,
    "cut": Fault.cut,
    "stream_error": Fault.stream_error,
}
"""Name -> fault factory, for building mixes by name (``slow`` and ``trickle`` need a delay, so they are not here)."""


def random_faults(seed: int, rates: Mapping[str, float]) -> Callable[[int, dict[str, Any]], Fault | None]:
    """A seeded ``fault_fn``: each request gets fault ``name`` with probability ``rates[name]``.

    ``rates`` maps :data:`FAULT_KINDS` names to probabilities; for custom faults (a slow one,
    say) use :func:`random_fault_mix`.
    """
    return random_fault_mix(seed, [(p, FAULT_KINDS[name]()) for name, p in rates.items()])


def random_fault_mix(seed: int, mix: list[tuple[float, Fault]]) -> Callable[[int, dict[str, Any]], Fault | None]:
    """A seeded ``fault_fn`` from ``(probability, fault)`` pairs (probabilities summing to at most 1).

    The n-th request's fault depends only on ``seed`` and ``n``, so a run is reproducible even though
    concurrent requests arrive in varying order.
    """
    total = sum(p for p, _ in mix)
    if total > 1:
        raise ValueError(f"fault probabilities sum to {total} > 1")

    def fault_fn(n: int, body: dict[str, Any]) -> Fault | None:
        x = random.Random(f"{seed}:{n}").random()
        for p, fault in mix:
            if x < p:
                return fault
            x -= p
        return None

    return fault_fn


@dataclass
class Received:
    """One request as the server saw it."""

    n: int
    """Arrival number, from 0."""
    path: str
    body: Any
    """The decoded JSON body (None if it was not JSON, or there was none)."""
    headers: dict[str, str]
    """Request headers, names lower-cased."""
    fault: Fault | None
    """The fault applied to it, if any."""
    status: int | None = None
    """The status sent back (None for a dropped connection or a reply the client did not wait for)."""
    reply: dict[str, Any] | None = None
    """The message sent back whole with a 200 (its ``usage`` is what the client should have recorded);
    None when a fault cut it short."""
    started: float = 0.0
    finished: float = 0.0
    method: str = "POST"
    request_id: str | None = None
    """The ``request-id`` header sent back."""

    @property
    def api_key(self) -> str | None:
        """The key the client sent (``x-api-key`` or ``Authorization: Bearer``)."""
        return self.headers.get("x-api-key") or _bearer(self.headers)

    @property
    def stream(self) -> bool:
        """Whether the request asked for server-sent events."""
        return isinstance(self.body, dict) and self.body.get("stream") is True


def _last_user_text(body: dict[str, Any]) -> str | None:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b)
            return str(content)
    return None


def echo_reply(body: dict[str, Any]) -> str:
    """``echo: <last user message text>``."""
    text = _last_user_text(body)
    return "echo:" if text is None else f"echo: {text}"


def default_reply(body: dict[str, Any]) -> str:
    """The default reply: a JSON document valid for the requested output schema, else :func:`echo_reply`."""
    schema = output_schema(body)
    return echo_reply(body) if schema is None else json.dumps(example_for_schema(schema))


class FakeMessagesAPI:
    """The loopback Messages API server. ``url`` is the SDK's ``base_url``; see the module docstring."""

    def __init__(self, reply: Reply = default_reply, *, latency: float | Latency = 0.0, api_key: str | None = None,
                 fault_fn: Callable[[int, dict[str, Any]], Fault | None] | None = None,
                 routes: Mapping[str, Route] | None = None) -> None:
        self.reply = reply
        """Function of the request body -> reply text, content blocks or message fields."""
        self.latency = latency
        """Seconds each request takes before its reply (or fault) is sent: a number, or a function
        ``(n, body) -> seconds`` for per-request latency (e.g. seeded random jitter)."""
        self.api_key = api_key
        """When set, requests must carry it (``x-api-key`` or bearer) or get a 401."""
        self.fault_fn = fault_fn
        """Decides a fault for requests not served by :meth:`enqueue`."""
        self.routes: dict[str, Route] = {"/v1/messages": _messages_route, **(routes or {})}
        """Path prefix -> handler; see "Extra endpoints" in the module docstring."""
        self.requests: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._queue: list[Fault | None] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FakeMessagesAPI:
        handler = type("Handler", (_Handler,), {"api": self})
        server = _Server(("127.0.0.1", 0), handler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a slow or trickling reply
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeMessagesAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: pass it as ``base_url``."""
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- scripting --------------------------------------------------------------------------------
    def enqueue(self, *faults: Fault | None) -> None:
        """The next requests get these faults, in order (``None``: a normal reply)."""
        with self._lock:
            self._queue.extend(faults)

    def reset(self) -> None:
        """Forget observed requests, counts and queued faults (the reply function stays)."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self.max_in_flight = self.in_flight

    def answer(self, body: Any) -> tuple[int, dict[str, Any]]:
        """``(status, JSON)`` that ``POST /v1/messages`` with ``body`` gets, faults aside: the 400 of
        a request the API would refuse, else 200 and the message from the reply function."""
        problem = _validate(body)
        if problem is not None:
            return 400, _error_body("invalid_request_error", problem)
        return 200, _message(body, self.reply(body))

    # -- observations -----------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Requests received to ``POST /v1/messages`` (every attempt, retries included)."""
        return sum(r.path == "/v1/messages" for r in self.requests)

    @property
    def status_counts(self) -> Counter[int | None]:
        """Status sent -> how many requests got it (None: dropped or abandoned)."""
        return Counter(r.status for r in self.requests)

    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]

    # -- used by the handler ----------------------------------------------------------------------
    def _admit(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Received:
        with self._lock:
            n = len(self.requests)
            fault = self._queue.pop(0) if self._queue else None
            if fault is None and self.fault_fn is not None and isinstance(body, dict):
                fault = self.fault_fn(n, body)
            received = Received(n, path, body, headers, fault, started=time.monotonic(), method=method)
            self.requests.append(received)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return received

    def _release(self, received: Received, status: int | None) -> None:
        """The request is answered (or abandoned): it no longer counts as in flight. Idempotent."""
        with self._lock:
            if received.finished:
                return
            self.in_flight -= 1
            received.status = status
            received.finished = time.monotonic()

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server is stopping; False if it is."""
        return not self._stopping.wait(seconds) if seconds > 0 else True

    def _route(self, path: str) -> Route | None:
        matches = [p for p in self.routes if path == p or path.startswith(p.rstrip("/") + "/")]
        return self.routes[max(matches, key=len)] if matches else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default backlog of 5 refuses bursts of concurrent connections


def _retry_after(seconds: float | None) -> dict[str, str]:
    """``retry-after`` in (possibly fractional) seconds, as the SDK accepts; none if ``seconds`` is None."""
    if seconds is None:
        return {}
    return {"retry-after": str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))}


def _error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


class Exchange:
    """One request as a route handler sees it, and the ways to answer it (once)."""

    def __init__(self, handler: _Handler, received: Received, query: dict[str, list[str]]) -> None:
        self.api = handler.api
        self.received = received
        self.method = received.method
        self.path = received.path
        self.query = query
        """Query parameters, each name -> its values (``parse_qs``)."""
        self.body = received.body
        self.headers = received.headers
        self._handler = handler

    @property
    def fault(self) -> Fault | None:
        """The fault drawn for this request (the ones every route honours are already applied)."""
        return self.received.fault

    def send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        self._handler._send(status, json.dumps(payload).encode(), headers)

    def send_error(self, status: int, error_type: str, message: str) -> None:
        self.send_json(status, _error_body(error_type, message))

    def send_bytes(self, status: int, data: bytes, content_type: str = "application/json",
                   headers: Mapping[str, str] | None = None) -> None:
        self._handler._send(status, data, headers, content_type=content_type)


class _Handler(BaseHTTPRequestHandler):
    api: FakeMessagesAPI
    _received: Received
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        api = self.api
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        path, _, query = self.path.partition("?")
        received = self._received = api._admit(method, path, body, headers)
        try:
            self._serve(Exchange(self, received, parse_qs(query)))
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
            received.status = None
        finally:
            api._release(received, None)  # no reply was sent: dropped, or the server is stopping

    def _serve(self, exchange: Exchange) -> None:
        api, received, fault = self.api, exchange.received, exchange.fault
        latency = api.latency(received.n, received.body) if callable(api.latency) else api.latency
        if not api._sleep(latency + (fault.delay if fault is not None and fault.kind == "slow" else 0.0)):
            self.close_connection = True
            return
        route = api._route(received.path)
        if route is None:
            return exchange.send_error(404, "not_found_error", f"Not found: {received.path}")
        if api.api_key is not None and received.api_key != api.api_key:
            return exchange.send_error(401, "authentication_error", "invalid x-api-key")
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            return exchange.send_json(fault.status, _error_body(fault.error_type, fault.message), fault.headers)
        route(exchange)

    # -- answering ----------------------------------------------------------------------------------
    def _start(self, status: int, content_type: str, extra: Mapping[str, str] | None, length: int | None) -> None:
        # Out of flight before the first byte leaves: once the client reads the reply it may send the
        # next request, which must not be counted alongside this one.
        self.api._release(self._received, status)
        self.send_response(status)
        self.send_header("content-type", content_type)
        if length is None:
            self.send_header("transfer-encoding", "chunked")
            self.send_header("cache-control", "no-cache")
        else:
            self.send_header("content-length", str(length))
        self._received.request_id = f"req_{uuid.uuid4().hex[:24]}"
        self.send_header("request-id", self._received.request_id)
        for name, value in _ratelimit_headers().items():
            self.send_header(name, value)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def _send(self, status: int, data: bytes, extra: Mapping[str, str] | None = None, *,
              content_type: str = "application/json") -> None:
        fault = self._received.fault
        self._start(status, content_type, extra, len(data))
        if fault is not None and fault.kind == "trickle":
            self._trickle(data, fault.delay, chunked=False)
        elif fault is not None and fault.kind == "cut" and status == 200:
            self.wfile.write(data[: len(data) // 2])
            self._break()
        else:
            self.wfile.write(data)
            self.wfile.flush()

    def _send_stream(self, message: dict[str, Any], extra: Mapping[str, str] | None) -> bool:
        """Stream ``message`` as server-sent events; True if it went out whole."""
        fault = self._received.fault
        kind = fault.kind if fault is not None else None
        events = [encode(name, data) for name, data in message_events(message)]
        if fault is not None and kind in ("cut", "stream_error", "truncated"):
            events = events[: fault.after]
            if kind == "stream_error":
                events.append(error_event(fault.error_type, fault.message))
        self._start(200, "text/event-stream; charset=utf-8", extra, None)
        if fault is not None and kind == "trickle":
            if not self._trickle(b"".join(events), fault.delay, chunked=True):
                return False
        else:
            for event in events:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
        if kind == "cut":
            self._break()
            return False
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        return kind is None or kind == "trickle"

    def _trickle(self, data: bytes, interval: float, *, chunked: bool) -> bool:
        for i in range(len(data)):
            byte = data[i : i + 1]
            self.wfile.write(b"1\r\n%s\r\n" % byte if chunked else byte)
            self.wfile.flush()
            if not self.api._sleep(interval):
                self._break()
                return False
        return True

    def _break(self) -> None:
        """Close the connection abruptly, leaving the HTTP body unfinished."""
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _messages_route(exchange: Exchange) -> None:
    """``POST /v1/messages``: validate, build the reply, send it as JSON or as events."""
    if exchange.path != "/v1/messages" or exchange.method != "POST":
        return exchange.send_error(404, "not_found_error", f"Not found: {exchange.method} {exchange.path}")
    api, received, fault, body = exchange.api, exchange.received, exchange.fault, exchange.body
    problem = _validate(body)
    if problem is not None:
        return exchange.send_error(400, "invalid_request_error", problem)
    extra = fault.headers if fault is not None else {}
    if fault is not None and fault.kind == "malformed":
        return exchange.send_bytes(200, b'{"id": "msg_broken", "type": "message", "content": [', headers=extra)
    message = _message(body, [] if fault is not None and fault.kind == "empty" else api.reply(body))
    if received.stream:
        if exchange._handler._send_stream(message, extra):
            received.reply = message
        return None
    if fault is None or fault.kind not in ("cut", "trickle"):
        received.reply = message
    exchange.send_json(200, message, extra)
    return None


def _bearer(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None


def _ratelimit_headers() -> dict[str, str]:
    reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    return {
        "anthropic-ratelimit-requests-limit": "4000",
        "anthropic-ratelimit-requests-remaining": "3999",
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-tokens-limit": "400000",
        "anthropic-ratelimit-tokens-remaining": "399000",
        "anthropic-ratelimit-tokens-reset": reset,
    }


def _validate(body: Any) -> str | None:
    """The API's own 400 messages for the mistakes a task's ``params`` (or a tool loop) can make."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    for name in body:
        if name not in KNOWN_FIELDS:
            return f"{name}: Extra inputs are not permitted"
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return f"{name}: Field required"
    if not isinstance(body["messages"], list) or not body["messages"]:
        return "messages: at least one message is required"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream: Input should be a valid boolean"
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if isinstance(body["max_tokens"], int) and budget >= body["max_tokens"]:
            return "`max_tokens` must be greater than `thinking.budget_tokens`."
    return check_conversation(body)


def _words(content: list[Any]) -> int:
    return sum(len(str(b.get("text") or b.get("thinking") or "").split()) for b in content if isinstance(b, dict))


def _message(body: dict[str, Any], reply: str | dict[str, Any] | list[Any]) -> dict[str, Any]:
    """A Messages API reply for ``body``; token counts are word counts, so tests can predict them."""
    prompt_words = len(json.dumps(body.get("messages")).split()) + len(json.dumps(body.get("system", "")).split())
    message: dict[str, Any] = {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": [],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": prompt_words, "output_tokens": 0},
    }
    if isinstance(reply, str):
        reply = [{"type": "text", "text": reply}]
    if isinstance(reply, list):
        message["content"] = reply
        message["usage"]["output_tokens"] = _words(reply)
        if any(isinstance(b, dict) and b.get("type") == "tool_use" for b in reply):
            message["stop_reason"] = "tool_use"
    else:
        message.update(reply)
    return message
