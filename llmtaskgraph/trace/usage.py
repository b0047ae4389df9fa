"""Token, call and time totals of the LLM replies a graph's trace holds (sub-graphs included).

The totals describe the replies the trace holds now, so they answer "what did this result cost";
replies replaced by a fresh sample or a changed prompt are no longer counted. Replies taken from
the persistent response cache are counted like the rest and also in ``cached``, since they were
paid for once. Hand-written replies (``task.edit(response=...)`` with no call behind them) are not.

Counts are read as a hand-edited trace may hold them: a count that is no whole number counts as zero,
and a latency that is no finite float (``10**400`` is valid JSON) is left out of ``llm_seconds``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..model.tasks import LLMTask, TaskGraphTask
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
    by_model: dict[str, Usage] = field(default_factory=dict)
    """Model name -> the same totals for the replies of that model."""

    def add(self, response: dict[str, Any]) -> None:
        """Count one stored reply (a task's ``record.response``)."""
        self._add(response)
        model = str(response.get("model") or "unknown")
        self.by_model.setdefault(model, Usage())._add(response)

    def _add(self, response: dict[str, Any]) -> None:
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

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in vars(self).items() if k != "by_model"}
        out["by_model"] = {m: u.to_json() for m, u in self.by_model.items()}
        return out

    def __str__(self) -> str:
        models = ", ".join(f"{m}: {u.calls}" for m, u in self.by_model.items()) or "none"
        c = count_text
        return (
            f"{self.calls} LLM calls ({models}); {c(self.input_tokens)} input + {c(self.output_tokens)} output tokens"
            f" (cache: {c(self.cache_read_input_tokens)} read, {c(self.cache_creation_input_tokens)} written);"
            f" {seconds_text(self.llm_seconds, 2)} s waiting for the LLM; {c(self.retries)} retries;"
            f" {self.cached} from the response cache"
        )


def graph_usage(graph: TaskGraph) -> Usage:
    """Totals over every LLMTask reply in ``graph`` and its sub-graphs."""
    total = Usage()
    stack = [graph]
    while stack:
        g = stack.pop()
        for task in g.tasks.values():
            if isinstance(task, TaskGraphTask):
                stack.append(task.subgraph)
            elif isinstance(task, LLMTask):
                response = task.record.response
                if response and response.get("backend"):  # hand-written replies have no backend
                    total.add(response)
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
