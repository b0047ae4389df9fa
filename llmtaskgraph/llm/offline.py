"""LLM backends that need no network: the offline default and scripted replies for tutorials.

Both can answer like a tool-using, thinking model, so agents and their tutorials run with no key: a
scripted reply may be a dict of content blocks (build them with :func:`tool_use`, :func:`thinking`
and :func:`text`), and the offline backend, given ``tools``, calls each tool once and then answers
with what the tools returned.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import LLMCallError, OutputNotJSONError
from ..fingerprint import digest, json_problem
from .base import LLMResponse, last_user_text

OFFLINE_NOTICE = (
    "llmtaskgraph: no ANTHROPIC_API_KEY set, so LLM tasks use the offline backend; "
    "its replies are placeholders, not model output. Set ANTHROPIC_API_KEY (or pass llm=AnthropicLLM(...)) "
    "to call Claude."
)


class OfflineLLM:
    """Deterministic stand-in used when no API key is configured.

    Each reply is labelled ``[offline reply <hash>]`` and echoes the prompt, so it can never be
    mistaken for a model's answer, yet equal prompts give equal replies and the graph runs end to end.
    """

    kind = "offline"

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.calls = 0

    async def complete(self, request: dict[str, Any]) -> LLMResponse:
        self.calls += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        prompt = last_user_text(request)
        label = f"[offline reply {digest(request)[:8]}]"
        blocks: list[dict[str, Any]] = []
        if (request.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
            blocks.append(thinking(f"{label} placeholder thinking", signature=f"offline-{digest(request)[:16]}"))
        tools = [t for t in request.get("tools") or [] if isinstance(t, dict) and "input_schema" in t]
        results = _tool_results(request)
        if tools and not results:  # first turn of a tool loop: call every tool once, with placeholder input
            blocks += [tool_use(t["name"], _placeholder(t["input_schema"]), id=f"toolu_offline_{i}_{digest(request)[:8]}")
                       for i, t in enumerate(tools)]
            return _reply(blocks, prompt, self.latency, "offline", stop_reason="tool_use")
        if results:
            prompt = "tool results: " + "; ".join(results)
        blocks.append(text(f"{label} {prompt}"))
        return _reply(blocks, prompt, self.latency, "offline")


Scripted = str | dict[str, Any]
"""A scripted reply: its text, or a dict with ``content`` blocks (and optionally ``stop_reason``, ``usage``)."""
Script = Mapping[str, Scripted] | Callable[[str], Scripted] | Callable[[dict[str, Any]], Scripted]


class ScriptedLLM:
    """Replies from a script: a mapping from prompt text to reply, or a function of the prompt.

    A mapping key matches a prompt that equals it or, failing that, that contains it, so tutorials
    can key on a distinctive phrase. A prompt no entry matches raises :class:`~llmtaskgraph.errors.LLMCallError` naming it.
    With ``whole_request=True`` the function receives the whole Messages API request instead
    (``messages``, ``system``, ``model``, ``temperature``, ...), for replies that depend on more than
    the last user message. A reply is its text, or a dict of content blocks, e.g.
    ``{"content": [thinking("..."), tool_use("search", {"q": "x"})], "stop_reason": "tool_use"}``
    (``stop_reason`` defaults to ``tool_use`` when there is a tool use, else ``end_turn``).

    A mapping's contents are part of ``kind`` (and so of every call fingerprint): edit the script and
    the next run asks it again. A function cannot be fingerprinted; give a new ``name`` to re-ask.
    """

    def __init__(self, script: Script, latency: float = 0.0, *, whole_request: bool = False, name: str = "") -> None:
        self.script = script
        self.latency = latency
        self.whole_request = whole_request
        self.calls = 0
        if not callable(script):
            problem = json_problem(dict(script), "script")
            if problem is not None:
                raise OutputNotJSONError(f"a ScriptedLLM script that cannot be stored: `{problem[0]}` {problem[1]}")
        label = name or ("" if callable(script) else digest(dict(script))[:12])
        self.kind = f"scripted:{label}" if label else "scripted"
        """Part of the call fingerprint: ``scripted`` plus the script's digest or the given name."""

    async def complete(self, request: dict[str, Any]) -> LLMResponse:
        self.calls += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        prompt = last_user_text(request)
        reply = self.script(request) if self.whole_request and callable(self.script) else self.reply_for(prompt)  # type: ignore[arg-type]
        if isinstance(reply, dict):
            content = reply.get("content")
            if not isinstance(content, list) or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in content):
                raise LLMCallError("a ScriptedLLM reply dict must have `content`: a list of blocks, each a dict with a `type`")
            stop = reply.get("stop_reason") or ("tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn")
            response = _reply(content, prompt, self.latency, "scripted", stop_reason=stop)
            if isinstance(reply.get("usage"), dict):
                response.usage = dict(reply["usage"])
        elif isinstance(reply, str):
            response = _reply(reply, prompt, self.latency, "scripted")
        else:
            raise LLMCallError(f"the ScriptedLLM script must return the reply text (str), got {type(reply).__name__} "
                               "(or a dict of `content` blocks)")
        problem = json_problem(response.text, "text") or json_problem(response.to_json(), "reply")
        if problem is not None:  # a lone surrogate: UTF-8 could not write the trace
            raise OutputNotJSONError(f"the ScriptedLLM script gave a reply that cannot be stored: `{problem[0]}` {problem[1]}")
        return response

    def reply_for(self, prompt: str) -> Scripted:
        if callable(self.script):
            return self.script(prompt)  # type: ignore[arg-type]
        if prompt in self.script:
            return self.script[prompt]
        for key, reply in self.script.items():
            if key in prompt:
                return reply
        raise LLMCallError(f"ScriptedLLM has no reply for the prompt {prompt[:200]!r}; add an entry to the script")


