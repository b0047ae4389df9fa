"""The JSON trace format ``llmtaskgraph/1``: graph, tasks and everything their runs produced.

Loading validates every field and names the first bad one (``tasks[3].deps[0]``); it never
imports, evaluates or resolves anything named in the file, and never modifies its input. Tasks of
the usual shape take a fast path that checks the same rules without building field paths; any
other task, and every problem, goes the careful way, which names the field.
"""

from __future__ import annotations

import graphlib
import json
import os
import tempfile
from collections.abc import Callable
from math import isfinite
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidTraceError
from ..fingerprint import _bad_text, _find_problem, _plainly_fine
from ..model.tasks import PATH_SEP, STATUSES, LLMTask, PythonTask, Task, TaskError, TaskGraphTask, valid_id

if TYPE_CHECKING:
    from ..model.graph import TaskGraph

FORMAT = "llmtaskgraph/1"
MAX_NESTING = 64
"""Deepest chain of sub-graphs a trace may hold; deeper input is refused rather than recursed into."""

_COMMON = ("id", "type", "name", "key", "created_by", "deps", "kwdeps", "inputs")
_RECORD = (
    "status", "prompt", "response", "output", "fingerprints", "reads_graph_input", "error",
    "started_at", "finished_at", "children",
)
_TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "python": ("fn",),
    "llm": ("formatter", "parser", "params", "sample"),
    "graph": ("input_formatter", "subgraph"),
}
_TYPES: dict[str, type[Task]] = {"python": PythonTask, "llm": LLMTask, "graph": TaskGraphTask}


# -- writing ----------------------------------------------------------------------------------------
def graph_to_json(graph: TaskGraph) -> dict[str, Any]:
    return {"format": FORMAT, **_graph_body(graph)}


def _graph_body(graph: TaskGraph) -> dict[str, Any]:
    return {
        "graph_input": graph.graph_input,
        "output_task": graph._output_id,
        "tasks": [_task_to_json(t) for t in graph.tasks.values()],
    }


def _task_to_json(task: Task) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": task.id, "type": task.type, "name": task.name, "key": task.key, "created_by": task.created_by,
        "deps": list(task.deps), "kwdeps": dict(task.kwdeps), "inputs": task.inputs,
    }
    if isinstance(task, PythonTask):
        out["fn"] = task.fn_name
    elif isinstance(task, LLMTask):
        out.update(formatter=task.formatter_name, parser=task.parser_name, params=task.params, sample=task.sample)
    elif isinstance(task, TaskGraphTask):
        out.update(input_formatter=task.input_formatter_name, subgraph=_graph_body(task.subgraph))
    rec = task.record
    err = rec.error
    out.update(
        status=rec.status,
        prompt=rec.prompt,
        response=rec.response,
        output=rec.output,
        fingerprints=dict(rec.fingerprints),
        reads_graph_input=list(rec.reads_graph_input),
        error=None if err is None else {"type": err.type, "message": err.message, "traceback": err.traceback, "stage": err.stage},
        started_at=rec.started_at,
        finished_at=rec.finished_at,
        children=list(rec.children),
    )
    return out


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()
"""The mode ``open(path, "w")`` would give a new file."""


def save(graph: TaskGraph, path: Path) -> None:
    """Write atomically: a temporary file in the same folder, flushed to disk, then renamed over ``path``."""
    text = json.dumps(graph.to_json(), ensure_ascii=False, allow_nan=False)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        os.chmod(tmp, _FILE_MODE)  # mkstemp's 0600 would make every saved trace private to its writer
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- reading ----------------------------------------------------------------------------------------
def load(path: Path) -> TaskGraph:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidTraceError(f"`{path}` is not UTF-8 text ({exc})") from exc
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, or a number too long to read
        raise InvalidTraceError(f"`{path}` is not valid JSON: {exc}") from exc
    return graph_from_json(data)


def graph_from_json(data: Any) -> TaskGraph:
    obj = _Reader("").obj(data, ("format", "graph_input", "output_task", "tasks"))
    fmt = obj.get("format")
    if fmt != FORMAT:
        raise InvalidTraceError(f"unsupported format {_shown(fmt)}; this version of llmtaskgraph reads {FORMAT!r}", "format")
    return _graph_from(obj, "", 0)


