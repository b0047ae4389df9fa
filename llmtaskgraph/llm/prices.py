"""What a reply cost in US dollars: one price table per model, overridable, never guessing.

Prices are USD per million tokens, as Anthropic publishes them: base input, prompt-cache writes
with a 5-minute and a 1-hour lifetime, cache reads (hits and refreshes), output, and the factor
the Message Batches API charges (half). Prompt-cache and batch factors stack, as the API bills them.

Source: the model overview pages and the pricing page at platform.claude.com
(``/docs/en/about-claude/pricing``, ``/docs/en/models/<model>/overview``), read 2026-11 through the
project's stored documentation. Changes since the pages were first published that this table
follows: Claude Sonnet 5.5 cache reads cut from $0.20 to $0.10 on 2026-10-07, and Claude Haiku 5.5
(released 2026-10-07) billing every token of a request whose prompt exceeds 100,000 tokens at five
times its base rates. Prices move: check them before trusting a bill to this table, and override
what differs (negotiated rates, a new model)::

    from llmtaskgraph.llm.prices import Price, set_price
    set_price("claude-new-model", Price(input=2, output=10, cache_write_5m=2.5, cache_write_1h=4, cache_read=0.2))

A model the table does not know has an *unknown* price: its cost is None and totals say how many
replies they leave out; it is never counted as free. The local backends (offline, scripted) are free
and say so. A dated model id (``claude-haiku-4-5-20251001``) has the price of its undated name.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "LOCAL_BACKENDS",
    "PRICES",
    "Price",
    "cost_of",
    "estimate_input_tokens",
    "price_of",
    "reply_model",
    "request_cost_bounds",
    "set_price",
]

PRICES_CHECKED = "2026-11"
"""When the table below was last compared with Anthropic's published prices."""

LOCAL_BACKENDS = frozenset({"offline", "scripted"})
"""Backends that answer on this machine: their replies cost nothing (a known price of zero)."""


@dataclass(frozen=True)
class Price:
    """The prices of one model, in US dollars per million tokens."""

    input: float
    """Base input tokens (not read from or written to the prompt cache)."""
    output: float
    """Output tokens (thinking included)."""
    cache_write_5m: float
    """Input tokens written to the prompt cache with the default 5-minute lifetime."""
    cache_write_1h: float
    """Input tokens written to the prompt cache with a 1-hour lifetime."""
    cache_read: float
    """Input tokens read from the prompt cache (hits and refreshes)."""
    batch_factor: float = 0.5
    """What the Message Batches API charges, as a fraction of these prices (Anthropic: half)."""
    long_prompt_tokens: int | None = None
    """A request whose prompt (input + cache reads + cache writes) has more tokens than this is billed
    at ``long_prompt_factor`` times every price above, output included (Claude Haiku 5.5: 100,000)."""
    long_prompt_factor: float = 1.0
    web_search: float = 10.0
    """Dollars per 1,000 server-side web searches (``usage.server_tool_use.web_search_requests``)."""


def _claude(input: float, output: float, cache_read: float | None = None, **more: Any) -> Price:
    """A Claude price from its input and output prices: cache writes cost 1.25× (5 minutes) and 2× (1 hour)
    the input price and reads 0.1× unless given, the ratios Anthropic applies to every model."""
    return Price(input=input, output=output, cache_write_5m=input * 1.25, cache_write_1h=input * 2,
                 cache_read=input / 10 if cache_read is None else cache_read, **more)


_FREE = Price(input=0.0, output=0.0, cache_write_5m=0.0, cache_write_1h=0.0, cache_read=0.0, web_search=0.0)

PRICES: dict[str, Price] = {
    "claude-fable-5-2": _claude(8, 40, 0.20),
    "claude-mythos-5-2": _claude(8, 40, 0.20),
    "claude-fable-5-1": _claude(10, 50, 0.25),
    "claude-mythos-5-1": _claude(10, 50, 0.25),
    "claude-fable-5": _claude(10, 50, 1.00),
    "claude-mythos-5": _claude(10, 50, 1.00),
    "claude-opus-5-5": _claude(4, 20, 0.20),
    "claude-opus-5": _claude(5, 25),
    "claude-opus-4-8": _claude(5, 25),
    "claude-opus-4-7": _claude(5, 25),
    "claude-opus-4-6": _claude(5, 25),
    "claude-opus-4-5": _claude(5, 25),
    "claude-opus-4-1": _claude(15, 75),
    "claude-opus-4-0": _claude(15, 75),
    "claude-opus-4": _claude(15, 75),
    "claude-sonnet-5-5": _claude(2, 10, 0.10),
    "claude-sonnet-5": _claude(2, 10),
    "claude-sonnet-4-6": _claude(3, 15),
    "claude-sonnet-4-5": _claude(3, 15),
    "claude-sonnet-4-0": _claude(3, 15),
    "claude-sonnet-4": _claude(3, 15),
    "claude-3-7-sonnet": _claude(3, 15),
    "claude-haiku-5-5": _claude(0.10, 0.50, 0.01, long_prompt_tokens=100_000, long_prompt_factor=5.0),
    "claude-haiku-4-5": _claude(1, 5),
    "claude-3-5-haiku": Price(input=0.80, output=4, cache_write_5m=1, cache_write_1h=1.6, cache_read=0.08),
    "claude-3-haiku": Price(input=0.25, output=1.25, cache_write_5m=0.30, cache_write_1h=0.50, cache_read=0.03),
    **{name: _FREE for name in LOCAL_BACKENDS},
}
"""Model id -> :class:`Price`. Edit it (or call :func:`set_price`) to add a model or change a price;
models absent here have an unknown price."""

