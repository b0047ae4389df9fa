"""The Claude backend: every call goes through the official SDK's ``AsyncAnthropic``.

The whole reply is kept: the message's content blocks exactly as the API sent them (text with
citations, tool uses, thinking with its signature, redacted thinking, server tools, block types this
library has never heard of), the stop reason, sequence and details, the full usage, the ids. A plain
reply is taken from the HTTP body as sent, not from the SDK's typed model, so nothing is dropped or
re-spelt; a streamed one is the SDK's own assembly of the events.

Long calls stream under the hood, as the SDK requires or recommends (a ``max_tokens`` the SDK
expects to take over ten minutes, thinking enabled), and so does a request that says ``stream:
true``; a call with a listener for its text (``on_text``: a watched run) streams too, bounded as a
plain call would be. The trace stores the same assembled message either way.

Retries are the SDK's own (429, 5xx including 529, timeouts, lost connections): a second loop on top
would multiply waits and attempts. :mod:`.bounds` adds what the SDK lacks (an attempt bounded as a
whole, a cap on ``retry-after`` waits) and counts the attempts; a call's ``deadline`` bounds all of
it. Failures become :class:`~llmtaskgraph.errors.LLMCallError` with the status and the API's
message, never the key (see :mod:`.secrets`).

The SDK is imported only when a backend is created, so the core imports without it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import os
import random
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import LLMCallError, RunOptionsError
from ..fingerprint import json_problem
from . import bounds, secrets
from .base import LLMResponse

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from anthropic import AsyncAnthropic

DEFAULT_MODEL = "claude-sonnet-5-5"
"""Used when a task's ``params`` name no ``model``: the newest Sonnet listed by anthropic 2.12,
a good balance of quality, speed and price for programs that call the model many times."""
DEFAULT_MAX_TOKENS = 1024
"""Used when a task's ``params`` give no ``max_tokens`` (the API requires one)."""
DEFAULT_TIMEOUT = 120.0
"""Seconds per attempt: a reply must arrive whole within it, else the attempt is retried as a timeout.
Long calls (see :meth:`AnthropicLLM.long_call`) are the exception: they stream, must begin within
``timeout`` and never fall silent for longer, and only the ``deadline`` bounds them as a whole."""
DEFAULT_MAX_RETRIES = 4
"""SDK retries per call (the SDK's own default is 2; graphs making many calls meet more 429/529s)."""
DEFAULT_MAX_RETRY_WAIT = 60.0
"""Longest ``retry-after`` honoured, in seconds. A server asking for more fails the call at once,
saying how long it asked for: sleeping for hours inside a run helps nobody."""
DEFAULT_DEADLINE = 3600.0
"""Seconds one call may take in all, attempts, waits and streaming included: the SDK's estimate of the
longest reply (128k output tokens). Lower it to bound programs of short calls more tightly."""

TextListener = Callable[[str], None]
"""``on_text(text_so_far)``: called as a streamed reply's text grows."""

_STREAM_RETRY_ERRORS = frozenset({"api_error", "overloaded_error", "rate_limit_error"})
"""``error`` events mid-stream that the SDK would retry had they come as an HTTP status."""
_MESSAGE_FIELDS = frozenset({"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "stop_details",
                             "usage"})


