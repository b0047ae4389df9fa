"""5. JSON round trip of a 10,000-task trace against plain ``json``, and memory per stored task.

Ours: ``json.dumps(graph.to_json())`` and ``TaskGraph.from_json(json.loads(text))`` (which validates
every field). Floor: ``json.dumps`` / ``json.loads`` of the very same dict. Memory: what a loaded
trace of the no-op lattice (outputs are None, so this is the per-task overhead) holds, measured with
``tracemalloc`` after the parsed text is freed.

Loading is timed twice, side by side both times: with the garbage collector on, and paused for both
sides as ``timeit`` does. Ours keeps ~5 objects per task alive, and in CPython 3.11 that many new
objects trigger a full collection, whose cost is that of the whole heap, not of the load; with the
collector paused the ratio is that of the work itself. The source graph and its dict are released
before loads are timed, so a full collection walks what a process that loads a trace holds, not
the benchmark's own leftovers.
"""

from __future__ import annotations

import asyncio
import gc
import json
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmtaskgraph import OfflineLLM, TaskGraph

from ._report import best_of, check, table
from .replay import REGISTRY, mixed_lattice
from .shapes import task_graph

N = 10_000


async def noop(ctx: Any, *outputs: Any) -> None:
    return None


def completed(graph: TaskGraph, registry: dict[str, Any]) -> TaskGraph:
    async def main() -> None:
        await graph.arun(registry, llm=OfflineLLM(), progress=False)

    asyncio.run(main())
    return graph


def memory_per_task(graph: TaskGraph) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        graph.save(path)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            loaded = TaskGraph.load(path)
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    return held / len(loaded.tasks)


def paused_gc(measure: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``measure`` with the garbage collector paused while it runs (as ``timeit`` times)."""
    def paused(arg: Any) -> Any:
        gc.disable()
        try:
            return measure(arg)
        finally:
            gc.enable()

    return paused


def run(repeats: int = 3, n: int = N) -> str:
    rows, mem_rows = [], []
    traces = (("no-op PythonTasks", lambda: completed(task_graph("lattice", n), {"noop": noop})),
              ("half LLMTasks", lambda: completed(mixed_lattice(n), REGISTRY)))
    for label, build in traces:
        graph = build()
        data = graph.to_json()
        text = json.dumps(data)
        t_dump = best_of(repeats, lambda g=graph: g, lambda g: json.dumps(g.to_json()))  # type: ignore[misc]
        t_plain_dump = best_of(repeats, lambda d=data: d, json.dumps)  # type: ignore[misc]
        rows.append([label, "save", t_dump * 1e3, t_plain_dump * 1e3,
                     f"{t_dump / t_plain_dump:.2f} ({check(t_dump / t_plain_dump, 3)})"])
        per_task = memory_per_task(graph)
        mem_rows.append([label, len(text) // len(graph.tasks), f"{per_task:.0f}", check(per_task, 2048)])
        del graph, data
        ours, plain = (lambda t: TaskGraph.from_json(json.loads(t))), json.loads
        for gc_label, wrap in (("load", lambda f: f), ("load, gc paused", paused_gc)):
            t_load = best_of(repeats, lambda t=text: t, wrap(ours))  # type: ignore[misc]
            t_plain_load = best_of(repeats, lambda t=text: t, wrap(plain))  # type: ignore[misc]
            rows.append([label, gc_label, t_load * 1e3, t_plain_load * 1e3,
                         f"{t_load / t_plain_load:.2f} ({check(t_load / t_plain_load, 3)})"])
    return "\n".join([
        table(f"5. JSON round trip of a {n:,}-task trace (milliseconds; best of {repeats})",
              ["trace", "direction", "ours", "plain json", "ours/plain"], rows),
        table("5b. Memory per stored task, loaded trace (bytes)",
              ["trace", "JSON bytes/task", "memory/task", "target"], mem_rows),
    ])
