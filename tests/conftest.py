"""Shared pytest fixtures. Each engineer keeps their fixtures in one commented block."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

# ---------------------------------------------------------------------------------------------
# LLM layer (issue 3): the loopback Messages API server and AnthropicLLM pointed at it.
# ---------------------------------------------------------------------------------------------
from fake_messages_api import FakeMessagesAPI

from llmtaskgraph.llm import AnthropicLLM

#: A key that must never show up anywhere (trace, errors, reprs, rendering); tests scan for it.
TEST_API_KEY = "sk-ant-test-SECRETKEY-4f9c2d7e1b"


@pytest.fixture
def fake_api() -> Iterator[FakeMessagesAPI]:
    """A running :class:`FakeMessagesAPI` on 127.0.0.1 that requires :data:`TEST_API_KEY`."""
    with FakeMessagesAPI(api_key=TEST_API_KEY) as api:
        yield api


@pytest.fixture
def make_llm(fake_api: FakeMessagesAPI) -> Callable[..., AnthropicLLM]:
    """``make_llm(**options)``: an AnthropicLLM talking to ``fake_api`` with short timeouts and retries."""

    def make(**options: Any) -> AnthropicLLM:
        settings: dict[str, Any] = {"api_key": TEST_API_KEY, "base_url": fake_api.url, "timeout": 2.0, "max_retries": 2}
        settings.update(options)
        return AnthropicLLM(**settings)

    return make


# --------------------------------------------------------------------------- end of LLM layer --