class AnthropicLLM:
    """Serves LLMTasks with Claude through ``anthropic.AsyncAnthropic``.

    Without arguments it follows the SDK's conventions: the key from ``ANTHROPIC_API_KEY`` and the
    endpoint from ``ANTHROPIC_BASE_URL``. ``model`` and ``max_tokens`` fill in what a task's
    ``params`` leave out. ``timeout`` (seconds per attempt), ``max_retries``, ``max_retry_wait`` (the
    longest ``retry-after`` honoured) and ``deadline`` (seconds per call in all; None for none) bound
    each call. Other ``client_options`` go to the SDK (``default_headers``, ``http_client``, ...).

    Request fields the SDK has no argument for are sent as ``extra_body``, so the API itself judges
    them: a misspelt param fails the task with the API's 400 message.
    """

    def __init__(
        self, *, api_key: str | None = None, base_url: str | None = None, model: str = DEFAULT_MODEL,
        max_tokens: int = DEFAULT_MAX_TOKENS, timeout: float = DEFAULT_TIMEOUT, max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT, deadline: float | None = DEFAULT_DEADLINE,
        **client_options: Any,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
        self._api_key = secrets.clean_key(key, "`api_key=`" if api_key is not None else "ANTHROPIC_API_KEY") if key else None
        token = client_options.get("auth_token") or os.environ.get("ANTHROPIC_AUTH_TOKEN")
        if token:  # the SDK would read the variable itself, unchecked
            client_options["auth_token"] = secrets.clean_key(
                token, "`auth_token=`" if client_options.get("auth_token") else "ANTHROPIC_AUTH_TOKEN")
        if not self._api_key and not token:
            raise RunOptionsError(
                "AnthropicLLM needs an API key: set ANTHROPIC_API_KEY or pass `api_key=`; "
                "without one, run with the offline default (omit `llm=`) or `ScriptedLLM`"
            )
        for name, value in (("timeout", timeout), ("max_retry_wait", max_retry_wait), ("deadline", deadline)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
                raise RunOptionsError(f"AnthropicLLM `{name}` must be a number of seconds > 0, got {value!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise RunOptionsError(f"AnthropicLLM `max_retries` must be a whole number >= 0, got {max_retries!r}")
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        """The API endpoint (None: the SDK's default, https://api.anthropic.com)."""
        self._model = model
        self._max_tokens = max_tokens
        self.kind = f"anthropic:{model}:max_tokens={max_tokens}"
        """Part of every call fingerprint. It names the defaults because a task relying on them sends a
        request without them, and switching the default model must still call the LLM again."""
        self.timeout = float(timeout)
        """Seconds per attempt (see :data:`DEFAULT_TIMEOUT`)."""
        self.max_retries = max_retries
        self.max_retry_wait = float(max_retry_wait)
        """Longest ``retry-after`` honoured (see :data:`DEFAULT_MAX_RETRY_WAIT`)."""
        self.deadline = None if deadline is None else float(deadline)
        """Seconds one call may take in all (see :data:`DEFAULT_DEADLINE`)."""
        self._client_options = client_options
        # One client per event loop: its connection pool belongs to the loop that opened it, and
        # ``graph.run`` starts a fresh loop each time. The async generator closes the client while
        # its loop shuts down (``asyncio.run`` finalizes live async generators before closing).
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[AsyncAnthropic, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()

    @property
    def model(self) -> str:
        """The model for tasks whose ``params`` name none (fixed: create another backend to switch)."""
        return self._model

    @property
    def max_tokens(self) -> int:
        """``max_tokens`` for tasks whose ``params`` give none."""
        return self._max_tokens

    def __repr__(self) -> str:  # never shows the key
        where = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"AnthropicLLM(model={self.model!r}, max_tokens={self.max_tokens}{where})"

    async def client(self) -> AsyncAnthropic:
        """The SDK client for the running event loop (created on first use, closed with the loop)."""
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            from anthropic import AsyncAnthropic

            client = AsyncAnthropic(
                api_key=self._api_key, base_url=self.base_url, timeout=self.timeout, max_retries=self.max_retries,
                middleware=[bounds.bound_attempts], **self._client_options,
            )
            closer = _close_at_shutdown(client)
            await closer.__anext__()
            entry = self._clients[loop] = (client, closer)
        return entry[0]

    def long_call(self, request: dict[str, Any]) -> bool:
        """Whether a request is a long call, which streams with no bound on an attempt but ``deadline``:
        it says ``stream: true``, or has thinking on, or the SDK refuses it as a plain call (it expects
        its ``max_tokens`` to take over ten minutes, or the model caps plain calls lower)."""
        if request.get("stream") is True:
            return True
        thinking = request.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
            return True
        max_tokens = request.get("max_tokens", self.max_tokens)
        if not isinstance(max_tokens, int):
            return False
        from anthropic._constants import MODEL_NONSTREAMING_TOKENS

        limit = MODEL_NONSTREAMING_TOKENS.get(str(request.get("model", self.model)))
        return 3600 * max_tokens / 128_000 > 600 or (limit is not None and max_tokens > limit)

    def streams(self, request: dict[str, Any], on_text: TextListener | None = None) -> bool:
        """Whether :meth:`complete` streams a request: a long call, or any call with a text listener."""
        return on_text is not None or self.long_call(request)

    async def complete(self, request: dict[str, Any], *, on_text: TextListener | None = None) -> LLMResponse:
        """Send one Messages API request; raise :class:`LLMCallError` if it fails for good.

        ``on_text(text_so_far)`` is called each time a streamed reply's text grows (the text blocks so
        far, concatenated); giving it makes the call stream, with the bounds of a plain call unless it
        is a long one (see :meth:`long_call`). If a broken stream is sent again, it is called with ``""``
        first. An exception it raises fails the call.
        """
        long = self.long_call(request)
        body = {"model": self.model, "max_tokens": self.max_tokens, **request}
        body.pop("stream", None)
        state = bounds.CallState(
            timeout=self.timeout, max_retries=self.max_retries, max_retry_wait=self.max_retry_wait,
            deadline_at=None if self.deadline is None else time.monotonic() + self.deadline,
        )
        if long or on_text is not None:  # a plain call streamed for its listener keeps a plain call's bound
            call = self._stream(body, on_text, state, None if long else self.timeout)
        else:
            call = self._create(body, state)
        try:
            if self.deadline is None:
                return await call
            return await asyncio.wait_for(call, self.deadline)
        except asyncio.TimeoutError:  # only the deadline: attempts' own timeouts are retried or mapped below
            raise LLMCallError(
                f"deadline: no complete reply within the call's deadline of {self.deadline:g} s{_tail(state.retries)}"
                f"{_rid(state.request_id)}; raise `deadline=` on AnthropicLLM for longer calls",
                error_type="timeout", retries=state.retries, request_id=state.request_id,
            ) from None

    # -- one call ------------------------------------------------------------------------------------
    async def _create(self, body: dict[str, Any], state: bounds.CallState) -> LLMResponse:
        kwargs, extra = _split(body)
        client = await self.client()
        token = bounds.current.set(state)
        start = time.monotonic()
        try:
            raw = await client.messages.with_raw_response.create(**kwargs, extra_body=extra or None)
            content = raw.http_response.content
        except Exception as exc:
            raise self._call_error(exc, state) from None  # the SDK's internals add nothing for the user
        finally:
            bounds.current.reset(token)
        latency = time.monotonic() - start
        try:
            message = json.loads(content)
        except ValueError as exc:  # not JSON, not UTF-8, or a number too long to read
            raise _malformed(f"the API's answer is not valid JSON ({_short(exc)})", state) from None
        return _checked(message, latency, state)

    async def _stream(self, body: dict[str, Any], on_text: TextListener | None, state: bounds.CallState,
                      attempt_limit: float | None) -> LLMResponse:
        """Stream the reply; a stream broken mid-reply (or not whole within ``attempt_limit`` seconds)
        is sent again while the call has retries left."""
        kwargs, extra = _split(body)
        client = await self.client()
        start = time.monotonic()
        restarts = 0
        while True:
            token = bounds.current.set(state)
            try:
                once = self._stream_once(client, kwargs, extra, on_text, state)
                message = await (once if attempt_limit is None else _within(once, attempt_limit))
                break
            except _StreamBroken as broken:
                if not broken.retryable or state.retries >= self.max_retries:
                    raise LLMCallError(
                        f"{broken}{_tail(state.retries)}{_rid(state.request_id)}; the partial reply was not stored",
                        error_type=broken.error_type, retries=state.retries, request_id=state.request_id,
                    ) from None
            except Exception as exc:
                raise self._call_error(exc, state) from None
            finally:
                bounds.current.reset(token)
            state.retries = state.earlier = state.retries + 1  # the SDK counts the new request's retries from 0
            if on_text is not None:
                on_text("")
            await asyncio.sleep(min(0.5 * 2**restarts, 8.0) * (1 - 0.25 * random.random()))  # the SDK's backoff
            restarts += 1
        return _checked(message, time.monotonic() - start, state)

    async def _stream_once(self, client: AsyncAnthropic, kwargs: dict[str, Any], extra: dict[str, Any],
                           on_text: TextListener | None, state: bounds.CallState) -> dict[str, Any]:
        """One streamed request: the assembled message, or :class:`_StreamBroken` if it broke after it began."""
        async with client.messages.stream(**kwargs, extra_body=extra or None) as stream:
            state.request_id = stream.request_id or state.request_id
            events = stream.__aiter__()
            text, stopped = "", False
            while True:
                try:
                    event = await events.__anext__()
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    raise self._broken(exc) from None
                if event.type == "text":
                    text += event.text
                    if on_text is not None:
                        on_text(text)
                elif event.type == "message_stop":
                    stopped = True
            if not stopped:
                raise _StreamBroken("connection error: the stream ended before `message_stop`", "connection_error", True)
            snapshot = stream.current_message_snapshot
        nonfinite = _non_finite(snapshot.to_dict(mode="python", warnings=False), "reply")
        if nonfinite is not None:  # the SDK's JSON view would quietly turn it into null
            raise _malformed(f"`{nonfinite[0]}` {nonfinite[1]}; the reply was not stored", state)
        return snapshot.to_dict(mode="json", warnings=False)

    def _broken(self, exc: Exception) -> Exception:
        """What reading a stream raised, as :class:`_StreamBroken` (other exceptions pass through)."""
        import anthropic

        if isinstance(exc, anthropic.APIStatusError):  # an `error` event: the HTTP status was 200
            error_type = _body_field(exc.body, "type") or "error"
            message = _body_field(exc.body, "message") or str(exc)
            return _StreamBroken(f"error event {error_type}: {message}", error_type, error_type in _STREAM_RETRY_ERRORS)
        if isinstance(exc, ValueError):  # an event that is not JSON, or tool input that does not parse
            return _StreamBroken(f"malformed reply: an event of the stream is not valid ({_short(exc)})",
                                 "malformed_reply", False)
        if _is_transport_error(exc):
            if "Timeout" in type(exc).__name__:
                return _StreamBroken(f"timeout: the stream was silent for more than {self.timeout:g} s", "timeout", True)
            where = self.base_url or "the Anthropic API"
            why = _short(exc) or type(exc).__name__
            return _StreamBroken(f"connection error: the stream from {where} broke mid-reply ({why})",
                                 "connection_error", True)
        return exc

    # -- errors --------------------------------------------------------------------------------------
    def _call_error(self, exc: Exception, attempts: Any) -> Exception:
        """Turn an SDK failure into a one-line, key-free :class:`LLMCallError` (others pass through).

        ``attempts`` has ``retries`` and ``request_id`` (a :class:`~.bounds.CallState`)."""
        import anthropic

        retries = attempts.retries
        tail = _tail(retries)
        if isinstance(exc, bounds._WaitRefused):
            error_type = _body_field(exc.body, "type") or "error"
            message = _body_field(exc.body, "message") or ""
            return LLMCallError(
                secrets.redact(f"{exc.status} {error_type}: {message}; {exc}: not retried{tail}{_rid(exc.request_id)}"),
                status=exc.status, error_type=error_type, retries=retries, request_id=exc.request_id,
            )
        if isinstance(exc, anthropic.APIStatusError):
            error_type = getattr(exc, "type", None) or _body_field(exc.body, "type") or "error"
            message = getattr(exc, "api_message", None) or _body_field(exc.body, "message") or exc.response.text[:200]
            request_id = exc.request_id or attempts.request_id
            return LLMCallError(
                secrets.redact(f"{exc.status_code} {error_type}: {message}{tail}{_rid(request_id)}"),
                status=exc.status_code, error_type=error_type, retries=retries, request_id=request_id,
            )
        if isinstance(exc, (anthropic.APITimeoutError, bounds._AttemptTimeout)):
            return LLMCallError(
                f"timeout: no reply within {self.timeout:g} s{tail}; raise `timeout=` on AnthropicLLM for long replies",
                error_type="timeout", retries=retries,
            )
        if isinstance(exc, anthropic.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            detail = f": {cause}" if cause else ""
            return LLMCallError(
                secrets.redact(f"connection error talking to {self.base_url or 'the Anthropic API'}{detail}{tail}"),
                error_type="connection_error", retries=retries,
            )
        if isinstance(exc, ValueError):  # the SDK decoding a body that is not JSON
            return _malformed(f"the API's answer is not valid JSON ({_short(exc)})", attempts)
        return exc


async def _within(stream: Any, seconds: float) -> dict[str, Any]:
    """A whole streamed attempt, bounded like a plain one."""
    try:
        result: dict[str, Any] = await asyncio.wait_for(stream, seconds)
    except asyncio.TimeoutError:
        raise _StreamBroken(f"timeout: no reply within {seconds:g} s", "timeout", True) from None
    return result


class _StreamBroken(Exception):
    """A stream that failed after it began: ``retryable`` if the SDK retries the same failure of a plain call."""

    def __init__(self, message: str, error_type: str, retryable: bool) -> None:
        self.error_type = error_type
        self.retryable = retryable
        super().__init__(secrets.redact(message))


def reply_from_message(message: Any, *, backend: str = "anthropic", latency: float | None = None, retries: int = 0,
                       request_id: str | None = None) -> LLMResponse:
    """A Messages API message (decoded JSON) as the reply the trace stores, every field kept as sent.

    Raises ``ValueError`` (naming the field) if it is not shaped like a message."""
    if not isinstance(message, dict):
        raise ValueError(f"the reply is a JSON {type(message).__name__}, not a message object")
    content = message.get("content")
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise ValueError("`content` is not a list of content blocks")
    texts = [b.get("text") for b in content if b.get("type") == "text"]
    if not all(isinstance(t, str) for t in texts):
        raise ValueError("a `text` block has no text")
    usage = message.get("usage")
    return LLMResponse(
        text="".join(texts), model=message.get("model"), stop_reason=message.get("stop_reason"),
        usage=dict(usage) if isinstance(usage, dict) else {}, latency=latency, retries=retries, backend=backend,
        content=content, id=message.get("id"), stop_sequence=message.get("stop_sequence"),
        stop_details=message.get("stop_details"), request_id=request_id,
        extra={k: v for k, v in message.items() if k not in _MESSAGE_FIELDS},
    )


def _checked(message: Any, latency: float, state: bounds.CallState) -> LLMResponse:
    """The reply, if the trace can store it; else a ``malformed_reply`` :class:`LLMCallError`."""
    try:
        response = reply_from_message(message, latency=latency, retries=state.retries, request_id=state.request_id)
    except ValueError as exc:
        raise _malformed(str(exc), state) from None
    problem = json_problem(response.to_json(), "reply")
    if problem is not None:  # a lone surrogate, NaN, a number too long for text: the trace could not be saved
        raise _malformed(f"`{problem[0]}` {problem[1]}; the reply was not stored", state)
    return response


def _malformed(why: str, state: Any) -> LLMCallError:
    return LLMCallError(f"malformed reply: {why}{_rid(state.request_id)}", error_type="malformed_reply",
                        retries=state.retries, request_id=state.request_id)


def _non_finite(value: Any, path: str) -> tuple[str, str] | None:
    """``(path, "is nan")`` of the first float JSON cannot hold in ``value``, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, f"is {value}"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, f"{path}[{json.dumps(key)}]")
        if found is not None:
            return found
    return None


def _is_transport_error(exc: BaseException) -> bool:
    """A network failure raised by the SDK's HTTP library while a stream is read (it does not wrap those)."""
    return any(cls.__name__ == "TransportError" for cls in type(exc).__mro__)


def _tail(retries: int) -> str:
    return f" (after {retries} {'retry' if retries == 1 else 'retries'})" if retries else ""


def _rid(request_id: str | None) -> str:
    return f" [request-id {request_id}]" if request_id else ""


def _short(exc: BaseException) -> str:
    return secrets.redact(str(exc))[:200]


async def _close_at_shutdown(client: AsyncAnthropic) -> AsyncGenerator[None, None]:
    """Suspended until the loop shuts down, then closes ``client``'s connections on that loop;
    left to the garbage collector they would be closed on a closed loop, which logs errors."""
    try:
        yield
    finally:
        await client.close()


def _body_field(body: object, name: str) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    value = error.get(name) if isinstance(error, dict) else None
    return value if isinstance(value, str) else None


def _split(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(keyword arguments of messages.create, the rest for extra_body)``."""
    known = _create_params()
    return {k: v for k, v in body.items() if k in known}, {k: v for k, v in body.items() if k not in known}


_CREATE_PARAMS: frozenset[str] | None = None


def _create_params() -> frozenset[str]:
    """Request fields both ``messages.create`` and ``messages.stream`` take as keyword arguments."""
    global _CREATE_PARAMS
    if _CREATE_PARAMS is None:
        from anthropic.resources.messages import AsyncMessages

        names = set(inspect.signature(AsyncMessages.create).parameters)
        names &= set(inspect.signature(AsyncMessages.stream).parameters)
        _CREATE_PARAMS = frozenset(names - {"self", "stream", "extra_headers", "extra_query", "extra_body", "timeout"})
    return _CREATE_PARAMS
