"""Shared helpers for the core tests: a registry that counts every call of every function."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from llmtaskgraph import FunctionRegistry, PythonTask, TaskGraph


class CountingRegistry(FunctionRegistry):
    """A FunctionRegistry whose functions count their own calls, independently of the run report."""

    def __init__(self, functions: dict[str, Callable[..., Any]] | None = None) -> None:
        self.counts: Counter[str] = Counter()
        super().__init__()
        for name, fn in (functions or {}).items():
            self.add(name, fn)

    def add(self, name: str, fn: Callable[..., Any], *, version: str | None = None) -> None:
        import inspect

        counts = self.counts
        if inspect.iscoroutinefunction(fn):

            async def counted_async(*args: Any, **kwargs: Any) -> Any:
                counts[name] += 1
                return await fn(*args, **kwargs)

            super().add(name, counted_async, version=version)
        else:

            def counted(*args: Any, **kwargs: Any) -> Any:
                counts[name] += 1
                return fn(*args, **kwargs)

            super().add(name, counted, version=version)

    def take(self) -> dict[str, int]:
        """The counts since the last take, as a plain dict without zeros."""
        snapshot = {k: v for k, v in self.counts.items() if v}
        self.counts.clear()
        return snapshot


def chain(n: int, fn: str) -> TaskGraph:
    """``n`` PythonTasks calling ``fn``, ids ``t0``..``t{n-1}``, each depending on the one before."""
    graph = TaskGraph()
    prev: PythonTask | None = None
    for i in range(n):
        prev = graph.add_task(PythonTask(fn, *([prev] if prev else []), id=f"t{i}"))
    return graph


def dense_graph(n: int = 150, k: int = 10) -> TaskGraph:
    """``n`` PythonTasks, each depending on ``k`` earlier ones chosen at random (seeded): the dense graph that
    took 96 s to draw before drawings were bounded."""
    import random

    rnd = random.Random(1)
    graph = TaskGraph()
    ids: list[str] = []
    for i in range(n):
        graph.add_task(PythonTask("f", *rnd.sample(ids, min(k, len(ids))), id=f"t{i}"))
        ids.append(f"t{i}")
    return graph
