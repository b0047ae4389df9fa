"""AnthropicBatchLLM against the loopback server's Message Batches endpoints, through the real SDK: ready calls
go in one batch and later ones in later batches, results reach their tasks by custom_id, errored/canceled/
expired entries fail their task with the reason, cost is the batch price, and a process killed mid-batch
resumes polling the same batch from its checkpoint without submitting anything again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_API_KEY
from fake_batches import FakeBatches
from fake_messages_api import FakeMessagesAPI

from llmtaskgraph import LLMTask, TaskGraph, TaskGraphError
from llmtaskgraph.llm.batch import PENDING, AnthropicBatchLLM
from llmtaskgraph.llm.prices import cost_of

REGISTRY: dict[str, Callable[..., Any]] = {
    "ask": lambda ctx, i: f"question {i}",
    "keep": lambda ctx, text: text,
    "join": lambda ctx, *answers: "summarise: " + " | ".join(answers),
}


@pytest.fixture
def batches(fake_api: FakeMessagesAPI) -> Iterator[FakeBatches]:
    yield FakeBatches(fake_api, delay=0.05)


def make_batch_llm(api: FakeMessagesAPI, **options: Any) -> AnthropicBatchLLM:
    settings: dict[str, Any] = {"api_key": TEST_API_KEY, "base_url": api.url, "poll_seconds": 0.01,
                                "collect_seconds": 0.05, "max_retries": 1, "timeout": 5.0}
    settings.update(options)
    return AnthropicBatchLLM(**settings)


def fan_out(n: int, join: bool = False) -> TaskGraph:
    graph = TaskGraph()
    asks = [graph.add_task(LLMTask("ask", "keep", inputs={"i": i}, id=f"q{i}")) for i in range(n)]
    if join:
        graph.add_task(LLMTask("join", "keep", *asks, id="summary"))
    return graph


def asked(params: dict[str, Any]) -> str:
    return str(params["messages"][0]["content"])


def test_ready_calls_go_in_one_batch_and_later_ones_in_the_next(fake_api: FakeMessagesAPI, batches: FakeBatches) -> None:
    graph = fan_out(5, join=True)
    llm = make_batch_llm(fake_api)
    graph.run(REGISTRY, llm=llm)
    assert [len(b.requests) for b in batches.batches.values()] == [5, 1]  # the summary waited for the five
    assert batches.created == llm.batches_created == 2 and batches.submitted == llm.requests_submitted == 6
    assert fake_api.count == 0  # not one interactive request
    assert graph.output == "echo: summarise: " + " | ".join(f"echo: question {i}" for i in range(5))
    sent = batches.replies()
    for task in graph.tasks.values():
        reply = task.response
        assert reply is not None and PENDING not in reply and reply["backend"] == "anthropic-batch"
        batch = reply["extra"]["batch"]
        assert batch["id"] in batches.batches and sent[batch["custom_id"]]["id"] == reply["id"]
        assert reply["usage"] == sent[batch["custom_id"]]["usage"] and reply["usage"]["service_tier"] == "batch"
        standard = cost_of({**reply, "backend": "anthropic", "usage": {**reply["usage"], "service_tier": "standard"}})
        assert standard is not None and cost_of(reply) == pytest.approx(standard / 2)
    assert graph.usage().cost == pytest.approx(sum(cost_of(t.response or {}) or 0 for t in graph.tasks.values()))


def test_errored_canceled_and_expired_entries_fail_their_tasks_and_are_sent_again_next_run(
    fake_api: FakeMessagesAPI, batches: FakeBatches
) -> None:
    scripted: dict[str, Any] = {"question 1": {"type": "overloaded_error", "message": "Overloaded"},
                                "question 2": "canceled", "question 3": "expired"}
    batches.outcome = lambda custom_id, params: scripted.get(asked(params))
    graph = fan_out(5)
    with pytest.raises(TaskGraphError) as info:
        graph.run(REGISTRY, llm=make_batch_llm(fake_api))
    failed = dict(info.value.failed)
    assert set(failed) == {"q1", "q2", "q3"}
    assert failed["q1"].startswith("LLMCallError in call: overloaded_error: Overloaded (batch `msgbatch_")
    assert "canceled before it was processed" in failed["q2"] and "expired: not processed within" in failed["q3"]
    assert [graph.tasks[t].status for t in ("q0", "q4")] == ["done", "done"]
    assert all(PENDING not in (graph.tasks[t].response or {}) for t in failed)  # the next run sends them anew

    scripted.clear()
    graph.run(REGISTRY, llm=make_batch_llm(fake_api))
    assert all(t.status == "done" for t in graph.tasks.values())
    assert [len(b.requests) for b in batches.batches.values()] == [5, 3]


def test_a_batch_that_expires_fails_every_call_in_it(fake_api: FakeMessagesAPI, batches: FakeBatches) -> None:
    batches.delay, batches.expire_after = 30.0, 0.05
    with pytest.raises(TaskGraphError) as info:
        fan_out(3).run(REGISTRY, llm=make_batch_llm(fake_api))
    assert len(info.value.failed) == 3 and all("expired" in line for _, line in info.value.failed)


def test_cancelling_a_batch_fails_its_calls_as_canceled(fake_api: FakeMessagesAPI, batches: FakeBatches) -> None:
    batches.delay = 30.0
    llm = make_batch_llm(fake_api)
    graph = fan_out(3)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            graph.run(REGISTRY, llm=llm)
        except BaseException as exc:  # checked below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10
    while not batches.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    (batch_id,) = batches.batches
    assert asyncio.run(llm.cancel(batch_id)) in ("canceling", "ended")
    thread.join(10)
    assert batches.cancels == 1 and len(errors) == 1 and isinstance(errors[0], TaskGraphError)
    assert all("canceled" in line for _, line in errors[0].failed)


def test_max_cost_counts_calls_at_the_batch_price(fake_api: FakeMessagesAPI, batches: FakeBatches) -> None:
    fake_api.reply = lambda body: {"content": [{"type": "text", "text": "ok"}], "usage": {"input_tokens": 10, "output_tokens": 1000}}
    graph = TaskGraph()
    for i in range(4):
        graph.add_task(LLMTask("ask", "keep", params={"max_tokens": 1000}, inputs={"i": i}, id=f"q{i}"))
    graph.run(REGISTRY, llm=make_batch_llm(fake_api), max_cost=0.012)  # each call at most ~$0.005 in a batch
    report = graph.last_run
    assert report is not None and report.stopped == "max_cost" and batches.submitted == 2
    assert report.cost == pytest.approx(2 * (10 * 2 + 1000 * 10) / 1e6 / 2)


GRAPH_MODULE = '''
from llmtaskgraph import LLMTask, TaskGraph

REGISTRY = {"ask": lambda ctx, i: f"question {i}", "keep": lambda ctx, text: text.upper()}


def build():
    graph = TaskGraph()
    for i in range(6):
        graph.add_task(LLMTask("ask", "keep", inputs={"i": i}, id=f"q{i}"))
    return graph
'''

CHILD = '''
import sys
from batchgraph import REGISTRY, build
from llmtaskgraph.llm.batch import AnthropicBatchLLM

url, key, trace = sys.argv[1:4]
llm = AnthropicBatchLLM(api_key=key, base_url=url, poll_seconds=0.02, collect_seconds=0.05)
build().run(REGISTRY, llm=llm, checkpoint=trace)
'''


def _pending_marks(path: Path) -> int:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return 0
    return sum(PENDING in (t.get("response") or {}) for t in data["tasks"])


def test_a_process_killed_mid_batch_resumes_polling_the_same_batch(
    fake_api: FakeMessagesAPI, batches: FakeBatches, tmp_path: Path
) -> None:
    batches.delay = 600.0  # the batch is still processing when the process dies
    (tmp_path / "batchgraph.py").write_text(textwrap.dedent(GRAPH_MODULE))
    (tmp_path / "child.py").write_text(textwrap.dedent(CHILD))
    trace = tmp_path / "trace.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, str(tmp_path / "child.py"), fake_api.url, TEST_API_KEY, str(trace)], env=env,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _pending_marks(trace) < 6 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
        assert _pending_marks(trace) == 6, child.stderr.read().decode() if child.poll() is not None and child.stderr else ""
        while batches.retrieves == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # it is polling the batch now
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    assert batches.created == 1 and batches.submitted == 6
    (batch,) = batches.batches.values()
    batch.ready_at = time.monotonic()  # the batch ends while nobody is watching

    sys.path.insert(0, str(tmp_path))
    try:
        from batchgraph import REGISTRY as CHILD_REGISTRY  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    graph = TaskGraph.load(trace)  # a fresh process: new graph, new backend, only the checkpoint remembers
    llm = make_batch_llm(fake_api)
    graph.run(CHILD_REGISTRY, llm=llm, checkpoint=trace)
    assert batches.created == 1 and batches.submitted == 6 and llm.batches_created == 0  # nothing paid twice
    assert fake_api.count == 0
    sent = batches.replies()
    assert graph.last_run is not None and graph.last_run.llm_calls == 6
    for i in range(6):
        task = graph.tasks[f"q{i}"]
        reply = task.response
        assert task.status == "done" and task.output == f"ECHO: QUESTION {i}"
        assert reply is not None and PENDING not in reply and reply["extra"]["batch"]["id"] == batch.id
        assert sent[reply["extra"]["batch"]["custom_id"]]["id"] == reply["id"]
    assert _pending_marks(trace) == 0
