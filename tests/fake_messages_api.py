"""A real HTTP server on 127.0.0.1 that speaks ``POST /v1/messages`` like the Anthropic API.

Tests point the real ``anthropic`` SDK at it (``base_url=api.url``), so retries, timeouts and
error parsing are the SDK's own; nothing is patched. Use it as a context manager or through the
``fake_api`` fixture in ``conftest.py``::

    with FakeMessagesAPI(latency=0.1) as api:
        llm = AnthropicLLM(api_key="sk-test", base_url=api.url)
        api.enqueue(Fault.rate_limit(retry_after=0.05))   # the next request gets a 429
        ...
        assert api.count == 2 and api.max_in_flight <= 16

Replies
    ``reply`` is a function of the decoded request body. It returns the reply text (``str``) or a
    dict merged over the default message (``{"content": [...], "stop_reason": ..., "usage": ...}``).
    The default echoes the last user message as ``echo: <text>``.

Faults (see :class:`Fault`)
    ``enqueue(*faults)`` makes the next requests fail in order (``None`` in the queue means a
    normal reply). ``fault_fn(n, body) -> Fault | None`` decides for every request not served from
    the queue, e.g. :func:`random_faults` for a seeded mix. Each fault kind is a classmethod:
    ``rate_limit`` (429 + ``retry-after``), ``overloaded`` (529), ``server_error`` (500),
    ``bad_request`` (400), ``slow`` (replies after a delay), ``drop`` (closes the connection with no
    reply), ``malformed`` (200 with a body that is not JSON), ``empty`` (200 with no content blocks).

Latency
    ``latency`` is seconds per request, or a function ``(n, body) -> seconds``.

Observations
    ``requests`` (every :class:`Received` request, in arrival order), ``count``, ``in_flight``,
    ``max_in_flight``, ``status_counts``; ``reset()`` clears them between phases of a test.

It validates requests as the API does: unknown top-level fields, a missing ``model``,
``max_tokens`` or ``messages``, or a missing key give a 400/401 with the API's JSON error body.
A ``ThreadingHTTPServer`` with a deep listen backlog serves hundreds of concurrent connections.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Top-level request fields the fake accepts; anything else is rejected like the real API does.
KNOWN_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "temperature", "top_p", "top_k", "stop_sequences",
    "metadata", "stream", "tools", "tool_choice", "thinking", "service_tier", "container",
    "output_config", "cache_control", "inference_geo", "speed", "diagnostics", "user_profile_id", "workspace_id",
})

Reply = Callable[[dict[str, Any]], "str | dict[str, Any]"]
Latency = Callable[[int, Any], float]


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour for one request. Build it with the classmethods."""

    kind: str
    """``status``, ``slow``, ``drop``, ``malformed`` or ``empty``."""
    status: int = 200
    """HTTP status of the reply (for ``status`` faults)."""
    error_type: str = ""
    """``error.type`` in the JSON error body, e.g. ``rate_limit_error``."""
    message: str = ""
    """``error.message`` in the JSON error body."""
    delay: float = 0.0
    """Extra seconds before replying (``slow``)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra response headers, e.g. ``{"x-should-retry": "false"}``."""

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


FAULT_KINDS: dict[str, Callable[[], Fault]] = {
    "rate_limit": Fault.rate_limit,
    "overloaded": Fault.overloaded,
    "server_error": Fault.server_error,
    "drop": Fault.drop,
    "malformed": Fault.malformed,
    "empty": Fault.empty,
}
"""Name -> fault factory, for building mixes by name (``slow`` needs a delay, so it is not here)."""


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
    """The decoded JSON body (None if it was not JSON)."""
    headers: dict[str, str]
    """Request headers, names lower-cased."""
    fault: Fault | None
    """The fault applied to it, if any."""
    status: int | None = None
    """The status sent back (None for a dropped connection or a reply the client did not wait for)."""
    reply: dict[str, Any] | None = None
    """The message sent back with a 200 (its ``usage`` is what the client should have recorded)."""
    started: float = 0.0
    finished: float = 0.0

    @property
    def api_key(self) -> str | None:
        """The key the client sent (``x-api-key`` or ``Authorization: Bearer``)."""
        return self.headers.get("x-api-key") or _bearer(self.headers)


