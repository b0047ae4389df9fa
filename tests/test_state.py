"""Run options: one list of names (RunOptions, RunSettings), checked before anything runs."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

from llmtaskgraph import LLMTaskGraphError, OfflineLLM, PythonTask, TaskGraph
from llmtaskgraph.errors import RunOptionsError
from llmtaskgraph.run.state import RUN_SETTINGS, RunOptions, RunReport, RunSettings


def options(**kwargs: Any) -> RunOptions:
    return RunOptions(llm=OfflineLLM(), **kwargs)


def test_run_settings_are_the_run_options_plus_resample_and_progress() -> None:
    fields = {f.name for f in dataclasses.fields(RunOptions)}
    assert set(RunSettings.__annotations__) == fields | {"resample", "progress"}
    assert RunSettings.__required_keys__ == frozenset()  # every option may be left out
    assert set(RUN_SETTINGS) == set(RunSettings.__annotations__)


def test_the_defaults_are_accepted() -> None:
    opts = options()
    assert (opts.max_concurrency, opts.max_workers, opts.break_before, opts.on_event) == (16, 32, frozenset(), None)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("max_concurrency", 0, "`max_concurrency` must be a whole number >= 1 (LLM calls in flight at once), got int 0"),
        ("max_concurrency", -3, "`max_concurrency` must be a whole number >= 1"),
        ("max_concurrency", 2.5, "`max_concurrency` must be a whole number >= 1 (LLM calls in flight at once), got float 2.5"),
        ("max_concurrency", "4", "`max_concurrency` must be a whole number >= 1 (LLM calls in flight at once), got str '4'"),
        ("max_concurrency", True, "`max_concurrency` must be a whole number >= 1"),
        ("max_tasks", -1, "`max_tasks` must be a whole number >= 0 (or None for no bound), got int -1"),
        ("max_tasks", 1.0, "`max_tasks` must be a whole number >= 0"),
        ("timeout", -0.5, "`timeout` must be a number >= 0 (seconds, or None for no bound), got float -0.5"),
        ("timeout", math.nan, "`timeout` must be a number >= 0 (seconds, or None for no bound), got float nan"),
        ("timeout", "10", "`timeout` must be a number >= 0"),
        ("max_workers", 0, "`max_workers` must be a whole number >= 1 (threads for plain functions), got int 0"),
        ("break_before", "plan", "`break_before` takes a list of task ids or paths, got the string 'plan': write break_before=['plan']"),
        ("break_after", "plan", "`break_after` takes a list of task ids or paths, got the string 'plan': write break_after=['plan']"),
        ("break_after", 3, "`break_after` takes a list of task ids or paths, got int 3"),
        ("break_before", [PythonTask("f")], "`break_before` takes task ids or paths (str), got PythonTask"),
        ("on_event", "print", "`on_event` takes a function of one RunEvent, or a list of them; got str 'print'"),
        ("on_event", 42, "`on_event` takes a function of one RunEvent, or a list of them; got int 42"),
        ("on_event", [print, None], "`on_event` takes a function of one RunEvent, or a list of them; one of them is NoneType None"),
        ("checkpoint_every", 5, "`checkpoint_every`/`checkpoint_seconds` need `checkpoint=`"),
        ("checkpoint_seconds", 5.0, "`checkpoint_every`/`checkpoint_seconds` need `checkpoint=`"),
        ("llm", "claude", "`llm` must be an LLM backend (AnthropicLLM(), OfflineLLM(), ScriptedLLM(...) or any object with"),
        ("cache", 42, "`cache` takes a directory path or a response store (an object with `get` and `put`), got int 42"),
        ("cache", {"k": "v"}, "`cache` takes a directory path or a response store (an object with `get` and `put`), got dict"),
        ("backend", "dask", "`backend` takes an execution backend such as DaskBackend(client) (an object with `handles` and `run`), got str 'dask'"),
    ],
)
def test_a_value_that_cannot_work_is_refused_with_its_name(name: str, value: Any, message: str) -> None:
    kwargs = {"llm": OfflineLLM(), name: value}
    with pytest.raises(RunOptionsError) as info:
        RunOptions(**kwargs)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, LLMTaskGraphError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("checkpoint_every", 0, "`checkpoint_every` must be a whole number >= 1 (finished tasks between saves), got int 0"),
        ("checkpoint_every", 2.0, "`checkpoint_every` must be a whole number >= 1"),
        ("checkpoint_seconds", 0, "`checkpoint_seconds` must be a number > 0 (seconds between saves), got int 0"),
        ("checkpoint_seconds", -1.0, "`checkpoint_seconds` must be a number > 0"),
        ("checkpoint_seconds", math.nan, "`checkpoint_seconds` must be a number > 0 (seconds between saves), got float nan"),
        ("checkpoint", 3, "`checkpoint` must be a file path (str or Path), got int 3"),
    ],
)
def test_checkpoint_settings_are_checked(name: str, value: Any, message: str) -> None:
    kwargs: dict[str, Any] = {"llm": OfflineLLM(), "checkpoint": "trace.json", name: value}
    with pytest.raises(RunOptionsError) as info:
        RunOptions(**kwargs)
    assert str(info.value).startswith(message)


def test_good_values_at_the_edges_are_accepted() -> None:
    opts = options(max_concurrency=1, max_tasks=0, timeout=0, max_workers=1, checkpoint=Path("t.json"),
                   checkpoint_every=1, checkpoint_seconds=0.001)
    assert (opts.max_tasks, opts.timeout) == (0, 0)
    assert options(timeout=math.inf).timeout == math.inf
    assert options(cache=Path("replies")).cache == Path("replies")


def test_breakpoints_become_a_set_of_ids_from_any_iterable() -> None:
    opts = options(break_before=(f"t{i}" for i in range(3)), break_after=["a", "a"])
    assert opts.break_before == frozenset({"t0", "t1", "t2"})
    assert opts.break_after == frozenset({"a"})


def test_listeners_may_be_one_function_or_several() -> None:
    events: list[Any] = []
    assert options(on_event=events.append).on_event == events.append
    assert options(on_event=(events.append, print)).on_event == [events.append, print]


def test_an_unknown_name_lists_the_run_options_and_suggests_the_closest() -> None:
    with pytest.raises(RunOptionsError) as info:
        options(max_concurency=4)
    message = str(info.value)
    assert message.startswith("unknown run option `max_concurency` (did you mean `max_concurrency`?); the run options are ")
    assert all(f"`{name}`" in message for name in RUN_SETTINGS)
    assert "`progress`" in message and "`resample`" in message  # graph.run takes them too


def test_several_unknown_names_are_reported_together() -> None:
    with pytest.raises(RunOptionsError, match=r"^unknown run options `brake_after` \(did you mean `break_after` or `break_before`\?\), `zzz`; "):
        options(brake_after=["x"], zzz=1)


def test_graph_run_refuses_bad_options_before_running_anything() -> None:
    graph = TaskGraph()
    graph.add_task(PythonTask("f", id="f"))
    ran: list[str] = []
    registry = {"f": lambda ctx: ran.append("f")}
    with pytest.raises(RunOptionsError, match="`max_concurrency` must be a whole number >= 1"):
        graph.run(registry, llm=OfflineLLM(), max_concurrency=0, progress=False)
    with pytest.raises(RunOptionsError, match="did you mean `max_tasks`"):
        graph.run(registry, llm=OfflineLLM(), max_task=1, progress=False)
    with pytest.raises(RunOptionsError, match="write break_before=\\['f'\\]"):
        graph.run(registry, llm=OfflineLLM(), break_before="f", progress=False)
    assert ran == [] and graph.tasks["f"].status == "pending"


def test_the_report_starts_with_no_checkpoint_errors() -> None:
    assert RunReport().checkpoint_errors == []
