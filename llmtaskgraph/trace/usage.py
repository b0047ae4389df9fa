"""Token, call and time totals of the LLM replies a graph's trace holds (sub-graphs included).

The totals describe the replies the trace holds now, so they answer "what did this result cost";
replies replaced by a fresh sample or a changed prompt are no longer counted. Replies taken from
the persistent response cache are counted like the rest and also in ``cached``, since they were
paid for once. Hand-written replies (``task.edit(response=...)`` with no call behind them) are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..model.tasks import LLMTask, TaskGraphTask

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
    """Sum of call latencies (retries included): time spent waiting for the LLM, not wall time."""
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
        latency = response.get("latency")
        self.llm_seconds += float(latency) if isinstance(latency, (int, float)) else 0.0
        self.retries += _int(response.get("retries"))
        self.cached += 1 if response.get("cached") else 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in vars(self).items() if k != "by_model"}
        out["by_model"] = {m: u.to_json() for m, u in self.by_model.items()}
        return out

    def __str__(self) -> str:
        models = ", ".join(f"{m}: {u.calls}" for m, u in self.by_model.items()) or "none"
        return (
            f"{self.calls} LLM calls ({models}); {self.input_tokens} input + {self.output_tokens} output tokens"
            f" (cache: {self.cache_read_input_tokens} read, {self.cache_creation_input_tokens} written);"
            f" {self.llm_seconds:.2f} s waiting for the LLM; {self.retries} retries; {self.cached} from the response cache"
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
