"""Runs against a flaky or stalling API: the loopback Messages API server injects a seeded mix of 429, 529, 500
and timeouts, and the real anthropic SDK (through ``AnthropicLLM``) meets them.

The faults are keyed by (prompt, attempt), not by arrival order, so which task meets which fault is
the same on every run however the requests interleave. The test therefore predicts, from the same
seeded function, exactly which tasks succeed after a retry and which fail, and checks the run, the
trace, the server's request counts and a second run against that prediction.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_messages_api import FakeMessagesAPI, Fault

from llmtaskgraph import LLMTask, PythonTask, RunOptionsError, TaskGraph, TaskGraphError
from llmtaskgraph.cli import main
from llmtaskgraph.llm import AnthropicLLM

SEED = 4
TASKS = 40
MAX_RETRIES = 1
TIMEOUT = 1.5  # generous, so a loaded CI machine never times out a normal reply
FAULTS: list[tuple[str, float, Fault | None]] = [
    ("429", 0.15, Fault.rate_limit(retry_after=0.01)),
    ("529", 0.10, Fault.overloaded(retry_after=0.01)),
    ("500", 0.10, Fault.server_error(retry_after=0.01)),
    ("timeout", 0.07, Fault.slow(TIMEOUT * 3)),
]
MESSAGES = {
    "429": r"^429 rate_limit_error: Number of requests has exceeded your rate limit \(after 1 retry\)",
    "529": r"^529 overloaded_error: Overloaded \(after 1 retry\)",
    "500": r"^500 api_error: Internal server error \(after 1 retry\)",
    "timeout": rf"^timeout: no reply within {TIMEOUT} s \(after 1 retry\)",
}


def fault_for(prompt: str, attempt: int) -> str | None:
    """The fault the ``attempt``-th request for ``prompt`` meets (None: a normal reply)."""
    x = random.Random(f"{SEED}:{prompt}:{attempt}").random()
    for name, p, _ in FAULTS:
        if x < p:
            return name
        x -= p
    return None


class KeyedFaults:
    """A ``fault_fn`` for the server: counts the attempts per prompt and applies :func:`fault_for`."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    def __call__(self, n: int, body: dict[str, Any]) -> Fault | None:
        prompt = str(body["messages"][-1]["content"])
        name = fault_for(prompt, self.attempts[prompt])
        self.attempts[prompt] += 1
        if name is None:
            return None
        self.injected[name] += 1
        return next(f for kind, _, f in FAULTS if kind == name)


def predicted(i: int) -> tuple[str, int, str | None]:
    """(outcome, attempts, last fault) for task ``i``: done after 0..MAX_RETRIES faults, else failed."""
    prompt = f"question {i}"
    for attempt in range(MAX_RETRIES + 1):
        fault = fault_for(prompt, attempt)
        if fault is None:
            return "done", attempt + 1, None
    return "failed", MAX_RETRIES + 1, fault


