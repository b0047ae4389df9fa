"""Task cards of whole replies and agents (llmtaskgraph/views/cards.py): what the text alone does not say."""

from __future__ import annotations

from typing import Any

from llmtaskgraph import LLMTask, ScriptedLLM, TaskGraph
from llmtaskgraph.llm import text, thinking, tool_use
from llmtaskgraph.views.cards import kind_text, task_html


def add(ctx: Any, a: int, b: int) -> int:
    return a + b


def reply(request: dict[str, Any]) -> dict[str, Any]:
    if len(request["messages"]) == 1:
        return {"content": [thinking("plan <b>two</b> sums"), tool_use("add", {"a": 1, "b": 2}, id="toolu_1")]}
    return {"content": [text("three")], "stop_reason": "max_tokens"}


def ran() -> TaskGraph:
    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "parse", tools=["add"], max_turns=3, id="agent"))
    graph.run({"fmt": lambda ctx: "sum", "parse": lambda ctx, t: t, "add": add},
              llm=ScriptedLLM(reply, whole_request=True, name="cards"), progress=False)
    return graph


def test_agent_turn_and_tool_call_cards_say_what_each_task_is():
    graph = ran()
    assert kind_text(graph.tasks["agent"]) == "agent: fmt → parse · tools add"
    assert kind_text(graph.find("agent > turn1")) == "LLM turn 1 of at most 3 → parse"
    assert kind_text(graph.find("agent > turn1/add")) == "tool call: add(a=1, b=2)"


def test_a_card_shows_thinking_and_tool_uses_escaped_and_an_early_stop():
    graph = ran()
    first = task_html(graph.find("agent > turn1"))
    assert "[thinking] plan &lt;b&gt;two&lt;/b&gt; sums" in first and "[tool_use add] {" in first
    assert "stopped early" not in first
    last = task_html(graph.find("agent > turn2"))
    assert "stopped early" in last and "max_tokens: cut off at `max_tokens`" in last


def test_the_graph_views_hover_shows_a_replys_tokens_and_cost():
    from llmtaskgraph import LLMResponse

    class Priced:
        kind = "priced"

        async def complete(self, request: dict[str, Any]) -> LLMResponse:
            return LLMResponse(text="ok", model="claude-sonnet-5-5", stop_reason="end_turn",
                               usage={"input_tokens": 1000, "output_tokens": 100}, backend="anthropic")

    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "parse", id="ask"))
    graph.run({"fmt": lambda ctx: "hi", "parse": lambda ctx, t: t}, llm=Priced(), progress=False)
    hover = graph.view().info["ask"]
    assert "1000 in + 100 out tokens · cost $0." in hover
