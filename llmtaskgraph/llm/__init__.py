"""LLM backends: the protocol, the offline default, scripted replies and the anthropic SDK."""

from __future__ import annotations

from .base import LLMBackend, LLMResponse, PromptError, build_request
from .offline import OFFLINE_NOTICE, OfflineLLM, ScriptedLLM

__all__ = ["OFFLINE_NOTICE", "LLMBackend", "LLMResponse", "OfflineLLM", "PromptError", "ScriptedLLM", "build_request"]
