"""The scheduler: parallelism, dynamic tasks, failures, cancellation, bounds and steps."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import pytest
from core_helpers import CountingRegistry

from llmtaskgraph import GraphValidationError, LLMTask, OfflineLLM, PythonTask, TaskGraph, TaskGraphError, TaskGraphTask
from llmtaskgraph.llm import LLMResponse


async def nap(ctx, *args, **kwargs):
    await asyncio.sleep(0.2)
    return ctx.task.id


def test_independent_tasks_overlap_so_wall_time_follows_the_critical_path():
    # 8 independent branches of 2 sleeping tasks each: the sum is 16 x 0.2 s, the critical path 0.4 s.
    graph = TaskGraph()
    for i in range(8):
        first = graph.add_task(PythonTask("nap", name=f"a{i}"))
        graph.add_task(PythonTask("nap", first, name=f"b{i}"))
    started = time.perf_counter()
    graph.run({"nap": nap})
    wall = time.perf_counter() - started
    assert all(t.status == "done" for t in graph.tasks.values())
    assert wall < 0.4 * 2, f"took {wall:.2f}s; serial would be 3.2s"


def test_blocking_sync_functions_run_in_threads_and_do_not_stall_llm_calls():
    class SlowLLM:
        kind = "slow"

        def __init__(self):
            self.finished_at = None

        async def complete(self, request):
            await asyncio.sleep(0.1)
            self.finished_at = time.perf_counter()
            return LLMResponse(text="ok", backend=self.kind)

    def blocker(ctx):
        time.sleep(0.6)  # blocks its thread, not the loop
        return threading.current_thread().name

    llm = SlowLLM()
    graph = TaskGraph()
    graph.add_task(PythonTask("blocker"))
    graph.add_task(LLMTask("fmt", "parse"))
    start = time.perf_counter()
    graph.run({"blocker": blocker, "fmt": lambda ctx: "hi", "parse": lambda ctx, t: t}, llm=llm)
    assert llm.finished_at - start < 0.45, "the LLM call waited for the blocking function"
    assert graph.tasks["blocker"].output.startswith("llmtaskgraph")


def test_positional_and_keyword_dependencies_given_as_task_or_id():
    graph = TaskGraph()
    a = graph.add_task(PythonTask("const", name="a"))
    graph.add_task(PythonTask("const", name="b"))
    out = graph.add_output_task(PythonTask("combine", a, "b", scale="b", base=a))
    registry = {
        "const": lambda ctx: len(ctx.task.id),
        "combine": lambda ctx, x, y, scale, base: [x, y, scale, base],
    }
    assert graph.run(registry) == [1, 1, 1, 1]
    assert out.deps == ["a", "b"] and out.kwdeps == {"scale": "b", "base": "a"}


def test_async_and_sync_functions_and_callable_objects_all_work():
    class Adder:
        async def __call__(self, ctx, x):
            return x + 1

    graph = TaskGraph()
    a = graph.add_task(PythonTask("sync"))
    b = graph.add_task(PythonTask("obj", a))
    graph.add_task(PythonTask("asyncfn", b))

    async def asyncfn(ctx, x):
        return x * 10

    assert graph.run({"sync": lambda ctx: 1, "obj": Adder(), "asyncfn": asyncfn}) == 20


def test_output_defaults_to_last_task_added_before_the_run():
    graph = TaskGraph()
    graph.add_task(PythonTask("one"))
    graph.add_task(PythonTask("spawn"))

    def spawn(ctx):
        ctx.add_task(PythonTask("one", name="child"))
        return "spawned"

    assert graph.run({"one": lambda ctx: 1, "spawn": spawn}) == "spawned"


def test_run_inside_a_running_event_loop_like_jupyter():
    graph = TaskGraph({"x": 2})
    graph.add_task(PythonTask("double"))

    async def notebook_cell():
        # Jupyter runs cells inside a loop; the sync run must still work there.
        return graph.run({"double": lambda ctx: ctx.graph_input["x"] * 2})

    assert asyncio.run(notebook_cell()) == 4


async def test_arun_is_the_async_form():
    graph = TaskGraph()
    graph.add_task(PythonTask("f"))
    assert await graph.arun({"f": lambda ctx: "async"}) == "async"


# -- dynamic tasks -----------------------------------------------------------------------------------
def planner(ctx, n):
    parts = [ctx.add_task(PythonTask("work", key=f"part{i}")) for i in range(n)]
    ctx.add_output_task(PythonTask("gather", *parts))
    return n


def test_tasks_added_while_running_get_deterministic_ids_and_created_by():
    registry = CountingRegistry({
        "n": lambda ctx: ctx.graph_input,
        "plan": planner,
        "work": lambda ctx: ctx.task.id.upper(),
        "gather": lambda ctx, *parts: list(parts),
    })
    graph = TaskGraph(3)
    n = graph.add_task(PythonTask("n"))
    graph.add_task(PythonTask("plan", n))
    out = graph.run(registry)
    assert out == ["PLAN/PART0", "PLAN/PART1", "PLAN/PART2"]
    assert graph.tasks["plan/part1"].created_by == "plan"
    assert graph.tasks["plan/gather#1"].created_by == "plan"
    assert graph.tasks["plan"].record.children == ["plan/part0", "plan/part1", "plan/part2", "plan/gather#1"]
    assert graph.output_task.id == "plan/gather#1"


def test_children_of_children_and_growth_until_max_tasks():
    def grow(ctx, depth=None):
        level = 0 if depth is None else depth
        ctx.add_task(PythonTask("grow", ctx.task, key="next"))
        return level + 1

    graph = TaskGraph()
    graph.add_task(PythonTask("grow"))
    graph.run({"grow": grow}, max_tasks=25)
    report = graph.last_run
    assert report.stopped == "max_tasks"
    assert len(report.executed) == 25
    done = [t for t in graph.tasks.values() if t.status == "done"]
    assert len(done) == 25
    deepest = max(done, key=lambda t: t.output)
    assert deepest.output == 25
    assert deepest.id.count("/") == 24  # grow/next/next/...
    # the one task added but not started stays pending, so a later run continues the growth
    assert [t.status for t in graph.tasks.values()].count("pending") == 1
    graph.run({"grow": grow}, max_tasks=5)
    assert sum(t.status == "done" for t in graph.tasks.values()) == 30


def test_stop_ends_an_unbounded_graph_cleanly():
    graph = TaskGraph()
    graph.add_task(PythonTask("tick"))

    async def tick(ctx, previous=None):
        count = (previous or 0) + 1
        if count == 40:
            ctx.task.graph.stop()
        ctx.add_task(PythonTask("tick", ctx.task, key="n"))
        return count

    graph.run({"tick": tick})
    assert graph.last_run.stopped == "stop"
    assert max(t.output or 0 for t in graph.tasks.values()) == 40


def test_ctx_stop_inside_a_subgraph_stops_the_whole_run_and_a_later_run_resumes():
    async def tick(ctx, previous=None):
        if previous == 3:
            ctx.stop()
        if previous is None or previous < 5:
            ctx.add_output_task(PythonTask("tick", ctx.task, key="n"))  # the sub-graph's output moves on
        return (previous or 0) + 1

    inner = TaskGraph()
    inner.add_task(PythonTask("tick"))
    graph = TaskGraph()
    graph.add_task(TaskGraphTask(inner, "to_sub", name="sub"))
    graph.add_task(PythonTask("after", "sub"))
    registry = {"tick": tick, "to_sub": lambda ctx: None, "after": lambda ctx, x: x}
    graph.run(registry)
    assert graph.last_run.stopped == "stop"
    assert graph.tasks["sub"].status == "pending" and graph.tasks["after"].status == "pending"
    assert max(t.output or 0 for t in inner.tasks.values()) == 4
    assert graph.run(registry) == 6  # resumes where it stopped, repeating nothing
    assert graph.last_run.calls["tick"] == 2


def test_timeout_bounds_a_growing_graph():
    async def slow_tick(ctx, previous=None):
        await asyncio.sleep(0.05)
        ctx.add_task(PythonTask("tick", ctx.task, key="n"))
        return 1

    graph = TaskGraph()
    graph.add_task(PythonTask("tick"))
    start = time.perf_counter()
    graph.run({"tick": slow_tick}, timeout=0.3)
    assert graph.last_run.stopped == "timeout"
    assert time.perf_counter() - start < 1.0
    assert 3 <= len(graph.last_run.executed) <= 8


def test_sync_function_may_add_tasks_from_its_worker_thread():
    def spawn(ctx):
        assert threading.current_thread() is not threading.main_thread()
        return [ctx.add_task(PythonTask("leaf", key=str(i))).id for i in range(5)]

    graph = TaskGraph()
    graph.add_task(PythonTask("spawn"))
    graph.run({"spawn": spawn, "leaf": lambda ctx: ctx.task.key})
    assert [graph.tasks[f"spawn/{i}"].output for i in range(5)] == ["0", "1", "2", "3", "4"]


def test_child_with_missing_registry_name_fails_its_creator_clearly():
    def spawn(ctx):
        ctx.add_task(PythonTask("not_registered"))

    graph = TaskGraph()
    graph.add_task(PythonTask("spawn"))
    with pytest.raises(TaskGraphError) as info:
        graph.run({"spawn": spawn})
    assert "`spawn`" in str(info.value)
    assert "not_registered" in graph.tasks["spawn"].error.message


# -- sub-graphs --------------------------------------------------------------------------------------
def nested(levels: int) -> TaskGraph:
    """A chain of sub-graphs ``levels`` deep; the innermost adds 1 to its input."""
    inner = TaskGraph()
    inner.add_task(PythonTask("inc"))
    for _ in range(levels - 1):
        outer = TaskGraph()
        outer.add_task(TaskGraphTask(inner, "pass_input", name="sub"))
        inner = outer
    return inner


SUB_REGISTRY = {"inc": lambda ctx: ctx.graph_input + 1, "pass_input": lambda ctx, *a: ctx.graph_input, "seed": lambda ctx: 41}


def test_subgraphs_several_levels_deep_used_like_functions():
    graph = TaskGraph()
    seed = graph.add_task(PythonTask("seed"))
    graph.add_task(TaskGraphTask(nested(3), "to_input", seed, name="deep"))
    registry = {**SUB_REGISTRY, "to_input": lambda ctx, x: x}
    assert graph.run(registry) == 42
    assert graph.find("deep > sub > sub > inc").output == 42
    assert graph.tasks["deep"].subgraph.graph_input == 41


def test_failure_inside_a_subgraph_names_the_inner_task():
    graph = TaskGraph(0)
    graph.add_task(TaskGraphTask(nested(2), "pass_input", name="outer"))
    registry = {**SUB_REGISTRY, "inc": lambda ctx: {}["missing"]}
    with pytest.raises(TaskGraphError) as info:
        graph.run(registry)
    paths = [p for p, _ in info.value.failed]
    assert paths == ["outer > sub > inc", "outer > sub", "outer"]
    assert graph.find("outer > sub > inc").error.type == "KeyError"


# -- failures ----------------------------------------------------------------------------------------
def make_failing_graph():
    graph = TaskGraph()
    ok = graph.add_task(PythonTask("ok", name="ok"))
    bad = graph.add_task(PythonTask("bad", ok, name="bad"))
    graph.add_task(PythonTask("ok", bad, name="after_bad"))
    graph.add_task(PythonTask("ok", "after_bad", name="after_after"))
    other = graph.add_task(PythonTask("ok", name="other"))
    graph.add_task(PythonTask("ok", other, name="other2"))
    graph.add_task(PythonTask("bad", name="bad2"))
    return graph


def test_failure_records_error_blocks_descendants_and_lets_independent_branches_finish():
    def bad(ctx, *args):
        raise ValueError(f"broken input for {ctx.task.id}")

    registry = CountingRegistry({"ok": lambda ctx, *a: "fine", "bad": bad})
    graph = make_failing_graph()
    with pytest.raises(TaskGraphError) as info:
        graph.run(registry)
    message = str(info.value)
    assert "2 task(s) failed" in message and "`bad`" in message and "`bad2`" in message
    statuses = {tid: t.status for tid, t in graph.tasks.items()}
    assert statuses == {
        "ok": "done", "bad": "failed", "after_bad": "blocked", "after_after": "blocked",
        "other": "done", "other2": "done", "bad2": "failed",
    }
    error = graph.tasks["bad"].error
    assert (error.type, error.message, error.stage) == ("ValueError", "broken input for bad", "run")
    assert "raise ValueError" in error.traceback
    assert graph.tasks["bad"].output is None
    assert registry.take() == {"ok": 3, "bad": 2}

    # fix the function, run again: only the failed tasks and the blocked ones run
    fixed = CountingRegistry({"ok": lambda ctx, *a: "fine", "bad": lambda ctx, *a: "fixed"})
    graph.run(fixed)
    assert fixed.take() == {"bad": 2, "ok": 2}
    assert all(t.status == "done" for t in graph.tasks.values())
    assert graph.tasks["bad"].error is None


def test_failure_state_survives_json_and_resumes_after_loading():
    graph = make_failing_graph()
    with pytest.raises(TaskGraphError):  # (counted like the fixed registry below: same code, same versions)
        graph.run(CountingRegistry({"ok": lambda ctx, *a: "fine", "bad": lambda ctx, *a: 1 / 0}))
    loaded = TaskGraph.from_json(graph.to_json())
    assert loaded.tasks["bad"].error.type == "ZeroDivisionError"
    fixed = CountingRegistry({"ok": lambda ctx, *a: "fine", "bad": lambda ctx, *a: "fixed"})
    loaded.run(fixed)
    assert fixed.take() == {"bad": 2, "ok": 2}


def test_llm_parser_failure_keeps_the_reply_so_fixing_the_parser_needs_no_new_call():
    llm = OfflineLLM()
    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "parse"))
    registry = {"fmt": lambda ctx: "give me json", "parse": lambda ctx, text: int(text)}
    with pytest.raises(TaskGraphError, match="ValueError in parse"):
        graph.run(registry, llm=llm)
    task = graph.tasks["fmt"]
    assert task.status == "failed" and task.error.stage == "parse"
    assert task.response["text"].startswith("[offline reply")
    registry["parse"] = lambda ctx, text: len(text)
    assert graph.run(registry, llm=llm) == len(task.response["text"])
    assert llm.calls == 1


def test_non_json_output_fails_the_task_naming_the_path():
    graph = TaskGraph()
    graph.add_task(PythonTask("f"))
    with pytest.raises(TaskGraphError):
        graph.run({"f": lambda ctx: {"items": [1, 2, 3, {1, 2}]}})
    error = graph.tasks["f"].error
    assert error.type == "OutputNotJSONError"
    assert 'output["items"][3]' in error.message and "set" in error.message and "`f`" in error.message


def test_cancellation_keeps_completed_outputs_and_resume_does_not_repeat_them():
    registry = CountingRegistry()

    async def quick(ctx, *args):
        return "quick"

    async def slow(ctx, *args):
        await asyncio.sleep(5)
        return "slow"

    registry.add("quick", quick)
    registry.add("slow", slow)
    graph = TaskGraph()
    q = graph.add_task(PythonTask("quick"))
    graph.add_task(PythonTask("slow", q))

    async def interrupted():
        run = asyncio.ensure_future(graph.arun(registry))
        await asyncio.sleep(0.2)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(interrupted())
    assert graph.tasks["quick"].status == "done" and graph.tasks["slow"].status == "pending"
    assert registry.take() == {"quick": 1, "slow": 1}
    registry.add("slow", quick)  # "fixed": now fast
    TaskGraph.from_json(graph.to_json()).run(registry)
    assert registry.take() == {"slow": 1}  # only the interrupted task ran again


def test_keyboard_interrupt_in_sync_run_inside_a_loop_keeps_completed_outputs():
    graph = TaskGraph()
    graph.add_task(PythonTask("quick"))
    graph.add_task(PythonTask("slow", "quick"))
    interrupt_after = 0.3

    async def quick(ctx):
        return 1

    async def slow(ctx, x):
        await asyncio.sleep(10)

    main = threading.get_ident()

    def raise_interrupt():
        time.sleep(interrupt_after)
        signal.pthread_kill(main, signal.SIGINT)  # a real Ctrl-C, delivered to the waiting main thread

    async def cell():
        threading.Thread(target=raise_interrupt, daemon=True).start()
        graph.run({"quick": quick, "slow": slow})

    # Like ipykernel: a loop in the main thread with the default SIGINT handler (asyncio.run would
    # instead turn the first Ctrl-C into a cancellation of its main task).
    loop = asyncio.new_event_loop()
    start = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(cell())
    finally:
        loop.close()
    assert threading.get_ident() == main
    assert time.perf_counter() - start < 5
    assert graph.tasks["quick"].status == "done"
    assert graph.tasks["slow"].status == "pending"


# -- steps and breakpoints ---------------------------------------------------------------------------
def chain_graph():
    graph = TaskGraph()
    a = graph.add_task(PythonTask("f", name="a"))
    b = graph.add_task(PythonTask("f", a, name="b"))
    graph.add_task(PythonTask("f", b, name="c"))
    return graph


def test_step_runs_one_task_at_a_time():
    registry = CountingRegistry({"f": lambda ctx, *a: ctx.task.id})
    graph = chain_graph()
    assert graph.step(registry).id == "a"
    assert [t.status for t in graph.tasks.values()] == ["done", "pending", "pending"]
    assert graph.step(registry).id == "b"
    assert graph.step(registry).id == "c"
    assert graph.step(registry) is None
    assert registry.take() == {"f": 3}


def test_break_before_and_after_then_continue():
    registry = CountingRegistry({"f": lambda ctx, *a: ctx.task.id})
    graph = chain_graph()
    graph.run(registry, break_before=["c"])
    assert graph.last_run.stopped == "break_before:c"
    assert [t.status for t in graph.tasks.values()] == ["done", "done", "pending"]
    graph.run(registry, break_after=["a"])  # a is memoized, so the breakpoint does not fire before c
    assert graph.run(registry) == "c"
    assert registry.take() == {"f": 3}

    fresh = chain_graph()
    fresh.run(registry, break_after=["a"])
    assert fresh.last_run.stopped == "break_after:a"
    assert [t.status for t in fresh.tasks.values()] == ["done", "pending", "pending"]


def test_constant_inputs_reach_the_function_and_are_part_of_the_fingerprint():
    registry = CountingRegistry({"greet": lambda ctx, who, punct="": f"hello {who}{punct}"})
    graph = TaskGraph()
    graph.add_task(PythonTask("greet", inputs={"who": "ada", "punct": "!"}))
    assert graph.run(registry) == "hello ada!"
    data = graph.to_json()
    assert data["tasks"][0]["inputs"] == {"who": "ada", "punct": "!"}
    data["tasks"][0]["inputs"]["who"] = "grace"  # a hand edit of an input re-runs the task
    assert TaskGraph.from_json(data).run(registry) == "hello grace!"
    assert registry.take() == {"greet": 2}
    with pytest.raises(ValueError, match=r"\['x'\] given both as a dependency and in `inputs`"):
        PythonTask("f", x="dep", inputs={"x": 1})
    with pytest.raises(TypeError, match=r"`inputs\[\"when\"\]` is of type object"):
        PythonTask("f", inputs={"when": object()})


def test_a_fully_memoized_subgraph_counts_as_reused_not_executed():
    graph = TaskGraph()
    graph.add_task(TaskGraphTask(nested(2), "pass_input", name="outer"))
    graph.graph_input = 1
    graph.run(SUB_REGISTRY)
    assert graph.last_run.executed == ["outer", "outer > sub", "outer > sub > inc"]
    times = {p: (t.record.started_at, t.record.finished_at) for p, t, _ in graph.walk()}
    graph.run(SUB_REGISTRY)
    assert graph.last_run.executed == [] and graph.last_run.reused == 3
    assert times == {p: (t.record.started_at, t.record.finished_at) for p, t, _ in graph.walk()}


def test_an_error_outside_any_registry_function_fails_the_task_instead_of_hanging():
    class BrokenLLM:
        kind = "broken"

        async def complete(self, request):
            return "not an LLMResponse"  # the scheduler's own handling of it fails, not a stage function

    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "parse", name="ask"))
    graph.add_task(PythonTask("other"))
    with pytest.raises(TaskGraphError, match="`ask`: AttributeError"):
        graph.run({"fmt": lambda ctx: "hi", "parse": lambda ctx, t: t, "other": lambda ctx: 1}, llm=BrokenLLM(), timeout=10)
    assert graph.tasks["other"].status == "done"


def test_a_graph_cannot_run_twice_at_once():
    async def slow(ctx):
        await asyncio.sleep(0.2)
        return 1

    graph = TaskGraph()
    graph.add_task(PythonTask("slow"))

    async def both():
        first = asyncio.ensure_future(graph.arun({"slow": slow}))
        await asyncio.sleep(0.05)
        with pytest.raises(GraphValidationError, match="already running"):
            await graph.arun({"slow": slow})
        return await first

    assert asyncio.run(both()) == 1


def test_an_event_listener_that_raises_is_dropped_with_a_warning_and_the_run_finishes():
    seen = []

    def fragile(event):
        seen.append(event.kind)
        raise RuntimeError("listener bug")

    graph = chain_graph()
    with pytest.warns(RuntimeWarning, match="raised RuntimeError: listener bug; it gets no more events"):
        assert graph.run({"f": lambda ctx, *a: ctx.task.id}, on_event=fragile, timeout=10) == "c"
    assert seen == ["task_added"]
    assert all(t.status == "done" for t in graph.tasks.values())
