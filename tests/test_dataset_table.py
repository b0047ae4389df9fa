"""Tables of a dataset run: plain rows, pandas DataFrames, the fallback without pandas, notebook HTML."""

from __future__ import annotations

import sys
from typing import Any

import pandas as pd
import pytest
from dataset_helpers import HINTS, REVIEWS, Counting, review_graph, scripted

from llmtaskgraph import DatasetRun, run_dataset


@pytest.fixture
def run() -> DatasetRun:
    counting = Counting()
    counting.fail_on = "Broke after one day."
    return run_dataset(review_graph(), REVIEWS, counting.registry(), ids="id", llm=scripted())


def test_rows_are_plain_dicts_with_the_same_keys_and_dict_values_spread(run: DatasetRun) -> None:
    rows = run.rows()
    assert len(rows) == 6 and len({tuple(r) for r in rows}) == 1
    assert list(rows[0]) == ["case", "status", "input.id", "input.product", "input.text", "input.label", "output.product",
                             "output.label", "errors", "tasks", "executed", "llm_calls", "new_llm_calls", "input_tokens",
                             "output_tokens", "cost", "new_cost", "seconds"]
    assert rows[0]["output.label"] == "positive" and rows[0]["errors"] is None and rows[0]["llm_calls"] == 1
    failed = rows[5]
    assert (failed["status"], failed["output.label"]) == ("failed", None)
    assert failed["errors"] == "result: ValueError in run: cannot file 'Broke after one day.'"


def test_values_that_are_not_dicts_stay_in_one_column() -> None:
    from llmtaskgraph import PythonTask, TaskGraph

    graph = TaskGraph()
    graph.add_output_task(PythonTask("f"))
    rows = run_dataset(graph, ["a", {"k": 1}], {"f": lambda ctx: ctx.graph_input}).rows()
    assert [(r["input"], r["input.k"], r["output"], r["output.k"]) for r in rows] == [("a", None, "a", None),
                                                                                     (None, 1, None, 1)]


def test_a_dataframe_of_cases_and_one_of_tasks(run: DatasetRun) -> None:
    frame = run.to_dataframe()
    assert isinstance(frame, pd.DataFrame) and frame.shape == (6, 18)
    assert frame.groupby("status").size().to_dict() == {"done": 5, "failed": 1}
    assert frame.loc[frame["case"] == "r3", "output.label"].item() == "positive"
    assert (frame["output.label"] == frame["input.label"]).sum() == 3  # accuracy, as one would compute it

    tasks = run.to_dataframe(tasks=True)
    assert tasks.shape == (18, 10) and list(tasks.columns) == ["case", "task", "type", "status", "output", "error",
                                                               "input_tokens", "output_tokens", "cost", "seconds"]
    assert tasks[tasks["type"] == "llm"]["input_tokens"].gt(0).all()
    assert tasks.set_index(["case", "task"]).loc[("r6", "result"), "error"] == "ValueError: cannot file 'Broke after one day.'"


def test_without_pandas_the_dataframe_says_what_to_install_and_rows_still_work(run: DatasetRun,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'llmtaskgraph\[pandas\]' \(or use .rows\(\)"):
        run.to_dataframe()
    assert len(run.rows()) == 6 and len(run.task_rows()) == 18


def test_a_comparison_as_rows_and_a_dataframe(run: DatasetRun, monkeypatch: pytest.MonkeyPatch) -> None:
    counting = Counting()
    counting.fail_on = "Broke after one day."
    monkeypatch.setitem(HINTS, "books", " If it has praise and complaints, say mixed.")
    after = run.copy().run(counting.registry(), llm=scripted())
    comparison = run.compare(after, score="score", registry=counting.registry())
    rows = comparison.rows()
    assert rows[0] == {"case": "r5", "verdict": "better", "status_before": "done", "status_after": "done",
                       "output_before": {"product": "books", "label": "positive"},
                       "output_after": {"product": "books", "label": "mixed"},
                       "score_before": 0.0, "score_after": 1.0, "delta": 1.0, "changed_tasks": ["classify", "result"]}
    assert comparison.to_dataframe()["verdict"].tolist() == ["better", "same", "same", "same", "same", "same"]


def test_the_notebook_table_escapes_text_and_opens_a_case_graph_on_click() -> None:
    from llmtaskgraph import PythonTask, TaskGraph

    graph = TaskGraph()
    graph.add_output_task(PythonTask("f", name="echo"))

    def f(ctx: Any) -> Any:
        if ctx.graph_input == "fail":
            raise RuntimeError("<b>bold</b> failure")
        return ctx.graph_input

    inputs = ["<script>alert(1)</script>", *[f"case {i}" for i in range(12)], "fail"]
    html = run_dataset(graph, inputs, {"f": f})._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt; failure" in html
    assert html.index("&lt;b&gt;bold") < html.index("&lt;script&gt;")  # failed cases first
    assert html.count("<details>") == 10 and html.count("<svg") + html.count("ltg-fallback") == 10
    assert "… 4 more case(s)" in html and "14 case(s): 13 done, 1 failed" in html


def test_the_notebook_comparison_marks_removed_and_added_words() -> None:
    from llmtaskgraph import PythonTask, TaskGraph

    graph = TaskGraph()
    graph.add_output_task(PythonTask("f"))
    text = "The tide is pulled by the moon and, to a lesser degree, by the <sun>; sailors have known it for ages."
    before = run_dataset(graph, [0], {"f": lambda ctx: text})
    after = run_dataset(graph, [0], {"f": lambda ctx: text.replace("lesser", "smaller")})
    html = before.compare(after)._repr_html_()
    assert "<del style='color:#b00020'>lesser</del><ins style='color:#1b5e20'>smaller</ins>" in html
    assert "&lt;sun&gt;" in html and "<sun>" not in html
