"""Placeholder: the anthropic backend lands with the LLM-layer issue."""

from __future__ import annotations

from typing import Any

from .base import LLMResponse


class AnthropicLLM:
    kind = "anthropic"

    async def complete(self, request: dict[str, Any]) -> LLMResponse:
        raise NotImplementedError("AnthropicLLM is not implemented yet")
