"""Diffing two traces (llmtaskgraph.trace.diff): JSON compared by type and sign, long texts shown as word
diffs of what changed, and how a built graph differs from the one a trace holds."""

from __future__ import annotations

from typing import Any

import pytest

from llmtaskgraph import PythonTask, TaskGraph, TaskGraphTask
from llmtaskgraph.trace.diff import MAX_PLACES, diff_graphs, same_json, spec_difference, word_diff

DISTINCT = [1, 1.0, True, 0, 0.0, -0.0, False, None, "1", [1], [1.0], {"a": 1}, {"a": 1.0}, {"a": -0.0}, {"a": 0.0}]


@pytest.mark.parametrize("a", range(len(DISTINCT)))
@pytest.mark.parametrize("b", range(len(DISTINCT)))
def test_same_json_tells_types_and_signs_apart(a: int, b: int) -> None:
    assert same_json(DISTINCT[a], DISTINCT[b]) is (a == b)


def test_same_json_ignores_the_order_of_keys() -> None:
    assert same_json({"a": 1, "b": [2.5, {"c": None}]}, {"b": [2.5, {"c": None}], "a": 1})
    assert not same_json({"a": 1, "b": [2.5, {"c": 0.0}]}, {"b": [2.5, {"c": -0.0}], "a": 1})


def outputs(*values: Any) -> TaskGraph:
    """A graph of tasks `t0`, `t1`, ... that returned ``values``."""
    graph = TaskGraph()
    registry = {}
    for i, value in enumerate(values):
        registry[f"f{i}"] = lambda ctx, value=value: value
        graph.add_task(PythonTask(f"f{i}", id=f"t{i}"))
    graph.run(registry, progress=False)
    return graph


def test_outputs_equal_in_python_but_not_in_json_are_reported() -> None:
    a = outputs(1, 1, True, 0.0, [0.0], {"n": 1}, 2)
    b = outputs(1.0, True, 1, -0.0, [-0.0], {"n": 1.0}, 2)
    assert diff_graphs(a, b).lines() == [
        "changed `t0`: output 1 -> 1.0",
        "changed `t1`: output 1 -> true",
        "changed `t2`: output true -> 1",
        "changed `t3`: output 0.0 -> -0.0",
        "changed `t4`: output [0.0] -> [-0.0]",
        'changed `t5`: output {"n": 1} -> {"n": 1.0}',
    ]
    assert not diff_graphs(a, outputs(1, 1, True, 0.0, [0.0], {"n": 1}, 2))


def test_a_graph_input_that_differs_only_in_type_is_reported() -> None:
    a, b = TaskGraph({"k": 1}), TaskGraph({"k": 1.0})
    assert diff_graphs(a, b).lines() == ['changed graph graph_input: {"k": 1} -> {"k": 1.0}']


LONG = ("The committee met on Tuesday to review the quarterly figures. Revenue rose in every region except "
        "the north, where a late shipment moved sales into the next quarter. The chair asked for a plan to "
        "avoid such delays, and the meeting closed at noon.")


def test_a_long_text_shows_what_changed_in_it_not_its_first_characters() -> None:
    edited = LONG.replace("late shipment", "delayed shipment").replace("at noon", "at one")
    lines = diff_graphs(outputs(LONG), outputs(edited)).lines()
    assert lines == [
        f"changed `t0`: output ({len(LONG):,} -> {len(edited):,} characters, word diff below)",
        "    output: …except the north, where a [-late-]{+delayed+} shipment moved sales into…",
        "    output: …and the meeting closed at [-noon-]{+one+}.",
    ]


def test_short_and_long_changes_of_one_task_share_its_line() -> None:
    a, b = outputs(LONG, 1), outputs(LONG + " Done.", 2)
    lines = diff_graphs(a, b).lines()
    assert lines[0].startswith("changed `t0`: output (")
    assert lines[1] == "    output: …the meeting closed at noon{+. Done+}."
    assert lines[2] == "changed `t1`: output 1 -> 2"


def test_a_long_json_value_is_word_diffed_as_json() -> None:
    a = {"items": [{"name": f"item {i}", "price": 1.5 * i} for i in range(6)]}
    b = {"items": [{"name": f"item {i}", "price": 1.5 * i} for i in range(6)]}
    b["items"][3]["price"] = 4  # was 4.5
    lines = diff_graphs(outputs(a), outputs(b)).lines()
    assert lines[1] == '    output: …name": "item 3", "price": [-4.5-]{+4+}}, {"name": "item 4", "price…'


