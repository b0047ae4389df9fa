"""The price table: dollars per reply from the API's full usage, batch and long-prompt factors, overrides,
and unknown models reported as unknown (never as free)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmtaskgraph.llm import prices
from llmtaskgraph.llm.prices import PRICES, Price, cost_of, price_of, request_cost_bounds, set_price


@pytest.fixture(autouse=True)
def restore_prices() -> Iterator[None]:
    saved = dict(PRICES)
    yield
    PRICES.clear()
    PRICES.update(saved)


def reply(model: str | None, backend: str = "anthropic", **usage: object) -> dict[str, object]:
    return {"text": "t", "model": model, "backend": backend, "usage": usage}


def test_published_prices_of_current_models() -> None:
    sonnet = price_of("claude-sonnet-5-5")
    assert sonnet == Price(input=2, output=10, cache_write_5m=2.5, cache_write_1h=4, cache_read=0.10)
    opus = price_of("claude-opus-5-5")
    assert opus is not None and (opus.input, opus.output, opus.cache_write_5m, opus.cache_write_1h, opus.cache_read) == (
        4, 20, 5, 8, 0.20)
    haiku = price_of("claude-haiku-4-5")
    assert haiku is not None and (haiku.input, haiku.output, haiku.cache_read) == (1, 5, 0.1)
    assert price_of("claude-haiku-4-5-20251001") == haiku  # a dated id has its undated name's price
    assert price_of("claude-opus-4-5-20251101") == price_of("claude-opus-4-5")
    for model in ("claude-sonnet-5-7", "claude-sonnet-5-5-preview", "gpt-5", "", None):
        assert price_of(model) is None  # no guessing from a neighbouring name
    assert prices.PRICES_CHECKED == "2026-11"


def test_cost_from_the_full_usage_the_api_returns() -> None:
    usage = {
        "input_tokens": 1_000_000, "output_tokens": 100_000, "cache_read_input_tokens": 2_000_000,
        "cache_creation_input_tokens": 300_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 100_000, "ephemeral_1h_input_tokens": 200_000},
        "server_tool_use": {"web_search_requests": 3}, "service_tier": "standard",
    }
    # Sonnet 5.5: $2 in, $10 out, $0.10 read, $2.50 5-minute write, $4 1-hour write, $10 per 1,000 searches
    assert cost_of(reply("claude-sonnet-5-5", **usage)) == pytest.approx(2 + 1 + 0.2 + 0.25 + 0.8 + 0.03)
    no_split = {**usage, "cache_creation": None}  # an older reply: every write counted at the 5-minute price
    assert cost_of(reply("claude-sonnet-5-5", **no_split)) == pytest.approx(2 + 1 + 0.2 + 0.75 + 0.03)


def test_batch_replies_cost_half_and_the_factors_stack() -> None:
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000, "cache_read_input_tokens": 1_000_000}
    standard = cost_of(reply("claude-opus-5-5", **usage))
    assert standard == pytest.approx(4 + 20 + 0.2)
    assert cost_of(reply("claude-opus-5-5", **usage, service_tier="batch")) == pytest.approx(standard / 2)
    assert cost_of(reply("claude-opus-5-5", backend="anthropic-batch", **usage)) == pytest.approx(standard / 2)


def test_a_long_prompt_on_haiku_5_5_costs_five_times_every_token() -> None:
    short = cost_of(reply("claude-haiku-5-5", input_tokens=100_000, output_tokens=1_000))
    assert short == pytest.approx((100_000 * 0.10 + 1_000 * 0.50) / 1e6)
    longer = cost_of(reply("claude-haiku-5-5", input_tokens=90_000, cache_read_input_tokens=20_000, output_tokens=1_000))
    assert longer == pytest.approx(5 * (90_000 * 0.10 + 20_000 * 0.01 + 1_000 * 0.50) / 1e6)


def test_unknown_models_have_no_price_and_local_backends_are_free() -> None:
    assert cost_of(reply("claude-someday-9", input_tokens=10, output_tokens=10)) is None
    assert cost_of(reply(None, input_tokens=10)) is None
    assert cost_of(reply("offline", backend="offline", input_tokens=10**6)) == 0.0
    # a scripted backend reports its own name as model; an echo of a real model name is still free
    assert cost_of(reply("claude-opus-5-5", backend="scripted", input_tokens=10**6)) == 0.0


def test_prices_can_be_overridden() -> None:
    assert cost_of(reply("my-model", input_tokens=10**6)) is None
    set_price("my-model", Price(input=1, output=2, cache_write_5m=1, cache_write_1h=1, cache_read=0.1))
    assert cost_of(reply("my-model", input_tokens=10**6, output_tokens=10**6)) == pytest.approx(3)
    set_price("claude-sonnet-5-5", cache_read=0.2)  # one field changed, the rest kept
    assert price_of("claude-sonnet-5-5") == Price(input=2, output=10, cache_write_5m=2.5, cache_write_1h=4, cache_read=0.2)
    with pytest.raises(KeyError, match="no price for `nobody`"):
        set_price("nobody", input=1)


def test_hand_edited_counts_never_break_a_cost() -> None:
    assert cost_of(reply("claude-sonnet-5-5", input_tokens="lots", output_tokens=True, cache_read_input_tokens=-5)) == 0
    assert cost_of({"text": "t", "model": "claude-sonnet-5-5", "usage": "?"}) == 0
    assert cost_of(reply("claude-sonnet-5-5", input_tokens=10**3000)) == float("inf")


def test_request_bounds_range_from_input_alone_to_max_tokens_of_output() -> None:
    request = {"messages": [{"role": "user", "content": "x" * 3000}]}
    low, high = request_cost_bounds(request, "claude-sonnet-5-5", 1000, input_tokens=1000) or (0, 0)
    assert low == pytest.approx(1000 * 2 / 1e6) and high == pytest.approx((1000 * 2 + 1000 * 10) / 1e6)
    estimated = request_cost_bounds(request, "claude-sonnet-5-5", 0)
    assert estimated is not None and estimated[0] == estimated[1] > 1000 * 2 / 1e6  # ~1,000 tokens or more
    batch = request_cost_bounds(request, "claude-sonnet-5-5", 1000, input_tokens=1000, batch=True)
    assert batch == pytest.approx((low / 2, high / 2))
    caching = request_cost_bounds(request, "claude-sonnet-5-5", 1000, input_tokens=1000, writes_cache=True)
    assert caching is not None and caching[1] == pytest.approx((1000 * 4 + 1000 * 10) / 1e6)  # all input at the 1-hour write price
    assert request_cost_bounds(request, "nobody", 1000) is None
