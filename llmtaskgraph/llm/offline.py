"""LLM backends that need no network: the offline default and scripted replies for tutorials."""

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
        return _reply(f"[offline reply {digest(request)[:8]}] {prompt}", prompt, self.latency, "offline")


Script = Mapping[str, str] | Callable[[str], str] | Callable[[dict[str, Any]], str]


class ScriptedLLM:
    """Replies from a script: a mapping from prompt text to reply, or a function of the prompt.

    A mapping key matches a prompt that equals it or, failing that, that contains it, so tutorials
    can key on a distinctive phrase. A prompt no entry matches raises :class:`~llmtaskgraph.errors.LLMCallError` naming it.
    With ``whole_request=True`` the function receives the whole Messages API request instead
    (``messages``, ``system``, ``model``, ``temperature``, ...), for replies that depend on more than
    the last user message.

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
        text = self.script(request) if self.whole_request and callable(self.script) else self.reply_for(prompt)  # type: ignore[arg-type]
        if not isinstance(text, str):
            raise LLMCallError(f"the ScriptedLLM script must return the reply text (str), got {type(text).__name__}")
        problem = json_problem(text, "text")
        if problem is not None:  # a lone surrogate: UTF-8 could not write the trace
            raise OutputNotJSONError(f"the ScriptedLLM script gave a reply that cannot be stored: `{problem[0]}` {problem[1]}")
        return _reply(text, prompt, self.latency, "scripted")

    def reply_for(self, prompt: str) -> str:
        if callable(self.script):
            return self.script(prompt)  # type: ignore[arg-type]
        if prompt in self.script:
            return self.script[prompt]
        for key, reply in self.script.items():
            if key in prompt:
                return reply
        raise LLMCallError(f"ScriptedLLM has no reply for the prompt {prompt[:200]!r}; add an entry to the script")


def _reply(text: str, prompt: str, latency: float, backend: str) -> LLMResponse:
    """A reply as a local backend gives it: model and backend named after it, plausible token counts."""
    usage = {"input_tokens": _count_tokens(prompt), "output_tokens": _count_tokens(text)}
    return LLMResponse(text=text, model=backend, stop_reason="end_turn", usage=usage, latency=latency, backend=backend)


def _count_tokens(text: str) -> int:
    # A rough word-piece count so offline usage totals are plausible, not zero.
    return len(re.findall(r"\w+|[^\w\s]", text))
