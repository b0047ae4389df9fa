"""Budgets: ``run(..., max_cost=USD)`` and ``max_tokens_total=N`` stop a run before it could exceed them.

Before each LLM call starts, the call's upper bound is reserved: its input tokens (estimated
locally from the request, see :func:`llmtaskgraph.llm.prices.estimate_input_tokens`) plus its whole
``max_tokens`` of output, priced at its model's price (the batch price on the batch backend). A
call whose bound does not fit in what is left, counting what was spent and every call still in
flight at its own bound, is not started: the run stops as ``max_tasks`` stops it (no new task
starts, running ones finish, the trace is saved) with ``last_run.stopped`` set to ``max_cost`` or
``max_tokens_total``. When a call ends, its reservation is replaced by what its reply actually
cost. So a run can only pass its budget when a request's input was estimated too low; the excess
is reported in ``last_run.overshoot``.

The budget covers this run's calls: replies reused from the trace or taken from the response cache
cost nothing here. A run stopped by its budget resumes like any stopped run: run again (with a
larger budget) and nothing that finished is repeated.

A model with no known price cannot be held to a dollar budget: with ``max_cost`` set its calls
are refused (the run stops, saying which model), never counted as free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from ..llm.prices import LOCAL_BACKENDS, estimate_input_tokens, request_cost_bounds
from ..llm.prices import cost_of as reply_cost

if TYPE_CHECKING:
    from ..llm.base import LLMBackend
    from .state import RunReport

__all__ = ["Budget", "Reservation"]

DEFAULT_MAX_TOKENS = 1024
"""``max_tokens`` assumed for a request that names none on a backend that does not say its default."""


class _BudgetStop(Exception):
    """Raised by :meth:`Budget.reserve` for a call that must not start; the scheduler puts its task back
    to pending, as for any stopped run."""


@dataclass
class Reservation:
    """What one call in flight may still cost, held until it ends."""

    dollars: float
    tokens: int


class Budget:
    """The budget of one run (and its sub-graph runs), shared through :class:`~.state.RunState`."""

    def __init__(self, report: RunReport, llm: LLMBackend, max_cost: float | None, max_tokens_total: int | None) -> None:
        self.report = report
        self.llm = llm
        self.max_cost = max_cost
        self.max_tokens_total = max_tokens_total
        self.in_flight_dollars = 0.0
        self.in_flight_tokens = 0
        self.batch = bool(getattr(llm, "batch", False))
        """Calls go through the Message Batches API: priced at the batch factor."""
        self.local = str(getattr(llm, "kind", "")).split(":")[0] in LOCAL_BACKENDS

    @property
    def active(self) -> bool:
        return self.max_cost is not None or self.max_tokens_total is not None

    def model_of(self, request: dict[str, Any]) -> str | None:
        """The model a request will be priced as."""
        if self.local:
            return str(getattr(self.llm, "kind", "")).split(":")[0]
        model = request.get("model") or getattr(self.llm, "model", None)
        return model if isinstance(model, str) else None

    def bound(self, request: dict[str, Any]) -> Reservation | str:
        """The most a request could cost, or why it cannot be bounded (an unknown price)."""
        max_tokens = request.get("max_tokens") or getattr(self.llm, "max_tokens", None) or DEFAULT_MAX_TOKENS
        max_tokens = max_tokens if isinstance(max_tokens, int) else DEFAULT_MAX_TOKENS
        tokens = estimate_input_tokens(request) + max_tokens
        model = self.model_of(request)
        bounds = request_cost_bounds(request, model, max_tokens, batch=self.batch,
                                     writes_cache='"cache_control"' in json.dumps(request, default=str))
        if bounds is None:
            if self.max_cost is None:
                return Reservation(0.0, tokens)
            return f"the price of model `{model}` is unknown, so `max_cost` cannot bound its calls " \
                   "(add it with llmtaskgraph.llm.prices.set_price)"
        return Reservation(bounds[1], tokens)

    def reserve(self, path: str, request: dict[str, Any]) -> Reservation | None:
        """Hold the upper bound of the call of ``path``; raise :class:`_BudgetStop` (after recording why) if it
        could take the run past its budget. None when the run has no budget."""
        if not self.active:
            return None
        report = self.report
        if report.stopped is not None and report.stopped in ("max_cost", "max_tokens_total"):
            raise _BudgetStop(path)  # the budget already said no: calls that were waiting do not start either
        held = self.bound(request)
        if isinstance(held, str):
            self._stop("max_cost", f"`{path}` not called: {held}")
        assert isinstance(held, Reservation)
        if self.max_cost is not None and report.cost + self.in_flight_dollars + held.dollars > self.max_cost + 1e-12:
            self._stop("max_cost", (
                f"budget max_cost=${self.max_cost:g}: {_usd(report.cost)} spent, {_usd(self.in_flight_dollars)} "
                f"more could be in flight, and the call of `{path}` could cost up to {_usd(held.dollars)}"))
        if self.max_tokens_total is not None and (
                report.tokens + self.in_flight_tokens + held.tokens > self.max_tokens_total):
            self._stop("max_tokens_total", (
                f"budget max_tokens_total={self.max_tokens_total:,}: {report.tokens:,} tokens used, "
                f"{self.in_flight_tokens:,} more could be in flight, and the call of `{path}` could use up to "
                f"{held.tokens:,}"))
        self.in_flight_dollars += held.dollars
        self.in_flight_tokens += held.tokens
        return held

    def _stop(self, reason: str, why: str) -> NoReturn:
        report = self.report
        if report.stopped is None:
            report.stopped = reason
            report.stopped_why = why
        raise _BudgetStop(why)

    def release(self, held: Reservation | None) -> None:
        """The call of ``held`` ended: it is no longer in flight (what it cost is counted by :meth:`spend`)."""
        if held is not None:
            self.in_flight_dollars = max(self.in_flight_dollars - held.dollars, 0.0)
            self.in_flight_tokens = max(self.in_flight_tokens - held.tokens, 0)

    def spend(self, reply: dict[str, Any]) -> None:
        """Count what a reply obtained by this run cost (every run counts, budget or not)."""
        report = self.report
        dollars = reply_cost(reply)
        if dollars is None:
            report.unpriced_calls += 1
        else:
            report.cost += dollars
        usage = reply.get("usage")
        if isinstance(usage, dict):
            report.tokens += sum(v for k in ("input_tokens", "output_tokens", "cache_read_input_tokens",
                                              "cache_creation_input_tokens")
                                 if isinstance(v := usage.get(k), int) and not isinstance(v, bool))
        if self.max_cost is not None:
            report.overshoot = max(report.overshoot, report.cost - self.max_cost)
        if self.max_tokens_total is not None:
            report.overshoot_tokens = max(report.overshoot_tokens, report.tokens - self.max_tokens_total)


def _usd(dollars: float) -> str:
    return f"${dollars:.4f}" if dollars < 1 else f"${dollars:,.2f}"

