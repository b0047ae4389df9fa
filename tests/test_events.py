"""Streaming run events: ``async for event in graph.events(registry)``."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import aclosing
from typing import Any

import pytest

from llmtaskgraph import OfflineLLM, PythonTask, RunEvent, TaskGraph, TaskGraphError


def chain(n: int) -> TaskGraph:
    graph = TaskGraph()
    prev = None
    for i in range(n):
        prev = graph.add_task(PythonTask("work", *([prev] if prev else []), id=f"t{i}"))
    return graph


async def test_events_arrive_while_the_run_goes_on() -> None:
    graph = chain(3)
    calls: Counter[str] = Counter()

    async def work(ctx: Any, *deps: Any) -> str:
        calls[str(ctx.task.id)] += 1
        await asyncio.sleep(0.02)
        return str(ctx.task.id)

    seen = []
    async for event in graph.events({"work": work}, llm=OfflineLLM(), progress=False):
        seen.append((event.kind, event.path))
        if (event.kind, event.path) == ("task_finished", "t0"):
            assert graph.tasks["t2"].status == "pending", "events should stream, not arrive after the run"
    started_finished = [s for s in seen if s[0] in ("task_started", "task_finished")]
    assert started_finished == [(k, f"t{i}") for i in range(3) for k in ("task_started", "task_finished")]
    assert {p for k, p in seen if k == "task_added"} == {"t0", "t1", "t2"}
    assert graph.output == "t2" and calls == Counter({"t0": 1, "t1": 1, "t2": 1})


async def test_on_event_still_receives_every_event() -> None:
    also: list[RunEvent] = []
    streamed = [e async for e in chain(2).events({"work": lambda ctx, *d: 1}, llm=OfflineLLM(), on_event=also.append,
                                                   progress=False)]
    assert streamed == also and len(streamed) >= 6


async def test_a_failure_is_raised_after_its_events() -> None:
    def work(ctx: Any, *deps: Any) -> None:
        if ctx.task.id == "t1":
            raise ValueError("bad")

    kinds = []
    with pytest.raises(TaskGraphError, match="t1"):
        async for event in chain(3).events({"work": work}, llm=OfflineLLM(), progress=False):
            kinds.append((event.kind, event.path))
    assert ("task_failed", "t1") in kinds and ("task_blocked", "t2") in kinds


async def test_leaving_the_loop_stops_the_run_and_keeps_completed_work() -> None:
    graph = chain(5)
    calls: Counter[str] = Counter()

    async def work(ctx: Any, *deps: Any) -> int:
        calls[str(ctx.task.id)] += 1
        await asyncio.sleep(0.01)
        return len(deps)

    # aclosing: an async generator left by `break` is only closed when collected; this closes it now.
    async with aclosing(graph.events({"work": work}, llm=OfflineLLM(), progress=False)) as events:
        async for event in events:
            if (event.kind, event.path) == ("task_finished", "t1"):
                break
    assert [t.status for t in graph.tasks.values()] == ["done", "done", "pending", "pending", "pending"]
    await graph.arun({"work": work}, llm=OfflineLLM(), progress=False)
    assert calls["t0"] == calls["t1"] == 1  # completed work is kept; t2 may have started before the break
    assert all(t.status == "done" for t in graph.tasks.values())


def test_a_listener_sees_a_finished_creators_children_in_its_record() -> None:
    """A listener that saves the trace on `task_finished` must save a trace that resumes correctly."""
    graph = TaskGraph()
    graph.add_task(PythonTask("make"))
    seen: list[list[str]] = []

    def make(ctx: Any) -> None:
        ctx.add_task(PythonTask("leaf", key="a"))
        ctx.add_task(PythonTask("leaf", key="b"))

    def on_event(event: RunEvent) -> None:
        if (event.kind, event.path) == ("task_finished", "make"):
            seen.append(list(graph.tasks["make"].record.children))

    graph.run({"make": make, "leaf": lambda ctx: 1}, llm=OfflineLLM(), on_event=on_event, progress=False)
    assert seen == [["make/a", "make/b"]]


async def test_a_raising_on_event_callback_does_not_cut_the_stream() -> None:
    graph = chain(3)

    async def work(ctx: Any, *deps: Any) -> str:
        return str(ctx.task.id)

    def broken(event: RunEvent) -> None:
        raise RuntimeError("callback bug")

    kinds = []
    with pytest.warns(RuntimeWarning, match="callback bug"):
        async for event in graph.events({"work": work}, llm=OfflineLLM(), progress=False, on_event=broken):
            kinds.append((event.kind, event.path))
    assert [p for k, p in kinds if k == "task_finished"] == ["t0", "t1", "t2"]


def test_on_event_accepts_several_callbacks() -> None:
    graph = chain(2)
    first: list[str] = []
    second: list[str] = []
    graph.run({"work": lambda ctx, *d: 1}, llm=OfflineLLM(), progress=False,
              on_event=[lambda e: first.append(e.kind), lambda e: second.append(e.kind)])
    assert first == second and first.count("task_finished") == 2


def test_the_last_event_of_a_run_is_run_finished_sent_once_the_graph_is_no_longer_running():
    graph = TaskGraph()
    graph.add_task(PythonTask("a", id="a"))
    seen: list[tuple[str, bool, bool]] = []
    graph.run({"a": lambda ctx: 1}, on_event=lambda e: seen.append((e.kind, graph._active is None, graph.last_run is not None)))
    assert seen[-1] == ("run_finished", True, True)
    assert [kind for kind, _, _ in seen].count("run_finished") == 1
