"""Comparing two dataset runs: exactly the changed cases, readable diffs, scores, worst regressions first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dataset_helpers import HINTS, REVIEWS, Counting, review_graph, scripted

from llmtaskgraph import DatasetError, DatasetRun, PythonTask, TaskGraph, run_dataset
from llmtaskgraph.dataset import compare_runs


@pytest.fixture
def before_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[DatasetRun, DatasetRun, Counting]:
    """v1, then v2: a copy run after the prompts of books and kitchen ask for `mixed`."""
    counting = Counting()
    v1 = run_dataset(review_graph(), REVIEWS, counting.registry(), tmp_path / "v1", ids="id", llm=scripted())
    monkeypatch.setitem(HINTS, "books", " If it has praise and complaints, say mixed.")
    monkeypatch.setitem(HINTS, "kitchen", " If it has praise and complaints, say mixed.")
    v2 = v1.copy(tmp_path / "v2").run(counting.registry(), llm=scripted())
    return v1, v2, counting


def test_the_comparison_finds_exactly_the_cases_whose_output_changed(before_after: Any) -> None:
    v1, v2, _ = before_after
    comparison = v1.compare(v2)
    # r3 ("Sharp knife but ...") and r5 ("Fine story, but ...") became `mixed`; r1, r2 re-formatted to the same reply
    assert [c.id for c in comparison.changed] == ["r3", "r5"]
    assert comparison.counts == {"changed": 2, "same": 4}
    assert bool(comparison) is True
    r3 = comparison.changed[0]
    assert r3.verdict == "changed" and r3.changed_tasks == ["classify", "result"]
    assert r3.output_diff() == ['output: {"label": "positive", "product": "kitchen"} -> {"label": "mixed", "product": "kitchen"}']
    assert comparison.summary() == "compare: 6 case(s); 2 output(s) changed (2 changed)"
    # the task-by-task diff of the two traces: the prompt, the reply and the outputs
    lines = r3.diff().lines()
    assert any(line.startswith("changed `classify`:") and "reply \"Positive\" -> \"Mixed\"" in line for line in lines)
    assert any(line.startswith("    prompt: Classify the sentiment{+. If it has praise and complaints, say mixed+}.")
               for line in lines)


def test_a_run_compared_with_its_copy_has_no_changes(tmp_path: Path) -> None:
    v1 = run_dataset(review_graph(), REVIEWS, Counting().registry(), tmp_path / "v1", ids="id", llm=scripted())
    comparison = v1.compare(v1.copy())
    assert not comparison and comparison.changed == [] and comparison.counts == {"same": 6}
    assert str(comparison) == "compare: 6 case(s); 0 output(s) changed"


def test_scores_put_the_cases_that_got_worse_first(before_after: Any) -> None:
    v1, v2, counting = before_after
    comparison = v1.compare(v2, score="score", registry=counting.registry())
    assert [(c.id, c.verdict, c.score_before, c.score_after) for c in comparison.cases[:2]] == [
        ("r3", "better", 0.0, 1.0), ("r5", "better", 0.0, 1.0)]
    assert comparison.mean_scores() == (pytest.approx(4 / 6), 1.0)

    worse = v2.compare(v1, score="score", registry=counting.registry())  # the same change, undone
    assert [(c.id, c.verdict, c.delta) for c in worse.changed] == [("r3", "worse", -1.0), ("r5", "worse", -1.0)]
    assert str(worse).splitlines()[:3] == [
        "compare: 6 case(s); 2 output(s) changed (2 worse); mean score 1 -> 0.667",
        "worse `r3`  score 1 -> 0",
        '    output: {"label": "mixed", "product": "kitchen"} -> {"label": "positive", "product": "kitchen"}',
    ]


def test_the_biggest_drop_and_new_failures_come_first() -> None:
    graph = TaskGraph()
    graph.add_output_task(PythonTask("f"))

    def run(values: dict[str, Any]) -> DatasetRun:
        def f(ctx: Any) -> Any:
            value = values[ctx.graph_input]
            if value is None:
                raise ValueError("no value")
            return value

        return run_dataset(graph, ["a", "b", "c", "d", "e"], {"f": f}, ids=lambda x: x)

    before = run({"a": 5, "b": 5, "c": 5, "d": 5, "e": None})
    after = run({"a": 4, "b": 1, "c": None, "d": 9, "e": 3})
    comparison = compare_runs(before, after, score=lambda ctx, case_input, output: output)
    assert [(c.id, c.verdict) for c in comparison.cases] == [
        ("c", "worse"), ("b", "worse"), ("a", "worse"), ("e", "better"), ("d", "better")]
    assert comparison.cases[0].output_diff() == ["status: done -> failed", "error: f: ValueError in run: no value"]
    assert comparison.cases[3].output_diff() == ["status: failed -> done", "output: 3"]


def test_cases_in_one_run_only_are_added_or_removed() -> None:
    graph = TaskGraph()
    graph.add_output_task(PythonTask("f"))
    registry = {"f": lambda ctx: ctx.graph_input * 2}
    before = run_dataset(graph, [1, 2, 3], registry, ids=str)
    after = run_dataset(graph, [2, 3, 4], registry, ids=str)
    comparison = before.compare(after)
    assert [(c.id, c.verdict) for c in comparison.changed] == [("4", "added"), ("1", "removed")]
    with pytest.raises(DatasetError, match="case `4` is in one run only"):
        comparison.changed[0].diff()


def test_a_long_text_output_is_shown_as_a_word_diff() -> None:
    graph = TaskGraph()
    graph.add_output_task(PythonTask("f"))
    text = "The tide is pulled by the moon and, to a lesser degree, by the sun; sailors have known it for ages."
    before = run_dataset(graph, [0], {"f": lambda ctx: text})
    after = run_dataset(graph, [0], {"f": lambda ctx: text.replace("lesser", "smaller")})
    assert before.compare(after).changed[0].output_diff() == [
        "output: …pulled by the moon and, to a [-lesser-]{+smaller+} degree, by the sun; sailors…"]


def test_json_types_count_as_in_trace_diffs() -> None:
    graph = TaskGraph()
    graph.add_output_task(PythonTask("f"))
    before = run_dataset(graph, [0, 1], {"f": lambda ctx: 1})
    after = run_dataset(graph, [0, 1], {"f": lambda ctx: 1.0 if ctx.graph_input else 1})
    assert [c.id for c in before.compare(after).changed] == ["1"]


def test_a_score_that_is_no_number_or_no_function_is_refused(before_after: Any) -> None:
    v1, v2, counting = before_after
    with pytest.raises(DatasetError, match=r"the score function `<lambda>` must return a finite number or a bool; "
                                           r"for case `r1` it returned 'positive'"):
        v1.compare(v2, score=lambda ctx, case_input, output: output["label"])
    with pytest.raises(DatasetError, match=r"score='score' names a registry function: pass registry="):
        v1.compare(v2, score="score")
    with pytest.raises(DatasetError, match="the registry has no function `scor`"):
        v1.compare(v2, score="scor", registry=counting.registry())


def test_a_score_function_gets_a_context_like_any_registry_function(before_after: Any) -> None:
    v1, v2, _ = before_after
    seen: list[tuple[str, Any]] = []

    async def score(ctx: Any, case_input: Any, output: Any) -> int:
        seen.append((ctx.task.id, ctx.graph_input == case_input))
        return len(output["label"])

    comparison = v1.compare(v2, score=score)
    assert set(seen) == {("result", True)} and len(seen) == 12
    assert comparison.changed[0].score_before == len("positive")
