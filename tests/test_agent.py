"""Tool-using agents as growing graphs (llmtaskgraph/model/agent.py), on scripted replies.

The same loop against the real SDK and the loopback Messages API server is in test_agent_api.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, Literal

import pytest

from llmtaskgraph import (
    AgentTask,
    LLMTask,
    MissingFunctionError,
    PythonTask,
    Reply,
    ScriptedLLM,
    TaskGraph,
    TaskGraphError,
    ToolCallTask,
    TurnTask,
)
from llmtaskgraph.errors import GraphValidationError
from llmtaskgraph.llm import text, thinking, tool_use


def add(ctx: Any, a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def mul(ctx: Any, a: int, b: int = 1) -> int:
    """Multiply two numbers.

    Longer text that is not part of the description."""
    return a * b


class Scripted:
    """A three-turn conversation: turns 1 and 2 think and ask for two tool calls each, turn 3 answers."""

    def __init__(self, turns: int = 3) -> None:
        self.turns = turns
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(json.loads(json.dumps(request)))
        turn = sum(m["role"] == "assistant" for m in request["messages"]) + 1
        results = [b["content"] for b in request["messages"][-1]["content"] if b.get("type") == "tool_result"] \
            if isinstance(request["messages"][-1]["content"], list) else []
        if turn < self.turns:
            return {"content": [
                thinking(f"turn {turn}: I need two sums", signature=f"sig-{turn}"),
                tool_use("add", {"a": turn, "b": 10}, id=f"toolu_{turn}a"),
                tool_use("mul", {"a": turn, "b": 3}, id=f"toolu_{turn}b"),
            ]}
        return {"content": [thinking("done", signature="sig-final"), text(f"answer from {results}")]}


def registry(**extra: Any) -> dict[str, Any]:
    return {"fmt": lambda ctx: ctx.graph_input["question"], "parse": lambda ctx, t: t.upper(),
            "add": add, "mul": mul, **extra}


def agent_graph(**kwargs: Any) -> tuple[TaskGraph, Any]:
    graph = TaskGraph({"question": "what are the sums?"})
    agent = graph.add_task(LLMTask("fmt", "parse", tools=["add", "mul"], id="agent",
                                   params={"thinking": {"type": "enabled", "budget_tokens": 1024}}, **kwargs))
    return graph, agent


def test_an_llmtask_with_tools_is_an_agent_and_other_llmtasks_are_not():
    _graph, agent = agent_graph()
    assert isinstance(agent, AgentTask) and agent.tools == ["add", "mul"] and agent.max_turns == 10
    assert type(LLMTask("fmt", "parse")) is LLMTask
    assert agent.function_names() == {"formatter": "fmt", "parser": "parse", "tool add": "add", "tool mul": "mul"}


def test_three_turns_with_two_parallel_tool_calls_each_grow_the_graph_and_send_thinking_back_verbatim():
    graph, agent = agent_graph()
    script = Scripted()
    llm = ScriptedLLM(script, whole_request=True, name="three-turns")
    out = graph.run(registry(), llm=llm, progress=False)
    assert out == "ANSWER FROM ['12', '6']" and agent.output == out
    sub = agent.subgraph.tasks
    assert list(sub) == ["turn1", "turn1/add", "turn1/mul", "turn2", "turn2/add", "turn2/mul", "turn3"]
    assert all(isinstance(sub[t], TurnTask) for t in ("turn1", "turn2", "turn3"))
    assert isinstance(sub["turn1/add"], ToolCallTask) and sub["turn1/add"].tool_use_id == "toolu_1a"
    assert sub["turn1/add"].output == 11 and sub["turn1/mul"].output == 3 and sub["turn2/add"].output == 12
    assert llm.calls == 3 and graph.last_run.llm_calls == 3
    # every request carries the tools' schemas, from their signatures and docstrings
    tools = script.requests[0]["tools"]
    assert tools == [
        {"name": "add", "description": "Add two numbers.", "input_schema": {
            "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}},
        {"name": "mul", "description": "Multiply two numbers.", "input_schema": {
            "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a"]}},
    ]
    # turn 2 sends turn 1's reply back as it came, thinking and signature included, then the tool results
    second = script.requests[1]["messages"]
    assert second[0] == {"role": "user", "content": "what are the sums?"}
    assert second[1] == {"role": "assistant", "content": sub["turn1"].response["content"]}
    assert second[1]["content"][0] == {"type": "thinking", "thinking": "turn 1: I need two sums", "signature": "sig-1"}
    assert second[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1a", "content": "11"},
        {"type": "tool_result", "tool_use_id": "toolu_1b", "content": "3"},
    ]}
    assert len(script.requests[2]["messages"]) == 5


def test_editing_the_second_turns_tool_result_calls_only_the_later_turn():
    graph, _agent = agent_graph()
    script = Scripted()
    graph.run(registry(), llm=ScriptedLLM(script, whole_request=True, name="s"), progress=False)
    graph.find("agent > turn2/add").edit(output=100)
    plan = graph.plan(registry(), llm=ScriptedLLM(script, whole_request=True, name="s"))
    assert plan.will_run == ["agent", "agent > turn3"] and plan.llm_calls == 1
    assert "output of `turn2/add` changed" in plan.reasons["agent > turn3"]
    before = len(script.requests)
    llm = ScriptedLLM(script, whole_request=True, name="s")
    out = graph.run(registry(), llm=llm, progress=False)
    assert llm.calls == 1 and len(script.requests) == before + 1
    assert out == "ANSWER FROM ['100', '6']"
    last = script.requests[-1]["messages"]
    assert last[3]["content"][0]["signature"] == "sig-2"  # turn 2's thinking, byte for byte
    assert graph.last_run.executed == ["agent", "agent > turn3"]


def test_a_saved_agent_trace_loads_and_replays_with_no_call(tmp_path):
    graph, _agent = agent_graph()
    graph.run(registry(), llm=ScriptedLLM(Scripted(), whole_request=True, name="s"), progress=False)
    graph.save(tmp_path / "agent.json")
    loaded = TaskGraph.load(tmp_path / "agent.json")
    assert loaded.to_json() == graph.to_json()
    assert isinstance(loaded.tasks["agent"], AgentTask) and isinstance(loaded.find("agent > turn1/add"), ToolCallTask)
    llm = ScriptedLLM(Scripted(), whole_request=True, name="s")
    assert loaded.plan(registry(), llm=llm).will_run == []
    assert loaded.run(registry(), llm=llm, progress=False) == "ANSWER FROM ['12', '6']"
    assert llm.calls == 0 and loaded.last_run.executed == []


def test_tool_calls_of_one_turn_run_at_the_same_time():
    started: list[str] = []
    both = asyncio.Event()

    async def slow_add(ctx: Any, a: int, b: int) -> int:
        started.append("add")
        if len(started) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 10)  # waits for the other call: deadlocks if run one after the other
        return a + b

    async def slow_mul(ctx: Any, a: int, b: int) -> int:
        started.append("mul")
        if len(started) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 10)
        return a * b

    graph, _ = agent_graph()
    out = graph.run(registry(add=slow_add, mul=slow_mul), llm=ScriptedLLM(Scripted(turns=2), whole_request=True, name="p"),
                    progress=False)
    assert out == "ANSWER FROM ['11', '3']" and sorted(started) == ["add", "mul"]


def test_a_tool_that_raises_tells_the_model_and_the_graph_goes_on():
    def broken(ctx: Any, a: int, b: int) -> int:
        raise ValueError("no numbers today")

    graph, _agent = agent_graph()
    script = Scripted(turns=2)
    out = graph.run(registry(add=broken), llm=ScriptedLLM(script, whole_request=True, name="e"), progress=False)
    call = graph.find("agent > turn1/add")
    assert call.status == "done" and call.output == {"is_error": True, "content": "ValueError: no numbers today"}
    assert script.requests[1]["messages"][2]["content"][0] == {
        "type": "tool_result", "tool_use_id": "toolu_1a", "content": "ValueError: no numbers today", "is_error": True}
    assert out == "ANSWER FROM ['VALUEERROR: NO NUMBERS TODAY', '3']".upper()


def test_tool_errors_raise_fails_the_tool_call_and_blocks_the_loop():
    def broken(ctx: Any, a: int, b: int) -> int:
        raise ValueError("no numbers today")

    graph, _agent = agent_graph(tool_errors="raise")
    with pytest.raises(TaskGraphError, match=r"agent > turn1/add"):
        graph.run(registry(add=broken), llm=ScriptedLLM(Scripted(), whole_request=True, name="r"), progress=False)
    assert graph.find("agent > turn1/add").status == "failed" and graph.find("agent > turn2").status == "blocked"


def test_a_tool_the_model_made_up_gets_an_error_result():
    def reply(request: dict[str, Any]) -> dict[str, Any]:
        if len(request["messages"]) == 1:
            return {"content": [tool_use("delete_everything", {"really": True}, id="toolu_x")]}
        return {"content": [text(request["messages"][-1]["content"][0]["content"])]}

    graph, _agent = agent_graph()
    out = graph.run(registry(), llm=ScriptedLLM(reply, whole_request=True, name="u"), progress=False)
    assert out == "LOOKUPERROR: THERE IS NO TOOL `DELETE_EVERYTHING`; USE ONE OF THE TOOLS LISTED IN THE REQUEST"
    assert graph.find("agent > turn1/unknown_tool").tool == "delete_everything"


def test_max_turns_ends_the_loop_and_the_last_parser_sees_why():
    seen: list[Reply] = []

    def parse(ctx: Any, reply: Reply) -> str:
        seen.append(reply)
        return f"{reply.stop_reason}: {len(reply.tool_uses)} tool uses"

    graph, agent = agent_graph(max_turns=2)
    llm = ScriptedLLM(Scripted(turns=99), whole_request=True, name="forever")
    out = graph.run(registry(parse=parse), llm=llm, progress=False)
    assert llm.calls == 2 and out == "tool_use: 2 tool uses"
    assert list(agent.subgraph.tasks) == ["turn1", "turn1/add", "turn1/mul", "turn2"]
    assert seen[0].thinking == "turn 2: I need two sums"


def test_a_missing_tool_is_reported_before_anything_runs():
    graph, _ = agent_graph()
    reg = registry()
    del reg["mul"]
    with pytest.raises(MissingFunctionError, match="mul"):
        graph.run(reg, llm=ScriptedLLM(Scripted(), whole_request=True, name="m"), progress=False)


def test_changing_the_tools_starts_the_loop_again():
    graph, _agent = agent_graph()
    graph.run(registry(), llm=ScriptedLLM(Scripted(), whole_request=True, name="s"), progress=False)

    def add(ctx: Any, a: int, b: int, c: int = 0) -> int:  # a new parameter: a new schema in the request
        return a + b + c

    llm = ScriptedLLM(Scripted(), whole_request=True, name="s")
    plan = graph.plan(registry(add=add), llm=llm)
    assert plan.will_run == ["agent"] and plan.reasons["agent"] == ["tools or settings changed: the loop starts again"]
    assert plan.llm_calls == 10 and plan.llm_calls_certain == 1
    graph.run(registry(add=add), llm=llm, progress=False)
    assert llm.calls == 3


def test_the_agent_output_feeds_later_tasks_and_its_edit_lands_on_the_last_turn():
    graph, agent = agent_graph()
    graph.add_output_task(PythonTask("shout", agent, id="after"))
    reg = registry(shout=lambda ctx, answer: answer + "!")
    graph.run(reg, llm=ScriptedLLM(Scripted(), whole_request=True, name="s"), progress=False)
    assert graph.tasks["after"].output == "ANSWER FROM ['12', '6']!"
    agent.edit(output="forty-two")
    assert graph.find("agent > turn3").output == "forty-two"
    llm = ScriptedLLM(Scripted(), whole_request=True, name="s")
    assert graph.run(reg, llm=llm, progress=False) == "forty-two!" and llm.calls == 0


def test_tool_schemas_come_from_type_hints_or_are_given():
    def search(ctx: Any, query: str, limit: int = 5, mode: Literal["fast", "deep"] = "fast", tags: list[str] | None = None) -> str:
        return query

    captured: list[dict[str, Any]] = []

    def reply(request: dict[str, Any]) -> str:
        captured.append(request)
        return "no tools needed"

    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "parse", tools=["search", {"name": "lookup", "description": "Look up a word.",
                                                              "input_schema": {"type": "object"}}], id="agent"))
    graph.run({"fmt": lambda ctx: "hi", "parse": lambda ctx, t: t, "search": search, "lookup": lambda ctx, **kw: kw},
              llm=ScriptedLLM(reply, whole_request=True, name="schema"), progress=False)
    search_schema, lookup_schema = captured[0]["tools"]
    assert search_schema["input_schema"] == {"type": "object", "required": ["query"], "properties": {
        "query": {"type": "string"}, "limit": {"type": "integer"}, "mode": {"enum": ["fast", "deep"]},
        "tags": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]}}}
    assert lookup_schema == {"name": "lookup", "description": "Look up a word.", "input_schema": {"type": "object"}}


@pytest.mark.parametrize("bad, message", [
    ({"tools": []}, "non-empty list"),
    ({"tools": ["a", "a"]}, "listed twice"),
    ({"tools": [{"name": "a", "schema": {}}]}, "unknown keys"),
    ({"tools": ["a"], "max_turns": 0}, "`max_turns` must be a whole number >= 1"),
    ({"tools": ["a"], "tool_errors": "ignore"}, "`tool_errors` must be one of"),
])
def test_bad_agent_settings_are_refused_where_they_enter(bad, message):
    with pytest.raises(GraphValidationError, match=message):
        if bad["tools"] == []:
            AgentTask("f", "p", **bad)
        else:
            LLMTask("f", "p", **bad)


def test_the_offline_backend_runs_an_agent_with_no_key():
    from llmtaskgraph import OfflineLLM

    graph, _agent = agent_graph()
    llm = OfflineLLM()
    out = graph.run(registry(), llm=llm, progress=False)
    assert llm.calls == 2 and "TOOL RESULTS: 0; 0" in out and "[OFFLINE REPLY" in out
    first = graph.find("agent > turn1").response["content"]
    assert [b["type"] for b in first] == ["thinking", "tool_use", "tool_use"]


def test_a_turn_that_gets_the_same_reply_to_a_changed_conversation_carries_the_new_conversation_on():
    graph, agent = agent_graph()
    script = Scripted()
    llm = ScriptedLLM(script, whole_request=True, name="s")
    graph.run(registry(), llm=llm, progress=False)
    turn1 = graph.find("agent > turn1")
    turn1.edit(response={"content": turn1.response["content"][:2], "stop_reason": "tool_use"})  # only `add` now
    graph.run(registry(), llm=llm, progress=False)
    assert llm.calls == 3 + 2  # turn 2 replies as before, yet turn 3 is asked again: its conversation changed
    assert "turn1/mul" not in agent.subgraph.tasks
    assert len(script.requests[-1]["messages"][2]["content"]) == 1  # one tool result for turn 1 now


def test_the_plan_of_an_agent_never_run_counts_up_to_max_turns_calls():
    graph, _ = agent_graph(max_turns=4)
    plan = graph.plan(registry(), llm=ScriptedLLM(Scripted(), whole_request=True, name="s"))
    assert plan.will_run == ["agent"] and plan.llm_calls == 4 and plan.llm_calls_certain == 1


def test_a_paused_turn_is_sent_back_for_the_model_to_continue():
    requests: list[dict[str, Any]] = []

    def reply(request: dict[str, Any]) -> dict[str, Any]:
        requests.append(request)
        if len(request["messages"]) == 1:
            return {"content": [{"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
                                 "input": {"query": "q"}}], "stop_reason": "pause_turn"}
        return {"content": [text("found it")]}

    graph, agent = agent_graph()
    assert graph.run(registry(), llm=ScriptedLLM(reply, whole_request=True, name="pause"), progress=False) == "FOUND IT"
    assert list(agent.subgraph.tasks) == ["turn1", "turn2"]
    assert requests[1]["messages"][-1] == {"role": "assistant", "content": graph.find("agent > turn1").response["content"]}


# -- plan and run agree on agents, whatever the loop and the edit ------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def scripted_model(plan: list[int]) -> Any:
    """Turn k asks for ``plan[k]`` tool calls (0: answers); answers depend on every tool result so far."""

    def reply(request: dict[str, Any]) -> dict[str, Any]:
        turn = sum(m["role"] == "assistant" for m in request["messages"])
        seen = [b["content"] for m in request["messages"] if m["role"] == "user" and isinstance(m["content"], list)
                for b in m["content"]]
        calls = plan[turn] if turn < len(plan) else 0
        if calls:
            return {"content": [thinking(f"t{turn}"), *(
                tool_use("add" if i % 2 else "mul", {"a": turn + i, "b": len(seen)}, id=f"toolu_{turn}_{i}")
                for i in range(calls))]}
        return {"content": [text(f"answer {seen}")]}

    return reply


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(turns=st.lists(st.integers(0, 3), min_size=1, max_size=4), max_turns=st.integers(1, 5),
       edit=st.sampled_from(["tool", "reply", "invalidate", "code", "none"]), pick=st.integers(0, 100))
def test_the_plan_of_an_agent_covers_what_the_run_does_and_a_second_run_does_nothing(turns, max_turns, edit, pick):
    graph, agent = agent_graph(max_turns=max_turns)
    reg = registry()
    llm = ScriptedLLM(scripted_model(turns), whole_request=True, name="prop")
    graph.run(reg, llm=llm, progress=False)
    sub = agent.subgraph.tasks
    tools = [t for t in sub.values() if isinstance(t, ToolCallTask)]
    turn_tasks = [t for t in sub.values() if isinstance(t, TurnTask)]
    assert len(turn_tasks) == min(max_turns, len([n for n in turns if n]) + 1) or turns[len(turn_tasks) - 1] == 0
    if edit == "tool" and tools:
        tools[pick % len(tools)].edit(output=pick)
    elif edit == "reply":
        turn = turn_tasks[pick % len(turn_tasks)]
        turn.edit(response=f"edited {pick}")
    elif edit == "invalidate":
        graph.invalidate(turn_tasks[pick % len(turn_tasks)])
    elif edit == "code" and tools:
        reg["add"] = lambda ctx, a, b: a + b + 1
    plan = graph.plan(reg, llm=llm)
    before = llm.calls
    graph.run(reg, llm=llm, progress=False)
    afresh = [w for w in plan.will_run if any("loop" in r for r in plan.reasons[w])]  # its tasks are new ones
    assert all(p in plan.will_run or any(p.startswith(f"{w} > ") for w in afresh) for p in graph.last_run.executed), (
        plan.will_run, graph.last_run.executed)
    assert llm.calls - before <= plan.llm_calls
    if edit in ("none",) or (edit in ("tool", "code") and not tools):
        assert plan.will_run == [] and graph.last_run.executed == []
    again = graph.plan(reg, llm=llm)
    calls = llm.calls
    graph.run(reg, llm=llm, progress=False)
    assert again.will_run == [] and graph.last_run.executed == [] and llm.calls == calls
    loaded = TaskGraph.from_json(json.loads(json.dumps(graph.to_json())))
    assert loaded.plan(reg, llm=llm).will_run == []


def test_an_agent_stopped_mid_loop_resumes_from_its_saved_trace_without_repeating_calls(tmp_path):
    graph, _ = agent_graph()
    script = Scripted()
    llm = ScriptedLLM(script, whole_request=True, name="s")
    graph.run(registry(), llm=llm, progress=False, max_tasks=3, checkpoint=tmp_path / "t.json")
    assert graph.last_run.stopped == "max_tasks" and llm.calls < 3
    calls = llm.calls
    loaded = TaskGraph.load(tmp_path / "t.json")
    llm2 = ScriptedLLM(script, whole_request=True, name="s")
    assert loaded.run(registry(), llm=llm2, progress=False) == "ANSWER FROM ['12', '6']"
    assert calls + llm2.calls == 3  # every turn called once in all


@pytest.mark.parametrize("names", [[""], ["a > b"], ["add", "add", "add#2"], ["unknown_tool", "x", "unknown_tool"]])
def test_tool_names_the_model_makes_up_get_error_results_and_a_trace_that_loads(names, tmp_path):
    def reply(request: dict[str, Any]) -> dict[str, Any]:
        if len(request["messages"]) == 1:
            return {"content": [tool_use(n, {"a": 1, "b": 2}, id=f"toolu_{i}") for i, n in enumerate(names)]}
        return {"content": [text(" | ".join(str(b["content"]) for b in request["messages"][-1]["content"]))]}

    graph, _ = agent_graph()
    out = graph.run(registry(), llm=ScriptedLLM(reply, whole_request=True, name="made-up"), progress=False)
    results = out.split(" | ")
    assert len(results) == len(names)
    for name, result in zip(names, results, strict=True):
        assert result == ("3" if name == "add" else f"LOOKUPERROR: THERE IS NO TOOL `{name.upper()}`; USE ONE OF THE TOOLS LISTED IN THE REQUEST")
    graph.save(tmp_path / "t.json")
    assert TaskGraph.load(tmp_path / "t.json").to_json() == graph.to_json()


def test_editing_a_turns_blocks_decides_whether_it_asks_for_tools():
    graph, agent = agent_graph()
    llm = ScriptedLLM(Scripted(), whole_request=True, name="s")
    graph.run(registry(), llm=llm, progress=False)
    turn1 = graph.find("agent > turn1")
    thought = turn1.response["content"][0]
    turn1.edit(response={"content": [thought, text("no tools after all")]})  # an answer now, not a request for tools
    assert turn1.response["stop_reason"] == "end_turn"
    assert graph.run(registry(), llm=llm, progress=False) == "NO TOOLS AFTER ALL"
    assert list(agent.subgraph.tasks) == ["turn1"]
    turn1.edit(response={"content": [thought, tool_use("add", {"a": 5, "b": 5}, id="t9")]})  # and back to asking
    assert turn1.response["stop_reason"] == "tool_use"
    graph.run(registry(), llm=llm, progress=False)
    assert graph.find("agent > turn1/add").output == 10


@pytest.mark.parametrize("content, message", [
    ([{"type": "tool_use", "name": "add", "input": {}}], r"block 0 \(tool_use\) needs `id`"),
    ([{"type": "tool_use", "id": "t", "name": "add"}], r"needs `input` \(an object\)"),
    ([{"type": "text"}], r"block 0 \(text\) needs `text`"),
])
def test_a_reply_edit_with_blocks_the_api_would_refuse_is_refused(content, message):
    graph, _ = agent_graph()
    graph.run(registry(), llm=ScriptedLLM(Scripted(), whole_request=True, name="s"), progress=False)
    with pytest.raises(GraphValidationError, match=message):
        graph.find("agent > turn1").edit(response={"content": content})
    with pytest.raises(GraphValidationError, match="`text` differs from the text blocks"):
        graph.find("agent > turn1").edit(response={"content": [text("a")], "text": "b"})


def test_a_text_edit_of_a_reply_with_no_text_goes_before_its_tool_uses():
    graph, _ = agent_graph()
    graph.run(registry(), llm=ScriptedLLM(Scripted(), whole_request=True, name="s"), progress=False)
    turn1 = graph.find("agent > turn1")
    turn1.edit(response="let me add")
    assert [b["type"] for b in turn1.response["content"]] == ["thinking", "text", "tool_use", "tool_use"]


@pytest.mark.parametrize("kwargs, message", [
    ({"tools": []}, "`tools` belong to an LLMTask with tools: give `tools` a non-empty list"),
    ({"max_turns": 3}, "`max_turns` belong to an LLMTask with tools"),
    ({"tools": ["add"], "sample": 2}, "an agent has no `sample` of its own"),
    ({"output_schema": {"type": "nonsense"}}, r"`output_schema\['type'\]` is not a valid JSON schema"),
])
def test_settings_that_cannot_work_are_refused_when_the_task_is_made(kwargs, message):
    with pytest.raises(GraphValidationError, match=message):
        LLMTask("fmt", "parse", **kwargs)
    assert type(LLMTask("fmt", "parse", tools=None)) is LLMTask


def test_pydantic_base_model_itself_is_no_output_schema():
    pydantic = pytest.importorskip("pydantic")
    with pytest.raises(GraphValidationError, match="`output_schema` BaseModel gives no JSON schema"):
        LLMTask("fmt", "parse", output_schema=pydantic.BaseModel)


def test_a_parser_asks_for_the_whole_reply_with_reply_in_its_annotation():
    from typing import Annotated, Optional

    from llmtaskgraph.llm.reply import wants_reply

    def plain(ctx: Any, text: str) -> str: ...
    def optional(ctx: Any, reply: Reply | None) -> str: ...
    def old_optional(ctx: Any, reply: Optional[Reply]) -> str: ...  # noqa: UP045
    def annotated(ctx: Any, reply: Annotated[Reply, "whole"]) -> str: ...
    def as_text(ctx: Any, reply: "Reply | None") -> str: ...  # noqa: UP037
    def untyped(ctx, reply): ...  # type: ignore[no-untyped-def]

    assert [wants_reply(f) for f in (plain, optional, old_optional, annotated, as_text, untyped)] == [
        False, True, True, True, True, False]


def _saved_agent() -> dict[str, Any]:
    graph, _ = agent_graph()
    graph.run(registry(), llm=ScriptedLLM(Scripted(), whole_request=True, name="s"), progress=False)
    return json.loads(json.dumps(graph.to_json()))


@pytest.mark.parametrize("edit, field", [
    (lambda sub: sub["turn1"].update(children=["turn1/add", "turn1/mul"]), "subgraph"),  # turn2 not listed
    (lambda sub: sub["turn2"].update(deps=["turn1/add"]), "subgraph"),
    (lambda sub: sub["turn2"].update(created_by=None), "subgraph"),
    (lambda sub: sub["turn3"].update(created_by="turn1"), "subgraph"),
    (lambda sub: sub["turn2"].update(turn=5), "subgraph"),
    (lambda sub: sub["turn2"].update(formatter="fmt"), "subgraph"),
    (lambda sub: sub["turn2"].update(max_turns=3), "subgraph"),
    (lambda sub: sub["turn1/add"].update(created_by="turn1/mul"), "subgraph"),
    (lambda sub: sub["turn1"]["response"].update(content="x"), "response.content"),
])
def test_a_hand_edited_agent_loop_that_could_not_run_is_refused_naming_the_field(edit, field):
    from llmtaskgraph import InvalidTraceError

    data = _saved_agent()
    edit({t["id"]: t for t in data["tasks"][0]["subgraph"]["tasks"]})
    with pytest.raises(InvalidTraceError, match=re.escape(field)):
        TaskGraph.from_json(data)


def test_a_turn_saved_while_it_grew_loads_and_grows_again():
    """A save from another thread may catch a turn that added its next turn but does not list it yet (its
    parse stage holds no fingerprint then): the trace loads, and the run grows the turn again."""
    data = _saved_agent()
    sub = {t["id"]: t for t in data["tasks"][0]["subgraph"]["tasks"]}
    sub["turn2"]["children"] = []
    del sub["turn2"]["fingerprints"]["parse"]
    graph = TaskGraph.from_json(data)
    llm = ScriptedLLM(Scripted(), whole_request=True, name="s")
    assert graph.run(registry(), llm=llm, progress=False) == "ANSWER FROM ['12', '6']" and llm.calls == 0


def test_a_tool_that_cannot_take_keywords_is_named_before_anything_runs():
    def positional(ctx: Any, a: int, /) -> int:
        return a

    graph, _ = agent_graph()
    llm = ScriptedLLM(Scripted(), whole_request=True, name="s")
    with pytest.raises(GraphValidationError, match="task `agent`: tool `add`: parameter `a` is positional-only"):
        graph.run(registry(add=positional), llm=llm, progress=False)
    assert llm.calls == 0 and graph.tasks["agent"].status == "pending"


def test_params_a_trace_could_not_save_are_refused_when_the_task_is_made():
    from llmtaskgraph import OutputNotJSONError

    with pytest.raises(OutputNotJSONError, match=r"`params` of task `fmt`.*`params\[\"a\"\]`"):
        LLMTask("fmt", "parse", params={"a": {1, 2}})
    with pytest.raises(OutputNotJSONError, match="the settings of task `agent`"):
        LLMTask("fmt", "parse", tools=["add"], id="agent", params={"a": float("nan")})
