"""The JSON trace format ``llmtaskgraph/3``: graph, tasks and everything their runs produced.

Format 3 added whole replies (``response.content``: the content blocks as the API returned them, and
the reply's id, stop details and request id), an LLMTask's ``output_schema``, and the task types of
tool loops (``agent``, ``turn``, ``tool``); a format-2 reply holds its text alone and is read as one
text block. Format 2 added each task's ``versions`` (stage -> code version of the function that computed its
stored result) and ``basis`` (what its stored results were computed from, part by part); traces of
format 1 lack them and load with both empty.

Loading validates every field and names the first bad one (``tasks[3].deps``); it never imports,
evaluates or resolves anything named in the file, and never modifies its input. Each task goes
through one reader, :func:`_task`: its checks build no field path, since a path is only needed to
name a problem, and is built once one is found.
"""

from __future__ import annotations

import gc
import graphlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from math import isfinite
from operator import itemgetter
from pathlib import Path
from sys import intern
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import GraphValidationError, InvalidTraceError
from ..files import write_json_atomically
from ..fingerprint import _MAX_INT_BITS, _bad_text, _find_problem, _plainly_fine
from ..model.agent import FIRST_TURN, NEXT_TURN, TOOL_ERRORS, AgentTask, ToolCallTask, TurnTask, checked_tools
from ..model.tasks import (
    MAX_NESTING,
    PATH_SEP,
    STATUSES,
    LLMTask,
    PythonTask,
    Task,
    TaskError,
    TaskGraphTask,
    TaskRecord,
)

if TYPE_CHECKING:
    from ..model.graph import TaskGraph

FORMAT = "llmtaskgraph/3"
"""The format :func:`graph_to_json` writes."""
READS = ("llmtaskgraph/1", "llmtaskgraph/2", "llmtaskgraph/3")
"""Every format this version loads: every one it ever wrote."""

_GRAPH = ("format", "graph_input", "output_task", "tasks")
_COMMON = ("id", "type", "name", "key", "created_by", "deps", "kwdeps", "inputs")
_RECORD = (
    "status", "prompt", "response", "output", "fingerprints", "versions", "basis", "reads_graph_input", "error",
    "started_at", "finished_at", "children",
)
_TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "python": ("fn",),
    "llm": ("formatter", "parser", "params", "sample", "output_schema"),
    "graph": ("input_formatter", "subgraph"),
    "agent": ("formatter", "parser", "params", "output_schema", "tools", "max_turns", "tool_errors", "subgraph"),
    "turn": ("formatter", "parser", "params", "sample", "output_schema", "turn", "max_turns", "tools", "tool_errors"),
    "tool": ("fn", "tool", "tool_use_id", "tool_errors"),
}
"""Each type's own fields, in the order they are written."""
_TYPES: dict[str, type[Task]] = {
    "python": PythonTask, "llm": LLMTask, "graph": TaskGraphTask, "agent": AgentTask, "turn": TurnTask, "tool": ToolCallTask,
}
_ATTR = {"fn": "fn_name", "formatter": "formatter_name", "parser": "parser_name", "input_formatter": "input_formatter_name"}
"""Field -> task attribute, where the names differ."""
_CHECK_ORDER = ("params", "sample", "output_schema", "subgraph", "fn", "formatter", "parser", "input_formatter", "tools",
                "max_turns", "turn", "tool_errors", "tool", "tool_use_id")
"""The order a task's own fields are checked in, so the first problem named does not depend on the type."""
_ERROR = ("type", "message", "traceback", "stage")


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
    for name in _TYPE_FIELDS[task.type]:
        out[name] = _graph_body(task.subgraph) if name == "subgraph" else getattr(task, _ATTR.get(name, name))  # type: ignore[attr-defined]
    rec = task.record
    err = rec.error
    out.update(
        status=rec.status,
        prompt=rec.prompt,
        response=rec.response,
        output=rec.output,
        fingerprints=dict(rec.fingerprints),
        versions=dict(rec.versions),
        basis=dict(rec.basis),
        reads_graph_input=list(rec.reads_graph_input),
        error=None if err is None else {"type": err.type, "message": err.message, "traceback": err.traceback, "stage": err.stage},
        started_at=rec.started_at,
        finished_at=rec.finished_at,
        children=list(rec.children),
    )
    return out


