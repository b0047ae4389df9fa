"""The Claude backend: every call goes through the official SDK's ``AsyncAnthropic``.

Retries are the SDK's own (429, 5xx including 529, timeouts, lost connections; ``retry-after``
honoured): a second loop on top would multiply waits and attempts. A client middleware only
counts the attempts, so the trace can say how many retries a reply cost. Failures become
:class:`~llmtaskgraph.errors.LLMCallError` with the status and the API's message, never the key.

The SDK is imported only when a backend is created, so the core imports without it.
"""

from __future__ import annotations

import inspect
import json
import os
import time
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import LLMCallError, RunOptionsError
from ..fingerprint import json_problem
from .base import LLMResponse

if TYPE_CHECKING:
    import asyncio
    from collections.abc import AsyncGenerator

    from anthropic import AsyncAnthropic
    from anthropic._middleware import AsyncCallNext
    from anthropic._request import APIRequest
    from anthropic._response import AsyncAPIResponse

DEFAULT_MODEL = "claude-sonnet-5-5"
"""Used when a task's ``params`` name no ``model``: the newest Sonnet listed by anthropic 2.12,
a good balance of quality, speed and price for programs that call the model many times."""
DEFAULT_MAX_TOKENS = 1024
"""Used when a task's ``params`` give no ``max_tokens`` (the API requires one)."""
DEFAULT_TIMEOUT = 120.0
"""Seconds per attempt; a reply slower than this is retried, then reported as a timeout."""
DEFAULT_MAX_RETRIES = 4
"""SDK retries per call (the SDK's own default is 2; graphs making many calls meet more 429/529s)."""

_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


@dataclass
class _Attempts:
    """What the middleware saw of one call's attempts."""

    retries: int = 0
    request_id: str | None = None


# Set around each ``messages.create`` so the client-wide middleware knows which call it serves;
# every asyncio task has its own context, so concurrent calls never share a counter.
_current: ContextVar[_Attempts | None] = ContextVar("llmtaskgraph_anthropic_attempts", default=None)


async def _count_attempts(request: APIRequest, call_next: AsyncCallNext) -> AsyncAPIResponse[Any]:
    """Client middleware: runs once per HTTP attempt, inside the SDK's retry loop."""
    attempts = _current.get()
    if attempts is not None:
        attempts.retries = request.retries_taken
    response = await call_next(request)
    if attempts is not None:
        attempts.request_id = response.headers.get("request-id")
    return response


