"""Tool-using agents as growing graphs: every turn and every tool call is a task in the trace.

``LLMTask(formatter, parser, *deps, tools=["search", ...], max_turns=8)`` makes an :class:`AgentTask`.
Its formatter builds the first request, as for any LLMTask; then its sub-graph runs the loop::

    agent > turn1                 the first call (a TurnTask)
    agent > turn1/search          one ToolCallTask per ``tool_use`` block: search(ctx, **block["input"])
    agent > turn1/search#2        (parallel tool calls run in parallel)
    agent > turn2                 the conversation so far + the ``tool_result`` blocks, sent again
    ...

A turn whose reply asks for tools (``stop_reason == "tool_use"``) adds the tool calls and the next
turn while it runs (a ``pause_turn`` reply, a long server-tool turn the API paused, adds the next turn
alone, which sends the paused reply back for the model to continue); the turn that does not (or the ``max_turns``-th) is parsed by the user's parser,
and its output is the agent's output. Each task is memoized like any other, so editing one tool
result (``graph.find("agent > turn1/search").edit(output=...)``) and running again calls the LLM only
for the later turns. Thinking blocks go back to the API exactly as it sent them (an edit may not
change them: see :func:`llmtaskgraph.llm.reply.edited_response`).

A tool that raises gives the model an ``is_error`` tool result (``tool_errors="return"``, the
default) instead of failing the graph; ``tool_errors="raise"`` fails the tool call task instead.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import GraphValidationError
from ..fingerprint import check_json
from .registry import BUILTINS, lookup
from .tasks import LLMTask, PythonTask, Stage, Task, TaskGraphTask

if TYPE_CHECKING:
    from .context import TaskContext
    from .graph import TaskGraph

__all__ = ["AgentTask", "ToolCallTask", "TurnTask"]

DEFAULT_MAX_TURNS = 10
"""Turns an agent may take when ``max_turns`` is not given: a loop that never stops must still end."""

TOOL_ERRORS = ("return", "raise")
FIRST_TURN = "llmtaskgraph.first_turn"
NEXT_TURN = "llmtaskgraph.next_turn"
UNKNOWN_TOOL = "llmtaskgraph.unknown_tool"


class AgentTask(TaskGraphTask):
    """An LLMTask given ``tools``: its sub-graph holds the turns and tool calls of the loop."""

    type = "agent"
    stage_table = (
        Stage("input", "formatter", "deps", "prompt", "formatter_name"),
        Stage("subgraph", None, "subgraph", "output"),
    )

    def __init__(
        self, formatter_name: str, parser_name: str, *deps: Task | str, tools: list[str | dict[str, Any]],
        max_turns: int | None = None, tool_errors: str = "return", params: dict[str, Any] | None = None,
        output_schema: Any = None, name: str | None = None, id: str | None = None, key: str | None = None,
        inputs: dict[str, Any] | None = None, **kwdeps: Task | str,
    ) -> None:
        from .graph import TaskGraph

        if "sample" in kwdeps:
            raise GraphValidationError(f"task `{name or id or formatter_name}`: an agent has no `sample` of its own; draw "
                                       "fresh replies for its turns with `graph.resample([agent])`")
        self.formatter_name = formatter_name
        """Registry name of the formatter of the first request (as for an LLMTask)."""
        self.parser_name = parser_name
        """Registry name of the parser of the final turn's reply."""
        Task.__init__(self, deps, kwdeps, name, id, key, inputs)
        label = name or id or formatter_name  # ``self.label`` needs the tools
        self.tools = checked_tools(tools, label)
        """Registry names of the tools (or dicts ``{"name", "description", "input_schema"}``)."""
        self.max_turns = _checked_turns(DEFAULT_MAX_TURNS if max_turns is None else max_turns, label)
        """The most LLM calls the loop makes; the last allowed turn is parsed whatever it asks for."""
        self.tool_errors = _checked_choice(tool_errors, label)
        """``return``: a tool that raises gives the model an ``is_error`` result; ``raise``: the call fails."""
        self.params: dict[str, Any] = dict(params or {})
        """Messages API settings of every turn (``tools`` is filled in from the tools' schemas)."""
        self.output_schema: dict[str, Any] | None = None
        """The JSON schema of the final output, as on an LLMTask."""
        if output_schema is not None:
            from ..llm.schema import as_json_schema

            self.output_schema = as_json_schema(output_schema, self.label)
        check_json({"tools": self.tools, "params": self.params, "schema": self.output_schema},
                   f"the settings of task `{self.label}`", "settings")
        self.subgraph: TaskGraph = TaskGraph()
        """The turns and tool calls, grown while the agent runs."""

    @property
    def input_formatter_name(self) -> str:  # type: ignore[override]
        return self.formatter_name

    def tool_names(self) -> list[str]:
        return [t if isinstance(t, str) else str(t["name"]) for t in self.tools]

    def function_names(self) -> dict[str, str]:
        """The formatter, the parser and every tool: all must be in the registry before the run starts."""
        return {"formatter": self.formatter_name, "parser": self.parser_name,
                **{f"tool {name}": name for name in self.tool_names()}}

    def _spec(self) -> tuple[Any, ...]:
        return (*super()._spec(), self.tools, self.max_turns, self.tool_errors, self.params, self.output_schema)

    def check_functions(self, registry: Any, path: str) -> None:
        """Every tool must make an input schema (keyword parameters), so a bad one is named before the run starts."""
        try:
            self.first_turn(registry)
        except GraphValidationError as exc:
            raise GraphValidationError(f"task `{path}`: {exc}") from None

    def first_turn(self, registry: Mapping[str, Any]) -> TurnTask:
        """The first turn as the registry's tools make it now (their schemas are in its request)."""
        from ..llm.schema import tool_definition

        definitions = [tool_definition(t, lookup(registry, n)) for t, n in zip(self.tools, self.tool_names(), strict=True)]
        return TurnTask(
            FIRST_TURN, self.parser_name, params={**self.params, "tools": [*self.params.get("tools", []), *definitions]},
            output_schema=self.output_schema, turn=1, max_turns=self.max_turns, tools=self.tool_names(),
            tool_errors=self.tool_errors, id="turn1",
        )

    def prepare(self, registry: Mapping[str, Any]) -> None:
        """Before the sub-graph runs: the first turn, with the tools' current schemas in its request."""
        first = self.first_turn(registry)
        sub = self.subgraph
        old = sub.tasks.get("turn1")
        if old is not None and old.spec_equals(first):
            return
        if old is not None:  # other tools or settings: the loop starts again (its tasks belong to the old one)
            for task in sub.tasks.values():
                task.graph = None
            sub.tasks.clear()
            sub._output_id = None
        sub.add_task(first)

    def starts_afresh(self, registry: Any) -> tuple[str, int, int] | None:
        """An agent with no turns yet, or whose first turn would differ (other tools, tool schemas or settings),
        will run a new loop of 1 to ``max_turns`` calls."""
        old = self.subgraph.tasks.get("turn1")
        if old is None:
            return "its loop has not run yet", 1, self.max_turns
        if registry is not None and not old.spec_equals(self.first_turn(registry)):
            return "tools or settings changed: the loop starts again", 1, self.max_turns
        return None

    def result_task(self) -> Task | None:
        """The last turn of the loop as it stands (``turn1``, then each turn's follow-up)."""
        tasks = self.subgraph.tasks
        last = tasks.get("turn1")
        while last is not None:
            nxt = tasks.get(f"turn{int(getattr(last, 'turn', 0)) + 1}")
            if nxt is None or nxt.created_by != last.id:
                break
            last = nxt
        if last is not None:
            self.subgraph._output_id = last.id
        return last


