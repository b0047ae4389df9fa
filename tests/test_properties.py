"""Property tests: random valid graphs, run on the offline backend, checked against a model.

Hypothesis draws graphs of every shape the library supports (random DAGs, sub-graphs nested two
deep, tasks that add children at run time, every prompt shape, functions returning None) and
checks the promises a user relies on:

* the JSON trace round-trips exactly (also through ``json.dumps``/``json.loads`` and a file);
* replaying a finished trace calls nothing;
* after one random edit (a prompt, a reply, an output or the graph input), exactly the stages the
  fingerprint rule names run again. The expected set comes from :class:`Model`, an independent
  value-level statement of the rule: a stage runs again iff the *values* it consumes differ from
  last time. Every registry function hashes its inputs, so outputs change when inputs do, except
  where a spec asks for a constant prompt or a None output (the early cut-offs);
* rendering never fails.

Settings are fixed (``derandomize=True``) so CI sees the same examples on every run.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmtaskgraph import LLMTask, OfflineLLM, PythonTask, TaskContext, TaskGraph, TaskGraphTask
from llmtaskgraph.fingerprint import digest
from llmtaskgraph.llm.base import build_request, last_user_text

MAX_EXAMPLES = 100
SETTINGS = settings(
    derandomize=True,
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
GENERATED: Counter[str] = Counter()
"""What the properties saw (graphs, tasks, edits by kind); printed after the module's tests."""


@pytest.fixture(scope="module", autouse=True)
def _print_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nproperty tests generated: {dict(GENERATED)}")


# -- the specs hypothesis draws ---------------------------------------------------------------------
@dataclass
class Spec:
    """One task as drawn: its kind and the knobs that decide what its functions return."""

    id: str
    kind: str  # "py", "spawn" (a PythonTask adding children), "llm" or "graph"
    deps: list[int]
    kwdeps: dict[str, int]
    reads_input: bool = False
    none_out: bool = False
    shape: str = "str"
    const_prompt: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    sub: list[Spec] = field(default_factory=list)
    sub_output: int | None = None
    children: int = 0


@st.composite
def task_specs(draw: st.DrawFn, depth: int = 0, max_tasks: int = 7) -> list[Spec]:
    n = draw(st.integers(1, max_tasks))
    specs: list[Spec] = []
    for i in range(n):
        kinds = ["py", "py", "llm", "llm", "spawn"] + (["graph"] if depth < 2 else [])
        kind = draw(st.sampled_from(kinds))
        earlier = st.integers(0, i - 1)
        spec = Spec(
            id=f"t{i}",
            kind=kind,
            deps=draw(st.lists(earlier, max_size=3)) if i else [],
            kwdeps=draw(st.dictionaries(st.sampled_from(["a", "b", "c"]), earlier, max_size=2)) if i else {},
            reads_input=draw(st.booleans()),
            none_out=draw(st.integers(0, 4)) == 0,
        )
        if kind == "llm":
            spec.shape = draw(st.sampled_from(["str", "list", "dict"]))
            spec.const_prompt = draw(st.integers(0, 4)) == 0
            spec.params = draw(st.sampled_from([{}, {"max_tokens": 64}, {"model": "m", "temperature": 0}]))
        elif kind == "spawn":
            spec.children = draw(st.integers(0, 3))
        elif kind == "graph":
            spec.sub = draw(task_specs(depth + 1, max_tasks=4))
            spec.sub_output = draw(st.none() | st.integers(0, len(spec.sub) - 1))
        specs.append(spec)
    return specs


@dataclass
class Case:
    specs: list[Spec]
    graph_input: Any
    output: int | None


@st.composite
def cases(draw: st.DrawFn) -> Case:
    specs = draw(task_specs())
    graph_input = draw(st.none() | st.integers(0, 9) | st.dictionaries(st.sampled_from("xyz"), st.integers(0, 9)))
    return Case(specs, graph_input, draw(st.none() | st.integers(0, len(specs) - 1)))


# -- what every registry function computes (shared by the registry and the model) -------------------
def h(*parts: Any) -> str:
    return digest(list(parts))[:12]


def run_value(spec: Spec, path: str, args: list[Any], kwargs: dict[str, Any], gi: Any) -> Any:
    return None if spec.none_out else {"h": h(path, args, kwargs, gi if spec.reads_input else None)}


def prompt_value(spec: Spec, path: str, args: list[Any], kwargs: dict[str, Any], gi: Any, tag: str = "") -> Any:
    body = "constant" if spec.const_prompt else h(args, kwargs, gi if spec.reads_input else None)
    text = f"<<{path}>> {tag}{body}"
    if spec.shape == "list":
        return [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                {"role": "user", "content": text}]
    if spec.shape == "dict":
        return {"messages": [{"role": "user", "content": text}], "system": f"system of {path}"}
    return text


