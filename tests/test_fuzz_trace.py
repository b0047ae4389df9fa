"""Fuzzing ``TaskGraph.from_json`` and ``TaskGraph.load`` with mutated traces.

People load traces someone sent them and edit JSON by hand. Whatever the input, loading must
either succeed or raise :class:`InvalidTraceError` naming the field; never another exception,
never a hang, and nothing may run that is not in the registry. Inputs that load must also be
usable: they save, round-trip, render, and run (or fail with the library's own errors).

The mutations are seeded, so every CI run tries the same inputs. An audit hook watches for any
``exec``/``compile``/``import``/process start while a fuzzed trace is loaded or run, and every
function the run calls must come from the recording registry.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import math
import random
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from llmtaskgraph import (
    GraphValidationError,
    InvalidTraceError,
    LLMTask,
    MissingFunctionError,
    OfflineLLM,
    PythonTask,
    TaskGraph,
    TaskGraphError,
    TaskGraphTask,
)
from llmtaskgraph.cli import print_table
from llmtaskgraph.trace.diff import diff_graphs
from llmtaskgraph.trace.summary import task_rows
from llmtaskgraph.views.report import _task_details, render_report

SEED = 20261124
FROM_JSON_INPUTS = 1000
LOAD_INPUTS = 500
CLI_INPUTS = 150
PER_INPUT_SECONDS = 10.0
"""A hang detector, not a speed claim: any single input taking this long is reported as a hang."""

HOSTILE_NAMES = [
    "__class__", "__import__", "__init__", "__getattribute__", "__getitem__", "__dict__", "__builtins__",
    "__reduce__", "eval", "exec", "compile", "open", "getattr", "globals", "breakpoint", "print", "input",
    "os.system", "subprocess.Popen", "builtins.eval", "importlib.import_module", "sys.exit", "lambda: 0",
    "__proto__", "constructor", "keys", "get", "items", "register", "add", "merge",
]
HOSTILE_IDS = ["", " > ", "a > b", "t0 > x", "/", "t0/c0", "#2", "\x00", "\u202e", "x" * 5000, "__class__", "tasks"]
AUDITED = ("exec", "compile", "import", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
           "subprocess.Popen", "ctypes.dlopen", "builtins.input", "socket.connect", "webbrowser.open")


# -- the base traces the mutations start from ------------------------------------------------------
def _base_functions() -> dict[str, Callable[..., Any]]:
    def spawn(ctx: Any, x: Any) -> Any:
        for i in range(2):
            ctx.add_task(PythonTask("leaf", ctx.task, key=f"k{i}"))
        return x

    def boom(ctx: Any, *args: Any) -> Any:
        raise ValueError("boom <b>&</b>")

    return {
        "load": lambda ctx: {"words": [ctx.graph_input, "baz"]},
        "ask": lambda ctx, v: f"Repeat: {v}",
        "ask_list": lambda ctx, *v: [{"role": "user", "content": json.dumps(v)}],
        "ask_dict": lambda ctx, **kw: {"messages": [{"role": "user", "content": json.dumps(kw)}], "system": "s"},
        "parse": lambda ctx, text: {"reply": text, "n": len(text)},
        "none": lambda ctx, *a, **k: None,
        "leaf": lambda ctx, x: [x, ctx.task.key],
        "spawn": spawn,
        "boom": boom,
        "sub_in": lambda ctx, *a: {"from": list(a)},
        "inner": lambda ctx: ctx.graph_input,
    }


def base_traces() -> list[dict[str, Any]]:
    registry = _base_functions()
    simple = TaskGraph("bar")
    first = simple.add_task(PythonTask("load"))
    simple.add_task(LLMTask("ask", "parse", first, params={"max_tokens": 20}))
    simple.run(registry, llm=OfflineLLM(), progress=False)

    rich = TaskGraph({"k": [1, 2.5, None, True]})
    a = rich.add_task(PythonTask("load", name="loader"))
    b = rich.add_task(LLMTask("ask_list", "parse", a, a, params={"model": "m", "temperature": 0}))
    c = rich.add_task(LLMTask("ask_dict", "parse", x=a, y=b, sample=2))
    inner = TaskGraph()
    i1 = inner.add_task(PythonTask("inner"))
    inner_sub = TaskGraph()
    inner_sub.add_task(PythonTask("inner"))
    inner.add_task(TaskGraphTask(inner_sub, "sub_in", i1))
    inner.add_output_task(PythonTask("none", i1))
    d = rich.add_task(TaskGraphTask(inner, "sub_in", b, c))
    e = rich.add_task(PythonTask("spawn", d))
    f = rich.add_task(PythonTask("boom", e))
    rich.add_task(PythonTask("none", f))
    rich.add_output_task(PythonTask("none", e, c))
    with pytest.raises(TaskGraphError):
        rich.run(registry, llm=OfflineLLM(), progress=False)
    return [simple.to_json(), rich.to_json()]


# -- mutations ---------------------------------------------------------------------------------------
Path_ = list[Any]


def _paths(value: Any, limit: int = 3000) -> list[Path_]:
    """Container slots in ``value`` (breadth first, at most ``limit``), as lists of keys."""
    found: list[Path_] = []
    queue: deque[tuple[Any, Path_]] = deque([(value, [])])
    while queue and len(found) < limit:
        v, p = queue.popleft()
        items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
        for k, child in itertools.islice(items, limit):
            found.append([*p, k])
            queue.append((child, [*p, k]))
    return found


def _parent(root: Any, path: Path_) -> Any:
    for key in path[:-1]:
        root = root[key]
    return root


@functools.cache
def _deep(depth: int) -> Any:
    """``depth`` nested lists (built once per depth and shared: building 200,000 levels takes a while)."""
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


_ODD_VALUES: list[Callable[[random.Random], Any]] = [
    *(lambda rng, v=v: copy.copy(v) for v in (
        None, True, False, 0, -1, 1.5, 10**30, -(10**18), "", "x", "pending", [], {}, [None], {"": None},
        {"text": 1}, {"text": "t"}, ["a", 1], "\ud800", "<script>alert(1)</script>", float("nan"),
        float("inf"), (1, 2), {1: "int key"}, b"bytes", {"a", "b"}, 10**5000, "A" * 1_000_000,
    )),
    lambda rng: object(),
    lambda rng: _deep(rng.choice([50, 70, 2000, 100_000])),
    lambda rng: rng.choice(HOSTILE_NAMES),
    lambda rng: rng.choice(HOSTILE_IDS),
]


def _odd_value(rng: random.Random) -> Any:
    return rng.choice(_ODD_VALUES)(rng)


def _tasks_of(data: Any) -> list[Any]:
    """Task lists of the graph and its sub-graphs (to aim mutations at ids and references)."""
    lists = []
    stack = [data]
    while stack:
        g = stack.pop()
        if isinstance(g, dict) and isinstance(g.get("tasks"), list):
            lists.append(g["tasks"])
            stack.extend(t.get("subgraph") for t in g["tasks"] if isinstance(t, dict))
    return lists


def mutate(data: Any, rng: random.Random) -> str:
    """Apply one random mutation in place; returns its kind (for the tally)."""
    kind = rng.choice(["type", "type", "delete", "delete", "huge", "deep", "py_cycle", "collide", "dep_cycle",
                       "registry_name", "hostile_id", "field", "format", "extra_field", "swap"])
    paths = _paths(data)
    task_lists = [ts for ts in _tasks_of(data) if ts]
    if kind in ("collide", "dep_cycle", "registry_name", "hostile_id", "field") and task_lists:
        tasks = rng.choice(task_lists)
        i, j = rng.randrange(len(tasks)), rng.randrange(len(tasks))
        ti, tj = tasks[i], tasks[j]
        if not (isinstance(ti, dict) and isinstance(tj, dict)):
            return kind
        if kind == "collide":
            field = rng.choice(["id", "created_by", "deps", "kwdeps", "children", "output_task"])
            if field == "id":
                ti["id"] = tj.get("id")
            elif field == "deps":
                ti["deps"] = [ti.get("id")]
            elif field == "kwdeps":
                ti["kwdeps"] = {"name": tj.get("id"), "__class__": ti.get("id")}
            elif field == "children":
                ti["children"] = [tj.get("id"), tj.get("id")]
            elif field == "output_task":
                data["output_task"] = rng.choice([ti.get("id"), "missing", 3])
            else:
                ti["created_by"] = ti.get("id")
        elif kind == "dep_cycle":
            if isinstance(tj.get("deps"), list):
                tj["deps"].append(ti.get("id"))
            ti.setdefault("deps", [])
            if isinstance(ti["deps"], list):
                ti["deps"].append(tj.get("id"))
        elif kind == "registry_name":
            field = rng.choice(["fn", "formatter", "parser", "input_formatter", "type"])
            ti[field] = rng.choice(HOSTILE_NAMES)
        elif kind == "hostile_id":
            ti["id"] = rng.choice(HOSTILE_IDS)
        else:
            field = rng.choice(["status", "fingerprints", "reads_graph_input", "error", "response", "sample",
                                "params", "started_at", "subgraph", "prompt"])
            ti[field] = rng.choice([
                "running", "done", "weird", {"run": "x", "call": 1}, ["parse", "format"], ["zzz"],
                {"type": "E", "message": "m"}, {"type": 1}, {"text": "t", "usage": {"input_tokens": "many"}},
                {"text": "t", "backend": "x", "usage": "many", "latency": "slow", "retries": "x", "model": ["m"]},
                {"text": "t", "backend": 1, "usage": {"output_tokens": True}, "latency": True, "retries": -5},
                -1, True, 10**30, float("nan"), float("-inf"), {"tasks": []}, {"tasks": "no"}, {"messages": []},
                [{"role": "user"}], _odd_value(rng),
            ])
        return kind
    if not paths:
        return "empty"
    path = rng.choice(paths)
    parent = _parent(data, path)
    key = path[-1]
    if kind == "delete":
        del parent[key]
    elif kind == "huge":
        parent[key] = rng.choice(["Z" * 2_000_000, list(range(200_000)), {str(i): i for i in range(50_000)}])
    elif kind == "deep":
        parent[key] = _deep(rng.choice([60, 500, 5000, 200_000]))
    elif kind == "py_cycle":
        target = parent[key] if isinstance(parent[key], (dict, list)) else parent
        if isinstance(target, dict):
            target["loop"] = target
        else:
            target.append(target)
    elif kind == "format":
        data["format"] = rng.choice(["llmtaskgraph/3", "llmtaskgraph/1 ", None, 1, ["llmtaskgraph/1"], "llmtaskgraph/1"])
    elif kind == "extra_field":
        if isinstance(parent, dict):
            parent[rng.choice(["__class__", "eval", "x", "__proto__"])] = "surprise"
    elif kind == "swap":
        other = _parent(data, rng.choice(paths))
        parent[key] = other  # a shared reference, or a cycle when ``other`` encloses ``parent``
    else:
        parent[key] = _odd_value(rng)
    return kind


# -- the guards -------------------------------------------------------------------------------------
_armed: list[list[str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _armed or not event.startswith(AUDITED) or _expected(event, args):
        return
    _armed[-1].append(f"{event} {str(args)[:120]}")


def _expected(event: str, args: tuple[Any, ...]) -> bool:
    """What the library itself legitimately does: run graphviz's ``dot``; format a traceback."""
    if event == "subprocess.Popen":
        return Path(str(args[0])).name == "dot"
    if event == "compile":  # the traceback module compiles source lines to point at the failing expression
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_filename.endswith("traceback.py"):
                return True
            frame = frame.f_back  # type: ignore[assignment]
    return False