class TurnTask(LLMTask):
    """One call of a tool loop; asks for tools → adds the tool calls and the next turn, else is parsed."""

    type = "turn"
    parse_reads_prompt = True
    """A turn that asks for tools outputs the conversation so far: its prompt as well as its reply."""

    def __init__(
        self, formatter_name: str, parser_name: str, *deps: Task | str, turn: int, max_turns: int, tools: list[str],
        tool_errors: str = "return", params: dict[str, Any] | None = None, sample: int = 0,
        output_schema: Any = None, name: str | None = None, id: str | None = None, key: str | None = None,
    ) -> None:
        super().__init__(formatter_name, parser_name, *deps, params=params, sample=sample, name=name, id=id, key=key,
                         output_schema=output_schema)
        self.turn = turn
        """1 for the first call, then 2, 3, ..."""
        self.max_turns = max_turns
        """The agent's ``max_turns``: this turn does not ask again when it is the last allowed."""
        self.tools = list(tools)
        """Registry names of the tools the model may call."""
        self.tool_errors = tool_errors
        """How a failing tool is reported (see :class:`AgentTask`)."""

    def _spec(self) -> tuple[Any, ...]:
        return (*super()._spec(), self.turn, self.max_turns, self.tools, self.tool_errors)

    def tool_uses(self) -> list[dict[str, Any]]:
        from ..llm.reply import content_of

        response = self.record.response or {}
        if response.get("stop_reason") != "tool_use":
            return []
        return [b for b in content_of(response) if b.get("type") == "tool_use"]

    def grows(self) -> bool:
        """Asks for tools, or was paused by the API (``pause_turn``: a long server-tool turn to send back as it is)."""
        if self.turn >= self.max_turns:
            return False
        return bool(self.tool_uses()) or (self.record.response or {}).get("stop_reason") == "pause_turn"

    def grow(self, ctx: TaskContext) -> Any:
        """Add one tool call per ``tool_use`` block and the next turn; the output is the conversation so far."""
        from ..llm.base import build_request
        from ..llm.reply import content_of

        request = build_request(self.record.prompt, None)
        conversation = {**request, "messages": [*request["messages"],
                                                {"role": "assistant", "content": content_of(self.record.response)}]}
        seen: Counter[str] = Counter()
        calls: list[Task] = []
        for use in self.tool_uses():
            name = str(use.get("name"))
            fn = name if name in self.tools else UNKNOWN_TOOL
            # ids from the agent's own tool names only: a name the model made up may be empty, hold " > ", or
            # look like a numbered id ("add#2"); its calls are numbered under one name of their own
            base = name if fn == name else "unknown_tool"
            seen[base] += 1
            tid = f"turn{self.turn}/{base}" + (f"#{seen[base]}" if seen[base] > 1 else "")
            arguments = use.get("input") if isinstance(use.get("input"), dict) else {}
            calls.append(ctx.add_task(ToolCallTask(
                fn, tool=name, tool_use_id=str(use.get("id")), tool_errors=self.tool_errors, id=tid,
                inputs=arguments if fn == name else {"name": name},
            )))
        ctx.add_task(TurnTask(
            NEXT_TURN, self.parser_name, self, *calls, turn=self.turn + 1, max_turns=self.max_turns, tools=self.tools,
            tool_errors=self.tool_errors, params=self.params, output_schema=self.output_schema, id=f"turn{self.turn + 1}",
        ))
        return conversation


