"""What bounds one call through the anthropic SDK: attempts, retry waits and the call's deadline.

The SDK retries on its own (429, 5xx and 529, timeouts, lost connections), honouring the server's
``retry-after`` however long, and its ``timeout`` is per read, so a server that sends one byte a
second never times out. Both can hang a run. A client middleware, which the SDK runs once per HTTP
attempt inside its retry loop, adds the missing bounds without a second retry loop:

- each attempt must have its answer (the whole body, or a stream's headers) within ``timeout``
  seconds, or it is retried like any timeout;
- a ``retry-after`` longer than ``max_retry_wait``, or than the time left before the call's
  deadline, fails the call at once rather than sleeping (:class:`_WaitRefused`);
- it counts the attempts and keeps the last ``request-id``, so the trace can say what a reply cost.

The call's overall deadline itself is kept by :class:`~llmtaskgraph.llm.anthropic.AnthropicLLM`, which
also turns this module's two private exceptions into :class:`~llmtaskgraph.errors.LLMCallError`: they
never reach a caller.
Which call an attempt belongs to travels in a context variable: every asyncio task has its own
context, so concurrent calls never share a counter.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from anthropic._middleware import AsyncCallNext
    from anthropic._request import APIRequest
    from anthropic._response import AsyncAPIResponse


@dataclass
class CallState:
    """One call's limits and what its attempts did so far."""

    timeout: float
    """Seconds an attempt may take to be answered."""
    max_retries: int
    """Retries the SDK makes per request."""
    max_retry_wait: float
    """Longest ``retry-after`` the call will sleep for."""
    deadline_at: float | None
    """``time.monotonic()`` at which the whole call is abandoned (None: no deadline)."""
    retries: int = 0
    """Retries so far, across every request of the call (a broken stream sent again counts one)."""
    earlier: int = 0
    """Retries counted before the current SDK request began (a stream sent again is a new request)."""
    request_id: str | None = None
    """The ``request-id`` of the last answer."""

    def seconds_left(self) -> float | None:
        return None if self.deadline_at is None else self.deadline_at - time.monotonic()


current: ContextVar[CallState | None] = ContextVar("llmtaskgraph_anthropic_call", default=None)
"""Set around each SDK request so the client-wide middleware knows which call it serves."""


class _AttemptTimeout(Exception):
    """An attempt had no answer within ``timeout``. Raised through the SDK's ``RetryableError``
    (see :func:`_retryable`), so the SDK retries it like its own timeouts."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(f"no answer within {timeout} s")


class _WaitRefused(Exception):
    """The server asked for a wait longer than the call may spend; the call fails without retrying."""

    def __init__(self, status: int, body: Any, wait: float, limit: str, request_id: str | None) -> None:
        self.status = status
        self.body = body
        """The error's JSON body, when it had one."""
        self.wait = wait
        """Seconds the server asked for."""
        self.limit = limit
        """Why that is too long, e.g. "more than `max_retry_wait=60` s"."""
        self.request_id = request_id
        super().__init__(f"the API asked to wait {wait:g} s before retrying, {limit}")


_RETRYABLE: type[Exception] | None = None


def _retryable(timeout: float) -> Exception:
    """An :class:`_AttemptTimeout` that is also the SDK's ``RetryableError`` (built on first use, so
    this module imports without the SDK)."""
    global _RETRYABLE
    if _RETRYABLE is None:
        from anthropic import RetryableError

        _RETRYABLE = type("_AttemptTimedOut", (_AttemptTimeout, RetryableError), {})
    return _RETRYABLE(timeout)


async def bound_attempts(request: APIRequest, call_next: AsyncCallNext) -> AsyncAPIResponse[Any]:
    """Client middleware: bounds and counts each HTTP attempt of a call made by AnthropicLLM."""
    state = current.get()
    if state is None:  # the client was borrowed for a call of someone else's
        return await call_next(request)
    state.retries = state.earlier + request.retries_taken
    try:
        response = await asyncio.wait_for(call_next(request), state.timeout)
    except asyncio.TimeoutError:
        raise _retryable(state.timeout) from None
    state.request_id = response.headers.get("request-id")
    http = response.http_response
    if http.is_success or request.retries_taken >= state.max_retries or not sdk_retries(http.status_code, http.headers):
        return response
    wait = retry_after(http.headers)
    left = state.seconds_left()
    limit = None
    if wait is not None and wait > state.max_retry_wait:
        limit = f"more than `max_retry_wait={state.max_retry_wait:g}` s"
    elif wait is not None and left is not None and wait >= left:
        limit = f"past the call's deadline ({max(left, 0):.1f} s left)"
    if wait is None or limit is None:
        return response
    await http.aread()
    try:
        body = http.json()
    except ValueError:
        body = None
    raise _WaitRefused(http.status_code, body, wait, limit, state.request_id)


def sdk_retries(status: int, headers: Mapping[str, str]) -> bool:
    """Whether the SDK retries an answer with this status (its documented policy)."""
    should = headers.get("x-should-retry")
    if should in ("true", "false"):
        return should == "true"
    return status in (408, 409, 429) or status >= 500


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait the server asks for, read as the SDK reads it: ``retry-after-ms``, then ``retry-after``
    in seconds or as an HTTP date. None when there is none (the SDK then backs off by itself, at
    most 8 s)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) / scale
        except ValueError:
            pass
    when = email.utils.parsedate_tz(headers.get("retry-after", ""))
    return None if when is None else float(email.utils.mktime_tz(when) - time.time())
