"""1. Scheduler overhead per no-op task, 10,000 tasks, three shapes, against asyncio, Dask, LangGraph.

Every contender runs the same 10,000 no-op functions in the same dependency shape:
- ``asyncio.gather`` over the same 10,000 coroutines: the floor (it ignores dependencies, so it is
  what running that many coroutines costs at all);
- ``dask.threaded.get`` on the equivalent task dict (Dask's local threaded scheduler; its functions
  are plain, since Dask calls them in threads);
- LangGraph's ``ainvoke`` on an equivalent ``StateGraph`` (a node per task, join edges for deps).
Our registry functions are ``async`` so they run on the loop, as I/O-bound LLM pipelines do.
"""

from __future__ import annotations

import asyncio
from typing import Any

from llmtaskgraph import OfflineLLM, TaskGraph

from ._report import best_of, check, table
from .shapes import SHAPES, dask_graph, edges, lang_graph, sinks, task_graph

N = 10_000


async def noop(ctx: Any, *outputs: Any) -> None:
    return None


def noop_sync(*outputs: Any) -> None:
    return None


async def noop_node(state: Any) -> dict[str, int]:
    return {"ran": 1}


def ours(graph: TaskGraph) -> None:
    async def main() -> None:
        await graph.arun({"noop": noop}, llm=OfflineLLM(), progress=False)

    asyncio.run(main())
    report = graph.last_run
    assert report is not None and len(report.executed) == len(graph.tasks), "not every task ran"


def gather(n: int) -> None:
    async def main() -> None:
        await asyncio.gather(*(noop(None) for _ in range(n)))

    asyncio.run(main())


def dask_threaded(dag: dict[str, list[str]]) -> None:
    import dask.threaded

    dask.threaded.get(dask_graph(dag, noop_sync), sinks(dag))


def langgraph(compiled: Any, n: int) -> None:
    async def main() -> Any:
        return await compiled.ainvoke({"ran": 0}, {"recursion_limit": n + 10})

    assert asyncio.run(main())["ran"] == n, "LangGraph did not run every node"


def run(repeats: int = 3, n: int = N) -> str:
    rows = []
    for shape in SHAPES:
        dag = edges(shape, n)
        t_ours = best_of(repeats, lambda s=shape: task_graph(s, n), ours)  # type: ignore[misc]
        t_gather = best_of(repeats, lambda: n, gather)
        t_dask = best_of(repeats, lambda d=dag: d, dask_threaded)  # type: ignore[misc]
        # LangGraph takes tens of microseconds per node; one run is enough to compare.
        t_lang = best_of(1, lambda d=dag: lang_graph(d, noop_node), lambda c: langgraph(c, n))  # type: ignore[misc]
        us = 1e6 / n
        rows.append([
            shape, t_ours * us, t_gather * us, t_dask * us, t_lang * us,
            f"{t_ours / t_gather:.2f} ({check(t_ours / t_gather, 2)})",
            f"{t_ours / t_dask:.3f} ({check(t_ours / t_dask, 0.2)})",
            f"{t_ours / t_lang:.3f} ({check(t_ours / t_lang, 0.2)})",
        ])
    return table(
        f"1. Scheduler overhead per no-op task, {n:,} tasks (microseconds per task; best of {repeats})",
        ["shape", "ours", "gather", "dask", "langgraph", "ours/gather", "ours/dask", "ours/langgraph"],
        rows,
    )
