"""9. Datasets: 2,000 cases of a 5-task graph as a dataset run against a plain loop of ``graph.run``,
and 10. the re-run after a change that affects 10% of the cases.

The graph per case: ``prep`` (reads the input) -> two LLM tasks (``label``, ``summary``, offline
backend, no latency: what is measured is our overhead) -> ``merge`` -> ``check`` (the output).
The loop is what a user would write without datasets: copy the graph, set its input, ``graph.run``
(and ``graph.save`` for the folder variant). The dataset run does the same work with every case on
one event loop, one LLM call limit and one progress counter; its target is a cost per case close to
the loop's (a ratio of at most 1.25). A third pair, with 20 ms of LLM latency, shows what running the
cases at once buys.

The change: ``prep`` upper-cases the texts of one category in ten (module data it reads, so its code
version changes). Every case re-runs ``prep`` (cheap), and only the tenth whose output changed sends
its two LLM requests again: the re-run's LLM calls are asserted to be exactly 10% of the first run's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from llmtaskgraph import LLMTask, OfflineLLM, PythonTask, TaskGraph, run_dataset

from ._report import check, ratios, side_by_side, table

N = 2_000
CATEGORIES = 10
SHOUTED: list[int] = []
"""Categories whose texts ``prep`` upper-cases: the change is adding one to it."""


def prep(ctx: Any) -> dict[str, Any]:
    case = ctx.graph_input
    return {"text": case["text"].upper() if case["cat"] in SHOUTED else case["text"], "cat": case["cat"]}


def ask_label(ctx: Any, case: dict[str, Any]) -> str:
    return f"Label this review: {case['text']}"


def ask_summary(ctx: Any, case: dict[str, Any]) -> str:
    return f"Summarise this review: {case['text']}"


def parse(ctx: Any, text: str) -> str:
    return text[-24:]


def merge(ctx: Any, label: str, summary: str) -> dict[str, str]:
    return {"label": label, "summary": summary}


def check_case(ctx: Any, merged: dict[str, str]) -> dict[str, Any]:
    return {**merged, "ok": bool(merged["label"])}


REGISTRY = {"prep": prep, "ask_label": ask_label, "ask_summary": ask_summary, "parse": parse, "merge": merge,
            "check": check_case}


def five_tasks() -> TaskGraph:
    graph = TaskGraph()
    p = graph.add_task(PythonTask("prep"))
    label = graph.add_task(LLMTask("ask_label", "parse", p, name="label"))
    summary = graph.add_task(LLMTask("ask_summary", "parse", p, name="summary"))
    merged = graph.add_task(PythonTask("merge", label, summary))
    graph.add_output_task(PythonTask("check", merged))
    return graph


def inputs(n: int) -> list[dict[str, Any]]:
    return [{"text": f"review number {i}: it was fine", "cat": i % CATEGORIES} for i in range(n)]


def loop(data: list[dict[str, Any]], llm: Any, folder: Path | None = None) -> int:
    """The plain loop: one ``graph.run`` per input (and one ``save``); returns the LLM calls made."""
    template = five_tasks().to_json()
    calls = 0
    for i, value in enumerate(data):
        graph = TaskGraph.from_json(template)
        graph.graph_input = value
        graph.run(REGISTRY, llm=llm, progress=False)
        calls += graph.last_run.llm_calls if graph.last_run else 0
        if folder is not None:
            graph.save(folder / f"{i}.json")
    return calls


def dataset(data: list[dict[str, Any]], llm: Any, folder: Path | None = None) -> int:
    run = run_dataset(five_tasks(), data, REGISTRY, folder, llm=llm, progress=False)
    assert run.last_run is not None and not run.last_run.failed
    return run.last_run.llm_calls


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="ltg-bench-"))


def run(repeats: int = 3, n: int = N, latency_n: int = 200) -> str:
    data = inputs(n)
    times = side_by_side(repeats, {
        "dataset": (lambda: None, lambda _: dataset(data, OfflineLLM())),
        "loop": (lambda: None, lambda _: loop(data, OfflineLLM())),
        "dataset, saved": (_tmp, lambda d: dataset(data, OfflineLLM(), d / "run")),
        "loop, saved": (_tmp, lambda d: loop(data, OfflineLLM(), d)),
    })
    slow = inputs(latency_n)
    slow_times = side_by_side(1, {
        "dataset": (lambda: None, lambda _: dataset(slow, OfflineLLM(latency=0.02))),
        "loop": (lambda: None, lambda _: loop(slow, OfflineLLM(latency=0.02))),
    })
    rows = []
    for label, ours, peer in (("in memory", "dataset", "loop"), ("each trace saved", "dataset, saved", "loop, saved")):
        best, median = ratios(times[ours], times[peer])
        rows.append([label, min(times[ours]), min(times[peer]), min(times[ours]) / n * 1e6, min(times[peer]) / n * 1e6,
                     f"{best:.2f} (median {median:.2f}) {check(best, 1.25)}"])
    best, _ = ratios(slow_times["dataset"], slow_times["loop"])
    rows.append([f"20 ms LLM latency, {latency_n} cases", slow_times["dataset"][0], slow_times["loop"][0],
                 slow_times["dataset"][0] / latency_n * 1e6, slow_times["loop"][0] / latency_n * 1e6, f"{best:.3f}"])

    rerun_rows = [_rerun(data)]
    return "\n".join([
        table(f"9. Dataset run vs a loop of graph.run: {n:,} cases x 5 tasks (seconds, best of {repeats})",
              ["variant", "dataset s", "loop s", "dataset µs/case", "loop µs/case", "dataset/loop"], rows),
        table(f"10. Re-run after a change affecting 1 case in {CATEGORIES} ({n:,} cases, saved in a folder)",
              ["first run calls", "re-run calls", "affected cases", "calls re-run/first", "first run s", "copy s",
               "re-run s", "re-run/first s"], rerun_rows),
    ])


def _rerun(data: list[dict[str, Any]]) -> list[Any]:
    import time

    folder = _tmp()
    start = time.perf_counter()
    first = run_dataset(five_tasks(), data, REGISTRY, folder / "v1", llm=OfflineLLM(), progress=False)
    t_first = time.perf_counter() - start
    start = time.perf_counter()
    second = first.copy(folder / "v2")  # the first run is kept as it is, to compare with
    t_copy = time.perf_counter() - start
    SHOUTED.append(CATEGORIES - 1)
    try:
        start = time.perf_counter()
        second.run(REGISTRY, llm=OfflineLLM(), progress=False)
        t_again = time.perf_counter() - start
    finally:
        SHOUTED.clear()
    assert first.last_run is not None and second.last_run is not None
    calls, recalls = first.last_run.llm_calls, second.last_run.llm_calls
    affected = sum(1 for value in data if value["cat"] == CATEGORIES - 1)
    assert recalls == 2 * affected, (recalls, affected)
    assert len(first.compare(second).changed) == affected
    share = recalls / calls
    return [calls, recalls, affected, f"{share:.3f} ({'ok' if abs(share - 0.1) <= 0.01 else 'MISSED'}: about 0.1)",
            t_first, t_copy, t_again, t_again / t_first]
