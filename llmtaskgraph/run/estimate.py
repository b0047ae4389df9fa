"""The cost estimate of a plan: a range of dollars for the LLM calls ``graph.plan`` says would be sent.

Each call is priced from its request (the formatted prompt and ``params``): its input tokens,
counted by the API's token-counting endpoint (``messages.count_tokens``, free of charge) when the
backend is Anthropic's and reachable, else estimated locally (see
:func:`llmtaskgraph.llm.prices.estimate_input_tokens`); its output between none and ``max_tokens``.
So the range is [input only, input + ``max_tokens`` of output]. A call whose formatter has not run
yet is priced from the prompt it formatted last time when there is one; a call with neither, or of a
model with no known price, is counted in ``Plan.cost_unknown`` instead of the range.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..llm.base import build_request
from ..llm.prices import request_cost_bounds
from .budget import Budget

if TYPE_CHECKING:
    from ..llm.base import LLMBackend
    from ..model.tasks import Task
    from .plan import Plan
    from .state import RunReport

__all__ = ["PlannedCall", "estimate_cost"]

COUNT_CONCURRENCY = 8
"""Token-counting requests in flight at once."""


@dataclass
class PlannedCall:
    """A call a plan counts: whose, and whether its request is known or only guessed from the last one."""

    path: str
    task: Task
    exact: bool
    """Its formatter will not run again: the request is the one that will be sent."""


def _request(task: Task) -> dict[str, Any] | None:
    prompt = task.record.prompt
    if prompt is None:
        return None
    try:
        make = getattr(task, "call_request", None)
        return make() if callable(make) else build_request(prompt, getattr(task, "params", None))
    except Exception:  # a prompt that could not be sent: the run will say so; the plan cannot price it
        return None


def estimate_cost(plan: Plan, calls: list[PlannedCall], llm: LLMBackend, report: RunReport) -> None:
    """Fill ``plan.cost_low``, ``cost_high`` and ``cost_unknown`` for ``calls`` (see the module docstring)."""
    budget = Budget(report, llm, None, None)  # only for its reading of a request: model, max_tokens, batch
    priced: list[tuple[dict[str, Any], str | None, int]] = []
    for call in calls:
        request = _request(call.task)
        if request is None:
            plan.cost_unknown += 1
            continue
        max_tokens = request.get("max_tokens") or getattr(llm, "max_tokens", None) or 1024
        priced.append((request, budget.model_of(request), max_tokens if isinstance(max_tokens, int) else 1024))
    counts = _count_tokens(llm, priced, plan) if priced and str(getattr(llm, "kind", "")).startswith("anthropic") else None
    for i, (request, model, max_tokens) in enumerate(priced):
        bounds = request_cost_bounds(request, model, max_tokens, batch=budget.batch,
                                     input_tokens=None if counts is None else counts[i])
        if bounds is None:
            plan.cost_unknown += 1
            if model not in plan.unpriced_models:
                plan.unpriced_models.append(str(model))
            continue
        plan.cost_low += bounds[0]
        plan.cost_high += bounds[1]
    plan.tokens_counted = counts is not None


def _count_tokens(llm: LLMBackend, priced: list[tuple[dict[str, Any], str | None, int]], plan: Plan) -> list[int] | None:
    """Input tokens of each request by the API's counting endpoint; None (with a note) when it cannot answer."""
    from ._sync import run_sync

    client_of = getattr(llm, "client", None)
    if not callable(client_of):
        return None

    async def count_all() -> list[int]:
        client = await client_of()
        gate = asyncio.Semaphore(COUNT_CONCURRENCY)

        async def count(request: dict[str, Any], model: str | None) -> int:
            fields = {k: request[k] for k in ("messages", "system", "tools", "tool_choice", "thinking") if k in request}
            async with gate:
                answer = await client.messages.count_tokens(model=model, **fields)
            return int(answer.input_tokens)

        return await asyncio.gather(*(count(r, m) for r, m, _ in priced))

    try:
        return run_sync(count_all)
    except Exception as exc:
        plan.notes.append(f"input tokens estimated locally: the token-counting endpoint did not answer "
                          f"({type(exc).__name__}: {str(exc)[:120]})")
        return None