def _reply(
    reply: str | list[dict[str, Any]], prompt: str, latency: float, backend: str, stop_reason: str = "end_turn",
) -> LLMResponse:
    """A reply as a local backend gives it: model and backend named after it, plausible token counts.

    A plain text reply is stored as text alone (as the offline backend always did); blocks are kept."""
    from .reply import text_of

    blocks = None if isinstance(reply, str) else reply
    body = reply if isinstance(reply, str) else text_of(reply)
    if blocks is not None and [b["type"] for b in blocks] == ["text"] and set(blocks[0]) == {"type", "text"}:
        blocks = None
    counted = body + "".join(str(b.get("thinking", "")) + str(b.get("input", "")) for b in blocks or [])
    usage = {"input_tokens": _count_tokens(prompt), "output_tokens": _count_tokens(counted)}
    return LLMResponse(text=body, model=backend, stop_reason=stop_reason, usage=usage, latency=latency, backend=backend,
                       content=blocks)


def text(value: str) -> dict[str, Any]:
    """A ``text`` content block."""
    return {"type": "text", "text": value}


def tool_use(name: str, input: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    """A ``tool_use`` content block (``id`` defaults to one derived from the name and input)."""
    return {"type": "tool_use", "id": id or f"toolu_{digest([name, input])[:20]}", "name": name, "input": input}


def thinking(value: str, signature: str | None = None) -> dict[str, Any]:
    """A ``thinking`` content block with a placeholder signature (only the real API's signatures verify)."""
    return {"type": "thinking", "thinking": value, "signature": signature or f"scripted-{digest(value)[:16]}"}


def _tool_results(request: dict[str, Any]) -> list[str]:
    """The contents of the ``tool_result`` blocks in the last user message, as text."""
    messages = request.get("messages") or []
    last = messages[-1] if messages else {}
    content = last.get("content") if isinstance(last, dict) and last.get("role") == "user" else None
    if not isinstance(content, list):
        return []
    return [str(b.get("content")) for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def _placeholder(schema: dict[str, Any]) -> dict[str, Any]:
    """Tool input the offline backend makes up: each required property gets a value of its type."""
    values = {"string": "offline", "integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}
    props = schema.get("properties") or {}
    out: dict[str, Any] = {}
    for name in schema.get("required") or []:
        spec = props.get(name) or {}
        enum = spec.get("enum")
        out[name] = enum[0] if isinstance(enum, list) and enum else values.get(str(spec.get("type")), "offline")
    return out


def _count_tokens(text: str) -> int:
    # A rough word-piece count so offline usage totals are plausible, not zero.
    return len(re.findall(r"\w+|[^\w\s]", text))