def parse_value(spec: Spec, path: str, text: str) -> Any:
    return None if spec.none_out else {"p": h(path, text)}


def input_value(spec: Spec, path: str, args: list[Any], kwargs: dict[str, Any], gi: Any) -> Any:
    return h(path, args, kwargs, gi if spec.reads_input else None)


def child_value(key: str, parent_output: Any) -> Any:
    return {"child": h(key, parent_output)}


def result_index(specs: list[Spec], output: int | None) -> int:
    return len(specs) - 1 if output is None else output


class RecordingLLM(OfflineLLM):
    """The offline backend, logging which task each request came from (the ``<<path>>`` marker)."""

    def __init__(self, log: list[tuple[str, str]]) -> None:
        super().__init__()
        self.log = log

    async def complete(self, request: dict[str, Any]) -> Any:
        match = re.match(r"<<(.*?)>>", last_user_text(request))
        assert match, request
        self.log.append(("call", match.group(1)))
        return await super().complete(request)


def offline_text(request: dict[str, Any]) -> str:
    """What OfflineLLM replies to ``request`` (its coroutine never suspends at zero latency)."""
    coro = OfflineLLM().complete(request)
    try:
        coro.send(None)
    except StopIteration as done:
        return str(done.value.text)
    raise AssertionError("OfflineLLM suspended")


# -- building the library's graph and registry from specs --------------------------------------------
def build(specs: list[Spec], log: list[tuple[str, str]], registry: dict[str, Any], prefix: str = "",
          graph_input: Any = None, output: int | None = None) -> TaskGraph:
    graph = TaskGraph(graph_input)
    for spec in specs:
        path = prefix + spec.id
        deps = [specs[d].id for d in spec.deps]
        kwdeps = {k: specs[d].id for k, d in spec.kwdeps.items()}
        _register(spec, path, log, registry)
        task: Any
        if spec.kind in ("py", "spawn"):
            task = PythonTask(f"run:{path}", *deps, id=spec.id, **kwdeps)
        elif spec.kind == "llm":
            task = LLMTask(f"fmt:{path}", f"parse:{path}", *deps, params=spec.params, id=spec.id, **kwdeps)
        else:
            sub = build(spec.sub, log, registry, f"{path} > ", None, spec.sub_output)
            task = TaskGraphTask(sub, f"in:{path}", *deps, id=spec.id, **kwdeps)
        graph.add_task(task)
    if output is not None:
        graph.output_task = specs[output].id
    return graph


def _register(spec: Spec, path: str, log: list[tuple[str, str]], registry: dict[str, Any]) -> None:
    def gi(ctx: TaskContext) -> Any:
        return ctx.graph_input if spec.reads_input else None

    def run(ctx: TaskContext, *args: Any, **kwargs: Any) -> Any:
        log.append(("run", path))
        for j in range(spec.children):
            ctx.add_task(PythonTask(f"child:{path}", ctx.task, key=f"c{j}"))
        return run_value(spec, path, list(args), kwargs, gi(ctx))

    def child(ctx: TaskContext, parent_output: Any) -> Any:
        log.append(("run", f"{path}/{ctx.task.key}"))
        return child_value(str(ctx.task.key), parent_output)

    async def fmt(ctx: TaskContext, *args: Any, **kwargs: Any) -> Any:  # async and sync functions both
        log.append(("format", path))
        return prompt_value(spec, path, list(args), kwargs, gi(ctx))

    def parse(ctx: TaskContext, text: str) -> Any:
        log.append(("parse", path))
        return parse_value(spec, path, text)

    def fmt_input(ctx: TaskContext, *args: Any, **kwargs: Any) -> Any:
        log.append(("input", path))
        return input_value(spec, path, list(args), kwargs, gi(ctx))

    registry.update({f"run:{path}": run, f"child:{path}": child, f"fmt:{path}": fmt, f"parse:{path}": parse,
                     f"in:{path}": fmt_input})


