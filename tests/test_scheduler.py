"""The scheduler as code inside a task observes it: a real current asyncio task per graph task
(anyio, httpx rely on it), contextvars, callbacks queued before, cancellation and timer turns."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import anyio
from core_helpers import chain

from llmtaskgraph import OfflineLLM, PythonTask, TaskGraph

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def run(graph: TaskGraph, registry: dict[str, Any], **options: Any) -> None:
    await graph.arun(registry, llm=OfflineLLM(), progress=False, **options)


async def test_each_task_runs_on_its_own_asyncio_task_and_anyio_cancel_scopes_work_across_awaits() -> None:
    ran_on: dict[str, asyncio.Task[Any]] = {}

    async def step(ctx: Any, *deps: Any) -> int:
        task = asyncio.current_task()
        assert task is not None
        ran_on[str(ctx.task.id)] = task
        with anyio.CancelScope():  # raises if exited on another task than the one it was entered on
            await asyncio.sleep(0)
            await anyio.sleep(0)
        assert asyncio.current_task() is task
        return len(deps)

    graph = chain(50, "step")
    await run(graph, {"step": step})
    assert all(t.status == "done" for t in graph.tasks.values())
    assert len({id(t) for t in ran_on.values()}) == 50


async def test_a_callback_queued_by_a_task_runs_before_its_dependent_starts() -> None:
    order: list[str] = []

    async def first(ctx: Any) -> None:
        asyncio.get_running_loop().call_soon(order.append, "callback")
        asyncio.get_running_loop().create_task(_append(order, "fire-and-forget task"))

    async def second(ctx: Any, _: Any) -> None:
        order.append("dependent")

    graph = TaskGraph()
    a = graph.add_task(PythonTask("first", id="a"))
    graph.add_task(PythonTask("second", a, id="b"))
    await run(graph, {"first": first, "second": second})
    assert order == ["callback", "fire-and-forget task", "dependent"]


async def _append(order: list[str], item: str) -> None:
    order.append(item)


async def test_contextvars_are_what_a_new_task_would_have_copied() -> None:
    seen: dict[str, str] = {}

    async def root(ctx: Any) -> None:
        var.set("root")

    async def left(ctx: Any, _: Any) -> None:
        seen["left"] = var.get()
        var.set("left")  # must not leak into its sibling, which starts after it

    async def right(ctx: Any, _: Any) -> None:
        seen["right"] = var.get()

    graph = TaskGraph()
    r = graph.add_task(PythonTask("root", id="root"))
    graph.add_task(PythonTask("left", r, id="left"))
    graph.add_task(PythonTask("right", r, id="right"))
    await run(graph, {"root": root, "left": left, "right": right})
    assert seen == {"left": "root", "right": "root"}
    assert var.get() == "unset"


async def test_cancelling_the_run_cancels_a_task_running_on_a_handed_asyncio_task() -> None:
    async def quick(ctx: Any) -> None:
        return None

    async def slow(ctx: Any, _: Any) -> None:
        await asyncio.sleep(30)

    graph = TaskGraph()
    a = graph.add_task(PythonTask("quick", id="a"))
    graph.add_task(PythonTask("slow", a, id="b"))
    try:
        await asyncio.wait_for(run(graph, {"quick": quick, "slow": slow}), 0.3)
    except asyncio.TimeoutError:
        pass
    else:
        raise AssertionError("the run should have timed out")
    assert graph.tasks["a"].status == "done"
    assert graph.tasks["b"].status == "pending"


async def test_timers_fire_while_a_long_chain_of_instant_tasks_runs() -> None:
    n = 2000
    done = 0
    fired_after: list[int] = []

    async def step(ctx: Any, *deps: Any) -> None:
        nonlocal done
        if not deps:  # the first task: a timer due at once, fired when the loop next polls
            asyncio.get_running_loop().call_later(0, lambda: fired_after.append(done))
        done += 1

    await run(chain(n, "step"), {"step": step})
    assert done == n
    assert fired_after and fired_after[0] < n, f"the timer waited for the whole chain: {fired_after}"


def test_children_a_parser_added_stay_when_only_earlier_stages_ran_again():
    """A creator whose formatter ran again (new code) but whose request, reply and so parse were reused
    has not re-created its children: they stay its children, memoized, instead of being dropped."""
    from llmtaskgraph import LLMTask, PythonTask, ScriptedLLM, TaskGraph

    def parse(ctx, text):
        for word in text.split():
            ctx.add_task(PythonTask("shout", key=word, inputs={"word": word}))
        return len(text.split())

    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "parse", id="plan"))
    reg = {"fmt": lambda ctx: "words please", "parse": parse, "shout": lambda ctx, word: word.upper()}
    llm = ScriptedLLM({"words please": "cat hat"})
    graph.run(reg, llm=llm, progress=False)
    assert graph.tasks["plan"].record.children == ["plan/cat", "plan/hat"]
    reg["fmt"] = lambda ctx: " ".join(["words", "please"])  # new code, same prompt
    graph.run(reg, llm=llm, progress=False)
    assert graph.last_run.executed == ["plan"] and llm.calls == 1
    assert graph.tasks["plan"].record.children == ["plan/cat", "plan/hat"] and graph.tasks["plan/hat"].output == "HAT"