@pytest.mark.parametrize(("a", "b", "places"), [
    ("one two three", "one 2 three", ["one [-two-]{+2+} three"]),
    ("one two three", "one three", ["one [-two-] three"]),
    ("one three", "one two three", ["one {+two+} three"]),
    ("a, b, c", "a; b, c", ["a[-,-]{+;+} b, c"]),  # punctuation is its own unit
    ("line one\nline two", "line one\nline 2", ["line one\nline [-two-]{+2+}"]),
    ("", "new", ["{+new+}"]),
    ("old", "", ["[-old-]"]),
])
def test_word_diff(a: str, b: str, places: list[str]) -> None:
    assert word_diff(a, b) == places


def test_word_diff_shows_at_most_a_few_places_and_counts_the_rest() -> None:
    words = [f"w{i}" for i in range(400)]
    changed = [f"W{i}" if i % 20 == 0 else w for i, w in enumerate(words)]
    places = word_diff(" ".join(words), " ".join(changed))
    assert len(places) == MAX_PLACES + 1 and places[-1] == f"… and {20 - MAX_PLACES} more changed places"
    assert places[1] == "…w13 w14 w15 w16 w17 w18 w19 [-w20-]{+W20+} w21 w22 w23 w24 w25 w26 w27…"


def test_word_diff_finds_each_change_in_a_very_long_line() -> None:
    # long enough to be matched piece by piece rather than word by word
    words = [f"w{i % 997}x{i}" for i in range(20_000)]
    changed = list(words)
    changed[5_000] = "FIRST"
    del changed[12_000]
    changed.insert(15_000, "INSERTED")
    places = word_diff(" ".join(words), " ".join(changed))
    assert [place.split("…")[1].split() for place in places] == [
        [*words[4_997:5_000], f"[-{words[5_000]}-]{{+FIRST+}}", *words[5_001:5_004]],
        [*words[11_997:12_000], f"[-{words[12_000]}-]", *words[12_001:12_004]],
        [*words[14_998:15_001], "{+INSERTED+}", *words[15_001:15_004]],
    ]


def test_a_long_change_is_cut() -> None:
    places = word_diff("x " + "a" * 1000, "x " + "b" * 1000)
    assert len(places) == 1 and len(places[0]) < 250 and places[0].startswith("x [-aaaa") and "…-]{+bbbb" in places[0]


def test_timings_hashes_and_call_metadata_are_compared_only_when_asked() -> None:
    a, b = outputs(1), outputs(1)
    assert not diff_graphs(a, b)
    changed = diff_graphs(a, b, all_fields=True).tasks[0].fields
    assert {"started_at", "finished_at"} <= set(changed)


# -- spec_difference ---------------------------------------------------------------------------------
def chain(*ids: str, output: str | None = None) -> TaskGraph:
    graph = TaskGraph()
    for tid in ids:
        graph.add_task(PythonTask("f", id=tid))
    if output is not None:
        graph.output_task = output
    return graph


@pytest.mark.parametrize(("built", "saved", "why"), [
    (chain("a", "b"), chain("a", "b"), None),
    (chain("a", "b", "c"), chain("a", "b"), "task `c` is not in the trace"),
    (chain("a"), chain("a", "b", "c"), "task `b`, `c` are no longer in the graph"),
    (chain("b", "a"), chain("a", "b"), "the tasks are added in another order"),
    (chain("a", "b", output="a"), chain("a", "b"), "the output task is another one"),
])
def test_spec_difference_names_the_first_difference(built: TaskGraph, saved: TaskGraph, why: str | None) -> None:
    assert spec_difference(built, saved) == why


def test_spec_difference_names_a_changed_task_and_looks_inside_sub_graphs() -> None:
    def build(fn: str, inner_fn: str) -> TaskGraph:
        inner = TaskGraph()
        inner.add_task(PythonTask(inner_fn, id="x"))
        graph = TaskGraph()
        graph.add_task(PythonTask(fn, id="a"))
        graph.add_task(TaskGraphTask(inner, "fmt", id="sub"))
        return graph

    assert spec_difference(build("f", "g"), build("f", "g")) is None
    assert spec_difference(build("f2", "g"), build("f", "g")) == (
        "task `a` has changed (its type, functions, dependencies or settings)")
    assert spec_difference(build("f", "g2"), build("f", "g")) == (
        "task `sub > x` has changed (its type, functions, dependencies or settings)")


def test_spec_difference_leaves_out_tasks_added_at_run_time() -> None:
    def build() -> TaskGraph:
        graph = TaskGraph()
        graph.add_task(PythonTask("spawn", id="planner"))
        return graph

    def spawn(ctx: Any) -> int:
        for key in ("x", "y"):
            ctx.add_task(PythonTask("child", key=key))
        return 2

    saved = build()
    saved.run({"spawn": spawn, "child": lambda ctx: 0}, progress=False)
    assert list(saved.tasks) == ["planner", "planner/x", "planner/y"]
    assert spec_difference(build(), saved) is None
