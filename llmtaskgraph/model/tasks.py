"""Task types: what a user declares (the spec) and what runs produced (the :class:`TaskRecord`).

A task holds names of registry functions, never the functions, so a graph and its whole trace
serialize to JSON. Every result a run produced lives in ``task.record`` next to the fingerprints
that decide whether it can be reused (see :mod:`llmtaskgraph.fingerprint`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import GraphValidationError
from ..fingerprint import check_json, digest

if TYPE_CHECKING:
    from .graph import TaskGraph

STATUSES: tuple[str, ...] = ("pending", "running", "done", "failed", "blocked")
_UNSET: Any = object()
EDITED = "edited"
"""Stored in place of a stage's fingerprint when a person set its result on a task that had no result
for it: the edit is kept on the next run whatever the stage's inputs are then (and bound to them)."""
INVALIDATED = "invalidated"
"""Stored in place of a fingerprint by ``graph.invalidate``: never matches, so the stage runs again."""


@dataclass(frozen=True)
class Stage:
    """One memoized step of a task type, declared as data: the reuse rule and the stage runner read it."""

    name: str
    """``run``, ``format``, ``call``, ``parse``, ``input`` or ``subgraph``: the key of its fingerprint."""
    role: str | None
    """Key in :meth:`Task.function_names` of the registry function it calls; None for the LLM call and
    the sub-graph, which call no registry function."""
    reads: str
    """What its fingerprint covers: ``deps`` (dependency outputs, ``inputs`` and the graph input if it
    reads it), ``prompt`` (the request built from the prompt and params), ``reply`` (the reply text)
    or ``subgraph`` (the sub-graph's own tasks, memoized one by one)."""
    writes: str
    """The record field its result goes to: ``output``, ``prompt`` or ``response``."""
    attr: str | None = None
    """The task attribute holding the registry name of its function (``fn_name``, ``parser_name``, ...)."""


@dataclass
class TaskError:
    """Why a task failed, kept in the trace so it can be read after the process is gone."""

    type: str
    """Exception class name, e.g. ``ValueError``."""
    message: str
    """``str(exception)``."""
    traceback: str = ""
    """The formatted traceback, for debugging the registry function."""
    stage: str | None = None
    """Which stage raised: ``format``, ``call``, ``parse``, ``run``, ``input`` or ``subgraph``."""


@dataclass
class TaskRecord:
    """What runs produced for one task. Every field is in the JSON trace."""

    status: str = "pending"
    """One of ``pending``, ``running``, ``done``, ``failed``, ``blocked``."""
    output: Any = None
    """The task's output (meaningful once the final stage has a fingerprint; may be None)."""
    prompt: Any = None
    """LLMTask: the formatted prompt. TaskGraphTask: the sub-graph input."""
    response: dict[str, Any] | None = None
    """LLMTask: the reply text and call metadata (model, usage, latency, retries)."""
    fingerprints: dict[str, str] = field(default_factory=dict)
    """Stage name -> fingerprint of the inputs its stored result was computed from."""
    reads_graph_input: list[str] = field(default_factory=list)
    """Stages whose function read ``ctx.graph_input``; only those depend on it."""
    error: TaskError | None = None
    """Why the last run of this task failed, or None."""
    started_at: float | None = None
    """Unix time the last execution started."""
    finished_at: float | None = None
    """Unix time the last execution ended."""
    children: list[str] = field(default_factory=list)
    """Ids of the tasks this task added while running, in order."""
    versions: dict[str, str] = field(default_factory=dict)
    """Stage name -> code version of the function that computed its stored result (see
    :mod:`llmtaskgraph.memo.code`); absent in traces written before code versions existed."""
    basis: dict[str, str] = field(default_factory=dict)
    """What the stored results were computed from, part by part (``dep:<id>``, ``gi:<key>``,
    ``request``, ``sample``, ``backend`` -> short digest or value): only used to explain why a stage
    runs again (see :func:`llmtaskgraph.memo.rule.explain`)."""
    _output_fp: str | None = field(default=None, repr=False, compare=False)
    partial_text: str | None = field(default=None, repr=False, compare=False)
    """While a streaming reply arrives: its text so far (never saved; the ``llm_text`` run event says it changed)."""

    def output_fingerprint(self) -> str:
        """Fingerprint of ``output``, cached because every dependent asks for it."""
        if self._output_fp is None:
            self._output_fp = digest(self.output)
        return self._output_fp

    def set_output(self, value: Any) -> None:
        self.output = value
        self._output_fp = None

    @property
    def duration(self) -> float | None:
        """Seconds the last execution took; None when not known (or when a hand-edited trace holds times
        too large to subtract)."""
        if self.started_at is None or self.finished_at is None:
            return None
        try:
            return float(self.finished_at - self.started_at)
        except OverflowError:
            return None


