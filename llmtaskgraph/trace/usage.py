"""Token, call, time and dollar totals of the LLM replies a graph's trace holds (sub-graphs included).

The totals describe the replies the trace holds now, so they answer "what did this result cost";
replies replaced by a fresh sample or a changed prompt are no longer counted. Replies taken from
the persistent response cache are counted like the rest and also in ``cached`` (and their cost in
``cache_saved``), since they were paid for once. Hand-written replies (``task.edit(response=...)``
with no call behind them) are not.

Dollars come from :mod:`llmtaskgraph.llm.prices`: a reply whose model has no known price adds to
``unpriced``, never to ``cost`` as zero, so a total with ``unpriced > 0`` is a lower bound.

Counts are read as a hand-edited trace may hold them: a count that is no whole number counts as zero,
and a latency that is no finite float (``10**400`` is valid JSON) is left out of ``llm_seconds``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..llm.prices import cost_of
from ..text import count_text, seconds_text

if TYPE_CHECKING:
    from ..model.graph import TaskGraph


@dataclass
class Usage:
    """Totals over LLM replies; ``by_model`` splits them per model."""

    calls: int = 0
    """Replies obtained from a backend."""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    """Prompt-cache writes (Anthropic prompt caching), when the API reported them."""
    cache_read_input_tokens: int = 0
    """Prompt-cache reads, when the API reported them."""
    llm_seconds: float = 0.0
    """Sum of call latencies (retries included): time spent waiting for the LLM, not wall time.
    Latencies that are no finite float are left out."""
    retries: int = 0
    """Retries the backend made before the replies arrived."""
    cached: int = 0
    """Replies taken from the persistent response cache rather than a new request."""
    cost: float = 0.0
    """US dollars the replies cost (batch replies at the batch price), over those whose price is known."""
    unpriced: int = 0
    """Replies whose model has no known price: their cost is not in ``cost`` (add one with
    :func:`llmtaskgraph.llm.prices.set_price`)."""
    cache_saved: float = 0.0
    """Of ``cost``, the dollars of the replies taken from the response cache: paid once, not again."""
    by_model: dict[str, Usage] = field(default_factory=dict)
    """Model name -> the same totals for the replies of that model."""
    by_task: dict[str, float | None] = field(default_factory=dict)
    """Task path -> dollars of its reply (None: unknown price), for every task holding a paid-for reply."""

    def add(self, response: dict[str, Any], path: str | None = None) -> None:
        """Count one stored reply (a task's ``record.response``), of the task at ``path`` if given."""
        dollars = cost_of(response)
        self._add(response, dollars)
        model = str(response.get("model") or "unknown")
        self.by_model.setdefault(model, Usage())._add(response, dollars)
        if path is not None:
            self.by_task[path] = dollars

    def _add(self, response: dict[str, Any], dollars: float | None) -> None:
        usage = response.get("usage")
        usage = usage if isinstance(usage, dict) else {}  # a hand-edited trace may hold anything here
        self.calls += 1
        self.input_tokens += _int(usage.get("input_tokens"))
        self.output_tokens += _int(usage.get("output_tokens"))
        self.cache_creation_input_tokens += _int(usage.get("cache_creation_input_tokens"))
        self.cache_read_input_tokens += _int(usage.get("cache_read_input_tokens"))
        self.llm_seconds += seconds(response.get("latency")) or 0.0
        self.retries += _int(response.get("retries"))
        self.cached += 1 if response.get("cached") else 0
        if dollars is None:
            self.unpriced += 1
        else:
            self.cost += dollars
            if response.get("cached"):
                self.cache_saved += dollars

    @property
    def cost_text(self) -> str:
        """The cost as shown: ``$0.0123``, with ``+ ?`` when some replies have no known price."""
        if self.unpriced and not self.calls - self.unpriced:
            return "?"
        return dollars_text(self.cost) + (" + ?" if self.unpriced else "")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in vars(self).items() if k not in ("by_model", "by_task")}
        out["by_model"] = {m: u.to_json() for m, u in self.by_model.items()}
        if self.by_task:
            out["by_task"] = dict(self.by_task)
        return out

    def __str__(self) -> str:
        models = ", ".join(f"{m}: {u.calls}" for m, u in self.by_model.items()) or "none"
        c = count_text
        return (
            f"{self.calls} LLM calls ({models}); {c(self.input_tokens)} input + {c(self.output_tokens)} output tokens"
            f" (cache: {c(self.cache_read_input_tokens)} read, {c(self.cache_creation_input_tokens)} written);"
            f" {seconds_text(self.llm_seconds, 2)} s waiting for the LLM; {c(self.retries)} retries;"
            f" {self.cached} from the response cache; {self._cost_line()}"
        )

    def _cost_line(self) -> str:
        saved = f" ({dollars_text(self.cache_saved)} of it saved by the response cache)" if self.cache_saved else ""
        line = f"cost {dollars_text(self.cost)}{saved}"
        if self.unpriced:
            models = ", ".join(m for m, u in self.by_model.items() if u.unpriced)
            line += f" + {self.unpriced} repl{'y' if self.unpriced == 1 else 'ies'} of unknown price ({models})"
        return line


def dollars_text(dollars: float | None) -> str:
    """``$1.23``, ``$0.0042`` (four decimals under a dollar, so small calls do not show as $0.00), ``?``."""
    if dollars is None or not math.isfinite(dollars):
        return "?"
    if dollars == 0:
        return "$0"
    return f"${dollars:,.2f}" if abs(dollars) >= 1 else f"${dollars:.4f}" if abs(dollars) >= 0.0001 else f"${dollars:.2e}"


def graph_usage(graph: TaskGraph) -> Usage:
    """Totals over every reply in ``graph`` and its sub-graphs (an LLMTask's, or any task's that holds one,
    such as the turns of a tool-using task), with the cost of each task in ``by_task``."""
    total = Usage()
    for path, task, _ in graph.walk():
        response = task.record.response
        if response and response.get("backend"):  # hand-written replies have no backend
            total.add(response, path)
    return total


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def seconds(value: Any) -> float | None:
    """A time from a trace as a finite float, or None (absent, not a number, or beyond a float's range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
