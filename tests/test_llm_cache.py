"""The persistent response cache: no repeated paid calls across fresh processes, safe concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_messages_api import FakeMessagesAPI

from llmtaskgraph import (
    LLMTask,
    LLMTaskGraphError,
    PythonTask,
    ResponseCache,
    RunOptionsError,
    TaskGraph,
    TaskGraphTask,
)
from llmtaskgraph.errors import OutputNotJSONError
from llmtaskgraph.fingerprint import digest
from llmtaskgraph.llm import AnthropicLLM
from llmtaskgraph.llm.cache import as_store

REGISTRY: dict[str, Callable[..., Any]] = {
    "topic": lambda ctx, i: f"topic {i}",
    "ask": lambda ctx, topic: f"tell me about {topic}",
    "keep": lambda ctx, text: text,
    "sub_in": lambda ctx: "sub",
}


def notebook(n: int = 4) -> TaskGraph:
    """What a notebook builds from scratch each time it is re-run: a fresh graph with no trace."""
    graph = TaskGraph()
    for i in range(n):
        topic = graph.add_task(PythonTask("topic", id=f"t{i}", inputs={"i": i}))
        graph.add_task(LLMTask("ask", "keep", topic, id=f"q{i}"))
    return graph


def test_rerunning_from_scratch_makes_no_repeated_calls(
    fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM], tmp_path: Path
) -> None:
    cache_dir = tmp_path / "llm_cache"
    first = notebook()
    first.run(REGISTRY, llm=make_llm(), cache=cache_dir)
    assert fake_api.count == 4 and first.last_run is not None and first.last_run.llm_cache_hits == 0
    assert len(ResponseCache(cache_dir)) == 4

    second = notebook()  # a fresh kernel: new graph, new backend object
    out = second.run(REGISTRY, llm=make_llm(), cache=str(cache_dir))
    assert fake_api.count == 4  # nothing paid twice
    report = second.last_run
    assert report is not None and report.llm_cache_hits == 4 and report.llm_calls == 0
    assert out == first.output
    for tid in ("q0", "q3"):
        a, b = first.tasks[tid].response, second.tasks[tid].response
        assert a is not None and b is not None and b == {**a, "cached": True}
    assert second.usage().cached == 4 and second.usage().calls == 4


def test_cache_key_is_the_call_fingerprint_and_the_task(
    fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM], tmp_path: Path
) -> None:
    notebook(2).run(REGISTRY, llm=make_llm(), cache=tmp_path)
    assert fake_api.count == 2

    resampled = notebook(2)
    resampled.run(REGISTRY, llm=make_llm(), cache=tmp_path, resample=["q1"])
    assert fake_api.count == 3  # a fresh sample is a new key

    other_model = notebook(2)
    other_model.run(REGISTRY, llm=make_llm(model="claude-haiku-4-5"), cache=tmp_path)
    assert fake_api.count == 5  # another backend kind is a new key

    edited = notebook(2)
    task = edited.tasks["q0"]
    assert isinstance(task, LLMTask)
    task.params = {"temperature": 0.0}
    edited.run(REGISTRY, llm=make_llm(), cache=tmp_path)
    assert fake_api.count == 6  # a changed request is a new key; q1 still comes from the cache
    assert edited.last_run is not None and edited.last_run.llm_cache_hits == 1


def test_cache_covers_subgraphs_and_entries_are_readable(
    fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM], tmp_path: Path
) -> None:
    def build() -> TaskGraph:
        sub = TaskGraph()
        sub.add_task(LLMTask("ask", "keep", sub.add_task(PythonTask("topic", inputs={"i": 9}))))
        graph = TaskGraph()
        graph.add_task(TaskGraphTask(sub, "sub_in"))
        return graph

    build().run(REGISTRY, llm=make_llm(), cache=tmp_path)
    build().run(REGISTRY, llm=make_llm(), cache=tmp_path)
    assert fake_api.count == 1
    (entry_file,) = tmp_path.glob("??/*.json")
    entry = json.loads(entry_file.read_text())
    assert entry["request"]["messages"] == [{"role": "user", "content": "tell me about topic 9"}]
    assert entry["response"]["text"] == "echo: tell me about topic 9"


def test_unreadable_entry_is_a_miss_and_is_rewritten(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    key = digest("k")
    cache.put(key, {"text": "hello"})
    assert cache.get(key) == {"text": "hello"} and key in cache
    path = next(tmp_path.glob("??/*.json"))
    path.write_text('{"format": "llmtaskgraph-cache/1", "respo')
    with pytest.warns(UserWarning, match=rf"response cache entry `{re.escape(str(path))}` cannot be read"):
        assert cache.get(key) is None
    cache.put(key, {"text": "again"})
    assert cache.get(key) == {"text": "again"}


@pytest.mark.parametrize(("response", "why"), [
    ('{"text": "half \\ud800 a pair"}', "lone surrogate"),
    ('{"text": "t", "usage": {"input_tokens": NaN}}', "is nan"),
    ('{"text": "t", "latency": -Infinity}', "is -inf"),
    ('{"text": "t", "usage": {"input_tokens": ' + "9" * 4000 + '}}', "integer too long"),
    ('{"text": "t", "usage": {"input_tokens": ' + "9" * 5000 + '}}', "cannot be read"),
    ('{"text": 3}', "no reply with a string `text`"),
])
def test_an_entry_a_trace_cannot_store_is_a_miss_with_a_warning_naming_its_file(
        tmp_path: Path, response: str, why: str) -> None:
    cache = ResponseCache(tmp_path)
    key = digest("k")
    cache.put(key, {"text": "hello"})
    path = next(tmp_path.glob("??/*.json"))
    path.write_text(f'{{"format": "llmtaskgraph-cache/1", "key": "{key}", "request": null, "response": {response}}}')
    with pytest.warns(UserWarning, match=rf"`{re.escape(str(path))}` .*{re.escape(why)}.*counts as missing"):
        assert cache.get(key) is None


def test_a_poisoned_entry_is_called_again_and_rewritten(
    fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM], tmp_path: Path
) -> None:
    notebook(1).run(REGISTRY, llm=make_llm(), cache=tmp_path)
    path = next(tmp_path.glob("??/*.json"))
    entry = json.loads(path.read_text())
    entry["response"]["usage"]["output_tokens"] = float("nan")
    path.write_text(json.dumps(entry))  # NaN, as json.dumps writes it by default
    again = notebook(1)
    with pytest.warns(UserWarning, match=re.escape(str(path))):
        again.run(REGISTRY, llm=make_llm(), cache=tmp_path)
    assert again.last_run is not None and again.last_run.llm_calls == 1 and again.last_run.llm_cache_hits == 0
    assert fake_api.count == 2
    again.save(tmp_path / "trace.json")
    assert TaskGraph.load(tmp_path / "trace.json").tasks["q0"].response == again.tasks["q0"].response
    assert ResponseCache(tmp_path).get(path.stem) == json.loads(path.read_text())["response"]  # rewritten, readable


def test_put_refuses_an_entry_a_reader_would_refuse(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    for bad in ({"text": "\ud800"}, {"text": "t", "latency": float("nan")}, {"text": "t", "n": 10**4000}):
        with pytest.raises(OutputNotJSONError, match="the response cache entry"):
            cache.put(digest("k"), bad)
    assert not list(tmp_path.rglob("*"))


def test_key_must_be_a_fingerprint(tmp_path: Path) -> None:
    with pytest.raises(RunOptionsError, match="hex fingerprint") as info:
        ResponseCache(tmp_path).get("../../etc/passwd")
    assert isinstance(info.value, LLMTaskGraphError) and isinstance(info.value, ValueError)
    assert str(info.value) == "a response cache key must be a hex fingerprint, got '../../etc/passwd'"
    with pytest.raises(RunOptionsError, match="hex fingerprint"):
        ResponseCache(tmp_path).put("../x", {"text": "t"})
    assert not list(tmp_path.rglob("*"))


def test_a_cache_option_that_is_neither_a_path_nor_a_store(tmp_path: Path) -> None:
    made = as_store(tmp_path)
    assert isinstance(made, ResponseCache) and made.path == tmp_path
    store = ResponseCache(tmp_path)
    assert as_store(store) is store
    with pytest.raises(RunOptionsError) as info:
        as_store(42)  # type: ignore[arg-type]
    assert isinstance(info.value, LLMTaskGraphError)
    assert str(info.value) == "`cache=` takes a directory path or an object with get/put, got int"


# -- concurrent writers ---------------------------------------------------------------------------
KEYS = [digest(i) for i in range(40)]


def _write_all(path: str, writer: int) -> None:
    cache = ResponseCache(path)
    for round_ in range(5):
        for i, key in enumerate(KEYS):
            cache.put(key, {"text": f"reply {i} " + "x" * 2000, "writer": writer, "round": round_})


def _check_complete(path: Path, writers: int) -> None:
    cache = ResponseCache(path)
    assert sorted(cache.keys()) == sorted(KEYS)
    for i, key in enumerate(KEYS):
        entry = cache.get(key)
        assert entry is not None and entry["text"] == f"reply {i} " + "x" * 2000 and entry["writer"] in range(writers)
    assert not list(path.glob("??/*.tmp"))  # no temporary files left behind


def test_concurrent_writer_threads_never_tear_an_entry(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    seen_torn: list[str] = []

    def reader() -> None:
        cache = ResponseCache(tmp_path)
        for _ in range(200):
            for key in KEYS[:5]:
                entry = cache.get(key)  # either absent or whole, never half-written
                if entry is not None and not entry["text"].endswith("x" * 2000):
                    seen_torn.append(key)

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # reported below
                errors.append(exc)

        return run

    threads = [threading.Thread(target=guarded(lambda w=w: _write_all(str(tmp_path), w))) for w in range(6)]
    threads.append(threading.Thread(target=guarded(reader)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and seen_torn == []
    _check_complete(tmp_path, 6)


def test_concurrent_writer_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")  # fork would copy the test runner's threads
    procs = [ctx.Process(target=_write_all, args=(str(tmp_path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    _check_complete(tmp_path, 3)


def test_two_graphs_sharing_a_cache_at_once(
    fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM], tmp_path: Path
) -> None:
    fake_api.latency = 0.05
    graphs = [notebook(10), notebook(10)]
    threads = [threading.Thread(target=g.run, args=(REGISTRY,), kwargs={"llm": make_llm(), "cache": tmp_path}) for g in graphs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(g.last_run is not None and g.last_run.failed == [] for g in graphs)
    assert fake_api.count <= 20 and len(ResponseCache(tmp_path)) == 10
    later = notebook(10)
    later.run(REGISTRY, llm=make_llm(), cache=tmp_path)
    assert later.last_run is not None and later.last_run.llm_cache_hits == 10


# -- samples, modes and savings (issue 12) ----------------------------------------------------------
def samples(n: int) -> TaskGraph:
    """N tasks sending the very same request: N samples of one question."""
    graph = TaskGraph()
    for i in range(n):
        graph.add_task(LLMTask("same", "keep", id=f"s{i}"))
    return graph


SAMPLE_REGISTRY: dict[str, Callable[..., Any]] = {"same": lambda ctx: "pick a number", "keep": lambda ctx, text: text}


def test_n_samples_of_one_request_stay_n_in_the_cache(
    fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM], tmp_path: Path
) -> None:
    drawn = iter(range(100))
    fake_api.reply = lambda body: f"number {next(drawn)}"
    first = samples(3)
    first.run(SAMPLE_REGISTRY, llm=make_llm(), cache=tmp_path)
    outputs = [t.output for t in first.tasks.values()]
    assert len(set(outputs)) == 3 and len(ResponseCache(tmp_path)) == 3
    again = samples(3)  # a fresh kernel: each task gets back its own sample, not one of them three times
    again.run(SAMPLE_REGISTRY, llm=make_llm(), cache=tmp_path)
    assert [t.output for t in again.tasks.values()] == outputs and fake_api.count == 3


def test_cache_modes(fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM], tmp_path: Path) -> None:
    drawn = iter(range(100))
    fake_api.reply = lambda body: f"reply {next(drawn)}"
    notebook(2).run(REGISTRY, llm=make_llm(), cache=tmp_path)  # the default mode: write
    assert fake_api.count == 2 and len(ResponseCache(tmp_path)) == 2

    read = notebook(3)  # read: hits are used, a miss is called but not stored
    read.run(REGISTRY, llm=make_llm(), cache=tmp_path, cache_mode="read")
    assert fake_api.count == 3 and len(ResponseCache(tmp_path)) == 2
    assert read.last_run is not None and read.last_run.llm_cache_hits == 2

    off = notebook(2)  # off: the cache is neither read nor written
    off.run(REGISTRY, llm=make_llm(), cache=tmp_path, cache_mode="off")
    assert fake_api.count == 5 and off.last_run is not None and off.last_run.llm_cache_hits == 0

    before = {k: ResponseCache(tmp_path).get(k) for k in ResponseCache(tmp_path).keys()}
    refresh = notebook(2)  # refresh: nothing is looked up, every reply is fetched anew and overwrites
    refresh.run(REGISTRY, llm=make_llm(), cache=tmp_path, cache_mode="refresh")
    assert fake_api.count == 7 and refresh.last_run is not None and refresh.last_run.llm_cache_hits == 0
    after = {k: ResponseCache(tmp_path).get(k) for k in ResponseCache(tmp_path).keys()}
    assert before.keys() == after.keys() and all(before[k] != after[k] for k in before)

    later = notebook(2)
    later.run(REGISTRY, llm=make_llm(), cache=tmp_path)
    assert fake_api.count == 7 and [t.output for t in later.tasks.values()] == [t.output for t in refresh.tasks.values()]


def test_cache_hits_count_the_dollars_they_saved(
    fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM], tmp_path: Path
) -> None:
    fake_api.reply = lambda body: {"content": [{"type": "text", "text": "ok"}],
                                   "usage": {"input_tokens": 1000, "output_tokens": 1000}}
    first = notebook(2)
    first.run(REGISTRY, llm=make_llm(), cache=tmp_path)
    assert first.last_run is not None and first.last_run.cache_saved == 0
    assert first.last_run.cost == pytest.approx(2 * (1000 * 2 + 1000 * 10) / 1e6)  # claude-sonnet-5-5
    second = notebook(2)
    second.run(REGISTRY, llm=make_llm(), cache=tmp_path)
    report = second.last_run
    assert report is not None and report.cost == 0 and report.cache_saved == pytest.approx(first.last_run.cost)
    usage = second.usage()
    assert usage.cached == 2 and usage.cache_saved == pytest.approx(usage.cost) and usage.cost == pytest.approx(report.cache_saved)
    assert "saved by the response cache" in str(usage)


@pytest.mark.parametrize(("options", "message"), [
    ({"cache_mode": "sometimes"}, "`cache_mode` is one of 'write', 'read', 'refresh', 'off', got str 'sometimes'"),
    ({"cache_mode": "read"}, "`cache_mode='read'` needs `cache=` (a directory path or a response store)"),
])
def test_a_cache_mode_that_cannot_work_is_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(RunOptionsError) as info:
        notebook(1).run(REGISTRY, **options)
    assert str(info.value) == message