def save(graph: TaskGraph, path: Path) -> None:
    """Write the trace atomically (see :mod:`llmtaskgraph.files`)."""
    write_json_atomically(path, graph.to_json())


# -- reading ----------------------------------------------------------------------------------------
def load(path: Path) -> TaskGraph:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidTraceError(f"`{path}` is not UTF-8 text ({exc})") from exc
    with _collector_paused():  # parsing, too, makes only what the loaded graph keeps
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, or a number too long to read
            raise InvalidTraceError(f"`{path}` is not valid JSON: {exc}") from exc
        return graph_from_json(data)


def graph_from_json(data: Any) -> TaskGraph:
    _check_object(data, "", _GRAPH)
    fmt = data.get("format")
    if type(fmt) is not str or fmt not in READS:
        raise InvalidTraceError(
            f"unsupported format {_shown(fmt)}; this version of llmtaskgraph reads {', '.join(map(repr, READS))}",
            "format")
    with _collector_paused():
        return _graph_from(data, "", 0)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the garbage collector while a trace loads (unless it is off already), then restore it.

    A load allocates some ten containers per task, all still reachable when it ends. The collector
    starts on allocation counts, so a 10,000-task load would trigger full collections that walk the
    whole heap and free nothing (in CPython 3.11, more time than the load itself). Nothing a load
    makes is garbage, so no collection during it can free anything; the allocations still count
    toward the next collection after it, as if they had been made one by one.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Refused(Exception):
    """A problem in the task being read, at ``where`` inside it (``deps``, ``output[2]``; ``""`` for the
    task itself). The graph reading the task knows the task's path and raises :class:`InvalidTraceError`."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(where, why)
        self.where = where
        self.why = why


def _at(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def _graph_from(obj: Any, path: str, depth: int) -> TaskGraph:
    from ..model.graph import TaskGraph

    if depth > MAX_NESTING:
        raise InvalidTraceError(f"sub-graphs are nested more than {MAX_NESTING} deep", path or "<root>")
    _check_object(obj, path, _GRAPH, ("tasks",))
    graph_input = obj.get("graph_input")
    if graph_input is not None and not _plainly_fine(graph_input):
        problem = _find_problem(graph_input, "graph_input")
        if problem is not None:
            raise InvalidTraceError(problem[1], _at(path, problem[0]))
    items = obj["tasks"]
    if not isinstance(items, list):
        raise InvalidTraceError(f"expected a list of tasks, got {_kind(items)}", _at(path, "tasks"))
    graph = TaskGraph(graph_input)
    tasks = graph.tasks
    known = tasks.__contains__
    backward = True  # every dependency and creator so far is a task listed before: none missing, no cycle
    parents: list[Task] = []  # tasks that list children, which usually come later
    i = 0
    try:
        for i, item in enumerate(items):
            task = _task(item, path, i, depth)
            tid: str = task.id  # type: ignore[assignment]  # checked by _task
            if tid in tasks:
                raise _Refused("id", f"duplicate task id `{tid}`")
            task.graph = graph
            if backward:
                deps, kwdeps, creator = task.deps, task.kwdeps, task.created_by
                backward = ((not deps or all(map(known, deps))) and (not kwdeps or all(map(known, kwdeps.values())))
                            and (creator is None or creator in tasks))
            if task.record.children:
                parents.append(task)
            tasks[tid] = task
    except _Refused as exc:
        where = _at(path, f"tasks[{i}]")
        raise InvalidTraceError(exc.why, f"{where}.{exc.where}" if exc.where else where) from None
    if not _points_back(backward, parents, known):
        _check_references(graph, path)  # finds what is missing or the cycle, and names it
    output_id = obj.get("output_task")
    if output_id is not None:
        if not _is_text(output_id):
            refused = _refusal("output_task", output_id)
            raise InvalidTraceError(refused.why, _at(path, refused.where))
        if output_id not in tasks:
            raise InvalidTraceError(f"`{output_id}` is not a task in this graph", _at(path, "output_task"))
    graph._output_id = output_id
    return graph


def _points_back(backward: bool, parents: list[Task], known: Callable[[str], bool]) -> bool:
    """Whether every reference points to a task listed before it (``backward``, kept while reading) and
    every child listed is known: then none is missing and there is no cycle, so the full check is skipped."""
    return backward and all(all(map(known, t.record.children)) for t in parents)


def _check_object(value: Any, path: str, fields: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    """Refuse anything but an object of the given ``fields`` that has the ``required`` ones."""
    if not isinstance(value, dict):
        raise InvalidTraceError(f"expected an object, got {_kind(value)}", path or "<root>")
    for key in value:
        if key not in fields:
            raise InvalidTraceError(f"unknown field (expected one of {', '.join(fields)})", _at(path, str(key)))
    for key in required:
        if key not in value:
            raise InvalidTraceError("required field is missing", _at(path, key))


# -- one task -----------------------------------------------------------------------------------------
class _Shape:
    """The fields of one task type: all at once when a task has exactly these, else one by one."""

    def __init__(self, ttype: str) -> None:
        self.names = (*_COMMON, *_RECORD, *_TYPE_FIELDS[ttype])
        self.set = frozenset(self.names)
        self.size = len(self.names)
        self.common = itemgetter(*_COMMON, *_RECORD)
        self.own: Callable[[dict[str, Any]], tuple[Any, ...]] = (
            itemgetter(*_TYPE_FIELDS[ttype]) if ttype != "python" else lambda item: (item["fn"],))
        defaults = {"deps": [], "kwdeps": {}, "status": "pending", "fingerprints": {}, "versions": {}, "basis": {},
                    "reads_graph_input": [], "children": [], "sample": 0, "tool_errors": "return"}
        self.defaults = tuple(defaults.get(name) for name in self.names)
        self.own_names = _TYPE_FIELDS[ttype]
        self.check_order = tuple(sorted(self.own_names, key=_CHECK_ORDER.index))
        self.required = self.own_names[0]
        self.stages = _TYPES[ttype].stages


_SHAPES = {ttype: _Shape(ttype) for ttype in _TYPES}
_ANY_FIELD = tuple(dict.fromkeys(name for shape in _SHAPES.values() for name in shape.names))
_ANY_SET = frozenset(_ANY_FIELD)
_STATUS_SET = frozenset(STATUSES)
_RESERVED = Task.RESERVED


def _task(item: Any, path: str, index: int, depth: int) -> Task:
    """Check one task and build it; raises :class:`_Refused` naming the first problem.

    The checks take exact JSON types (what ``json.loads`` gives) and strings UTF-8 can encode, and
    word nothing: a refusal is worded by :func:`_refusal`, from the field's entry in :data:`_EXPECTED`.
    """
    if not isinstance(item, dict):
        raise _Refused("", f"expected an object, got {_kind(item)}")
    ttype: Any = item.get("type")
    shape = _SHAPES.get(ttype) if type(ttype) is str else None
    values: tuple[Any, ...] | None = None
    own: tuple[Any, ...] = ()
    if shape is not None and len(item) == shape.size:
        try:  # the count and every name: exactly this type's fields
            values, own = shape.common(item), shape.own(item)
        except KeyError:
            pass
    if shape is None or values is None:
        shape, values, own = _one_by_one(item)
    (tid, _, name, key, created_by, deps, kwdeps, inputs, status, prompt, response, output, fingerprints, versions,
     basis, reads, error_obj, started, finished, children) = values
    stages = shape.stages
    if type(tid) is not str or not tid or PATH_SEP in tid or (not tid.isascii() and _bad_text(tid)):
        raise _refusal("id", tid, stages)
    if type(deps) is not list or (deps and not _texts(deps)):
        raise _refusal("deps", deps, stages)
    if type(kwdeps) is not dict or (kwdeps and not (_texts(list(kwdeps)) and _texts(list(kwdeps.values())))):
        raise _refusal("kwdeps", kwdeps, stages)
    if kwdeps and not _RESERVED.isdisjoint(kwdeps):
        raise _Refused("kwdeps", f"keyword dependency name(s) {sorted(_RESERVED.intersection(kwdeps))} are reserved "
                                 f"for task settings ({', '.join(sorted(_RESERVED))})")
    if name is not None and not _is_text(name):
        raise _refusal("name", name, stages)
    if key is not None and not _is_text(key):
        raise _refusal("key", key, stages)
    if inputs is not None:
        if type(inputs) is not dict or (inputs and not _is_json(inputs)):
            raise _refusal("inputs", inputs, stages)
        if inputs and kwdeps and not inputs.keys().isdisjoint(kwdeps):
            raise _Refused("inputs", f"{sorted(set(inputs) & set(kwdeps))} given both in `kwdeps` and in `inputs`")
    cls = _TYPES[ttype]
    task: Any = cls.__new__(cls)  # restored as pickle restores objects: the checks here are the constructor's
    given = dict(zip(shape.own_names, own, strict=True))
    for field in shape.check_order:
        value = given[field]
        if field == "subgraph":
            if not isinstance(value, dict):
                raise _refusal("subgraph", value, stages)
            task.subgraph = _graph_from(value, _at(path, f"tasks[{index}].subgraph"), depth + 1)
            continue
        check = _OWN_CHECKS[field]
        if not check(value):
            raise _refusal(field, value, stages)
        setattr(task, _ATTR.get(field, field), _copied(value))
    if ttype == "agent":
        task.tools = _agent_tools(task.tools)
        _check_loop(task)
    if "params" in given and task.params is None:
        task.params = {}
    if created_by is not None and not _is_text(created_by):
        raise _refusal("created_by", created_by, stages)
    if type(status) is not str or status not in _STATUS_SET:
        raise _refusal("status", status, stages)
    if type(fingerprints) is not dict:
        raise _refusal("fingerprints", fingerprints, stages)
    for stage, fp in fingerprints.items():
        if type(stage) is not str or stage not in stages or type(fp) is not str or (not fp.isascii() and _bad_text(fp)):
            raise _refusal("fingerprints", fingerprints, stages)
    if type(versions) is not dict:
        raise _refusal("versions", versions, stages)
    for stage, version in versions.items():
        if type(stage) is not str or stage not in stages or type(version) is not str or (
                not version.isascii() and _bad_text(version)):
            raise _refusal("versions", versions, stages)
    if type(basis) is not dict or (basis and not (_texts(list(basis)) and _texts(list(basis.values())))):
        raise _refusal("basis", basis, stages)
    if type(reads) is not list:
        raise _refusal("reads_graph_input", reads, stages)
    for stage in reads:
        if type(stage) is not str or stage not in stages:
            raise _refusal("reads_graph_input", reads, stages)
    if response is not None and (type(response) is not dict or type(response.get("text")) is not str
                                 or not _is_json(response)):
        raise _refusal("response", response, stages)
    if response is not None and "content" in response and not _blocks(response["content"]):
        raise _Refused("response.content", "expected a list of content blocks, each an object with a string `type`")
    error = None if error_obj is None else _error(error_obj)
    if output is not None and not _is_json(output):
        raise _refusal("output", output, stages)
    if prompt is not None and not _is_json(prompt):
        raise _refusal("prompt", prompt, stages)
    if started is not None and not (type(started) is float and isfinite(started)) and not _is_time(started):
        raise _refusal("started_at", started, stages)
    if finished is not None and not (type(finished) is float and isfinite(finished)) and not _is_time(finished):
        raise _refusal("finished_at", finished, stages)
    if type(children) is not list or (children and not _texts(children)):
        raise _refusal("children", children, stages)
    # Every container kept is a copy: the task shares nothing with the input.
    task.id, task.name, task.key, task.created_by, task.graph = tid, name, key, created_by, None
    task.deps, task.kwdeps, task.inputs = [*deps], {**kwdeps}, {**inputs} if inputs else {}
    task.record = TaskRecord(  # by position, twice as fast as by keyword; a test holds each field to its place
        "pending" if status == "running" else status,  # "running": a run that was killed mid-task
        output, prompt, None if response is None else {**response}, {**fingerprints}, [*reads], error,
        started, finished, [*children],
        # a version or backend is the same text in many tasks: one string object for all of them
        {k: intern(v) for k, v in versions.items()} if versions else {},
        {k: intern(v) if k == "backend" else v for k, v in basis.items()} if basis else {},
    )
    return task  # type: ignore[no-any-return]


def _one_by_one(item: dict[Any, Any]) -> tuple[_Shape, tuple[Any, ...], tuple[Any, ...]]:
    """The fields of a task not in the exact shape ``to_json`` writes: absent ones get their default."""
    if not item.keys() <= _ANY_SET:
        key = next(k for k in item if k not in _ANY_SET)
        raise _Refused(str(key), f"unknown field (expected one of {', '.join(_ANY_FIELD)})")
    for key in ("id", "type"):
        if key not in item:
            raise _Refused(key, "required field is missing")
    ttype = item["type"]
    if type(ttype) is not str or ttype not in _SHAPES:
        raise _Refused("type", f"unknown task type {_shown(ttype)} (expected one of {', '.join(_TYPES)})")
    shape = _SHAPES[ttype]
    if not item.keys() <= shape.set:
        key = next(k for k in item if k not in shape.set)
        raise _Refused(str(key), f"unknown field (expected one of {', '.join(shape.names)})")
    if shape.required not in item:
        raise _Refused(shape.required, "required field is missing")
    values = tuple(map(item.get, shape.names, shape.defaults))
    own = len(shape.own_names)
    return shape, values[:-own], values[-own:]


def _error(obj: Any) -> TaskError:
    if not isinstance(obj, dict):
        raise _Refused("error", f"expected an object, got {_kind(obj)}")
    for key in obj:
        if key not in _ERROR:
            raise _Refused(f"error.{key}", f"unknown field (expected one of {', '.join(_ERROR)})")
    for key in ("type", "message"):
        if key not in obj:
            raise _Refused(f"error.{key}", "required field is missing")
    etype, message, traceback, stage = obj["type"], obj["message"], obj.get("traceback", ""), obj.get("stage")
    for field, value in (("type", etype), ("message", message), ("traceback", traceback)):
        if not _is_text(value):
            raise _refusal(f"error.{field}", value)
    if stage is not None and not _is_text(stage):
        raise _refusal("error.stage", stage)
    return TaskError(type=etype, message=message, traceback=traceback, stage=stage)


def _blocks(v: Any) -> bool:
    return type(v) is list and all(type(b) is dict and type(b.get("type")) is str for b in v)


def _opt_json_object(v: Any) -> bool:
    return v is None or (type(v) is dict and (not v or _is_json(v)))


def _count(least: int) -> Callable[[Any], bool]:
    return lambda v: type(v) is int and v >= least and v.bit_length() <= _MAX_INT_BITS


_OWN_CHECKS: dict[str, Callable[[Any], bool]] = {
    "fn": lambda v: _is_name(v), "formatter": lambda v: _is_name(v), "parser": lambda v: _is_name(v),
    "input_formatter": lambda v: _is_name(v), "params": _opt_json_object, "output_schema": _opt_json_object,
    "sample": _count(0), "max_turns": _count(1), "turn": _count(1), "tool_errors": lambda v: v in TOOL_ERRORS,
    "tool": lambda v: _is_text(v), "tool_use_id": lambda v: _is_text(v),
    "tools": lambda v: type(v) is list and bool(v) and all(_is_name(t) or (type(t) is dict and _is_json(t)) for t in v),
}
"""Field -> whether a stored value is acceptable (its exact JSON type and content)."""


def _check_loop(agent: AgentTask) -> None:
    """An agent's sub-graph must be the loop the agent grows, or a run could not go on with it: turns
    ``turn1``, ``turn2``, ... each added by the one before with its tool calls, all with the agent's settings."""
    tasks = agent.subgraph.tasks

    def refuse(tid: str, why: str) -> NoReturn:
        raise _Refused("subgraph", f"task `{tid}` {why}: this is not the loop the agent grew")

    for tid, task in tasks.items():
        if isinstance(task, TurnTask):
            n = task.turn
            if tid != f"turn{n}":
                refuse(tid, f"is turn {n}, so its id must be `turn{n}`")
            if (task.parser_name, task.max_turns, task.tools, task.tool_errors) != (
                    agent.parser_name, agent.max_turns, agent.tool_names(), agent.tool_errors):
                refuse(tid, "has other settings (parser, max_turns, tools or tool_errors) than its agent")
            if n == 1:
                if task.deps or task.kwdeps or task.created_by is not None or task.formatter_name != FIRST_TURN:
                    refuse(tid, f"must have no dependencies, no creator and the formatter `{FIRST_TURN}`")
                continue
            before = tasks.get(f"turn{n - 1}")
            calls = [c for c in before.record.children if isinstance(tasks.get(c), ToolCallTask)] if before else []
            # (a turn caught growing, by a save from another thread, lists its children only once it is complete)
            listed = tid in before.record.children or not before.is_complete if before else False
            if (before is None or task.created_by != before.id or not listed
                    or task.formatter_name != NEXT_TURN or task.deps[:1] != [before.id] or task.kwdeps
                    or (before.is_complete and task.deps != [before.id, *calls])):
                refuse(tid, f"must be added by `turn{n - 1}`, after its tool calls, with the formatter `{NEXT_TURN}`")
        elif isinstance(task, ToolCallTask):
            creator = tasks.get(task.created_by or "")
            listed = isinstance(creator, TurnTask) and (tid in creator.record.children or not creator.is_complete)
            if not listed or task.deps or task.kwdeps:
                refuse(tid, "must be a tool call added by a turn, with no dependencies")
        else:
            refuse(tid, f"is a `{task.type}` task, where only turns and tool calls belong")