# -- the model: the fingerprint rule stated over values ---------------------------------------------
class Model:
    """Remembers, per (stage, task path), the inputs a stage last consumed and the result it stored.

    :meth:`evaluate` walks the graph the way a run would and re-computes a stage iff its input
    values changed; otherwise the stored (possibly edited) result stands. Edits change stored results.
    """

    def __init__(self) -> None:
        self.state: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.executed: list[tuple[str, str]] = []
        self.graph_paths: set[str] = set()
        self.outputs: dict[str, Any] = {}

    def evaluate(self, specs: list[Spec], gi: Any, output: int | None) -> Any:
        self.executed = []
        return self._graph(specs, gi, "", output)

    def _stage(self, stage: str, path: str, inputs: Any, compute: Any, *args: Any) -> Any:
        key = (stage, path)
        old = self.state.get(key)
        if old is not None and old[0] == inputs:
            result = old[1]
        else:
            self.executed.append(key)
            result = compute(*args)
        self.state[key] = (inputs, result)
        return result

    def _graph(self, specs: list[Spec], gi: Any, prefix: str, output: int | None) -> Any:
        outputs: dict[str, Any] = {}
        for spec in specs:
            path = prefix + spec.id
            args = [outputs[specs[d].id] for d in spec.deps]
            kwargs = {k: outputs[specs[d].id] for k, d in spec.kwdeps.items()}
            seen_gi = gi if spec.reads_input else None
            if spec.kind in ("py", "spawn"):
                out = self._stage("run", path, (args, kwargs, seen_gi), run_value, spec, path, args, kwargs, gi)
                for j in range(spec.children):
                    child = f"{path}/c{j}"
                    self.outputs[child] = self._stage("run", child, out, child_value, f"c{j}", out)
            elif spec.kind == "llm":
                prompt = self._stage("format", path, (args, kwargs, seen_gi), prompt_value, spec, path, args, kwargs, gi)
                request = build_request(prompt, spec.params)
                text = self._stage("call", path, request, offline_text, request)
                out = self._stage("parse", path, text, parse_value, spec, path, text)
            else:
                self.graph_paths.add(path)
                sub_gi = self._stage("input", path, (args, kwargs, seen_gi), input_value, spec, path, args, kwargs, gi)
                out = self._graph(spec.sub, sub_gi, f"{path} > ", spec.sub_output)
            outputs[spec.id] = self.outputs[path] = out
        return outputs[specs[result_index(specs, output)].id]

    def edit_result(self, spec_path: list[Spec], path: str, value: Any) -> None:
        """Store ``value`` as the output of the task at ``path`` (a sub-graph task: of its result task)."""
        spec = spec_path[-1]
        if spec.kind == "graph":
            inner = spec.sub[result_index(spec.sub, spec.sub_output)]
            self.edit_result([*spec_path, inner], f"{path} > {inner.id}", value)
            return
        stage = "parse" if spec.kind == "llm" else "run"
        inputs, _ = self.state[(stage, path)]
        self.state[(stage, path)] = (inputs, value)


def all_tasks(specs: list[Spec], prefix: str = "", chain: tuple[Spec, ...] = ()) -> list[tuple[str, list[Spec]]]:
    """(path, chain of specs from the top) of every task, children of spawners included."""
    found: list[tuple[str, list[Spec]]] = []
    for spec in specs:
        path = prefix + spec.id
        found.append((path, [*chain, spec]))
        if spec.kind == "graph":
            found.extend(all_tasks(spec.sub, f"{path} > ", (*chain, spec)))
        for j in range(spec.children):
            found.append((f"{path}/c{j}", [*chain, Spec(f"{spec.id}/c{j}", "child", [], {})]))
    return found


# -- checks shared by the properties -----------------------------------------------------------------
def check_round_trip(graph: TaskGraph) -> None:
    data = graph.to_json()
    snapshot = copy.deepcopy(data)
    loaded = TaskGraph.from_json(data)
    assert data == snapshot, "from_json modified its input"
    assert loaded.to_json() == data
    assert TaskGraph.from_json(json.loads(json.dumps(data))).to_json() == data
    with tempfile.TemporaryDirectory() as tmp:
        graph.save(Path(tmp) / "trace.json")
        assert TaskGraph.load(Path(tmp) / "trace.json").to_json() == data


def check_renders(graph: TaskGraph) -> None:
    bundle = graph._repr_mimebundle_()
    assert bundle and all(isinstance(v, str) for v in bundle.values())
    for task in graph.tasks.values():
        assert task._repr_mimebundle_()
        if isinstance(task, TaskGraphTask):
            check_renders(task.subgraph)
    from llmtaskgraph.views.report import render_report

    assert "</html>" in render_report(graph)


def graph_task_paths(graph: TaskGraph, prefix: str = "") -> set[str]:
    found: set[str] = set()
    for tid, task in graph.tasks.items():
        if isinstance(task, TaskGraphTask):
            found.add(prefix + tid)
            found |= graph_task_paths(task.subgraph, f"{prefix}{tid} > ")
    return found


def check_run_matches_model(graph: TaskGraph, log: list[tuple[str, str]], model: Model) -> None:
    """The stages the run executed are exactly the model's, each once, and the counts agree."""
    assert sorted(log) == sorted(model.executed)
    report = graph.last_run
    assert report is not None
    assert report.llm_calls == sum(1 for stage, _ in log if stage == "call")
    assert sum(report.calls.values()) == sum(1 for stage, _ in log if stage != "call")
    # A sub-graph task counts as executed when its input stage or anything inside its sub-graph ran.
    stage_paths = {p for _, p in log}
    entered = {g for g in graph_task_paths(graph) if any(p.startswith(f"{g} > ") for p in stage_paths)}
    assert set(report.executed) == stage_paths | entered
    for path, value in model.outputs.items():
        assert graph.find(path).output == value, path


