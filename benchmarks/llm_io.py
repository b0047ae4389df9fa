"""2. I/O-bound parallelism: 1,000 LLM calls, 100 ms latency each, at most 100 in flight.

The calls go through ``AnthropicLLM`` (the real ``anthropic`` SDK) to the loopback Messages API
server of the tests (``tests/fake_messages_api.py``), which answers each request after 100 ms.
The ideal is ceil(1000 / 100) x 100 ms = 1.0 s; the peer is the same SDK called directly, 1,000
coroutines under an ``asyncio.Semaphore(100)``, which is what the scheduler adds its work to.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from llmtaskgraph import LLMTask, OfflineLLM, TaskGraph
from llmtaskgraph.llm import AnthropicLLM

from ._report import check, table

CALLS, LATENCY, CONCURRENCY = 1000, 0.1, 100
KEY = "sk-ant-bench-not-a-real-key"


class _ServerProcess:
    """The loopback server in its own process, so its threads do not take the client's GIL."""

    def __init__(self, latency: float) -> None:
        tests = Path(__file__).resolve().parent.parent / "tests"
        code = (
            f"import sys; sys.path.insert(0, {str(tests)!r}); from fake_messages_api import FakeMessagesAPI\n"
            f"with FakeMessagesAPI(latency={latency!r}, api_key={KEY!r}) as api:\n"
            "    print(api.url, flush=True); sys.stdin.read()\n"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def __enter__(self) -> _ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


async def prompt(ctx: Any) -> str:
    return f"question {ctx.task.id}"


async def parse(ctx: Any, text: str) -> str:
    return text


async def ours(url: str, n: int) -> tuple[float, float]:
    """Wall and CPU seconds of the graph run."""
    graph = TaskGraph()
    for i in range(n):
        graph.add_task(LLMTask("prompt", "parse", id=f"q{i}", params={"model": "claude-bench", "max_tokens": 16}))
    llm = AnthropicLLM(api_key=KEY, base_url=url, max_retries=0)
    start, cpu = time.perf_counter(), time.process_time()
    await graph.arun({"prompt": prompt, "parse": parse}, llm=llm, max_concurrency=CONCURRENCY, progress=False)
    elapsed = time.perf_counter() - start
    assert graph.last_run is not None and graph.last_run.llm_calls == n
    return elapsed, time.process_time() - cpu


async def raw_sdk(url: str, n: int) -> tuple[float, float]:
    """Wall and CPU seconds of the same calls made directly."""
    from anthropic import AsyncAnthropic

    client = AsyncAnthropic(api_key=KEY, base_url=url, max_retries=0)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> str:
        async with limit:
            msg = await client.messages.create(
                model="claude-bench", max_tokens=16, messages=[{"role": "user", "content": f"question q{i}"}])
            return msg.content[0].text  # type: ignore[union-attr]

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await client.close()
    return elapsed, cpu


async def offline(n: int) -> float:
    """The scheduler alone: the same graph against OfflineLLM(latency=0.1), no HTTP at all."""
    graph = TaskGraph()
    for i in range(n):
        graph.add_task(LLMTask("prompt", "parse", id=f"q{i}"))
    start = time.perf_counter()
    await graph.arun({"prompt": prompt, "parse": parse}, llm=OfflineLLM(latency=LATENCY), max_concurrency=CONCURRENCY,
                     progress=False)
    return time.perf_counter() - start


def run(n: int = CALLS) -> str:
    ideal = math.ceil(n / CONCURRENCY) * LATENCY
    with _ServerProcess(LATENCY) as api:
        asyncio.run(ours(api.url, CONCURRENCY))  # warm up: imports, connection pool, server threads
        t_ours, cpu_ours = asyncio.run(ours(api.url, n))
        t_raw, cpu_raw = asyncio.run(raw_sdk(api.url, n))
    t_offline = asyncio.run(offline(n))
    return table(
        f"2. {n:,} LLM calls, {LATENCY * 1000:.0f} ms latency, {CONCURRENCY} in flight (seconds)",
        ["", "ours", "raw SDK + gather", "ideal", "ours/ideal", "raw/ideal", "ours/raw", "client CPU s ours/raw"],
        [["HTTP, AnthropicLLM", t_ours, t_raw, ideal, f"{t_ours / ideal:.2f} ({check(t_ours / ideal, 1.05)})",
          t_raw / ideal, t_ours / t_raw, f"{cpu_ours:.2f} / {cpu_raw:.2f}"],
         ["no HTTP, OfflineLLM(latency=0.1)", t_offline, "", ideal, f"{t_offline / ideal:.2f} ({check(t_offline / ideal, 1.05)})",
          "", "", ""]],
    )