MAX_NESTING = 64
"""Deepest chain of sub-graphs a graph may hold: adding a deeper one is refused, so no saved trace is
too deep to load."""

PATH_SEP = " > "
"""Joins the ids of nested TaskGraphTasks into a path (``outer > inner``), so no id may contain it."""


def valid_id(tid: object) -> bool:
    return isinstance(tid, str) and tid != "" and PATH_SEP not in tid


def dep_id(dep: Task | str) -> str | Task:
    """A dependency as given: an id, or a Task, checked to be in the graph when this task is added."""
    if isinstance(dep, (Task, str)):
        return dep
    raise GraphValidationError(f"a dependency must be a Task or a task id (str), got {type(dep).__name__}")


def check_kwdep_names(kwdeps: dict[str, Any], label: str) -> None:
    """Refuse keyword dependencies named like a constructor argument (``name``, ``params``, ...): they
    could not be given to the constructor, and a trace holding one could not be rebuilt."""
    clash = sorted(set(kwdeps) & Task.RESERVED)
    if clash:
        raise GraphValidationError(
            f"task `{label}`: keyword dependency name(s) {clash} are reserved for task settings "
            f"({', '.join(sorted(Task.RESERVED))}); rename them in the function and the task"
        )


class Task:
    """Base of the three task types. Create a subclass instance, then ``graph.add_task(task)``."""

    type: ClassVar[str]
    stage_table: ClassVar[tuple[Stage, ...]]
    """The stages of this task type, in order; the last one produces the output."""
    stages: ClassVar[tuple[str, ...]]
    """Their names (derived from ``stage_table``)."""
    RESERVED: ClassVar[frozenset[str]] = frozenset({
        "name", "id", "key", "inputs", "params", "sample", "output_schema", "tools", "max_turns", "tool_errors"})
    """Keyword-argument names the constructors take, so no keyword dependency may use them."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "stage_table" in cls.__dict__:
            cls.stages = tuple(s.name for s in cls.stage_table)

    def __init__(
        self, deps: tuple[Task | str, ...], kwdeps: dict[str, Task | str], name: str | None, id: str | None,
        key: str | None, inputs: dict[str, Any] | None = None,
    ) -> None:
        self.id: str | None = id
        """Stable id, unique in its graph; assigned by ``add_task`` when not given."""
        self.name = name
        """Readable name for display; defaults to the id."""
        self.key = key
        """For tasks added at run time: the creator's key for this child, used in its id."""
        self.deps: list[Any] = [dep_id(d) for d in deps]
        """Ids of positional dependencies, in order."""
        self.kwdeps: dict[str, Any] = {k: dep_id(d) for k, d in kwdeps.items()}
        """Keyword name -> id of keyword dependencies."""
        check_kwdep_names(self.kwdeps, name or id or "")
        self.inputs: dict[str, Any] = dict(inputs or {})
        """Constant keyword arguments (JSON values) passed along with the keyword dependencies,
        e.g. the item a planner hands to each child it creates. Part of the input fingerprint."""
        if self.inputs:  # most tasks have none: skip building the message (loading a trace makes thousands)
            check_json(self.inputs, f"the `inputs` of task `{self.label}`", "inputs")
            clash = set(self.inputs) & set(self.kwdeps)
            if clash:
                raise GraphValidationError(f"task `{self.label}`: {sorted(clash)} given both as a dependency and in `inputs`")
        self.created_by: str | None = None
        """Id of the task that added this one at run time, or None."""
        self.record = TaskRecord()
        """What runs produced; see :class:`TaskRecord`."""
        self.graph: TaskGraph | None = None

    # -- spec -------------------------------------------------------------------------------------
    def function_names(self) -> dict[str, str]:
        """Role -> registry name of every function this task calls (from its stage table)."""
        return {str(s.role): getattr(self, str(s.attr)) for s in self.stage_table if s.attr is not None}

    def function_of(self, stage: Stage) -> str:
        """The registry name of the function ``stage`` calls."""
        return str(getattr(self, str(stage.attr)))

    def call_request(self) -> dict[str, Any]:
        """The Messages API request of this task's LLM call (only tasks with a ``call`` stage make one)."""
        raise GraphValidationError(f"task `{self.label}` is a {type(self).__name__}: it makes no LLM call")

    def check_functions(self, registry: Any, path: str) -> None:
        """Before a run: check what this task needs of its registry functions beyond their presence (an agent:
        that its tools make input schemas); raise :class:`GraphValidationError` naming ``path``."""

    # -- behaviour a task type may add to its stages ------------------------------------------------
    def absorbs(self, exc: BaseException) -> bool:
        """Whether a failure of this task's function becomes its output (a tool call reports it to the model)."""
        return False

    def error_output(self, exc: BaseException) -> Any:
        """The output that stands for ``exc`` when :meth:`absorbs` says so."""
        raise NotImplementedError

    def grows(self) -> bool:
        """Whether the parse stage grows the graph (a tool loop's turn asking for tools) instead of parsing."""
        return False

    def grow(self, ctx: Any) -> Any:
        """Add what :meth:`grows` announced; returns the stage's result."""
        raise NotImplementedError

    def all_deps(self) -> list[str]:
        return [*self.deps, *self.kwdeps.values()]

    @property
    def label(self) -> str:
        """What to call this task in messages and drawings: its name, else its id."""
        return self.name or self.id or self.main_function

    @property
    def main_function(self) -> str:
        """The registry name a task is known by before it has an id (its first function)."""
        return next(iter(self.function_names().values()))

    def spec_equals(self, other: Task) -> bool:
        """Same type, functions, dependencies and settings."""
        return type(self) is type(other) and self._spec() == other._spec()

    def _spec(self) -> tuple[Any, ...]:
        return (self.function_names(), self.deps, self.kwdeps, self.name, self.key, self.inputs)

    # -- record views -----------------------------------------------------------------------------
    @property
    def status(self) -> str:
        return self.record.status

    @property
    def output(self) -> Any:
        return self.record.output

    @property
    def error(self) -> TaskError | None:
        return self.record.error

    @property
    def prompt(self) -> Any:
        return self.record.prompt

    @property
    def response(self) -> dict[str, Any] | None:
        return self.record.response

    @property
    def is_complete(self) -> bool:
        """True when the final stage has a stored result (which may be None)."""
        return self.stages[-1] in self.record.fingerprints

    # -- edits ------------------------------------------------------------------------------------
    def edit(self, *, prompt: Any = _UNSET, response: Any = _UNSET, output: Any = _UNSET) -> None:
        """Replace a stored prompt, reply or output. The next run re-executes exactly what depends on it.

        Nothing else is needed: the edited value changes the fingerprints of every later stage and
        of every descendant, and the fingerprint rule does the rest.
        """
        self._check_editable()
        if prompt is not _UNSET or response is not _UNSET:
            raise GraphValidationError(f"task `{self.id}` is a {type(self).__name__}: only `output` can be edited")
        if output is not _UNSET:
            self._edit_output(output)

    def _check_editable(self) -> None:
        # The running stage would overwrite the edit when it finishes, silently losing it.
        if self.record.status == "running":
            raise GraphValidationError(
                f"task `{self.id}` is running: wait for the run to finish (or call `graph.stop()`) before editing it"
            )

    def _keep_edit(self, upto: str) -> None:
        """Keep an edited result: stages up to ``upto`` that hold no result get the :data:`EDITED` mark.

        A stage that already has a fingerprint keeps it, so the edit stands while that stage's own
        inputs stay the same (the rule in :mod:`llmtaskgraph.memo.rule` decides, as for any result).
        """
        rec = self.record
        for stage in self.stages[: self.stages.index(upto) + 1]:
            if rec.fingerprints.get(stage) in (None, INVALIDATED):
                rec.fingerprints[stage] = EDITED
        rec.error = None
        if rec.status != "done":
            rec.status = "pending"  # not done before it ran: the next run takes the edit and settles it

    def _edit_output(self, output: Any) -> None:
        check_json(output, f"the edit of task `{self.id}`")
        self.record.set_output(output)
        self._keep_edit(self.stages[-1])

    def __repr__(self) -> str:
        extra = f" name={self.name!r}" if self.name else ""
        return f"<{type(self).__name__} {self.id!r}{extra} {self.status}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from ..views.render import task_mimebundle

        return task_mimebundle(self)