class _Reader:
    """Typed field access that reports the path of whatever is wrong."""

    def __init__(self, path: str) -> None:
        self.path = path

    def at(self, field: str) -> str:
        return f"{self.path}.{field}" if self.path else field

    def obj(self, value: Any, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise InvalidTraceError(f"expected an object, got {_kind(value)}", self.path or "<root>")
        for key in value:
            if key not in allowed:
                raise InvalidTraceError(f"unknown field (expected one of {', '.join(allowed)})", self.at(str(key)))
        for key in required:
            if key not in value:
                raise InvalidTraceError("required field is missing", self.at(key))
        return value

    def get(self, obj: dict[str, Any], field: str, check: Callable[[Any], bool], expected: str, default: Any = None) -> Any:
        value = obj.get(field, default)
        if not check(value):
            raise InvalidTraceError(f"expected {expected}, got {_kind(value)}", self.at(field))
        if field not in ("tasks", "subgraph"):  # those are checked field by field as they are read
            problem = _find_problem(value, self.at(field))  # lone surrogates, numbers too long for text, ...
            if problem is not None:
                raise InvalidTraceError(problem[1], problem[0])
        return value

    def json_value(self, obj: dict[str, Any], field: str) -> Any:
        value = obj.get(field)
        problem = _find_problem(value, self.at(field))
        if problem is not None:
            raise InvalidTraceError(problem[1], problem[0])
        return value


def _shown(value: Any) -> str:
    """A string's repr (cut short), else its kind: never the repr of a huge or deeply nested value."""
    if value is None or isinstance(value, (str, float)) or (isinstance(value, int) and value.bit_length() <= 64):
        return f"{value!r:.60}"
    return f"({_kind(value)})"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    if isinstance(value, int) and value.bit_length() > 64:
        return "a very long number"
    text = repr(value) if isinstance(value, (bool, int, float)) else f"{value!r:.40}" if isinstance(value, str) else ""
    return f"{names.get(type(value), type(value).__name__)} {text}".strip()


def _is_str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _opt_str(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _is_number_or_none(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _graph_from(obj: dict[str, Any], path: str, depth: int) -> TaskGraph:
    from ..model.graph import TaskGraph

    if depth > MAX_NESTING:
        raise InvalidTraceError(f"sub-graphs are nested more than {MAX_NESTING} deep", path or "<root>")
    r = _Reader(path)
    r.obj(obj, ("format", "graph_input", "output_task", "tasks"), ("tasks",))
    graph = TaskGraph(r.json_value(obj, "graph_input"))
    tasks_value = r.get(obj, "tasks", lambda v: isinstance(v, list), "a list of tasks")
    tasks = graph.tasks
    known = tasks.__contains__
    backward = True  # every dependency and creator so far is a task listed before: none missing, no cycle
    parents: list[Task] = []  # tasks that list children, which usually come later
    for i, item in enumerate(tasks_value):
        task = _task_fast(item) or _task_from(item, r.at(f"tasks[{i}]"), depth)
        tid = str(task.id)
        if tid in tasks:
            raise InvalidTraceError(f"duplicate task id `{tid}`", r.at(f"tasks[{i}].id"))
        task.graph = graph
        if backward:
            backward = (all(map(known, task.deps)) and (not task.kwdeps or all(map(known, task.kwdeps.values())))
                        and (task.created_by is None or task.created_by in tasks))
        if task.record.children:
            parents.append(task)
        tasks[tid] = task
    if not (backward and all(all(map(known, t.record.children)) for t in parents)):
        _check_references(graph, r)  # finds what is missing or the cycle, and names it
    output_id = r.get(obj, "output_task", _opt_str, "a task id or null")
    if output_id is not None and output_id not in graph.tasks:
        raise InvalidTraceError(f"`{output_id}` is not a task in this graph", r.at("output_task"))
    graph._output_id = output_id
    return graph


# The fast path: most tasks of most traces have the exact shape ``to_json`` writes.
_FAST_SIZES = {t: len({*_COMMON, *_RECORD, *_TYPE_FIELDS[t]}) for t in ("python", "llm")}
_FAST_COMMON = (
    "id", "deps", "kwdeps", "inputs", "children", "name", "key", "created_by", "status", "fingerprints",
    "reads_graph_input", "response", "started_at", "finished_at", "output", "prompt", "error",
)
assert {*_FAST_COMMON, "type"} == {*_COMMON, *_RECORD}, "the fast path must check every field"
_fields_of = itemgetter(*_FAST_COMMON)
_llm_fields_of = itemgetter(*_TYPE_FIELDS["llm"])
_STATUS_SET = frozenset(STATUSES)
_ERROR_FIELDS = frozenset(("type", "message", "traceback", "stage"))


def _text(v: Any) -> bool:
    """A ``str`` (not a subclass) that UTF-8 can encode: what ``_find_problem`` accepts as a string."""
    return type(v) is str and (v.isascii() or not _bad_text(v))


def _opt_text(v: Any) -> bool:
    return v is None or _text(v)


def _texts(v: Any) -> bool:
    if type(v) is not list:
        return False
    for x in v:
        if type(x) is not str or not (x.isascii() or not _bad_text(x)):
            return False
    return True


def _task_fast(item: Any) -> Task | None:
    """The usual task, checked with straight-line code and built; None sends it to :func:`_task_from`.

    Loading a large trace spends its time here, so this accepts only the shape ``to_json`` writes
    (every field present, exact JSON types, no sub-graph) and checks it by the same rules as
    :func:`_task_from` without building a field path per check. Everything else, valid or not, takes
    the careful path, which accepts the same tasks and names the first problem in the others;
    ``tests/test_trace_fast_path.py`` holds both paths to the same results.
    """
    if type(item) is not dict:
        return None
    ttype: Any = item.get("type")
    if type(ttype) is not str or len(item) != _FAST_SIZES.get(ttype):
        return None
    try:  # with the count above: exactly the fields of this task type
        (tid, deps, kwdeps, inputs, children, name, key, created_by, status, fingerprints, reads, response,
         started, finished, output, prompt, error_obj) = _fields_of(item)
        if ttype == "python":
            fn = item["fn"]
        else:
            formatter, parser, params, sample = _llm_fields_of(item)
    except KeyError:
        return None
    if not (type(tid) is str and tid and (tid.isascii() or not _bad_text(tid)) and PATH_SEP not in tid
            and _texts(deps) and _texts(children)
            and (name is None or _text(name)) and (key is None or _text(key))
            and (created_by is None or _text(created_by))
            and type(kwdeps) is dict and (not kwdeps or (_texts(list(kwdeps)) and _texts(list(kwdeps.values()))))
            and (inputs is None or (type(inputs) is dict and (
                not inputs or (_plainly_fine(inputs) and inputs.keys().isdisjoint(kwdeps)))))):
        return None
    if ttype == "python":
        if not (type(fn) is str and fn and (fn.isascii() or not _bad_text(fn))):
            return None
    elif not (_text(formatter) and formatter and _text(parser) and parser and type(params) is dict
              and (not params or _plainly_fine(params))
              and type(sample) is int and 0 <= sample and sample.bit_length() <= 64):
        return None
    if not (type(status) is str and status in _STATUS_SET and type(fingerprints) is dict and type(reads) is list
            and (started is None or (type(started) is float and isfinite(started)))
            and (finished is None or (type(finished) is float and isfinite(finished)))
            and (output is None or _plainly_fine(output)) and (prompt is None or _plainly_fine(prompt))
            and (response is None or (type(response) is dict and type(response.get("text")) is str
                                      and _plainly_fine(response)))):
        return None
    stages = _TYPES[ttype].stages
    for stage, fp in fingerprints.items():
        if type(stage) is not str or stage not in stages or type(fp) is not str or not (fp.isascii() or not _bad_text(fp)):
            return None
    for stage in reads:
        if type(stage) is not str or stage not in stages:
            return None
    error = None
    if error_obj is not None:
        error = _error_fast(error_obj)
        if error is None:
            return None
    return _build(ttype, item, error)


def _error_fast(obj: Any) -> TaskError | None:
    """A stored error of the usual shape, or None to have the careful path look at it."""
    if type(obj) is not dict or not obj.keys() <= _ERROR_FIELDS:
        return None
    etype: Any
    message: Any
    etype, message, traceback, stage = obj.get("type"), obj.get("message"), obj.get("traceback", ""), obj.get("stage")
    if not (_text(etype) and _text(message) and _text(traceback) and _opt_text(stage)):
        return None
    return TaskError(type=etype, message=message, traceback=traceback, stage=stage)


# The careful path: each field checked in turn, so the first bad one is named.
def _task_from(item: Any, path: str, depth: int) -> Task:
    r = _Reader(path)
    head = r.obj(item, (*_COMMON, *_RECORD, *sum(_TYPE_FIELDS.values(), ())), ("id", "type"))
    ttype = head["type"]
    if not isinstance(ttype, str) or ttype not in _TYPES:
        raise InvalidTraceError(f"unknown task type {_shown(ttype)} (expected one of {', '.join(_TYPES)})", r.at("type"))
    obj = r.obj(item, (*_COMMON, *_RECORD, *_TYPE_FIELDS[ttype]), (*_TYPE_FIELDS[ttype][:1], "id", "type"))
    fields: dict[str, Any] = {
        "id": r.get(obj, "id", valid_id, f"a non-empty string without {PATH_SEP!r}"),
        "deps": r.get(obj, "deps", _str_list, "a list of task ids", []),
        "kwdeps": r.get(obj, "kwdeps", lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
                        "an object of name -> task id", {}),
        "name": r.get(obj, "name", _opt_str, "a string or null"),
        "key": r.get(obj, "key", _opt_str, "a string or null"),
        "inputs": _inputs(r, obj),
    }
    subgraph = None
    if ttype == "python":
        fields["fn"] = r.get(obj, "fn", _is_str, "a registry name")
    elif ttype == "llm":
        params = r.json_value(obj, "params") or {}
        if not isinstance(params, dict):
            raise InvalidTraceError(f"expected an object of Messages API settings, got {_kind(params)}", r.at("params"))
        fields["params"] = params
        fields["sample"] = r.get(obj, "sample", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                                 "a whole number >= 0", 0)
        fields["formatter"] = r.get(obj, "formatter", _is_str, "a registry name")
        fields["parser"] = r.get(obj, "parser", _is_str, "a registry name")
    else:
        subgraph = _graph_from(r.get(obj, "subgraph", lambda v: isinstance(v, dict), "an object (the sub-graph)"),
                               r.at("subgraph"), depth + 1)
        fields["input_formatter"] = r.get(obj, "input_formatter", _is_str, "a registry name")
    fields["created_by"] = r.get(obj, "created_by", _opt_str, "a task id or null")
    error = _record_fields(obj, r, _TYPES[ttype].stages, fields)
    return _build(ttype, fields, error, subgraph)


def _inputs(r: _Reader, obj: dict[str, Any]) -> dict[str, Any]:
    inputs = r.json_value(obj, "inputs")
    if inputs is None:
        return {}
    if not isinstance(inputs, dict):
        raise InvalidTraceError(f"expected an object of argument name -> JSON value, got {_kind(inputs)}", r.at("inputs"))
    clash = set(inputs) & set(obj.get("kwdeps") or {})
    if clash:
        raise InvalidTraceError(f"{sorted(clash)} given both in `kwdeps` and in `inputs`", r.at("inputs"))
    return inputs


def _record_fields(obj: dict[str, Any], r: _Reader, stages: tuple[str, ...], fields: dict[str, Any]) -> TaskError | None:
    """Check the record's fields into ``fields``; returns the stored error."""
    fields["status"] = r.get(obj, "status", lambda v: v in STATUSES, f"one of {', '.join(STATUSES)}", "pending")
    fields["fingerprints"] = r.get(obj, "fingerprints", lambda v: isinstance(v, dict) and all(
        k in stages and isinstance(x, str) for k, x in v.items()), f"an object of stage ({', '.join(stages)}) -> string", {})
    fields["reads_graph_input"] = r.get(obj, "reads_graph_input", lambda v: _str_list(v) and all(s in stages for s in v),
                                        f"a list of stage names ({', '.join(stages)})", [])
    response = r.json_value(obj, "response")
    if response is not None and not (isinstance(response, dict) and isinstance(response.get("text"), str)):
        raise InvalidTraceError("expected null or an object with a string `text`", r.at("response"))
    fields["response"] = response
    error_obj = obj.get("error")
    error = None
    if error_obj is not None:
        er = _Reader(r.at("error"))
        er.obj(error_obj, ("type", "message", "traceback", "stage"), ("type", "message"))
        error = TaskError(
            type=er.get(error_obj, "type", lambda v: isinstance(v, str), "a string"),
            message=er.get(error_obj, "message", lambda v: isinstance(v, str), "a string"),
            traceback=er.get(error_obj, "traceback", lambda v: isinstance(v, str), "a string", ""),
            stage=er.get(error_obj, "stage", _opt_str, "a string or null"),
        )
    fields["output"] = r.json_value(obj, "output")
    fields["prompt"] = r.json_value(obj, "prompt")
    fields["started_at"] = r.get(obj, "started_at", _is_number_or_none, "a number or null")
    fields["finished_at"] = r.get(obj, "finished_at", _is_number_or_none, "a number or null")
    fields["children"] = r.get(obj, "children", _str_list, "a list of task ids", [])
    return error


def _build(ttype: str, f: dict[str, Any], error: TaskError | None, subgraph: TaskGraph | None = None) -> Task:
    """The task from fields either path has checked; copies what it keeps, so the input is never shared or changed."""
    name, key, tid, inputs = f["name"], f["key"], f["id"], f["inputs"]
    task: Task
    if ttype == "python":
        task = PythonTask(f["fn"], *f["deps"], name=name, key=key, id=tid, inputs=inputs)
    elif ttype == "llm":
        task = LLMTask(f["formatter"], f["parser"], *f["deps"], params=f["params"], sample=f["sample"],
                       name=name, key=key, id=tid, inputs=inputs)
    else:
        assert subgraph is not None
        task = TaskGraphTask(subgraph, f["input_formatter"], *f["deps"], name=name, key=key, id=tid, inputs=inputs)
    task.kwdeps.update(f["kwdeps"])  # not constructor arguments: keyword names like `name` would collide
    task.created_by = f["created_by"]
    rec = task.record  # the empty record the constructor made, filled in place rather than replaced
    status, response, fingerprints, reads, children = (
        f["status"], f["response"], f["fingerprints"], f["reads_graph_input"], f["children"])
    rec.status = "pending" if status == "running" else status  # a run that was killed mid-task
    rec.output = f["output"]
    rec.prompt = f["prompt"]
    if response is not None:
        rec.response = dict(response)
    if fingerprints:
        rec.fingerprints.update(fingerprints)
    if reads:
        rec.reads_graph_input.extend(reads)
    rec.error = error
    rec.started_at = f["started_at"]
    rec.finished_at = f["finished_at"]
    if children:
        rec.children.extend(children)
    return task


def _check_references(graph: TaskGraph, r: _Reader) -> None:
    index = {tid: i for i, tid in enumerate(graph.tasks)}
    for tid, task in graph.tasks.items():
        where = r.at(f"tasks[{index[tid]}]")
        for field, refs in (("deps", task.deps), ("kwdeps", list(task.kwdeps.values())), ("children", task.record.children)):
            for ref in refs:
                if ref not in graph.tasks:
                    raise InvalidTraceError(f"task `{tid}` refers to `{ref}`, which is not in the graph", f"{where}.{field}")
        if task.created_by is not None and task.created_by not in graph.tasks:
            raise InvalidTraceError(f"task `{tid}` was created by `{task.created_by}`, which is not in the graph", f"{where}.created_by")
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter({tid: t.all_deps() for tid, t in graph.tasks.items()})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(f"`{t}`" for t in reversed(exc.args[1]))
        raise InvalidTraceError(f"the dependencies form a cycle: {cycle}; remove one of these deps", r.at("tasks")) from exc


def same_spec(a: TaskGraph, b: TaskGraph) -> bool:
    """Whether two graphs declare the same tasks (ids, types, functions, deps, settings, sub-graphs)."""
    if list(a.tasks) != list(b.tasks):
        return False
    for tid, ta in a.tasks.items():
        tb = b.tasks[tid]
        if not ta.spec_equals(tb):
            return False
        if isinstance(ta, TaskGraphTask) and isinstance(tb, TaskGraphTask) and not same_spec(ta.subgraph, tb.subgraph):
            return False
    return True
