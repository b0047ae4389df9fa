"""The small interface every LLM backend implements, and the prompt shapes a formatter may return.

The scheduler only ever calls :meth:`LLMBackend.complete`; the anthropic SDK, the offline default
and scripted replies are interchangeable behind it.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

from ..errors import PromptError

__all__ = ["LLMBackend", "LLMResponse", "PromptError", "build_request", "last_user_text"]


@dataclass
class LLMResponse:
    """One reply, with what the trace records about the call that produced it.

    ``content`` is the reply as the API returned it, block by block (``text`` with ``citations``,
    ``tool_use``, ``thinking`` with its ``signature``, ``redacted_thinking``, ``server_tool_use``,
    server tool results, ...); ``text`` is derived from it, the concatenation of the text blocks,
    kept because every ``(ctx, text)`` parser reads it.
    """

    text: str
    """The concatenation of the ``text`` blocks: what a ``(ctx, text)`` parser receives."""
    model: str | None = None
    """The model that answered, as the backend reports it."""
    stop_reason: str | None = None
    """Why generation stopped (``end_turn``, ``max_tokens``, ``tool_use``, ``refusal``, ``pause_turn``, ...)."""
    usage: dict[str, Any] = field(default_factory=dict)
    """Usage as the API reported it: ``input_tokens``, ``output_tokens``, cache counts (and the nested
    ``cache_creation`` split), ``server_tool_use``, ``service_tier``, ..."""
    latency: float | None = None
    """Seconds from sending the request to having the whole reply."""
    retries: int = 0
    """How many times the request was retried before it succeeded."""
    backend: str = ""
    """Which backend answered (``offline``, ``scripted``, ``anthropic``)."""
    content: list[dict[str, Any]] | None = None
    """The content blocks exactly as returned (JSON objects); None means one text block holding ``text``."""
    id: str | None = None
    """The message id (``msg_...``)."""
    stop_sequence: str | None = None
    """The stop sequence that ended generation, when ``stop_reason`` is ``stop_sequence``."""
    stop_details: dict[str, Any] | None = None
    """Further detail on why generation stopped, when the API gives it (e.g. for a refusal)."""
    request_id: str | None = None
    """The ``request-id`` response header, to quote to Anthropic support."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Other top-level message fields the API returned (``container``, ``context_management``, ...)."""

    def to_json(self) -> dict[str, Any]:
        """The trace's ``record.response``: fields left at their defaults are not written."""
        # Not dataclasses.asdict: its deep copy was a quarter of the scheduler's cost per LLM call.
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["usage"] = dict(self.usage)
        for name in _OPTIONAL:
            if not data[name]:
                del data[name]
        return data


_OPTIONAL = ("content", "id", "stop_sequence", "stop_details", "request_id", "extra")


@runtime_checkable
class LLMBackend(Protocol):
    """Anything with ``kind`` and an async ``complete`` can serve LLMTasks."""

    kind: str
    """Identifies the backend in call fingerprints, so switching backend calls the LLM again."""

    async def complete(self, request: dict[str, Any]) -> LLMResponse:
        """Answer one Messages API request (``messages``, ``system``, ``model``, ...).

        A backend that can stream may also take a keyword ``on_text``: a watched run then passes a
        function it calls with the reply's text so far as it grows (see ``AnthropicLLM.complete``);
        the run finds out from the signature, so backends without it need nothing."""
        ...


def build_request(prompt: Any, params: dict[str, Any] | None) -> dict[str, Any]:
    """Turn a formatter's prompt into Messages API arguments merged over the task's ``params``.

    A prompt is a ``str`` (one user message), a list of messages, or a dict of Messages API
    arguments that must include ``messages``.
    """
    request: dict[str, Any] = dict(params or {})
    if isinstance(prompt, str):
        request["messages"] = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list):
        _check_messages(prompt)
        request["messages"] = prompt
    elif isinstance(prompt, dict):
        if "messages" not in prompt:
            raise PromptError("a dict prompt must have a `messages` key (a list of {role, content} messages)")
        _check_messages(prompt["messages"])
        request.update(prompt)
    else:
        raise PromptError(
            f"expected a str, a list of messages or a dict of Messages API arguments, got {_describe(prompt)}"
        )
    return request


def _describe(value: Any) -> str:
    if value is None:
        return "None (does the formatter `return` its prompt?)"
    return f"{type(value).__name__} {reprlib.repr(value)}"


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise PromptError("`messages` must be a non-empty list of {role, content} dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise PromptError(f"message {i} must be a dict with `role` and `content`, got {m!r:.80}")


def last_user_text(request: dict[str, Any]) -> str:
    """The text of the last user message: what offline and scripted backends answer to."""
    for m in reversed(request.get("messages", [])):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""