class ToolCallTask(PythonTask):
    """One ``tool_use`` block: the registry function called with the tool input as keyword arguments."""

    type = "tool"

    def __init__(
        self, fn_name: str, *, tool: str, tool_use_id: str, tool_errors: str = "return", id: str | None = None,
        inputs: dict[str, Any] | None = None, name: str | None = None,
    ) -> None:
        super().__init__(fn_name, name=name or tool, id=id, inputs=inputs)
        self.tool = tool
        """The tool name the model asked for (the registry name, unless it named no known tool)."""
        self.tool_use_id = tool_use_id
        """The ``id`` of the ``tool_use`` block this call answers."""
        self.tool_errors = tool_errors
        """``return``: an exception becomes an ``is_error`` result for the model; ``raise``: the task fails."""

    def absorbs(self, exc: BaseException) -> bool:
        return self.tool_errors == "return" and isinstance(exc, Exception)

    def error_output(self, exc: BaseException) -> Any:
        return {"is_error": True, "content": f"{type(exc).__name__}: {exc}"}


def tool_result(use: dict[str, Any], output: Any) -> dict[str, Any]:
    """The ``tool_result`` block answering ``use`` with a tool call's output."""
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": use.get("id")}
    if isinstance(output, dict) and output.get("is_error") is True and set(output) == {"is_error", "content"}:
        block["content"], block["is_error"] = str(output["content"]), True
    else:
        block["content"] = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    return block