def _copied(value: Any) -> Any:
    """A copy of a container, so the task shares nothing with the input (``params`` of null is ``{}``)."""
    if type(value) is dict:
        return {**value}
    if type(value) is list:
        return [*value]
    return value


def _agent_tools(tools: list[Any]) -> list[Any]:
    try:
        return checked_tools(tools, "")
    except GraphValidationError as exc:
        raise _Refused("tools", str(exc).split(": ", 1)[-1]) from None


# The checks: exact types, strings UTF-8 can encode.
def _is_text(v: Any) -> bool:
    return type(v) is str and (v.isascii() or not _bad_text(v))


def _is_name(v: Any) -> bool:
    return type(v) is str and v != "" and (v.isascii() or not _bad_text(v))


def _texts(v: list[Any]) -> bool:
    for x in v:
        if type(x) is not str or (not x.isascii() and _bad_text(x)):
            return False
    return True


def _is_json(v: Any) -> bool:
    return _plainly_fine(v) or _find_problem(v, "") is None  # the quick check, else the walk that decides


def _is_time(v: Any) -> bool:
    t = type(v)
    return (t is float and isfinite(v)) or (t is int and v.bit_length() <= _MAX_INT_BITS)


# The wording of refusals: what each field must be, and how to tell a value of the right kind, whose
# problem is then a part JSON cannot hold (a str subclass, a lone surrogate, a number too long, ...).
# A kind test of None marks a JSON value: what JSON cannot hold in it is named first, whatever its kind.
def _str_list(v: Any, stages: tuple[str, ...]) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _opt_str(v: Any, stages: tuple[str, ...]) -> bool:
    return v is None or isinstance(v, str)


