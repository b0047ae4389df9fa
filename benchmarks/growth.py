"""6. Growth: a graph that adds 100,000 tasks while it runs; time per 10,000-task batch and memory.

One ``gen`` task adds 1,000 async no-op ``leaf`` tasks and the next ``gen``, a hundred times over.
Time per task must stay flat as the graph grows (a scheduler that rescans the graph per task would
slow down linearly). Peak memory is measured with ``tracemalloc`` in a second run, since tracing
slows allocation.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
import tracemalloc
from itertools import pairwise
from pathlib import Path
from typing import Any

from llmtaskgraph import OfflineLLM, PythonTask, RunEvent, TaskGraph

from ._report import table

TOTAL, PER_GEN, BATCH = 100_000, 1_000, 10_000


async def leaf(ctx: Any) -> None:
    return None


async def gen(ctx: Any) -> int:
    k = int(str(ctx.task.id)[3:])
    for i in range(PER_GEN):
        ctx.add_task(PythonTask("leaf", id=f"leaf{k}.{i}"))
    if (k + 1) * PER_GEN < TOTAL:
        ctx.add_task(PythonTask("gen", id=f"gen{k + 1}"))
    return k


def grow(on_event: Any = None, **options: Any) -> TaskGraph:
    graph = TaskGraph()
    graph.add_task(PythonTask("gen", id="gen0"))

    async def main() -> None:
        await graph.arun({"gen": gen, "leaf": leaf}, llm=OfflineLLM(), on_event=on_event, progress=False, **options)

    asyncio.run(main())
    return graph


def run() -> str:
    marks: list[float] = []
    finished = 0

    def count(event: RunEvent) -> None:
        nonlocal finished
        if event.kind == "task_finished" and event.path.startswith("leaf"):
            finished += 1
            if finished % BATCH == 0:
                marks.append(time.perf_counter())

    gc.collect()
    start = time.perf_counter()
    graph = grow(count)
    total = time.perf_counter() - start
    leaves = sum(1 for tid in graph.tasks if tid.startswith("leaf"))
    assert leaves == TOTAL == finished, (leaves, finished)
    edges = [start, *marks]
    per_batch = [(b - a) / BATCH * 1e6 for a, b in pairwise(edges)]
    del graph
    gc.collect()

    tracemalloc.start()
    try:
        graph = grow()
        gc.collect()
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    n = len(graph.tasks)
    del graph
    gc.collect()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.json"
        start = time.perf_counter()
        grow(checkpoint=path, checkpoint_every=BATCH)
        with_checkpoints = time.perf_counter() - start
        size = path.stat().st_size
    rows = [[f"{(i + 1) * BATCH:,}", us] for i, us in enumerate(per_batch)]
    rows.append(["last/first batch", per_batch[-1] / per_batch[0]])
    return "\n".join([
        table(f"6. Growth to {TOTAL:,} tasks added at run time (microseconds per task, per {BATCH:,}-task batch)",
              ["tasks done", "us/task"], rows),
        table("6b. Memory of the grown graph (tracemalloc)",
              ["tasks", "total s", "held MB", "peak MB", "held/task B", "peak/task B"],
              [[n, total, held / 2**20, peak / 2**20, held / n, peak / n]]),
        table(f"6c. The same growth checkpointed every {BATCH:,} tasks (each save rewrites the whole trace)",
              ["s without", "s with checkpoints", "ratio", "final file MB"],
              [[total, with_checkpoints, with_checkpoints / total, size / 2**20]]),
    ])
