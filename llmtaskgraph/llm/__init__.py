"""LLM backends: the protocol, the offline default, scripted replies, the anthropic SDK and the response cache."""

from __future__ import annotations

from .anthropic import DEFAULT_MODEL, AnthropicLLM
from .base import LLMBackend, LLMResponse, PromptError, build_request
from .cache import ResponseCache, ResponseStore
from .offline import OFFLINE_NOTICE, OfflineLLM, ScriptedLLM, text, thinking, tool_use
from .reply import Reply

__all__ = [
    "DEFAULT_MODEL",
    "OFFLINE_NOTICE",
    "AnthropicLLM",
    "LLMBackend",
    "LLMResponse",
    "OfflineLLM",
    "PromptError",
    "Reply",
    "ResponseCache",
    "ResponseStore",
    "ScriptedLLM",
    "build_request",
    "text",
    "thinking",
    "tool_use",
]
