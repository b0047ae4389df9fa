"""Where plain registry functions run: a worker thread for their first call, then the loop's thread
while they are quick, worker threads once slow. The 'quick' bound is set per test, so no test depends
on how fast this machine is."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from core_helpers import chain

import llmtaskgraph.run.calls as calls_module
from llmtaskgraph import PythonTask, TaskGraph


def threads_of(graph: TaskGraph, fn: Any) -> tuple[list[int], int]:
    """The thread each call of ``fn`` ran on, and the thread of the run's loop."""
    seen: list[int] = []
    loop_thread: list[int] = []

    def recorded(ctx: Any, *deps: Any) -> int:
        seen.append(threading.get_ident())
        return fn(ctx, *deps)

    async def probe(ctx: Any) -> None:
        loop_thread.append(threading.get_ident())

    graph.add_task(PythonTask("probe", id="probe"))
    graph.run({"f": recorded, "probe": probe})
    return seen, loop_thread[0]


def test_a_quick_plain_function_runs_in_a_thread_once_then_on_the_loops_thread(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(calls_module, "QUICK_SECONDS", 3600.0)
    seen, loop_thread = threads_of(chain(5, "f"), lambda ctx, *deps: len(deps))
    assert seen[0] != loop_thread and seen[1:] == [loop_thread] * 4


def test_a_slow_plain_function_stays_in_worker_threads(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(calls_module, "QUICK_SECONDS", 0.0)  # every call counts as slow
    seen, loop_thread = threads_of(chain(5, "f"), lambda ctx, *deps: len(deps))
    assert loop_thread not in seen and len(seen) == 5


def test_calls_of_a_function_not_yet_timed_wait_for_its_first_call(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(calls_module, "QUICK_SECONDS", 3600.0)
    graph = TaskGraph()
    for i in range(20):  # all ready at once
        graph.add_task(PythonTask("f", id=f"t{i}"))
    seen, loop_thread = threads_of(graph, lambda ctx: 1)
    assert sum(t != loop_thread for t in seen) == 1 and len(seen) == 20


def test_a_function_that_starts_its_own_event_loop_moves_to_a_worker_thread(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(calls_module, "QUICK_SECONDS", 3600.0)

    async def inner() -> int:
        return 2

    def own_loop(ctx: Any, *deps: Any) -> int:
        return asyncio.run(inner()) + len(deps)

    seen, loop_thread = threads_of(chain(4, "f"), own_loop)
    assert len(seen) == 5  # the inline attempt failed at asyncio.run, then ran again in a thread
    assert [t == loop_thread for t in seen] == [False, True, False, False, False]
