"""7. Cost: the same 1,000-call fan-out sent interactively and through the Message Batches API.

Both go through the real ``anthropic`` SDK to the loopback server of the tests, in its own process:
interactively (``AnthropicLLM``, 100 ms a request, at most 100 in flight) and as batches
(``AnthropicBatchLLM`` against ``tests/fake_batches.py``, a batch ending ``BATCH_SECONDS`` after it is
created, polled every ``POLL_SECONDS``). The server bills the same tokens either way; the batch
replies carry ``service_tier: batch``. Reported: dollars (``graph.usage().cost``, prices of
``llmtaskgraph.llm.prices``), their ratio (target 0.5), wall time, and the HTTP requests the server
counted. Then one prompt is edited and the batch run repeated: only the affected call is paid.

The batch's wall time here is scripted: a real batch takes minutes to hours (at most 24 h), so the
wall-time ratio says what the backend itself adds (collecting, polling), not what a real batch takes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from llmtaskgraph import LLMTask, TaskGraph
from llmtaskgraph.llm import AnthropicLLM
from llmtaskgraph.llm.batch import AnthropicBatchLLM

from ._report import check, table

CALLS, LATENCY, CONCURRENCY = 1000, 0.1, 100
BATCH_SECONDS, POLL_SECONDS = 0.5, 0.1
KEY = "sk-ant-bench-not-a-real-key"
REGISTRY: dict[str, Any] = {"ask": lambda ctx, i: f"write one line about item {i}", "keep": lambda ctx, text: text}


class _Server:
    """The loopback server with the batch endpoints, in its own process; ``counts()`` asks it what it saw."""

    def __init__(self) -> None:
        tests = Path(__file__).resolve().parent.parent / "tests"
        code = (
            f"import sys, json; sys.path.insert(0, {str(tests)!r})\n"
            "from fake_messages_api import FakeMessagesAPI\nfrom fake_batches import FakeBatches\n"
            f"with FakeMessagesAPI(latency={LATENCY!r}, api_key={KEY!r}) as api:\n"
            f"    b = FakeBatches(api, delay={BATCH_SECONDS!r})\n"
            "    print(api.url, flush=True)\n"
            "    for line in sys.stdin:\n"
            "        print(json.dumps({'requests': len(api.requests), 'messages': api.count, 'batches': b.created,\n"
            "                          'submitted': b.submitted, 'retrieves': b.retrieves, 'results': b.result_fetches}),\n"
            "              flush=True)\n"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def counts(self) -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("?\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


def fan_out(n: int) -> TaskGraph:
    graph = TaskGraph()
    for i in range(n):
        graph.add_task(LLMTask("ask", "keep", params={"model": "claude-sonnet-5-5", "max_tokens": 100}, inputs={"i": i},
                               id=f"item{i}"))
    return graph


def _measure(server: _Server, graph: TaskGraph, llm: Any) -> tuple[float, float, dict[str, int]]:
    before = server.counts()
    start = time.perf_counter()
    graph.run(REGISTRY, llm=llm, max_concurrency=CONCURRENCY, progress=False)
    wall = time.perf_counter() - start
    after = server.counts()
    report = graph.last_run
    assert report is not None and not report.failed
    return report.cost, wall, {k: after[k] - before[k] for k in after}


def run(n: int = CALLS) -> str:
    server = _Server()
    try:
        interactive = AnthropicLLM(api_key=KEY, base_url=server.url)
        batch = AnthropicBatchLLM(api_key=KEY, base_url=server.url, poll_seconds=POLL_SECONDS, collect_seconds=0.2)
        cost_i, wall_i, seen_i = _measure(server, fan_out(n), interactive)
        graph = fan_out(n)
        cost_b, wall_b, seen_b = _measure(server, graph, batch)
        edited = graph.tasks["item7"]
        edited.edit(prompt="write one line about item seven")  # one edit: only its call is paid again
        cost_e, wall_e, seen_e = _measure(server, graph, batch)
    finally:
        server.close()
    ratio = cost_b / cost_i
    rows = [
        ("interactive (AnthropicLLM)", f"${cost_i:.4f}", wall_i, seen_i["requests"], f"{seen_i['messages']} messages"),
        ("Message Batches (AnthropicBatchLLM)", f"${cost_b:.4f}", wall_b, seen_b["requests"],
         f"{seen_b['batches']} batch of {seen_b['submitted']}, {seen_b['retrieves']} polls, {seen_b['results']} results"),
        ("batches, re-run after one edit", f"${cost_e:.6f}", wall_e, seen_e["requests"],
         f"{seen_e['batches']} batch of {seen_e['submitted']}"),
    ]
    out = table(f"batch vs interactive: {n:,} calls (claude-sonnet-5-5 prices), server latency {LATENCY * 1000:.0f} ms, "
                f"scripted batch {BATCH_SECONDS} s", ("run", "cost", "wall s", "HTTP requests", "what the server saw"), rows)
    out += (f"\ncost ratio batch / interactive: {ratio:.3f} ({check(ratio, 0.5)}); wall-time ratio {wall_b / wall_i:.2f}; "
            f"re-run after one edit paid {seen_e['submitted']} call(s), {cost_e / cost_b:.4f} of the full batch run")
    return out


if __name__ == "__main__":
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else CALLS))