def build(calls: Counter[str]) -> tuple[TaskGraph, dict[str, Callable[..., Any]]]:
    graph = TaskGraph()
    uses = []
    for i in range(TASKS):
        number = graph.add_task(PythonTask("number", id=f"n{i}", name=str(i)))
        ask = graph.add_task(LLMTask("ask", "keep", number, id=f"ask{i}", params={"max_tokens": 50}))
        uses.append(graph.add_task(PythonTask("use", ask, id=f"use{i}")))
    graph.add_output_task(PythonTask("join", *uses, id="join"))

    def counted(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            calls[name] += 1
            return fn(*args)
        return call

    registry = {
        "number": lambda ctx: int(str(ctx.task.name)),
        "ask": lambda ctx, i: f"question {i}",
        "keep": lambda ctx, text: text,
        "use": lambda ctx, text: len(text),
        "join": lambda ctx, *lengths: sum(lengths),
    }
    return graph, {name: counted(name, fn) for name, fn in registry.items()}


def test_a_seeded_fault_mix_then_a_second_run_that_completes_only_the_failed_tasks(
    fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = {i: predicted(i) for i in range(TASKS)}
    failed = {i for i, (outcome, _, _) in plan.items() if outcome == "failed"}
    retried = {i for i, (outcome, attempts, _) in plan.items() if outcome == "done" and attempts > 1}
    assert failed and retried and {plan[i][2] for i in failed} == {"429", "529", "500", "timeout"}  # the seed covers all

    faults = KeyedFaults()
    fake_api.fault_fn = faults
    calls: Counter[str] = Counter()
    graph, registry = build(calls)
    llm = make_llm(timeout=TIMEOUT, max_retries=MAX_RETRIES)
    with pytest.raises(TaskGraphError) as caught:
        graph.run(registry, llm=llm, max_concurrency=16)
    trace = tmp_path / "trace.json"
    graph.save(trace)

    # Every LLM task is done, or failed with the API's error, as predicted.
    for i, (outcome, attempts, fault) in plan.items():
        task = graph.tasks[f"ask{i}"]
        assert task.status == outcome, (i, plan[i])
        if outcome == "failed":
            assert task.error is not None and task.error.type == "LLMCallError" and task.error.stage == "call"
            assert re.match(MESSAGES[str(fault)], task.error.message), task.error.message
            assert graph.tasks[f"use{i}"].status == "blocked"
        else:
            assert task.response is not None and task.response["retries"] == attempts - 1
            assert graph.tasks[f"use{i}"].status == "done"
    assert graph.tasks["join"].status == "blocked"
    assert {path for path, _ in caught.value.failed} == {f"ask{i}" for i in failed}
    # Retries are counted in the trace and match what the server saw.
    assert graph.usage().retries == len(retried) == sum(plan[i][1] - 1 for i in retried)
    assert fake_api.count == sum(attempts for _, attempts, _ in plan.values())
    assert sum(faults.injected.values()) == len(retried) + len(failed) * (MAX_RETRIES + 1)
    assert set(faults.injected) == {"429", "529", "500", "timeout"}

    # The saved trace is valid JSON and loads; the CLI shows the failures.
    data = json.loads(trace.read_text(encoding="utf-8"))
    assert sum(t["status"] == "failed" for t in data["tasks"]) == len(failed)
    assert main(["show", str(trace)]) == 0
    shown = capsys.readouterr().out
    assert f"{len(failed)} failed" in shown and f"{len(retried)} retries" in shown

    # Second run, API healthy: exactly one request per failed task, nothing done is repeated.
    fake_api.reset()
    fake_api.fault_fn = None
    calls.clear()
    resumed = TaskGraph.load(trace)
    total = resumed.run(registry, llm=make_llm(timeout=TIMEOUT, max_retries=MAX_RETRIES), max_concurrency=16)
    assert fake_api.count == len(failed)
    assert sorted(b["messages"][-1]["content"] for b in fake_api.bodies()) == sorted(f"question {i}" for i in failed)
    assert calls == Counter({"keep": len(failed), "use": len(failed), "join": 1})
    assert all(t.status == "done" for t in resumed.tasks.values())
    assert total == sum(len(f"echo: question {i}") for i in range(TASKS))
    with capsys.disabled():
        print(f"\nfault injection: {dict(faults.injected)} injected over {sum(faults.attempts.values())} requests; "
              f"{TASKS - len(retried) - len(failed)} tasks clean, {len(retried)} done after a retry, "
              f"{len(failed)} failed and then completed by the second run")


# -- bounded calls: a slow or stalling server cannot hang a run ---------------------------------------------
# Bounds chosen small so each test ends in seconds; each asserts the error and that the call ended, with a
# generous margin for a loaded machine, never the exact spacing of events.
ENDED_WITHIN = 15.0


def run_one(llm: AnthropicLLM) -> tuple[LLMTask, float]:
    """Run a one-task graph that is expected to fail; the task and the seconds the run took."""
    graph = TaskGraph()
    task = graph.add_task(LLMTask("ask", "keep", id="ask"))
    started = time.monotonic()
    with pytest.raises(TaskGraphError):
        graph.run({"ask": lambda ctx: "hi", "keep": lambda ctx, text: text}, llm=llm)
    return task, time.monotonic() - started


def test_a_trickling_server_times_out_each_attempt(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> None:
    """One byte every 0.05 s never trips a per-read timeout (this took 83 s with ``timeout=2``); an attempt
    must now be answered whole within ``timeout``, and is retried like any timeout."""
    fake_api.enqueue(Fault.trickle(0.05), Fault.trickle(0.05))
    task, took = run_one(make_llm(timeout=0.5, max_retries=1))
    assert task.error is not None and task.error.message.startswith("timeout: no reply within 0.5 s (after 1 retry)")
    assert fake_api.count == 2 and took < ENDED_WITHIN

    fake_api.reset()
    fake_api.enqueue(Fault.trickle(0.05))  # once: the retry succeeds
    graph = TaskGraph()
    ok = graph.add_task(LLMTask("ask", "keep"))
    assert graph.run({"ask": lambda ctx: "hi", "keep": lambda ctx, text: text}, llm=make_llm(timeout=0.5)) == "echo: hi"
    assert ok.response is not None and ok.response["retries"] == 1


@pytest.mark.parametrize(("headers", "asked"), [
    ({"retry-after": "100000"}, "100000"),
    ({"retry-after-ms": "100000000"}, "100000"),
    ({"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"}, ""),
], ids=["seconds", "milliseconds", "http-date"])
def test_a_retry_after_past_the_cap_fails_at_once_saying_how_long(
        fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM], headers: dict[str, str], asked: str) -> None:
    fake_api.enqueue(Fault("status", 429, "rate_limit_error", "Number of requests has exceeded your rate limit",
                           headers=headers))
    task, took = run_one(make_llm(max_retries=3))
    assert task.error is not None
    assert task.error.message.startswith(
        f"429 rate_limit_error: Number of requests has exceeded your rate limit; the API asked to wait {asked}")
    assert " s before retrying, more than `max_retry_wait=60` s: not retried [request-id req_" in task.error.message
    assert fake_api.count == 1 and took < ENDED_WITHIN


def test_a_retry_after_within_the_cap_is_honoured_and_one_past_it_is_not(
        fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> None:
    fake_api.enqueue(Fault.rate_limit(retry_after=0.3), Fault.rate_limit(retry_after=2))
    _task, took = run_one(make_llm(max_retry_wait=1))
    first, second = fake_api.requests
    assert second.started - first.finished >= 0.29  # the first wait was honoured...
    assert fake_api.count == 2 and took < ENDED_WITHIN  # ...the second, over the cap, was not
    assert _task.error is not None and "asked to wait 2 s before retrying, more than `max_retry_wait=1` s" in _task.error.message


def test_a_retry_after_past_the_deadline_fails_at_once(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> None:
    fake_api.enqueue(Fault.overloaded(retry_after=30))
    task, took = run_one(make_llm(deadline=5))
    assert task.error is not None
    assert task.error.message.startswith("529 overloaded_error: Overloaded; the API asked to wait 30 s before retrying, "
                                         "past the call's deadline (")
    assert fake_api.count == 1 and took < ENDED_WITHIN


def test_a_retry_after_the_sdk_would_not_act_on_is_left_alone(
        fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> None:
    """``x-should-retry: false``: no retry, so no wait to refuse; the API's own error is reported."""
    fake_api.enqueue(Fault("status", 429, "rate_limit_error", "slow down",
                           headers={"retry-after": "100000", "x-should-retry": "false"}))
    task, _ = run_one(make_llm())
    assert task.error is not None and task.error.message.startswith("429 rate_limit_error: slow down [request-id req_")


def test_the_deadline_ends_a_call_whatever_its_attempts_do(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM]) -> None:
    fake_api.enqueue(Fault.slow(30), Fault.slow(30))
    task, took = run_one(make_llm(timeout=20, deadline=1))
    assert task.error is not None and task.error.type == "LLMCallError" and task.error.stage == "call"
    assert task.error.message.startswith("deadline: no complete reply within the call's deadline of 1 s; "
                                         "raise `deadline=` on AnthropicLLM for longer calls")
    assert took < ENDED_WITHIN


@pytest.mark.parametrize("option", ["timeout", "deadline", "max_retry_wait"])
@pytest.mark.parametrize("value", [0, -1, "5", True])
def test_bounds_must_be_positive_seconds(option: str, value: Any) -> None:
    with pytest.raises(RunOptionsError, match=f"AnthropicLLM `{option}` must be a number of seconds > 0, got "):
        AnthropicLLM(api_key="sk-ant-test-bounds", **{option: value})