class AnthropicLLM:
    """Serves LLMTasks with Claude through ``anthropic.AsyncAnthropic``.

    Without arguments it follows the SDK's conventions: the key from ``ANTHROPIC_API_KEY`` and the
    endpoint from ``ANTHROPIC_BASE_URL``. ``model`` and ``max_tokens`` fill in what a task's
    ``params`` leave out; ``timeout`` (seconds per attempt) and ``max_retries`` go to the SDK, as do
    any other ``client_options`` (``default_headers``, ``http_client``, ...).

    Request fields the SDK has no argument for are sent as ``extra_body``, so the API itself judges
    them: a misspelt param fails the task with the API's 400 message.
    """

    def __init__(
        self, *, api_key: str | None = None, base_url: str | None = None, model: str = DEFAULT_MODEL,
        max_tokens: int = DEFAULT_MAX_TOKENS, timeout: float = DEFAULT_TIMEOUT, max_retries: int = DEFAULT_MAX_RETRIES,
        **client_options: Any,
    ) -> None:
        self._api_key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not self._api_key and not client_options.get("auth_token") and not os.environ.get("ANTHROPIC_AUTH_TOKEN"):
            raise RunOptionsError(
                "AnthropicLLM needs an API key: set ANTHROPIC_API_KEY or pass `api_key=`; "
                "without one, run with the offline default (omit `llm=`) or `ScriptedLLM`"
            )
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        """The API endpoint (None: the SDK's default, https://api.anthropic.com)."""
        self._model = model
        self._max_tokens = max_tokens
        self.kind = f"anthropic:{model}:max_tokens={max_tokens}"
        """Part of every call fingerprint. It names the defaults because a task relying on them sends a
        request without them, and switching the default model must still call the LLM again."""
        self.timeout = timeout
        self.max_retries = max_retries
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
        import asyncio

        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            from anthropic import AsyncAnthropic

            client = AsyncAnthropic(
                api_key=self._api_key, base_url=self.base_url, timeout=self.timeout, max_retries=self.max_retries,
                middleware=[_count_attempts], **self._client_options,
            )
            closer = _close_at_shutdown(client)
            await closer.__anext__()
            entry = self._clients[loop] = (client, closer)
        return entry[0]

    async def complete(self, request: dict[str, Any]) -> LLMResponse:
        """Send one Messages API request; raise :class:`LLMCallError` if it fails for good."""
        if request.get("stream"):
            raise LLMCallError(
                "`stream` is not supported: the trace stores whole replies; remove it from `params`",
                error_type="invalid_request_error",
            )
        body = {"model": self.model, "max_tokens": self.max_tokens, **request}
        known = _create_params()
        kwargs = {k: v for k, v in body.items() if k in known}
        extra = {k: v for k, v in body.items() if k not in known}
        client = await self.client()
        attempts = _Attempts()
        token = _current.set(attempts)
        start = time.monotonic()
        try:
            message = await client.messages.create(**kwargs, extra_body=extra or None)
        except Exception as exc:
            raise self._call_error(exc, attempts) from None  # the SDK's internals add nothing for the user
        finally:
            _current.reset(token)
        latency = time.monotonic() - start
        usage_obj = message.usage
        usage = {name: value for name in _USAGE_FIELDS if isinstance(value := getattr(usage_obj, name, None), int)}
        text = "".join(block.text for block in message.content if block.type == "text")
        response = LLMResponse(
            text=text, model=message.model, stop_reason=message.stop_reason, usage=usage, latency=latency,
            retries=attempts.retries, backend="anthropic",
        )
        problem = json_problem(response.to_json(), "reply")
        if problem is not None:  # a lone surrogate, NaN, a number too long for text: the trace could not be saved
            rid = f" [request-id {attempts.request_id}]" if attempts.request_id else ""
            raise LLMCallError(
                f"malformed reply: `{problem[0]}` {problem[1]}; the reply was not stored{rid}",
                error_type="malformed_reply", retries=attempts.retries, request_id=attempts.request_id,
            )
        return response

    def _call_error(self, exc: Exception, attempts: _Attempts) -> Exception:
        """Turn an SDK failure into a one-line, key-free :class:`LLMCallError` (others pass through)."""
        import anthropic

        retries = attempts.retries
        tail = f" (after {retries} {'retry' if retries == 1 else 'retries'})" if retries else ""
        if isinstance(exc, anthropic.APIStatusError):
            error_type = getattr(exc, "type", None) or _body_field(exc.body, "type") or "error"
            message = getattr(exc, "api_message", None) or _body_field(exc.body, "message") or exc.response.text[:200]
            request_id = exc.request_id or attempts.request_id
            rid = f" [request-id {request_id}]" if request_id else ""
            return LLMCallError(
                f"{exc.status_code} {error_type}: {message}{tail}{rid}",
                status=exc.status_code, error_type=error_type, retries=retries, request_id=request_id,
            )
        if isinstance(exc, anthropic.APITimeoutError):
            return LLMCallError(
                f"timeout: no reply within {self.timeout} s{tail}; raise `timeout=` on AnthropicLLM for long replies",
                error_type="timeout", retries=retries,
            )
        if isinstance(exc, anthropic.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            detail = f": {cause}" if cause else ""
            return LLMCallError(
                f"connection error talking to {self.base_url or 'the Anthropic API'}{detail}{tail}",
                error_type="connection_error", retries=retries,
            )
        if isinstance(exc, json.JSONDecodeError):
            rid = f" [request-id {attempts.request_id}]" if attempts.request_id else ""
            return LLMCallError(
                f"malformed reply: the API's answer is not valid JSON ({exc}){rid}",
                error_type="malformed_reply", retries=retries, request_id=attempts.request_id,
            )
        return exc


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


_CREATE_PARAMS: frozenset[str] | None = None


def _create_params() -> frozenset[str]:
    """Request fields ``messages.create`` takes as keyword arguments (the rest go in ``extra_body``)."""
    global _CREATE_PARAMS
    if _CREATE_PARAMS is None:
        from anthropic.resources.messages import AsyncMessages

        names = set(inspect.signature(AsyncMessages.create).parameters)
        _CREATE_PARAMS = frozenset(names - {"self", "extra_headers", "extra_query", "extra_body", "timeout"})
    return _CREATE_PARAMS