class PythonTask(Task):
    """A plain registry function: ``fn(ctx, *dep_outputs, **kwdep_outputs) -> JSON value``."""

    type = "python"
    stage_table = (Stage("run", "fn", "deps", "output", "fn_name"),)

    def __init__(
        self, fn_name: str, *deps: Task | str, name: str | None = None, id: str | None = None,
        key: str | None = None, inputs: dict[str, Any] | None = None, **kwdeps: Task | str,
    ) -> None:
        self.fn_name = fn_name
        super().__init__(deps, kwdeps, name, id, key, inputs)
        """Registry name of the function."""



class LLMTask(Task):
    """Format a prompt, call the LLM, parse the reply; each stage memoized on its own.

    Given ``tools``, an LLMTask becomes an :class:`~llmtaskgraph.model.agent.AgentTask`: a tool loop
    that grows, while it runs, one task per tool call and one per follow-up turn.
    """

    type = "llm"
    stage_table = (
        Stage("format", "formatter", "deps", "prompt", "formatter_name"),
        Stage("call", None, "prompt", "response"),
        Stage("parse", "parser", "reply", "output", "parser_name"),
    )

    def __new__(cls, *args: Any, tools: Any = None, **kwargs: Any) -> Any:
        if tools and cls is LLMTask:
            from .agent import AgentTask

            return AgentTask(*args, tools=tools, **kwargs)
        return super().__new__(cls)

    def __init__(
        self, formatter_name: str, parser_name: str, *deps: Task | str, params: dict[str, Any] | None = None,
        sample: int = 0, name: str | None = None, id: str | None = None, key: str | None = None,
        inputs: dict[str, Any] | None = None, output_schema: Any = None, **kwdeps: Task | str,
    ) -> None:
        if "tools" in kwdeps and kwdeps["tools"] is None:  # ``tools=None``: no tools, a plain LLMTask
            del kwdeps["tools"]
        loop = sorted({"tools", "max_turns", "tool_errors"} & set(kwdeps))
        if loop:  # (``tools=[...]`` makes an AgentTask: these came without a tool)
            raise GraphValidationError(f"task `{name or id or formatter_name}`: {', '.join(f'`{k}`' for k in loop)} "
                                       "belong to an LLMTask with tools: give `tools` a non-empty list of registry names")
        self.formatter_name = formatter_name
        """Registry name of ``formatter(ctx, *dep_outputs, **kwdep_outputs) -> prompt``."""
        self.parser_name = parser_name
        """Registry name of ``parser(ctx, response_text) -> JSON value`` (or ``parser(ctx, reply: Reply)``)."""
        super().__init__(deps, kwdeps, name, id, key, inputs)
        self.params: dict[str, Any] = dict(params or {})
        """Messages API settings (``model``, ``max_tokens``, ``temperature``, ``system``, ...)."""
        if self.params:  # refused here, not when a save of the trace fails
            check_json(self.params, f"the `params` of task `{self.label}`", "params")
        self.sample = sample
        """Sample number, part of the call fingerprint: bump it to draw a fresh reply."""
        self.output_schema: dict[str, Any] | None = None
        """The JSON schema the parsed output must match (structured outputs), or None; sent as
        ``output_config.format``, so it is part of the call fingerprint."""
        if output_schema is not None:
            from ..llm.schema import as_json_schema

            self.output_schema = as_json_schema(output_schema, self.label)
            check_json(self.output_schema, f"the `output_schema` of task `{self.label}`", "output_schema")

    def _spec(self) -> tuple[Any, ...]:
        return (*super()._spec(), self.params, self.output_schema)

    def request_params(self) -> dict[str, Any]:
        """``params`` plus what the task's settings add to every request (the output schema)."""
        if self.output_schema is None:
            return self.params
        config = dict(self.params.get("output_config") or {})
        config["format"] = {"type": "json_schema", "schema": self.output_schema}
        return {**self.params, "output_config": config}

    def call_request(self) -> dict[str, Any]:
        """The Messages API request the stored prompt makes (raises :class:`PromptError` if it makes none)."""
        from ..llm.base import build_request

        return build_request(self.record.prompt, self.request_params())

    def edit(self, *, prompt: Any = _UNSET, response: Any = _UNSET, output: Any = _UNSET) -> None:
        """Replace the stored prompt, reply (its text, or a dict with ``text`` or ``content`` blocks) or output."""
        self._check_editable()
        if prompt is not _UNSET:
            from ..llm.base import PromptError, build_request

            check_json(prompt, f"the prompt edit of task `{self.id}`", "prompt")
            try:
                build_request(prompt, self.request_params())  # refuse a prompt the LLM could not be sent
            except PromptError as exc:
                raise PromptError(f"the prompt edit of task `{self.id}`: {exc}") from None
            self.record.prompt = prompt
            self._keep_edit("format")
        if response is not _UNSET:
            from ..llm.reply import edited_response

            edited = edited_response(str(self.id), self.record.response, response)
            check_json(edited, f"the response edit of task `{self.id}`", "response")
            self.record.response = edited
            self._keep_edit("call")
        if output is not _UNSET:
            self._edit_output(output)

    def resample(self) -> None:
        """Draw a fresh reply on the next run without editing anything."""
        self.sample += 1