# -- the properties ---------------------------------------------------------------------------------
@SETTINGS
@given(case=cases())
def test_random_graphs_round_trip_replay_for_free_and_render(case: Case) -> None:
    GENERATED["graphs (round trip + replay)"] += 1
    GENERATED["tasks"] += len(all_tasks(case.specs))
    log: list[tuple[str, str]] = []
    registry: dict[str, Any] = {}
    graph = build(case.specs, log, registry, graph_input=case.graph_input, output=case.output)
    model = Model()
    expected = model.evaluate(case.specs, case.graph_input, case.output)

    assert graph.run(registry, llm=RecordingLLM(log), progress=False) == expected
    check_run_matches_model(graph, log, model)
    assert all(t.status == "done" for t in graph.tasks.values())
    check_round_trip(graph)
    check_renders(graph)

    log.clear()
    replay = TaskGraph.from_json(json.loads(json.dumps(graph.to_json())))
    assert replay.run(registry, llm=RecordingLLM(log), progress=False) == expected
    assert log == []
    assert replay.last_run is not None
    assert replay.last_run.llm_calls == 0 and not replay.last_run.calls
    assert replay.last_run.executed == []
    # Nothing changes in the trace, except that a reused sub-graph task's times are those of the replay.
    assert _without_subgraph_times(replay.to_json()) == _without_subgraph_times(graph.to_json())


def _without_subgraph_times(value: Any) -> Any:
    if isinstance(value, dict):
        timed = value.get("type") == "graph"
        return {k: _without_subgraph_times(v) for k, v in value.items() if not (timed and k.endswith("ed_at"))}
    if isinstance(value, list):
        return [_without_subgraph_times(v) for v in value]
    return value


@st.composite
def edits(draw: st.DrawFn, case: Case) -> tuple[str, str, Any]:
    """(kind, task path, new value): kind is output, prompt, response or graph_input."""
    tasks = all_tasks(case.specs)
    llm_tasks = [(path, chain) for path, chain in tasks if chain[-1].kind == "llm"]
    kind = draw(st.sampled_from([*(["response", "prompt"] if llm_tasks else []), "output", "graph_input"]))
    path, chain = ("", []) if kind == "graph_input" else draw(st.sampled_from(tasks if kind == "output" else llm_tasks))
    salt = draw(st.integers(0, 10**6))
    if kind == "graph_input":
        return kind, path, {"edited": salt}
    if kind == "prompt":
        spec = chain[-1]
        return kind, path, prompt_value(spec, path, [], {}, None, tag=f"edited {salt} ")
    if kind == "response":
        return kind, path, f"edited reply {salt}"
    return kind, path, draw(st.sampled_from([None, {"edited": salt}, [salt, "x"], f"s{salt}"]))


@SETTINGS
@given(data=st.data(), case=cases())
def test_an_edit_reruns_exactly_what_the_fingerprint_rule_says(data: st.DataObject, case: Case) -> None:
    GENERATED["graphs (edit + re-run)"] += 1
    GENERATED["tasks"] += len(all_tasks(case.specs))
    log: list[tuple[str, str]] = []
    registry: dict[str, Any] = {}
    graph = build(case.specs, log, registry, graph_input=case.graph_input, output=case.output)
    model = Model()
    model.evaluate(case.specs, case.graph_input, case.output)
    graph.run(registry, llm=RecordingLLM(log), progress=False)
    # The edit is applied to a reloaded trace, as a person would after receiving the file.
    graph = TaskGraph.from_json(json.loads(json.dumps(graph.to_json())))

    kind, path, value = data.draw(edits(case))
    GENERATED[f"edits of {kind}"] += 1
    gi = case.graph_input
    chain = dict(all_tasks(case.specs)).get(path, [])
    if kind == "graph_input":
        graph.graph_input = gi = value
    elif kind == "output":
        graph.find(path).edit(output=value)
        model.edit_result(chain, path, value)
    elif kind == "prompt":
        graph.find(path).edit(prompt=value)
        model.state[("format", path)] = (model.state[("format", path)][0], value)
    else:
        graph.find(path).edit(response=value)
        model.state[("call", path)] = (model.state[("call", path)][0], value)

    log.clear()
    expected = model.evaluate(case.specs, gi, case.output)
    assert graph.run(registry, llm=RecordingLLM(log), progress=False) == expected
    check_run_matches_model(graph, log, model)
    check_round_trip(graph)
    check_renders(graph)
