"""Drawing graphs and tasks (placeholder until the Jupyter layer lands)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .graph import TaskGraph
    from .tasks import Task


def graph_mimebundle(graph: TaskGraph) -> dict[str, str]:
    return {"text/plain": repr(graph)}


def task_mimebundle(task: Task) -> dict[str, str]:
    return {"text/plain": repr(task), "text/html": f"<pre>{html.escape(repr(task))}</pre>"}
