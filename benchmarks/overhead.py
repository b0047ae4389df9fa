"""1. Scheduler overhead per no-op task, 10,000 tasks, three shapes, against asyncio, Dask, LangGraph.

Every contender runs the same 10,000 no-op functions in the same dependency shape, with the
functions written as users write them:
- plain functions (``def noop(ctx, *outputs): return None``) run by ``graph.run``, against
  ``dask.threaded.get`` running the same plain function on the equivalent task dict (Dask's local
  threaded scheduler, which also calls plain functions): target ours/Dask <= 0.5;
- ``async def`` functions run by ``graph.run``, against ``asyncio.gather`` over the same 10,000
  coroutines: the floor (it ignores dependencies, so it is what running that many coroutines costs
  at all): target ours/gather <= 2;
- the same ``async`` functions against LangGraph's ``ainvoke`` on an equivalent ``StateGraph`` (a
  node per task, join edges for deps): target <= 0.2.

Ours and its peer are timed in turns within each repeat, in one process, with the garbage
collector on (a full collection before each timing, none paused). ``ok``/``MISSED`` is judged on the
ratio of the best timings; the ratio of the medians is printed beside it.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from llmtaskgraph import OfflineLLM, TaskGraph

from ._report import best_of, check, ratios, side_by_side, table
from .shapes import SHAPES, dask_graph, edges, lang_graph, sinks, task_graph

N = 10_000
REPEATS = 5


def noop(ctx: Any, *outputs: Any) -> None:
    return None


async def anoop(ctx: Any, *outputs: Any) -> None:
    return None


def noop_dask(*outputs: Any) -> None:
    return None


async def noop_node(state: Any) -> dict[str, int]:
    return {"ran": 1}


def ours(graph: TaskGraph, fn: Any) -> None:
    graph.run({"noop": fn}, llm=OfflineLLM(), progress=False)
    report = graph.last_run
    assert report is not None and len(report.executed) == len(graph.tasks), "not every task ran"


def gather(n: int) -> None:
    async def main() -> None:
        await asyncio.gather(*(anoop(None) for _ in range(n)))

    asyncio.run(main())


def dask_threaded(spec: tuple[dict[str, tuple[Any, ...]], list[str]]) -> None:
    import dask.threaded

    dsk, keys = spec
    dask.threaded.get(dsk, keys)


def langgraph(compiled: Any, n: int) -> None:
    async def main() -> Any:
        return await compiled.ainvoke({"ran": 0}, {"recursion_limit": n + 10})

    assert asyncio.run(main())["ran"] == n, "LangGraph did not run every node"


def run(repeats: int = REPEATS, n: int = N) -> str:
    rows = []
    us = 1e6 / n
    for shape in SHAPES:
        dag = edges(shape, n)
        times = side_by_side(repeats, {
            "ours, plain": (lambda s=shape: task_graph(s, n), lambda g: ours(g, noop)),  # type: ignore[misc]
            "dask": (lambda d=dag: (dask_graph(d, noop_dask), sinks(d)), dask_threaded),  # type: ignore[misc]
            "ours, async": (lambda s=shape: task_graph(s, n), lambda g: ours(g, anoop)),  # type: ignore[misc]
            "gather": (lambda: n, gather),
        })
        # LangGraph takes hundreds of microseconds per node; one run is enough to compare.
        t_lang = best_of(1, lambda d=dag: lang_graph(d, noop_node), lambda c: langgraph(c, n))  # type: ignore[misc]
        for functions, mine, peer, peer_times, target in (
            ("plain def", "ours, plain", "dask.threaded.get", times["dask"], 0.5),
            ("async def", "ours, async", "asyncio.gather", times["gather"], 2),
            ("async def", "ours, async", "LangGraph ainvoke (1 run)", [t_lang], 0.2),
        ):
            best, median = ratios(times[mine], peer_times)
            rows.append([
                shape, functions, min(times[mine]) * us, statistics.median(times[mine]) * us,
                peer, min(peer_times) * us, best, median, check(best, target),
            ])
    return table(
        f"1. Scheduler overhead per no-op task, {n:,} tasks (microseconds per task; best and median of "
        f"{repeats}, ours and peer in turns; ratio of bests judged)",
        ["shape", "functions", "ours best", "ours median", "peer", "peer best", "ours/peer best",
         "ours/peer median", "target"],
        rows,
    )
