"""A dataset run whose PythonTasks run on a Dask cluster: the `backend=` run option reaches every case."""

from __future__ import annotations

import threading
from typing import Any

from dataset_helpers import REVIEWS, review_graph, scripted
from distributed import Client, LocalCluster

from llmtaskgraph import run_dataset
from llmtaskgraph.backends.dask import DaskBackend


def clean(ctx: Any) -> dict[str, Any]:
    # Where it ran: on a worker, ctx is a WorkerContext and the thread is one of the worker's.
    return {"text": ctx.graph_input["text"], "ctx": type(ctx).__name__, "thread": threading.current_thread().name}


def ask(ctx: Any, review: dict[str, Any]) -> str:
    return f"Classify the sentiment.\nReview: {review['text']}"


def result(ctx: Any, review: dict[str, Any], label: str) -> dict[str, Any]:
    return {"label": label, "ran_on": review["ctx"], "thread": review["thread"]}


def test_python_tasks_of_every_case_run_on_the_cluster_and_llm_calls_on_the_driver() -> None:
    registry = {"clean": clean, "ask": ask, "parse": lambda ctx, text: text.lower(), "result": result}
    llm = scripted()
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        run = run_dataset(review_graph(), REVIEWS, registry, ids="id", llm=llm,
                          backend=DaskBackend(client, local=["parse"]), max_cases=3)
    assert {c.status for c in run} == {"done"}
    assert {c.output["ran_on"] for c in run} == {"WorkerContext"}
    assert all(not c.output["thread"].startswith(("llmtaskgraph", "MainThread")) for c in run)
    assert llm.calls == 6  # the calls were made here, by the driver's backend
    assert run["r3"].output["label"] == "positive"
