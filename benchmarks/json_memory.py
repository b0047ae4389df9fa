"""5. JSON round trip of a 10,000-task trace against plain ``json``, and memory per stored task.

Ours: ``json.dumps(graph.to_json())`` and ``TaskGraph.from_json(json.loads(text))`` (which validates
every field). Floor: ``json.dumps`` / ``json.loads`` of the very same dict. Memory: what a loaded
trace of the no-op lattice (outputs are None, so this is the per-task overhead) holds, measured with
``tracemalloc`` after the parsed text is freed.

The judged load row runs as users run it: the garbage collector on (no ``gc.disable``, no
``gc.freeze``), ours and plain ``json.loads`` timed in turns, each after a full collection, best and
median of several. A load that keeps many new objects alive can trigger a full collection, whose
cost is that of the whole heap, so the title says how many objects the process holds. A second,
informative row pauses the collector for both sides (as ``timeit`` does): the work alone, which
the judged row minus this one shows the collector's share of. The source graph and its dict are
released before loads are timed, so a collection walks what a process that loads a trace holds,
not the benchmark's own leftovers.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmtaskgraph import OfflineLLM, TaskGraph

from ._report import check, ratios, side_by_side, table
from .replay import REGISTRY, mixed_lattice
from .shapes import task_graph

N = 10_000
REPEATS = 5


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


def save(graph: TaskGraph) -> str:
    return json.dumps(graph.to_json())


def load(text: str) -> TaskGraph:
    return TaskGraph.from_json(json.loads(text))


def counting(measure: Callable[[Any], Any], counts: list[int]) -> Callable[[Any], Any]:
    """``measure``, appending to ``counts`` how many full (oldest-generation) collections it ran."""
    def counted(arg: Any) -> Any:
        before = gc.get_stats()[-1]["collections"]
        try:
            return measure(arg)
        finally:
            counts.append(gc.get_stats()[-1]["collections"] - before)

    return counted


def paused_gc(measure: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``measure`` with the garbage collector paused while it runs (as ``timeit`` times)."""
    def paused(arg: Any) -> Any:
        gc.disable()
        try:
            return measure(arg)
        finally:
            gc.enable()

    return paused


def run(repeats: int = REPEATS, n: int = N) -> str:
    rows, mem_rows = [], []
    traces = (("no-op PythonTasks", lambda: completed(task_graph("lattice", n), {"noop": noop})),
              ("half LLMTasks", lambda: completed(mixed_lattice(n), REGISTRY)))
    ours_load, plain_load = load, json.loads
    heap = []
    for label, build in traces:
        graph = build()
        data = graph.to_json()
        text = json.dumps(data)
        times = side_by_side(repeats, {
            "ours": (lambda g=graph: g, save),  # type: ignore[misc]
            "plain": (lambda d=data: d, json.dumps),  # type: ignore[misc]
        })
        rows.append(_row(label, "save", times, 3))
        per_task = memory_per_task(graph)
        mem_rows.append([label, len(text) // len(graph.tasks), f"{per_task:.0f}", check(per_task, 2048)])
        del graph, data
        gc.collect()
        heap.append(len(gc.get_objects()))
        full: dict[str, list[int]] = {"ours": [], "plain": []}
        times = side_by_side(repeats, {
            "ours": (lambda t=text: t, counting(ours_load, full["ours"])),  # type: ignore[misc]
            "plain": (lambda t=text: t, counting(plain_load, full["plain"])),  # type: ignore[misc]
        })
        rows.append([*_row(label, "load, collector on (judged)", times, 2), f"{max(full['ours'])} / {max(full['plain'])}"])
        times = side_by_side(repeats, {
            "ours": (lambda t=text: t, paused_gc(ours_load)),  # type: ignore[misc]
            "plain": (lambda t=text: t, paused_gc(plain_load)),  # type: ignore[misc]
        })
        rows.append([*_row(label, "load, collector paused (info only)", times, 2), "0 / 0"])
    for row in rows:
        row += [""] * (10 - len(row))  # save rows: no collection count
    return "\n".join([
        table(f"5. JSON round trip of a {n:,}-task trace (milliseconds; best and median of {repeats}, ours and "
              f"plain in turns; ratio of bests judged; the process holds {max(heap):,} objects the collector "
              "tracks)",
              ["trace", "direction", "ours best", "ours median", "plain best", "plain median",
               "ours/plain best", "ours/plain median", "target", "full collections ours / plain"], rows),
        table("5b. Memory per stored task, loaded trace (bytes)",
              ["trace", "JSON bytes/task", "memory/task", "target"], mem_rows),
    ])


def _row(label: str, direction: str, times: dict[str, list[float]], target: float) -> list[Any]:
    best, median = ratios(times["ours"], times["plain"])
    ms = [f(times[k]) * 1e3 for k in ("ours", "plain") for f in (min, statistics.median)]
    return [label, direction, *ms, best, median, check(best, target)]
