"""3. Replay of a completed 10,000-task trace, and 4. minimal re-execution after one edit.

The trace is the 100-wide diamond lattice of :mod:`benchmarks.shapes`, half PythonTasks and half
LLMTasks (offline backend), so a replay checks every kind of stage fingerprint.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from llmtaskgraph import LLMTask, OfflineLLM, PythonTask, TaskGraph

from ._report import best_of, check, table
from .shapes import LATTICE_WIDTH, edges

N = 10_000
CALLS: Counter[str] = Counter()


def _mix(outputs: tuple[Any, ...]) -> int:
    # Every output depends on every input, so an edit changes all its descendants' outputs.
    return (sum(outputs) * 31 + len(outputs)) % 1_000_003


async def step(ctx: Any, *outputs: Any) -> int:
    CALLS["step"] += 1
    return _mix(outputs)


async def prompt(ctx: Any, *outputs: Any) -> str:
    CALLS["prompt"] += 1
    return f"summarise {_mix(outputs)}"


async def parse(ctx: Any, text: str) -> int:
    CALLS["parse"] += 1
    return int(text.rsplit(" ", 1)[1]) + 1


REGISTRY = {"step": step, "prompt": prompt, "parse": parse}


def mixed_lattice(n: int) -> TaskGraph:
    graph = TaskGraph()
    for i, (tid, deps) in enumerate(edges("lattice", n).items()):
        graph.add_task(PythonTask("step", *deps, id=tid) if i % 2 == 0 else LLMTask("prompt", "parse", *deps, id=tid))
    return graph


def run_graph(graph: TaskGraph, llm: OfflineLLM) -> float:
    async def main() -> None:
        await graph.arun(REGISTRY, llm=llm, progress=False)

    start = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - start


def cone_size(n: int, layer: int, col: int) -> int:
    """Descendants of (layer, col) in the lattice, counted from its shape alone (not from the graph)."""
    w, layers = LATTICE_WIDTH, n // LATTICE_WIDTH
    return sum(min(col + k, w - 1) - col + 1 for k in range(1, layers - layer))


def run(repeats: int = 3, n: int = N) -> str:
    graph = mixed_lattice(n)
    t_first = run_graph(graph, OfflineLLM())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        graph.save(path)
        t_load = best_of(repeats, lambda: path, TaskGraph.load)
        llm = OfflineLLM()
        CALLS.clear()
        t_replay = best_of(repeats, lambda: TaskGraph.load(path), lambda g: run_graph(g, llm))
    assert not CALLS and llm.calls == 0, f"replay called {dict(CALLS)} and the LLM {llm.calls} times"
    replay_rows = [[n, t_first, t_load, t_replay, 0, f"{t_replay / t_load:.2f} ({check(t_replay / t_load, 2)})"]]

    layer, col = n // LATTICE_WIDTH // 2, LATTICE_WIDTH // 2
    edited = f"t{layer * LATTICE_WIDTH + col}"
    expected = cone_size(n, layer, col)
    graph.tasks[edited].edit(output=12345)
    t_rerun = run_graph(graph, OfflineLLM())
    assert graph.last_run is not None
    rerun = len(graph.last_run.executed)
    assert rerun == expected == len(graph.descendants(edited)), (rerun, expected)
    rerun_rows = [[edited, expected, rerun, "yes" if rerun == expected else "NO", t_rerun, t_first, t_rerun / t_first]]
    return "\n".join([
        table(f"3. Replay of a completed {n:,}-task trace (seconds; best of {repeats})",
              ["tasks", "first run", "load", "run again (loaded)", "calls", "run again/load"], replay_rows),
        table(f"4. Minimal re-execution after editing one task's output in the {n:,}-task lattice",
              ["edited", "descendants", "re-run", "equal", "re-run s", "first run s", "re-run/first"], rerun_rows),
    ])
