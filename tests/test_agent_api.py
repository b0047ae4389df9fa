"""Whole replies and tool loops through the real anthropic SDK and the loopback Messages API server.

Nothing is patched: the server issues thinking signatures and checks they come back unchanged, checks
that each ``tool_result`` answers a ``tool_use`` of the turn before, and counts every request.
"""

from __future__ import annotations

import json
from typing import Any

import fake_content as fc
import pytest

from llmtaskgraph import LLMTask, OutputSchemaError, Reply, TaskGraph, TaskGraphError

THINKING = {"type": "enabled", "budget_tokens": 1024}


def add(ctx: Any, a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def mul(ctx: Any, a: int, b: int) -> int:
    """Multiply two numbers."""
    return a * b


def three_turns(body: dict[str, Any]) -> dict[str, Any]:
    """Turns 1 and 2 think and call `add` and `mul` at once; turn 3 answers with the last results."""
    turn = sum(m["role"] == "assistant" for m in body["messages"]) + 1
    if turn < 3:
        return {"content": [fc.thinking(f"turn {turn}: two calls"), fc.tool_use("add", {"a": turn, "b": 10}),
                            fc.tool_use("mul", {"a": turn, "b": 3})], "stop_reason": "tool_use"}
    results = [b["content"] for b in body["messages"][-1]["content"]]
    return {"content": [fc.thinking("I have what I need"), fc.text(f"results {results}")]}


REGISTRY = {"fmt": lambda ctx: ctx.graph_input, "parse": lambda ctx, text: text, "add": add, "mul": mul}


def agent_graph() -> TaskGraph:
    graph = TaskGraph("Compute the sums.")
    graph.add_task(LLMTask("fmt", "parse", tools=["add", "mul"], id="agent", params={"thinking": THINKING, "max_tokens": 4096}))
    return graph


def test_a_three_turn_agent_with_parallel_tool_calls_replays_only_the_turns_after_an_edit(fake_api, make_llm):
    fake_api.reply = three_turns
    graph = agent_graph()
    out = graph.run(REGISTRY, llm=make_llm(), progress=False)
    assert out == "results ['12', '6']" and fake_api.count == 3 and fake_api.status_counts[200] == 3
    sent = fake_api.bodies()
    turn1 = graph.find("agent > turn1").response
    # the thinking blocks went back byte for byte (the server would have answered 400 otherwise)
    assert sent[1]["messages"][1]["content"] == turn1["content"]
    assert json.dumps(sent[1]["messages"][1]["content"][0]) == json.dumps(turn1["content"][0])
    assert [t["name"] for t in sent[0]["tools"]] == ["add", "mul"]

    graph.find("agent > turn2/add").edit(output=1000)
    fake_api.reset()
    out = graph.run(REGISTRY, llm=make_llm(), progress=False)
    assert out == "results ['1000', '6']"
    assert fake_api.count == 1  # only turn 3 was asked again
    again = fake_api.bodies()[0]
    assert again["messages"][:4] == sent[2]["messages"][:4]
    assert again["messages"][4]["content"][0]["content"] == "1000"
    assert again["messages"][3]["content"] == graph.find("agent > turn2").response["content"]


def test_every_block_type_round_trips_through_run_save_load_and_replay_with_no_call(fake_api, make_llm, tmp_path):
    blocks = fc.every_block_type()
    usage = fc.full_usage(120, 80, cache_read=30, cache_write_5m=5, cache_write_1h=7, web_searches=1)
    fake_api.reply = lambda body: {"content": blocks, "stop_reason": "end_turn", "usage": usage,
                                   "container": {"id": "cntr_1", "expires_at": "2026-12-03T00:00:00Z"}}
    seen: list[Reply] = []

    def parse(ctx: Any, reply: Reply) -> dict[str, Any]:
        seen.append(reply)
        return {"text": reply.text, "tools": [u["name"] for u in reply.tool_uses], "thinking": reply.thinking}

    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "parse", id="ask", params={"thinking": THINKING, "max_tokens": 4096}))
    reg = {"fmt": lambda ctx: "tallest building?", "parse": parse}
    graph.run(reg, llm=make_llm(), progress=False)
    response = graph.tasks["ask"].response
    assert response["content"] == blocks  # exactly as the server sent them, unknown block type included
    assert response["usage"] == usage and response["extra"]["container"]["id"] == "cntr_1"
    assert response["id"].startswith("msg_") and response["request_id"]
    assert response["text"] == blocks[4]["text"] + blocks[5]["text"]
    assert seen[0].tool_uses[0]["input"]["precise"] is True and seen[0].stop_reason == "end_turn"
    graph.save(tmp_path / "t.json")
    loaded = TaskGraph.load(tmp_path / "t.json")
    assert loaded.tasks["ask"].response == response
    count = fake_api.count
    assert loaded.run(reg, llm=make_llm(), progress=False) == graph.tasks["ask"].output
    assert fake_api.count == count and loaded.last_run.executed == []