_DATED = re.compile(r"^(.*)-\d{8}$")


def set_price(model: str, price: Price | None = None, **changes: Any) -> Price:
    """Set the price of ``model`` (a whole :class:`Price`, or some fields changed from its current one).

    ``set_price("claude-sonnet-5-5", cache_read=0.2)`` changes one field; ``set_price("mine",
    Price(...))`` adds a model. Returns the price now in force.
    """
    if price is None:
        current = price_of(model)
        if current is None:
            raise KeyError(f"no price for `{model}` to change; give a whole Price(...) for it")
        price = current
    price = replace(price, **changes) if changes else price
    PRICES[model] = price
    return price


def price_of(model: str | None, prices: Mapping[str, Price] | None = None) -> Price | None:
    """The price of ``model`` (its dated id falls back to the undated one); None when unknown."""
    if not model:
        return None
    table = PRICES if prices is None else prices
    found = table.get(model)
    if found is None:
        dated = _DATED.match(model)
        if dated is not None:
            found = table.get(dated.group(1))
    return found


def reply_model(response: Mapping[str, Any]) -> str | None:
    """The model a stored reply is priced as: a local backend's name, else the model that answered."""
    backend = response.get("backend")
    if isinstance(backend, str) and backend in LOCAL_BACKENDS:
        return backend
    model = response.get("model")
    return model if isinstance(model, str) else None


def cost_of(response: Mapping[str, Any], prices: Mapping[str, Price] | None = None) -> float | None:
    """Dollars a stored reply (a task's ``record.response``) cost; None when its model's price is unknown.

    Batch replies (``usage.service_tier == "batch"``, or from the batch backend) pay the batch factor.
    Counts a hand-edited trace holds that are no whole numbers count as zero.
    """
    price = price_of(reply_model(response), prices)
    if price is None:
        return None
    usage = response.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    batch = usage.get("service_tier") == "batch" or response.get("backend") == "anthropic-batch"
    return usage_cost(usage, price, batch=batch)


def usage_cost(usage: Mapping[str, Any], price: Price, *, batch: bool = False) -> float:
    """Dollars for one request's ``usage`` (the API's usage object) at ``price``."""
    inp, out = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
    read = _count(usage.get("cache_read_input_tokens"))
    written = _count(usage.get("cache_creation_input_tokens"))
    split = usage.get("cache_creation")
    w5 = w1 = 0
    if isinstance(split, Mapping):
        w5, w1 = _count(split.get("ephemeral_5m_input_tokens")), _count(split.get("ephemeral_1h_input_tokens"))
    if w5 + w1 != written:  # no split given (or a partial one): the rest was written for 5 minutes
        w5 = max(written - w1, 0)
    try:
        dollars = (inp * price.input + out * price.output + read * price.cache_read
                   + w5 * price.cache_write_5m + w1 * price.cache_write_1h) / 1e6
    except OverflowError:  # a hand-edited count beyond a float's range
        return math.inf
    if price.long_prompt_tokens is not None and inp + read + written > price.long_prompt_tokens:
        dollars *= price.long_prompt_factor
    if batch:
        dollars *= price.batch_factor
    tools = usage.get("server_tool_use")
    if isinstance(tools, Mapping):
        dollars += _count(tools.get("web_search_requests")) * price.web_search / 1000
    return dollars


def _count(value: Any) -> int:
    """A token count as the trace holds it; anything but a whole number >= 0 counts as zero."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


CHARS_PER_TOKEN = 3.0
"""The local estimate of input tokens: characters of the request's JSON per token. Claude's newer
tokenizer gives about 3 to 3.5 characters of English per token; 3 errs towards more tokens."""


def estimate_input_tokens(request: Mapping[str, Any]) -> int:
    """A local estimate of a request's input tokens (messages, system prompt and tools), no API call."""
    parts = {k: request.get(k) for k in ("system", "messages", "tools") if request.get(k) is not None}
    text = json.dumps(parts, ensure_ascii=False, default=str)
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def request_cost_bounds(
    request: Mapping[str, Any], model: str | None, max_tokens: int, *, batch: bool = False, input_tokens: int | None = None,
    writes_cache: bool = False, prices: Mapping[str, Price] | None = None,
) -> tuple[float, float] | None:
    """(lowest, highest) dollars a request could cost; None when the price of ``model`` is unknown.

    Its input tokens are those counted by the API when given, else estimated; the lowest has no
    output, the highest ``max_tokens`` of it. A request that ``writes_cache`` (has ``cache_control``)
    may pay the 1-hour cache-write price for all its input, so the highest assumes it does.
    """
    price = price_of(model, prices)
    if price is None:
        return None
    tokens = estimate_input_tokens(request) if input_tokens is None else input_tokens
    low = usage_cost({"input_tokens": tokens, "output_tokens": 0}, price, batch=batch)
    written = {"cache_creation_input_tokens": tokens, "cache_creation": {"ephemeral_1h_input_tokens": tokens}}
    most = {"output_tokens": max(max_tokens, 0), **(written if writes_cache else {"input_tokens": tokens})}
    return low, max(low, usage_cost(most, price, batch=batch))