def _name_kind(v: Any, stages: tuple[str, ...]) -> bool:
    return isinstance(v, str) and v != ""


_EXPECTED: dict[str, tuple[str, Callable[[Any, tuple[str, ...]], bool] | None]] = {
    "id": (f"a non-empty string without {PATH_SEP!r}", lambda v, s: isinstance(v, str) and v != "" and PATH_SEP not in v),
    "deps": ("a list of task ids", _str_list),
    "kwdeps": ("an object of name -> task id",
               lambda v, s: isinstance(v, dict) and all(isinstance(x, str) for x in v.values())),
    "name": ("a string or null", _opt_str),
    "key": ("a string or null", _opt_str),
    "inputs": ("an object of argument name -> JSON value", None),
    "fn": ("a registry name", _name_kind),
    "formatter": ("a registry name", _name_kind),
    "parser": ("a registry name", _name_kind),
    "input_formatter": ("a registry name", _name_kind),
    "params": ("an object of Messages API settings", None),
    "output_schema": ("null or an object (a JSON schema)", None),
    "tools": ("a non-empty list of registry names or tool objects", lambda v, s: isinstance(v, list)),
    "max_turns": ("a whole number >= 1", lambda v, s: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
    "turn": ("a whole number >= 1", lambda v, s: isinstance(v, int) and not isinstance(v, bool) and v >= 1),
    "tool_errors": ("`return` or `raise`", lambda v, s: False),
    "tool": ("the tool name the model asked for (a string)", lambda v, s: isinstance(v, str)),
    "tool_use_id": ("a string", lambda v, s: isinstance(v, str)),
    "sample": ("a whole number >= 0", lambda v, s: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    "subgraph": ("an object (the sub-graph)", lambda v, s: False),
    "created_by": ("a task id or null", _opt_str),
    "status": (f"one of {', '.join(STATUSES)}", lambda v, s: v in STATUSES),
    "fingerprints": ("an object of stage ({stages}) -> string",
                     lambda v, s: isinstance(v, dict) and all(k in s and isinstance(x, str) for k, x in v.items())),
    "versions": ("an object of stage ({stages}) -> code version",
                 lambda v, s: isinstance(v, dict) and all(k in s and isinstance(x, str) for k, x in v.items())),
    "basis": ("an object of label -> digest", lambda v, s: isinstance(v, dict) and all(isinstance(x, str) for x in v.values())),
    "reads_graph_input": ("a list of stage names ({stages})", lambda v, s: _str_list(v, s) and all(x in s for x in v)),
    "response": ("null or an object with a string `text`", None),
    "output": ("a JSON value", None),
    "prompt": ("a JSON value", None),
    "started_at": ("a number or null", lambda v, s: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "finished_at": ("a number or null", lambda v, s: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "children": ("a list of task ids", _str_list),
    "error.type": ("a string", lambda v, s: isinstance(v, str)),
    "error.message": ("a string", lambda v, s: isinstance(v, str)),
    "error.traceback": ("a string", lambda v, s: isinstance(v, str)),
    "error.stage": ("a string or null", _opt_str),
    "output_task": ("a task id or null", _opt_str),
}


def _refusal(field: str, value: Any, stages: tuple[str, ...] = ()) -> _Refused:
    """Why ``value`` was refused as ``field``: its kind if wrong, else the part JSON cannot hold exactly."""
    expected, right_kind = _EXPECTED[field]
    if right_kind is None or right_kind(value, stages):
        problem = _find_problem(value, field)
        if problem is not None:
            return _Refused(*problem)
    expected = expected.format(stages=", ".join(stages))
    if field == "response":  # its own wording: the kind of a reply is not the point
        return _Refused(field, f"expected {expected}")
    return _Refused(field, f"expected {expected}, got {_kind(value)}")


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


def _check_references(graph: TaskGraph, path: str) -> None:
    index = {tid: i for i, tid in enumerate(graph.tasks)}
    for tid, task in graph.tasks.items():
        where = _at(path, f"tasks[{index[tid]}]")
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
        raise InvalidTraceError(f"the dependencies form a cycle: {cycle}; remove one of these deps", _at(path, "tasks")) from exc


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