@pytest.mark.parametrize("reason", ["max_tokens", "refusal", "pause_turn", "model_context_window_exceeded"])
def test_a_reply_that_stopped_early_is_visible_to_the_parser(fake_api, make_llm, reason):
    fake_api.reply = lambda body: {"content": [fc.text("partial")], "stop_reason": reason}

    def parse(ctx: Any, reply: Reply) -> str:
        if reply.stopped_early:
            raise ValueError(f"stopped early: {reply.stop_note}")
        return reply.text

    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "parse", id="ask"))
    with pytest.raises(TaskGraphError, match="stopped early"):
        graph.run({"fmt": lambda ctx: "hi", "parse": parse}, llm=make_llm(), progress=False)
    task = graph.tasks["ask"]
    assert task.error.stage == "parse" and task.response["stop_reason"] == reason


def test_an_output_schema_is_sent_and_checked_and_fixing_the_parser_makes_no_call(fake_api, make_llm):
    schema = {"type": "object", "properties": {"label": {"type": "string", "enum": ["spam", "ham"]},
                                               "score": {"type": "number"}}, "required": ["label", "score"]}
    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "parse", id="classify", output_schema=schema))
    reg = {"fmt": lambda ctx: "Is 'WIN A PRIZE' spam?", "parse": lambda ctx, text: {"label": json.loads(text)["label"]}}
    with pytest.raises(TaskGraphError, match=r"does not match its `output_schema`: `output`: 'score' is a required"):
        graph.run(reg, llm=make_llm(), progress=False)
    task = graph.tasks["classify"]
    assert task.error.type == "OutputSchemaError" and task.error.stage == "parse"
    assert fake_api.bodies()[0]["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    reply = json.loads(task.response["text"])  # the server's reply, valid for the schema, is kept
    assert reply["label"] in ("spam", "ham")
    reg["parse"] = lambda ctx, text: json.loads(text)
    assert graph.run(reg, llm=make_llm(), progress=False) == reply and fake_api.count == 1


def test_a_pydantic_model_is_an_output_schema():
    pydantic = pytest.importorskip("pydantic")

    class Verdict(pydantic.BaseModel):
        label: str
        score: float

    task = LLMTask("fmt", "parse", output_schema=Verdict)
    assert task.output_schema == Verdict.model_json_schema()
    assert task.request_params()["output_config"]["format"]["schema"]["required"] == ["label", "score"]
    with pytest.raises(OutputSchemaError, match=r"`output\['score'\]`: 'high' is not of type 'number'"):
        from llmtaskgraph.llm.schema import check_output

        check_output({"label": "spam", "score": "high"}, task.output_schema, "t")


def test_streamed_replies_are_told_as_they_arrive_and_stored_whole(fake_api, make_llm):
    fake_api.reply = lambda body: {"content": [fc.thinking("hmm"), fc.text("Hello there, "), fc.text("streaming world")]}
    partial: list[str] = []

    def watch(event: Any) -> None:
        if event.kind == "llm_text":
            partial.append(event.task.record.partial_text)

    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "parse", id="ask", params={"thinking": THINKING, "max_tokens": 4096}))
    out = graph.run({"fmt": lambda ctx: "hi", "parse": lambda ctx, t: t}, llm=make_llm(), progress=False, on_event=watch)
    assert out == "Hello there, streaming world" and fake_api.requests[0].stream
    assert partial and partial[-1] == out and all(out.startswith(p) for p in partial)
    assert partial == sorted(partial, key=len)  # it only grows
    assert graph.tasks["ask"].record.partial_text is None
    assert graph.tasks["ask"].response["content"][0]["signature"] == fc.signature_for("hmm")


def test_editing_a_reply_keeps_its_thinking_and_refuses_to_change_it(fake_api, make_llm):
    fake_api.reply = lambda body: {"content": [fc.thinking("secret plan"), fc.text("first answer")]}
    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "parse", id="ask", params={"thinking": THINKING, "max_tokens": 4096}))
    reg = {"fmt": lambda ctx: "hi", "parse": lambda ctx, t: t}
    graph.run(reg, llm=make_llm(), progress=False)
    task = graph.tasks["ask"]
    task.edit(response="second answer")
    assert task.response["content"] == [fc.thinking("secret plan"), fc.text("second answer")]
    assert task.response["text"] == "second answer" and task.response["edited"] is True
    bad = [{**fc.thinking("secret plan"), "thinking": "a different plan"}, fc.text("x")]
    with pytest.raises(ValueError, match="changes its thinking blocks"):
        task.edit(response={"content": bad})
    assert graph.run(reg, llm=make_llm(), progress=False) == "second answer" and fake_api.count == 1


def test_show_names_the_replies_that_stopped_early(fake_api, make_llm, tmp_path, capsys):
    from llmtaskgraph.cli import main

    fake_api.reply = lambda body: {"content": [fc.text("The answer is")], "stop_reason": "max_tokens"}
    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "parse", id="ask"))
    graph.run({"fmt": lambda ctx: "hi", "parse": lambda ctx, t: t}, llm=make_llm(), progress=False)
    graph.save(tmp_path / "t.json")
    assert main(["show", str(tmp_path / "t.json")]) == 0
    assert "stopped early: `ask`: cut off at `max_tokens`: raise it in `params` to get the whole reply" in capsys.readouterr().out