def echo_reply(body: dict[str, Any]) -> str:
    """The default reply: ``echo: <last user message text>``."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
            return f"echo: {content}"
    return "echo:"


class FakeMessagesAPI:
    """The loopback Messages API server. ``url`` is the SDK's ``base_url``; see the module docstring."""

    def __init__(self, reply: Reply = echo_reply, *, latency: float | Latency = 0.0, api_key: str | None = None,
                 fault_fn: Callable[[int, dict[str, Any]], Fault | None] | None = None) -> None:
        self.reply = reply
        """Function of the request body -> reply text or message fields."""
        self.latency = latency
        """Seconds each request takes before its reply (or fault) is sent: a number, or a function
        ``(n, body) -> seconds`` for per-request latency (e.g. seeded random jitter)."""
        self.api_key = api_key
        """When set, requests must carry it (``x-api-key`` or bearer) or get a 401."""
        self.fault_fn = fault_fn
        """Decides a fault for requests not served by :meth:`enqueue`."""
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
        self._stopping.set()  # wakes handlers sleeping in a slow reply
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

    # -- observations -----------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Requests received to ``/v1/messages`` (every attempt, retries included)."""
        return len(self.requests)

    @property
    def status_counts(self) -> Counter[int | None]:
        """Status sent -> how many requests got it (None: dropped or abandoned)."""
        return Counter(r.status for r in self.requests)

    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]

    # -- used by the handler ----------------------------------------------------------------------
    def _admit(self, path: str, body: Any, headers: dict[str, str]) -> Received:
        with self._lock:
            n = len(self.requests)
            fault = self._queue.pop(0) if self._queue else None
            if fault is None and self.fault_fn is not None and isinstance(body, dict):
                fault = self.fault_fn(n, body)
            received = Received(n, path, body, headers, fault, started=time.monotonic())
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


class _Handler(BaseHTTPRequestHandler):
    api: FakeMessagesAPI
    _received: Received
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        api = self.api
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        received = self._received = api._admit(self.path.split("?")[0], body, headers)
        try:
            self._serve(received, body, headers)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
            received.status = None
        finally:
            api._release(received, None)  # no reply was sent: dropped, or the server is stopping

    def _serve(self, received: Received, body: Any, headers: dict[str, str]) -> int | None:
        api, fault = self.api, received.fault
        latency = api.latency(received.n, body) if callable(api.latency) else api.latency
        if not api._sleep(latency + (fault.delay if fault else 0.0)):
            self.close_connection = True
            return None
        if received.path != "/v1/messages":
            return self._send_json(404, _error_body("not_found_error", f"Not found: {received.path}"))
        if api.api_key is not None and received.api_key != api.api_key:
            return self._send_json(401, _error_body("authentication_error", "invalid x-api-key"))
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            return None
        if fault is not None and fault.kind == "status":
            return self._send_json(fault.status, _error_body(fault.error_type, fault.message), fault.headers)
        problem = _validate(body)
        if problem is not None:
            return self._send_json(400, _error_body("invalid_request_error", problem))
        if fault is not None and fault.kind == "malformed":
            return self._send(200, b'{"id": "msg_broken", "type": "message", "content": [', fault.headers)
        message = _message(body, [] if fault is not None and fault.kind == "empty" else api.reply(body))
        received.reply = message
        return self._send_json(200, message, fault.headers if fault else {})

    def _send_json(self, status: int, payload: Any, extra: Mapping[str, str] | None = None) -> int:
        return self._send(status, json.dumps(payload).encode(), extra)

    def _send(self, status: int, data: bytes, extra: Mapping[str, str] | None = None) -> int:
        # Out of flight before the first byte leaves: once the client reads the reply it may send the
        # next request, which must not be counted alongside this one.
        self.api._release(self._received, status)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
        for name, value in _ratelimit_headers().items():
            self.send_header(name, value)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        return status


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
    """The API's own 400 messages for the mistakes a task's ``params`` can make."""
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
    return None


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
        message["content"] = [{"type": "text", "text": reply}]
        message["usage"]["output_tokens"] = len(reply.split())
    elif isinstance(reply, list):
        message["content"] = reply
    else:
        message.update(reply)
    return message
