"""Running a graph over a dataset: one trace per case, failures, interruption and resume, shared limits."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from dataset_helpers import HINTS, REVIEWS, Counting, review_graph, scripted

from llmtaskgraph import (
    DatasetError,
    DatasetRun,
    LLMResponse,
    MissingFunctionError,
    OfflineLLM,
    PythonTask,
    RunOptionsError,
    TaskGraph,
    arun_dataset,
    open_dataset,
    run_dataset,
)


def test_each_input_is_a_case_with_its_own_trace_and_a_row_in_the_index(tmp_path: Path) -> None:
    counting = Counting()
    run = run_dataset(review_graph(), REVIEWS, counting.registry(), tmp_path / "v1", ids="id", llm=scripted())

    assert [c.id for c in run] == [r["id"] for r in REVIEWS]
    assert {c.status for c in run} == {"done"}
    assert run["r1"].output == {"product": "kitchen", "label": "positive"}
    assert run["r3"].output == {"product": "kitchen", "label": "positive"}  # no hint yet: `mixed` is missed
    assert run.last_run is not None and run.last_run.llm_calls == 6 and run.last_run.tasks_executed == 18
    for review in REVIEWS:  # every case is an ordinary trace of its input
        trace = TaskGraph.load(tmp_path / "v1" / "cases" / f"{review['id']}.json")
        assert trace.graph_input == review and trace.output == run[review["id"]].output
    index = json.loads((tmp_path / "v1" / "dataset.json").read_text())
    assert index["format"] == "llmtaskgraph-dataset/1" and [c["id"] for c in index["cases"]] == ["r1", "r2", "r3", "r4", "r5", "r6"]

    reopened = DatasetRun.load(tmp_path / "v1")
    assert [(c.id, c.status, c.output, c.llm_calls) for c in reopened] == [(c.id, c.status, c.output, c.llm_calls) for c in run]
    assert reopened.graph("r2").tasks["classify"].response["text"] == "Negative"


def test_running_again_repeats_nothing_and_an_edited_input_reruns_only_its_case(tmp_path: Path) -> None:
    counting = Counting()
    run_dataset(review_graph(), REVIEWS, counting.registry(), tmp_path / "v1", ids="id", llm=scripted())
    before = counting.done.copy()

    again = run_dataset(review_graph(), REVIEWS, counting.registry(), tmp_path / "v1", ids="id", llm=scripted())
    assert counting.done == before
    assert again.last_run is not None and again.last_run.executed == [] and again.last_run.llm_calls == 0

    edited = [dict(r) for r in REVIEWS]
    edited[1]["text"] = "Dull plot but great ending."
    third = run_dataset(review_graph(), edited, counting.registry(), tmp_path / "v1", ids="id", llm=scripted())
    assert third.last_run is not None and third.last_run.executed == ["r2"] and third.last_run.llm_calls == 1
    assert counting.done - before == Counter({("clean", "Dull plot but great ending."): 1,
                                              ("ask", "Dull plot but great ending."): 1,
                                              ("parse", "Dull plot but great ending."): 1,
                                              ("result", "Dull plot but great ending."): 1})
    assert third["r2"].output["label"] == "positive"


def test_a_failed_case_does_not_stop_the_others_and_a_fix_reruns_only_it(tmp_path: Path) -> None:
    counting = Counting()
    counting.fail_on = "My son loves it."
    run = run_dataset(review_graph(), REVIEWS, counting.registry(), tmp_path / "v1", ids="id", llm=scripted())

    assert [c.id for c in run.failed] == ["r4"]
    assert run["r4"].errors == ["result: ValueError in run: cannot file 'My son loves it.'"]
    assert run["r4"].output is None and run["r4"].task_outputs.keys() == {"clean", "classify"}
    assert [c.status for c in run if c.id != "r4"] == ["done"] * 5
    assert run.last_run is not None and run.last_run.failed == ["r4"]

    counting.fail_on = None
    llm = scripted()
    fixed = run_dataset(review_graph(), REVIEWS, counting.registry(), tmp_path / "v1", ids="id", llm=llm)
    assert fixed.last_run is not None and fixed.last_run.executed == ["r4"] and fixed.last_run.failed == []
    assert llm.calls == 0 and counting.done["result", "My son loves it."] == 1 and counting.done["ask", "My son loves it."] == 1
    assert fixed["r4"].status == "done"


def test_resume_after_a_ctrl_c_repeats_nothing(tmp_path: Path) -> None:
    reviews = [{**r, "id": f"{r['id']}-{n}", "text": f"{r['text']} ({n})"} for n in range(3) for r in REVIEWS]  # 18 cases
    counting = Counting()
    counting.interrupt_at = 7  # Ctrl-C lands in the 7th call of `result`, while other cases are running
    llm = scripted()
    with pytest.raises(KeyboardInterrupt):
        run_dataset(review_graph(), reviews, counting.registry(), tmp_path / "v1", ids="id", llm=llm, max_cases=4)
    first_calls = llm.calls

    saved = DatasetRun.load(tmp_path / "v1")
    statuses = Counter(c.status for c in saved)
    assert statuses["done"] == 6 and statuses["pending"] == 12  # the 6 finished cases, and the rest kept unfinished
    for case in saved:  # the index agrees with each saved trace
        if case.status == "done":
            assert TaskGraph.load(tmp_path / "v1" / str(case.file)).output == case.output

    counting.interrupt_at = None
    resumed = run_dataset(review_graph(), reviews, counting.registry(), tmp_path / "v1", ids="id", llm=llm, max_cases=4)
    assert {c.status for c in resumed} == {"done"}
    assert set(counting.done.values()) == {1}, "a completed call was repeated"
    assert len(counting.done) == 18 * 4
    assert llm.calls == 18 and llm.calls > first_calls, "an LLM call was repeated"
    assert resumed.last_run is not None and len(resumed.last_run.executed) == 12


class Gate:
    """Holds the case `r6` in its `result` while ``hang`` (an object: code versions count it by its type only)."""

    def __init__(self, counting: Counting) -> None:
        self.counting = counting
        self.hang = True
        self.reached = asyncio.Event()

    async def result(self, ctx: Any, review: dict[str, str], label: str) -> dict[str, str]:
        if review["text"] == "Broke after one day." and self.hang:
            self.reached.set()
            await asyncio.Event().wait()  # never returns: the run is cancelled meanwhile
        return self.counting.result(ctx, review, label)


async def test_a_cancelled_run_resumes_without_repeating_a_finished_case(tmp_path: Path) -> None:
    counting = Counting()
    gate = Gate(counting)
    registry = {**counting.registry(), "result": gate.result}
    task = asyncio.ensure_future(arun_dataset(review_graph(), REVIEWS, registry, tmp_path / "v1", ids="id",
                                              llm=scripted(), max_cases=1))
    await gate.reached.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    saved = DatasetRun.load(tmp_path / "v1")
    assert [c.status for c in saved] == ["done"] * 5 + ["pending"]
    assert saved["r6"].task_outputs.keys() == {"clean", "classify"}  # what r6 finished is in its trace

    gate.hang = False
    llm = scripted()
    resumed = await arun_dataset(review_graph(), REVIEWS, registry, tmp_path / "v1", ids="id", llm=llm)
    assert resumed.last_run is not None and resumed.last_run.executed == ["r6"] and llm.calls == 0
    assert resumed["r6"].status == "done" and set(counting.done.values()) == {1}


class Gauge:
    """An LLM backend that records how many of its calls are in flight at once."""

    kind = "gauge"

    def __init__(self, hold_until: int) -> None:
        self.now = self.most = self.calls = 0
        self.hold_until = hold_until
        self.full: asyncio.Event | None = None

    async def complete(self, request: dict[str, Any]) -> LLMResponse:
        self.full = self.full or asyncio.Event()
        self.now += 1
        self.calls += 1
        self.most = max(self.most, self.now)
        if self.now >= self.hold_until:
            self.full.set()
        with contextlib.suppress(asyncio.TimeoutError):  # the first calls wait for the limit to fill, however slow the machine
            await asyncio.wait_for(self.full.wait(), 10)
        await asyncio.sleep(0.01)
        self.now -= 1
        return LLMResponse(text="Positive", backend="gauge")


def test_one_limit_on_llm_calls_in_flight_across_all_cases() -> None:
    gauge = Gauge(hold_until=3)
    inputs = [{**REVIEWS[0], "text": f"review {i}"} for i in range(24)]
    run = run_dataset(review_graph(), inputs, Counting().registry(), llm=gauge, max_concurrency=3, max_cases=24)
    assert gauge.calls == 24 and gauge.most == 3  # 24 cases at once, never more than 3 calls between them
    assert {c.status for c in run} == {"done"} and run.graph("0").tasks["classify"].response["backend"] == "gauge"


def test_one_response_cache_for_every_case(tmp_path: Path) -> None:
    twice = REVIEWS + [{**r, "id": r["id"] + "-copy"} for r in REVIEWS]  # each request twice
    llm = scripted()
    run = run_dataset(review_graph(), twice, Counting().registry(), ids="id", llm=llm, cache=tmp_path / "cache", max_cases=1)
    assert llm.calls == 6 and run.last_run is not None and run.last_run.llm_cache_hits == 6

    fresh_llm = scripted()
    again = run_dataset(review_graph(), twice, Counting().registry(), ids="id", llm=fresh_llm, cache=str(tmp_path / "cache"))
    assert fresh_llm.calls == 0 and again.last_run is not None and again.last_run.llm_cache_hits == 12


def test_after_a_prompt_change_a_copy_reruns_only_the_cases_it_affects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counting = Counting()
    v1 = run_dataset(review_graph(), REVIEWS, counting.registry(), tmp_path / "v1", ids="id", llm=scripted())
    monkeypatch.setitem(HINTS, "books", " If it has praise and complaints, say mixed.")

    plan = v1.plan(counting.registry(), llm=scripted())
    assert plan.will_run == [r["id"] for r in REVIEWS]  # the formatter's code changed: every case re-formats
    assert plan.tasks == 12 and plan.llm_calls == 6 and plan.llm_calls_certain == 0  # at most: requests may not change
    assert plan.reasons == Counter({"code of `ask` changed": 6, "output of `classify` may change (it runs first)": 6})

    llm = scripted()
    v2 = v1.copy(tmp_path / "v2").run(counting.registry(), llm=llm)
    assert llm.calls == 2 and v2.last_run is not None and v2.last_run.llm_calls == 2  # only the books' requests changed
    # every case re-formats; r2's new request got the same reply, so only r5's result runs again
    assert v2.last_run.tasks_executed == 6 + 1 and v2.last_run.executed == [r["id"] for r in REVIEWS]
    assert v2["r5"].output["label"] == "mixed" and v1["r5"].output["label"] == "positive"
    assert DatasetRun.load(tmp_path / "v1")["r5"].output["label"] == "positive", "the copy changed the original"
    assert v2.plan(counting.registry(), llm=scripted()).will_run == []


def test_open_dataset_plans_a_first_run_before_anything_runs(tmp_path: Path) -> None:
    counting = Counting()
    run = open_dataset(review_graph(), REVIEWS, tmp_path / "v1", ids="id")
    plan = run.plan(counting.registry(), llm=scripted())
    assert (len(plan.will_run), plan.tasks, plan.llm_calls, plan.llm_calls_certain) == (6, 18, 6, 6)
    assert plan.reasons == Counter({"never ran": 18})
    # the prompts are not formatted yet, so the calls cannot be priced (a scripted model is free anyway)
    assert str(plan).splitlines()[0] == "dataset plan: 6 of 6 case(s) will run: 18 task(s), 6 LLM call(s), cost ?"
    assert not counting.done and not (tmp_path / "v1").exists()


def test_a_function_can_build_each_case_graph_from_its_input(tmp_path: Path) -> None:
    def build(review: dict[str, Any]) -> TaskGraph:
        graph = TaskGraph()
        for word in review["text"].split()[:2]:
            graph.add_task(PythonTask("shout", inputs={"word": word}, id=f"w-{len(graph.tasks)}"))
        return graph

    registry = {"shout": lambda ctx, word: word.upper()}
    run = run_dataset(build, REVIEWS[:2], registry, tmp_path / "v1", ids="id")
    assert run.outputs == {"r1": "PAN,", "r2": "PLOT"} and not (tmp_path / "v1" / "graph.json").exists()
    reopened = DatasetRun.load(tmp_path / "v1")
    assert reopened.plan(registry).will_run == []
    bigger = open_dataset(build, REVIEWS[:3], tmp_path / "v1", ids="id")  # r3 is new: built by the function
    assert bigger.run(registry)["r3"].output == "KNIFE"
    with pytest.raises(DatasetError, match="case `r3` never ran and this dataset run has no graph to build it from"):
        DatasetRun([*reopened, type(reopened["r1"])("r3", REVIEWS[2])], tmp_path / "v1").plan(registry)


def test_refusals_before_anything_runs(tmp_path: Path) -> None:
    counting = Counting()
    registry = counting.registry()
    with pytest.raises(MissingFunctionError, match="`ask` is missing"):
        run_dataset(review_graph(), REVIEWS, {k: v for k, v in registry.items() if k != "ask"}, tmp_path / "a")
    with pytest.raises(RunOptionsError, match="did you mean `max_concurrency`"):
        run_dataset(review_graph(), REVIEWS, registry, tmp_path / "b", llm=scripted(), max_concurency=2)  # type: ignore[call-arg]
    with pytest.raises(RunOptionsError, match="give run_dataset a `path=` instead of `checkpoint=`"):
        run_dataset(review_graph(), REVIEWS, registry, llm=scripted(), checkpoint=tmp_path / "c.json")
    with pytest.raises(RunOptionsError, match="`max_cases` must be a whole number >= 1"):
        run_dataset(review_graph(), REVIEWS, registry, llm=scripted(), max_cases=0)
    with pytest.raises(RunOptionsError, match="`max_concurrency` must be a whole number >= 1"):
        run_dataset(review_graph(), REVIEWS, registry, llm=scripted(), max_concurrency=0)
    assert not counting.done and not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

    run_dataset(review_graph(), REVIEWS, registry, tmp_path / "v1", ids="id", llm=scripted())
    other = review_graph()
    other.add_task(PythonTask("clean", name="extra"))
    done = counting.done.copy()
    with pytest.raises(DatasetError, match=r"case `r1` in `.*v1` was run with another graph: task `extra` is not in the trace"):
        run_dataset(other, REVIEWS, registry, tmp_path / "v1", ids="id", llm=scripted())
    with pytest.raises(DatasetError, match=r"holds cases these inputs do not have \(`r5`, `r6`\); pass fresh=True"):
        run_dataset(review_graph(), REVIEWS[:4], registry, tmp_path / "v1", ids="id", llm=scripted())
    assert counting.done == done

    fresh = run_dataset(review_graph(), REVIEWS[:4], registry, tmp_path / "v1", ids="id", llm=scripted(), fresh=True)
    assert len(fresh) == 4 and sorted(p.name for p in (tmp_path / "v1" / "cases").iterdir()) == [
        "r1.json", "r2.json", "r3.json", "r4.json"]


def test_the_index_is_read_again_from_the_traces_when_it_lags_behind(tmp_path: Path) -> None:
    run_dataset(review_graph(), REVIEWS, Counting().registry(), tmp_path / "v1", ids="id", llm=scripted())
    index = tmp_path / "v1" / "dataset.json"
    data = json.loads(index.read_text())
    for case in data["cases"]:  # as if killed (-9) after the traces were saved, before the index was
        case.update(status="pending", output=None, task_outputs={})
    index.write_text(json.dumps(data))
    reopened = DatasetRun.load(tmp_path / "v1")
    assert [c.status for c in reopened] == ["done"] * 6 and reopened["r4"].output == {"product": "toys", "label": "positive"}


@pytest.mark.parametrize(("edit", "message"), [
    ({"file": "../../outside.json"}, "cases[0].file must be a file name inside `cases/`"),
    ({"status": "great"}, "cases[0].status must be one of pending, done, failed"),
    ({"tasks": "3"}, "cases[0].tasks must be a int"),
    ({"colour": "red"}, "cases[0] has unknown field(s) `colour`"),
])
def test_an_index_from_elsewhere_is_checked_field_by_field(tmp_path: Path, edit: dict[str, Any], message: str) -> None:
    run_dataset(review_graph(), REVIEWS[:1], Counting().registry(), tmp_path / "v1", llm=scripted())
    index = tmp_path / "v1" / "dataset.json"
    data = json.loads(index.read_text())
    data["cases"][0].update(edit)
    index.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        DatasetRun.load(tmp_path / "v1")


def test_a_graph_that_cannot_be_built_fails_its_case_only() -> None:
    def build(review: dict[str, Any]) -> TaskGraph:
        if review["product"] == "kitchen":  # the first case too
            raise KeyError("no kitchen graph")
        return review_graph()

    run = run_dataset(build, REVIEWS, Counting().registry(), ids="id", llm=scripted())
    assert [c.id for c in run.failed] == ["r1", "r3"]
    assert run["r1"].errors == ["building its graph raised KeyError: 'no kitchen graph'"]
    assert run.last_run is not None and run.last_run.failed == ["r1", "r3"]
    assert [c.status for c in run if c.id not in ("r1", "r3")] == ["done"] * 4


def test_progress_counts_cases_failures_and_calls_in_flight() -> None:
    from llmtaskgraph.dataset.shared import CaseProgress

    lines: list[tuple[str, bool]] = []

    class Recorder:
        def update(self, counter: Any, final: bool) -> None:
            lines.append((counter.describe(), final))

    progress = CaseProgress(2_000, Recorder(), interval=0)
    counter = progress.counter
    counter.call_started()
    counter.call_started()
    counter.case_finished("done")
    counter.case_finished("failed")
    counter.call_finished()
    progress.close()
    assert lines[:2] == [("0/2,000 cases done · 1 LLM calls in flight", False),
                         ("0/2,000 cases done · 2 LLM calls in flight", False)]
    assert lines[-1] == ("2/2,000 cases done · 1 failed · 1 LLM calls in flight", True)


def test_a_dataset_run_in_a_terminal_shows_one_progress_line(capsys: pytest.CaptureFixture[str]) -> None:
    run_dataset(review_graph(), REVIEWS, Counting().registry(), llm=scripted(), progress=True)
    err = capsys.readouterr().err
    assert err.rsplit("\r", 1)[-1].rstrip() == "6/6 cases done · 6 LLM calls" and err.endswith("\n")
    assert "tasks done" not in err  # one line for the dataset, none per case


def test_run_options_reach_every_case() -> None:
    offline = OfflineLLM()
    run = run_dataset(review_graph(), REVIEWS[:2], Counting().registry(), llm=offline, break_before=["result"])
    assert offline.calls == 2 and [c.status for c in run] == ["pending", "pending"]
    assert run.last_run is not None and run.last_run.pending == ["0", "1"]


class Priced:
    """A backend that streams (takes ``on_text``) and answers as a priced model would."""

    kind = "priced"

    def __init__(self) -> None:
        self.streamed = 0

    async def complete(self, request: dict[str, Any], *, on_text: Any = None) -> LLMResponse:
        if on_text is not None:
            on_text("Posi")
            self.streamed += 1
        return LLMResponse(text="Positive", model="claude-haiku-4-5", usage={"input_tokens": 1000, "output_tokens": 10},
                           backend="priced")


def test_costs_add_up_and_streaming_goes_through_the_shared_limit() -> None:
    graph = review_graph()
    graph.tasks["classify"].params = {"model": "claude-haiku-4-5", "max_tokens": 100}
    llm = Priced()
    events: list[str] = []
    run = run_dataset(graph, REVIEWS, Counting().registry(), ids="id", llm=llm, on_event=lambda e: events.append(e.kind))
    assert llm.streamed == 6 and events.count("llm_text") == 6  # a watched run streams, as a single graph's does
    assert run.last_run is not None and run.last_run.cost == pytest.approx(6 * run["r1"].cost) and run["r1"].cost > 0
    assert str(run).endswith(f"tokens 6,000 in, 60 out, cost ${6 * run['r1'].cost:.4f}")
    plan = run.plan(Counting().registry(), llm=llm, resample=True)
    assert plan.llm_calls == plan.llm_calls_certain == 6 and 0 < plan.cost_low < plan.cost_high
    assert plan.cost_text() == f", cost ${plan.cost_low:.4f} to ${plan.cost_high:.4f}"


def test_the_cases_share_one_reading_of_the_registrys_code() -> None:
    from llmtaskgraph.memo.code import CodeVersions

    class Reads(CodeVersions):
        """Counts the functions whose code it read (a second ask of a name is answered from memory)."""

        def __init__(self, registry: Any) -> None:
            super().__init__(registry)
            self.read: Counter[str] = Counter()

        def __call__(self, name: str) -> str | None:
            if name not in self._cache:
                self.read[name] += 1
            return super().__call__(name)

    counting = Counting()
    registry = counting.registry()
    reads = Reads(registry)
    run = run_dataset(review_graph(), REVIEWS, registry, ids="id", llm=scripted(), code_versions=reads)
    assert {c.status for c in run} == {"done"} and len(REVIEWS) > 1
    assert reads.read and set(reads.read.values()) == {1}  # each function read once for all the cases
    assert run.plan(registry, llm=scripted(), code_versions=reads).will_run == []
    assert set(reads.read.values()) == {1}
