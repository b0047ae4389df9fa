"""DaskBackend on a real ``distributed.LocalCluster`` (2 worker processes), shared by this module."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from distributed import Client, LocalCluster

from llmtaskgraph import LLMTask, OfflineLLM, PythonTask, TaskGraph, TaskGraphError
from llmtaskgraph.backends.dask import DaskBackend

# Workers cannot import this test module (pytest put its folder on the driver's sys.path only),
# so its functions travel by value, as functions defined in a notebook or __main__ would.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def worker_pids(client: Client) -> set[int]:
    client.wait_for_workers(2, timeout=30)
    return set(client.run(os.getpid).values())


# -- registry functions (they run on the workers) ---------------------------------------------------
def source(ctx: Any) -> list[int]:
    return list(range(ctx.graph_input["n"]))


def square(ctx: Any, xs: list[int]) -> list[int]:
    return [x * x for x in xs]


async def total(ctx: Any, xs: list[int], *, offset: int) -> int:
    return sum(xs) + offset


def offset(ctx: Any) -> int:
    return 7


def prompt(ctx: Any, value: int) -> str:
    return f"describe {value}"


def parse(ctx: Any, text: str) -> str:
    return text.upper()


def burn(ctx: Any, *deps: Any) -> dict[str, Any]:
    """CPU-bound: a fixed amount of arithmetic, timed where it runs."""
    start = time.time()
    acc = 0
    for i in range(ctx.graph_input["work"]):
        acc = (acc * 31 + i) % 1_000_003
    return {"pid": os.getpid(), "start": start, "end": time.time(), "acc": acc}


def explode(ctx: Any) -> None:
    raise ValueError("boom on the worker")


def slow_logged(ctx: Any, *deps: Any) -> str:
    """Sleeps, then appends its task id to the log, so repeated executions can be counted."""
    time.sleep(ctx.graph_input["sleep"])
    with open(ctx.graph_input["log"], "a") as f:
        f.write(ctx.task.id + "\n")
    return ctx.task.id


def spawn(ctx: Any) -> None:
    ctx.add_task(PythonTask("offset", key="offset"))


REGISTRY = {f.__name__: f for f in (source, square, total, offset, prompt, parse, burn, explode, slow_logged, spawn)}


def pipeline() -> TaskGraph:
    graph = TaskGraph({"n": 5})
    xs = graph.add_task(PythonTask("source"))
    sq = graph.add_task(PythonTask("square", xs))
    tot = graph.add_task(PythonTask("total", sq, offset=graph.add_task(PythonTask("offset"))))
    graph.add_output_task(LLMTask("prompt", "parse", tot))
    return graph


def comparable(graph: TaskGraph) -> list[dict[str, Any]]:
    """The trace without wall-clock times, which differ between any two runs."""
    tasks = graph.to_json()["tasks"]
    for t in tasks:
        t.pop("started_at")
        t.pop("finished_at")
    return tasks


# -- tests --------------------------------------------------------------------------------------------
def test_outputs_and_trace_match_the_local_run(client: Client) -> None:
    local, remote = pipeline(), pipeline()
    expected = local.run(REGISTRY, llm=OfflineLLM(), progress=False)
    llm = OfflineLLM()
    assert remote.run(REGISTRY, llm=llm, backend=DaskBackend(client), progress=False) == expected
    assert comparable(remote) == comparable(local)
    assert remote.tasks["source"].record.reads_graph_input == ["run"]
    assert llm.calls == 1  # the LLM call was made on the driver, through the driver's backend
    assert remote.last_run is not None and local.last_run is not None
    assert remote.last_run.calls == local.last_run.calls


def test_edit_and_replay_with_the_backend_reruns_only_descendants(client: Client) -> None:
    graph = pipeline()
    backend = DaskBackend(client)
    graph.run(REGISTRY, llm=OfflineLLM(), backend=backend, progress=False)
    graph.tasks["offset"].edit(output=100)
    graph.run(REGISTRY, llm=OfflineLLM(), backend=backend, progress=False)
    assert graph.last_run is not None
    assert graph.last_run.executed == ["total", "prompt"]
    assert graph.tasks["total"].output == sum(x * x for x in range(5)) + 100


def test_cpu_bound_tasks_overlap_across_workers(client: Client) -> None:
    pids = worker_pids(client)
    graph = TaskGraph({"work": 3_000_000})
    for i in range(4):
        graph.add_task(PythonTask("burn", id=f"burn{i}"))
    started = time.perf_counter()
    graph.run(REGISTRY, llm=OfflineLLM(), backend=DaskBackend(client), progress=False)
    wall = time.perf_counter() - started
    runs = [graph.tasks[f"burn{i}"].output for i in range(4)]
    assert {r["pid"] for r in runs} == pids, "both worker processes should have taken tasks"
    serial = sum(r["end"] - r["start"] for r in runs)
    assert wall < 0.8 * serial, f"wall {wall:.2f}s is not well under the serial sum {serial:.2f}s"
    assert any(a["pid"] != b["pid"] and a["start"] < b["end"] and b["start"] < a["end"] for a in runs for b in runs)


def test_a_task_raising_on_a_worker_is_failed_with_its_traceback(client: Client) -> None:
    graph = TaskGraph({"n": 3})
    bad = graph.add_task(PythonTask("explode"))
    graph.add_task(PythonTask("square", bad, id="after_bad"))
    graph.add_task(PythonTask("source", id="independent"))
    with pytest.raises(TaskGraphError, match="explode"):
        graph.run(REGISTRY, llm=OfflineLLM(), backend=DaskBackend(client), progress=False)
    error = graph.tasks["explode"].error
    assert error is not None and error.type == "ValueError" and error.message == "boom on the worker"
    assert "in explode" in error.traceback and 'raise ValueError("boom on the worker")' in error.traceback
    assert graph.tasks["after_bad"].status == "blocked"
    assert graph.tasks["independent"].status == "done" and graph.tasks["independent"].output == [0, 1, 2]


async def test_an_asynchronous_client_on_the_runs_loop(client: Client) -> None:
    async with Client(client.scheduler.address, asynchronous=True) as aclient:
        graph = pipeline()
        await graph.arun(REGISTRY, llm=OfflineLLM(), backend=DaskBackend(aclient), progress=False)
    local = pipeline()
    await local.arun(REGISTRY, llm=OfflineLLM(), progress=False)
    assert comparable(graph) == comparable(local)


def test_functions_that_add_tasks_must_stay_on_the_driver(client: Client) -> None:
    graph = TaskGraph()
    graph.add_task(PythonTask("spawn"))
    with pytest.raises(TaskGraphError):
        graph.run(REGISTRY, llm=OfflineLLM(), backend=DaskBackend(client), progress=False)
    error = graph.tasks["spawn"].error
    assert error is not None and "runs on a Dask worker" in error.message and "local=" in error.message
    graph.run(REGISTRY, llm=OfflineLLM(), backend=DaskBackend(client, local=["spawn"]), progress=False)
    assert graph.tasks["spawn/offset"].output == 7  # the child itself ran on a worker


def test_local_functions_stay_on_the_driver(client: Client) -> None:
    graph = TaskGraph({"work": 10})
    graph.add_task(PythonTask("burn", id="here"))
    graph.run(REGISTRY, llm=OfflineLLM(), backend=DaskBackend(client, local=["burn"]), progress=False)
    assert graph.tasks["here"].output["pid"] == os.getpid()


def test_a_worker_killed_mid_run_loses_no_completed_output(client: Client, tmp_path: Path) -> None:
    pids = worker_pids(client)
    log = tmp_path / "calls.log"
    graph = TaskGraph({"sleep": 0.4, "log": str(log)})
    for i in range(8):
        graph.add_task(PythonTask("slow_logged", id=f"s{i}"))
    graph.add_output_task(PythonTask("slow_logged", *[f"s{i}" for i in range(8)], id="join"))
    done_before_kill: dict[str, Any] = {}

    def on_event(event: Any) -> None:
        if event.kind == "task_finished" and not done_before_kill:
            # First completion: kill one worker process outright (the nanny starts a new one).
            done_before_kill.update({t.id: t.output for t in graph.tasks.values() if t.status == "done"})
            os.kill(sorted(pids)[0], signal.SIGKILL)

    graph.run(REGISTRY, llm=OfflineLLM(), backend=DaskBackend(client), on_event=on_event, progress=False)
    assert done_before_kill, "no task finished before the end of the run"
    assert all(t.status == "done" for t in graph.tasks.values())
    assert graph.output == "join"
    calls = log.read_text().split()
    for tid, output in done_before_kill.items():
        assert graph.tasks[tid].output == output
        assert calls.count(tid) == 1, f"completed task `{tid}` ran again after the kill"
    assert set(calls) == set(graph.tasks)
    worker_pids(client)  # the cluster is whole again for whoever uses it next
