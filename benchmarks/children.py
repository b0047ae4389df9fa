"""7. Children: one creator adds N children at run time; the time per child must not grow with N.

One plain ``def`` registry function calls ``ctx.add_task(PythonTask("leaf", key=str(i)))`` N times,
for N = 1,000 and N = 100,000 (10,000 with ``--quick``), the way a planner fans out over its items.
The creator times its own loop (returned as its output); the whole run (adding, then running every
no-op ``leaf``) is timed around ``graph.run``. Adding children must be linear: microseconds per child
at the large N over those at 1,000 is judged against 2 (it was quadratic: 465 s for 100,000 children).
The garbage collector is on, as users run it; the full (oldest-generation) collections each run
triggered are counted, since their cost grows with everything the process holds.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from llmtaskgraph import OfflineLLM, PythonTask, TaskGraph

from ._report import check, table

SMALL, LARGE = 1_000, 100_000
TARGET = 2


def leaf(ctx: Any) -> None:
    return None


def make(ctx: Any, n: int) -> float:
    """Add ``n`` keyed children; return the seconds the loop took."""
    start = time.perf_counter()
    for i in range(n):
        ctx.add_task(PythonTask("leaf", key=str(i)))
    return time.perf_counter() - start


def one(n: int) -> tuple[float, float, int]:
    """(seconds adding the children inside the creator, seconds of the whole run, full collections)."""
    graph = TaskGraph()
    graph.add_task(PythonTask("make", id="make", inputs={"n": n}))
    gc.collect()
    full = gc.get_stats()[-1]["collections"]
    start = time.perf_counter()
    graph.run({"make": make, "leaf": leaf}, llm=OfflineLLM(), progress=False)
    total = time.perf_counter() - start
    full = gc.get_stats()[-1]["collections"] - full
    report = graph.last_run
    assert report is not None and len(report.executed) == n + 1 == len(graph.tasks), "not every child ran"
    adding = graph.tasks["make"].output
    del graph, report
    gc.collect()
    return adding, total, full


def run(large: int = LARGE, repeats: int = 3) -> str:
    """Best of ``repeats`` at 1,000 children; best of 2 at ``large`` (one run takes seconds)."""
    results = {}
    for n, times in ((SMALL, repeats), (large, 2)):
        runs = [one(n) for _ in range(times)]
        results[n] = (min(r[0] for r in runs), min(r[1] for r in runs), ", ".join(str(r[2]) for r in runs))
    rows = [[f"{n:,}", add, add / n * 1e6, total, total / n * 1e6, full] for n, (add, total, full) in results.items()]
    add_ratio = (results[large][0] / large) / (results[SMALL][0] / SMALL)
    run_ratio = (results[large][1] / large) / (results[SMALL][1] / SMALL)
    rows.append([f"per child {large:,} / {SMALL:,}", f"{add_ratio:.2f} ({check(add_ratio, TARGET)})", "",
                 f"{run_ratio:.2f} ({check(run_ratio, TARGET)})", "", ""])
    return table(
        f"7. One plain def creator adding N children with ctx.add_task(PythonTask(\"leaf\", key=str(i))) "
        f"(best of {repeats} at {SMALL:,}, of 2 at {large:,}; adding is judged, the whole run too)",
        ["children", "adding s", "adding us/child", "whole run s", "whole run us/child", "full collections per run"],
        rows,
    )