def _first_turn(ctx: TaskContext) -> Any:
    """Turn 1 sends the agent's formatted prompt (the sub-graph's input)."""
    return ctx.graph_input


def _next_turn(ctx: TaskContext, conversation: dict[str, Any], *outputs: Any) -> dict[str, Any]:
    """Turn k+1 sends the conversation so far and one ``tool_result`` per tool call of turn k (none after a
    ``pause_turn``: the paused reply goes back as it is, for the model to continue)."""
    uses = [b for b in conversation["messages"][-1]["content"] if b.get("type") == "tool_use"]
    if not uses:
        return conversation
    results = [tool_result(use, out) for use, out in zip(uses, outputs, strict=True)]
    return {**conversation, "messages": [*conversation["messages"], {"role": "user", "content": results}]}


def _unknown_tool(ctx: TaskContext, name: str) -> Any:
    """Stands in for a tool the model named but the agent does not have: the model is told so."""
    raise LookupError(f"there is no tool `{name}`; use one of the tools listed in the request")


BUILTINS.update({FIRST_TURN: _first_turn, NEXT_TURN: _next_turn, UNKNOWN_TOOL: _unknown_tool})


def checked_tools(tools: Any, label: str) -> list[str | dict[str, Any]]:
    """``tools`` as an agent keeps them (registry names, or dicts with a ``name``), refused with a message naming
    ``label`` when they could not be sent; the constructor and the trace loader both read them through here."""
    if not isinstance(tools, (list, tuple)) or not tools:
        raise GraphValidationError(f"task `{label}`: `tools` must be a non-empty list of registry names (or tool dicts)")
    out: list[str | dict[str, Any]] = []
    for tool in tools:
        if isinstance(tool, str) and tool:
            out.append(tool)
        elif isinstance(tool, Mapping) and isinstance(tool.get("name"), str) and tool["name"]:
            unknown = set(tool) - {"name", "description", "input_schema"}
            if unknown:
                raise GraphValidationError(f"task `{label}`: tool `{tool['name']}` has unknown keys {sorted(unknown)}")
            out.append(dict(tool))
        else:
            raise GraphValidationError(f"task `{label}`: each tool is a registry name or a dict with a `name`, got {tool!r:.80}")
    names = [t if isinstance(t, str) else t["name"] for t in out]
    if len(set(names)) != len(names):
        raise GraphValidationError(f"task `{label}`: a tool is listed twice in {names}")
    return out


def _checked_turns(max_turns: Any, label: str) -> int:
    if not isinstance(max_turns, int) or isinstance(max_turns, bool) or max_turns < 1:
        raise GraphValidationError(f"task `{label}`: `max_turns` must be a whole number >= 1, got {max_turns!r:.40}")
    return max_turns


def _checked_choice(tool_errors: Any, label: str) -> str:
    if tool_errors not in TOOL_ERRORS:
        raise GraphValidationError(f"task `{label}`: `tool_errors` must be one of {TOOL_ERRORS}, got {tool_errors!r:.40}")
    return str(tool_errors)