class TaskGraphTask(Task):
    """A sub-graph used like a function: its input formatter's result becomes the sub-graph's input."""

    type = "graph"
    stage_table = (
        Stage("input", "input_formatter", "deps", "prompt", "input_formatter_name"),
        Stage("subgraph", None, "subgraph", "output"),
    )

    def __init__(
        self, subgraph: TaskGraph, input_formatter_name: str, *deps: Task | str, name: str | None = None,
        id: str | None = None, key: str | None = None, inputs: dict[str, Any] | None = None,
        **kwdeps: Task | str,
    ) -> None:
        self.input_formatter_name = input_formatter_name
        """Registry name of ``fmt(ctx, *dep_outputs, **kwdep_outputs) -> JSON value``."""
        super().__init__(deps, kwdeps, name, id, key, inputs)
        self.subgraph = subgraph
        """The graph this task runs; its ``graph_input`` is set from the input formatter."""


    def prepare(self, registry: Any) -> None:
        """Called before the sub-graph runs (an agent adds its first turn here); a plain sub-graph needs nothing."""

    def starts_afresh(self, registry: Any) -> tuple[str, int, int] | None:
        """For ``plan``: whether the next run replaces the sub-graph's tasks with new ones (an agent with no turns
        yet, or whose tools changed), as (why, fewest, most LLM calls it will make); None when it keeps them."""
        return None

    def result_task(self) -> Task | None:
        """The sub-graph task whose output is this task's output."""
        return self.subgraph.result_task()

    def nesting(self) -> int:
        """How many sub-graphs deep this task's graph goes (1 when its sub-graph holds no sub-graph)."""
        inner = [t.nesting() for t in self.subgraph.tasks.values() if isinstance(t, TaskGraphTask)]
        return 1 + max(inner, default=0)

    def _edit_output(self, output: Any) -> None:
        # The output is the sub-graph's output, so the edit belongs to the sub-graph's output task.
        target = self.result_task()
        if target is None:
            raise GraphValidationError(f"task `{self.id}`: its sub-graph has no tasks whose output could be edited")
        target.edit(output=output)
        rec = self.record
        rec.set_output(output)
        rec.error = None
        if rec.status != "done":
            rec.status = "pending"