sys.addaudithook(_audit)  # audit hooks cannot be removed; it records only while armed


@contextmanager
def guarded() -> Iterator[list[str]]:
    """Record audited events, and turn a hang into an exception after PER_INPUT_SECONDS."""
    events: list[str] = []

    def on_alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"an input took more than {PER_INPUT_SECONDS} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, PER_INPUT_SECONDS)  # pytest-timeout's alarm, if any
    started = time.monotonic()
    _armed.append(events)
    try:
        yield events
    finally:
        _armed.pop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if outer:  # give the outer alarm back what is left of it
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001))


class RecordingRegistry(dict[str, Callable[..., Any]]):
    """The base functions, each recording its name when called; lookups of other names are recorded too."""

    def __init__(self) -> None:
        super().__init__()
        self.called: list[str] = []
        self.looked_up: list[str] = []
        for name, fn in _base_functions().items():
            self[name] = self._recorded(name, fn)

    def _recorded(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.called.append(name)
            return fn(*args, **kwargs)

        return call

    def __getitem__(self, name: str) -> Callable[..., Any]:
        self.looked_up.append(name)
        return super().__getitem__(name)


# -- checking one input -----------------------------------------------------------------------------
def check_loaded(graph: TaskGraph, outcomes: Counter[str], draw: bool = True) -> None:
    """A loaded trace must be usable: it saves, round-trips, renders and runs within the library's errors.

    ``draw=False`` skips the graphviz drawing (a ``dot`` process per input) but still renders the rest.
    """
    data = graph.to_json()
    json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")  # what save() writes
    assert TaskGraph.from_json(data).to_json() == data
    assert not diff_graphs(graph, TaskGraph.from_json(data), all_fields=True)
    if draw:
        render_report(graph)
    else:
        for row in task_rows(graph):
            _task_details(row)
    print_table(graph, file=_Null())
    registry = RecordingRegistry()
    try:
        graph.run(registry, llm=OfflineLLM(), progress=False)
        outcomes["ran"] += 1
    except MissingFunctionError:
        outcomes["run: missing function"] += 1
    except TaskGraphError:
        outcomes["run: task errors"] += 1
    except GraphValidationError:
        outcomes["run: validation error"] += 1
    assert set(registry.called) <= set(_base_functions()), registry.called
    assert not set(registry.called) - set(registry.looked_up)


class _Null:
    def write(self, text: str) -> int:
        return len(text)


def check_error(exc: InvalidTraceError) -> None:
    if not exc.path:  # the file as a whole is not JSON: the message names the file and the position
        assert "is not valid JSON" in str(exc) or "is not UTF-8" in str(exc), exc
        return
    assert f"`{exc.path}`" in str(exc)


def _try(load: Callable[[], TaskGraph], outcomes: Counter[str], label: str) -> None:
    with guarded() as events:
        try:
            graph = load()
        except InvalidTraceError as exc:
            check_error(exc)
            outcomes["refused"] += 1
        else:
            outcomes["loaded"] += 1
            check_loaded(graph, outcomes, draw=outcomes["loaded"] % 4 == 1)
    assert not events, f"{label}: loading or running a trace triggered {events}"


def _fingerprint(value: Any) -> str | None:
    """A comparable snapshot of an input (None when it cannot be dumped: cycles, non-JSON objects)."""
    try:
        return json.dumps(value, sort_keys=True, default=repr)
    except (ValueError, RecursionError, TypeError):
        return None


# -- the tests --------------------------------------------------------------------------------------
def test_mutated_traces_load_or_raise_invalid_trace_error(capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(SEED)
    bases = base_traces()
    _warm_up(bases)
    outcomes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for n in range(FROM_JSON_INPUTS):
        data = copy.deepcopy(rng.choice(bases))
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            kinds[mutate(data, rng)] += 1
        before = _fingerprint(data) if n % 5 == 0 else None  # a sample: snapshots of huge inputs are slow
        _try(lambda data=data: TaskGraph.from_json(data), outcomes, f"from_json input {n}")
        if before is not None and not _has_nan(data):
            assert _fingerprint(data) == before, f"from_json input {n} was modified"
    with capsys.disabled():
        print(f"\nfuzz from_json: {FROM_JSON_INPUTS} inputs; mutations {dict(kinds)}; outcomes {dict(outcomes)}")
    assert outcomes["refused"] and outcomes["loaded"]


def _has_nan(value: Any) -> bool:
    return "NaN" in (_fingerprint(value) or "")


def _text_mutations(rng: random.Random, text: str) -> bytes:
    kind = rng.randrange(16)  # 0-9: damage the text; 10-15: mutate the structure and write valid JSON
    if kind == 0:
        return text[: rng.randrange(len(text))].encode()
    if kind == 1:
        raw = bytearray(text.encode())
        for _ in range(rng.randint(1, 5)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    if kind == 2:
        return b"\xef\xbb\xbf" + text.encode()  # a BOM, as some editors write
    if kind == 3:
        return ("[" * rng.choice([1000, 100_000]) + "]" * 3).encode()
    if kind == 4:
        return text.replace('"graph_input": ', '"graph_input": ' + "9" * 6000 + ", \"x\": ", 1).encode()
    if kind == 5:
        return text.replace("null", "NaN", 1).replace("false", "Infinity", 1).encode()
    if kind == 6:
        return text.replace('"status": "done"', '"status": "done", "status": "eval"', 1).encode()
    if kind == 7:
        return rng.choice([b"", b"null", b"[]", b"\"llmtaskgraph/1\"", b"\x00\x01", b"\xff\xfe{}"])
    if kind == 8:
        return text.replace('"', '"\\ud800', 1).encode()
    if kind == 9:
        return text.encode("utf-16")
    data = json.loads(text)
    for _ in range(rng.randint(1, 3)):
        mutate(data, rng)
    try:
        return json.dumps(data, default=repr).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return text.encode()


def test_mutated_trace_files_load_or_raise_invalid_trace_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(SEED + 1)
    texts = [json.dumps(b, indent=1) for b in base_traces()]
    outcomes: Counter[str] = Counter()
    target = tmp_path / "trace.json"
    for n in range(LOAD_INPUTS):
        target.write_bytes(_text_mutations(rng, rng.choice(texts)))
        _try(lambda: TaskGraph.load(target), outcomes, f"load input {n}")
    with capsys.disabled():
        print(f"\nfuzz load: {LOAD_INPUTS} files; outcomes {dict(outcomes)}")
    assert outcomes["refused"] and outcomes["loaded"]


def _warm_up(bases: list[dict[str, Any]]) -> None:
    """Import everything a load, run and render use, before the audit hook starts recording."""
    for data in bases:
        check_loaded(TaskGraph.from_json(data), Counter())


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_registry_names_that_are_builtins_or_dunders_never_resolve_to_anything(name: str) -> None:
    data = base_traces()[0]
    data["tasks"][0]["fn"] = name
    graph = TaskGraph.from_json(data)
    graph.tasks[data["tasks"][0]["id"]].record.fingerprints.clear()  # make it run
    registry = RecordingRegistry()
    with guarded() as events, pytest.raises(MissingFunctionError) as caught:
        graph.run(registry, llm=OfflineLLM(), progress=False)
    assert f"`{name}`" in str(caught.value)
    assert registry.called == [] and not events


def test_a_python_level_reference_cycle_is_refused_not_looped_over() -> None:
    data = base_traces()[0]
    data["graph_input"] = loop = {"a": []}
    loop["a"].append(loop)
    with guarded(), pytest.raises(InvalidTraceError) as caught:
        TaskGraph.from_json(data)
    assert caught.value.path.startswith("graph_input")


def test_numbers_json_cannot_write_are_refused_with_the_field() -> None:
    for bad in (math.nan, math.inf):
        data = base_traces()[0]
        data["tasks"][0]["started_at"] = bad
        with pytest.raises(InvalidTraceError, match=r"tasks\[0\]\.started_at"):
            TaskGraph.from_json(data)


def test_the_command_line_on_mutated_trace_files_exits_0_or_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmtaskgraph.cli import main

    rng = random.Random(SEED + 2)
    texts = [json.dumps(b, indent=1) for b in base_traces()]
    good = tmp_path / "good.json"
    good.write_text(texts[1])
    for args in (["show", str(good)], ["report", str(good), "-o", str(tmp_path / "r.html")], ["diff", str(good), str(good)]):
        assert main(args) == 0  # and imports what the commands use before the audit hook watches
    capsys.readouterr()
    codes: Counter[int] = Counter()
    for n in range(CLI_INPUTS):
        target = tmp_path / f"t{n}.json"
        target.write_bytes(_text_mutations(rng, rng.choice(texts)))
        for args in (["show", str(target)], ["report", str(target), "-o", str(tmp_path / "r.html")],
                     ["diff", str(good), str(target)]):
            with guarded() as events:
                code = main(args)
            out, err = capsys.readouterr()
            assert not events
            codes[code] += 1
            if code == 2:
                assert err.startswith("llmtaskgraph: error: ") and len(err.strip().splitlines()) == 1, err
                assert str(target) in err
            else:
                assert code in (0, 1) and (code == 1) == (args[0] == "diff" and out != "no differences\n")
    with capsys.disabled():
        print(f"\nfuzz CLI: {CLI_INPUTS} files x show/report/diff; exit codes {dict(codes)}")
    assert codes[2] and codes[0]
