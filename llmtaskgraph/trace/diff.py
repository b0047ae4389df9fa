"""Which tasks differ between two traces: added, removed, or changed in spec, status, prompt, reply or output.

Both traces are compared through their JSON form (the one the files hold), task by task along
their paths (``outer > inner`` inside sub-graphs), so the answer is exactly what a person diffing
the files would find, minus the noise: timings, fingerprints and call metadata (latency, ...) change
on every run, so by default only the reply text and token usage of a call are compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..model.graph import TaskGraph

NOISY_FIELDS = ("started_at", "finished_at", "fingerprints", "response")
_SHORT = 60


@dataclass
class TaskChange:
    """How one task differs between trace A and trace B."""

    path: str
    kind: str
    """``added`` (only in B), ``removed`` (only in A) or ``changed``."""
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Changed field -> (value in A, value in B)."""

    def describe(self) -> str:
        """One line per change, e.g. ``changed `t3`: status done -> failed``."""
        if self.kind != "changed":
            return f"{self.kind} `{self.path}`"
        parts = [f"{name} {_short(a)} -> {_short(b)}" for name, (a, b) in self.fields.items()]
        return f"changed `{self.path}`: " + "; ".join(parts)


@dataclass
class GraphDiff:
    """Everything that differs between two traces."""

    tasks: list[TaskChange] = field(default_factory=list)
    graph_fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Top-level fields that differ (``graph_input``, ``output_task``)."""

    def __bool__(self) -> bool:
        return bool(self.tasks or self.graph_fields)

    def lines(self) -> list[str]:
        out = [f"changed graph {name}: {_short(a)} -> {_short(b)}" for name, (a, b) in self.graph_fields.items()]
        return out + [change.describe() for change in self.tasks]


def diff_graphs(a: TaskGraph, b: TaskGraph, all_fields: bool = False) -> GraphDiff:
    """Compare ``a`` to ``b``; ``all_fields=True`` also compares timings, fingerprints and call metadata."""
    ja, jb = a.to_json(), b.to_json()
    result = GraphDiff()
    for name in ("graph_input", "output_task"):
        if ja.get(name) != jb.get(name):
            result.graph_fields[name] = (ja.get(name), jb.get(name))
    ta, tb = _flatten(ja, ""), _flatten(jb, "")
    ignored = () if all_fields else NOISY_FIELDS
    for path, task in ta.items():
        other = tb.get(path)
        if other is None:
            result.tasks.append(TaskChange(path, "removed"))
            continue
        changed = {
            key: (task.get(key), other.get(key))
            for key in dict.fromkeys([*task, *other])
            if key not in ignored and task.get(key) != other.get(key)
        }
        if changed:
            result.tasks.append(TaskChange(path, "changed", changed))
    result.tasks += [TaskChange(path, "added") for path in tb if path not in ta]
    return result


def _flatten(graph_json: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    """Path -> task JSON (without its sub-graph, whose tasks get their own paths)."""
    found: dict[str, dict[str, Any]] = {}
    for task in graph_json["tasks"]:
        path = prefix + task["id"]
        sub = task.get("subgraph")
        found[path] = {k: v for k, v in task.items() if k != "subgraph"}
        response = task.get("response")
        if isinstance(response, dict):
            found[path]["reply"] = response.get("text")
            found[path]["usage"] = response.get("usage")
        if isinstance(sub, dict):
            found[path]["subgraph_input"] = sub.get("graph_input")
            found.update(_flatten(sub, f"{path} > "))
    return found


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= _SHORT else text[: _SHORT - 1] + "…"
