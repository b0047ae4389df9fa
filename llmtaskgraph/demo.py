"""The demo graph: ``python -m llmtaskgraph.demo`` (or ``bash scripts/demo.sh``).

A small research-brief pipeline that shows the main ideas at once: parallel LLM branches, a task
that plans and adds tasks at run time, a sub-graph used like a function, a JSON trace, and a
replay that re-runs nothing. With no ANTHROPIC_API_KEY it runs on the offline backend, whose
replies are labelled placeholders.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from . import FunctionRegistry, LLMTask, PythonTask, TaskContext, TaskGraph, TaskGraphTask

registry = FunctionRegistry()


@registry.register
def list_aspects(ctx: TaskContext) -> list[str]:
    """Split the question into aspects to research in parallel."""
    return [f"{aspect} of {ctx.graph_input['topic']}" for aspect in ctx.graph_input["aspects"]]


@registry.register
def plan(ctx: TaskContext, aspects: list[str]) -> int:
    """Add one LLM task per aspect (known only at run time) and a task that joins their notes."""
    notes = [
        ctx.add_task(LLMTask("ask_about", "first_line", key=f"aspect{i}", inputs={"subject": a})) for i, a in enumerate(aspects)
    ]
    ctx.add_task(PythonTask("join_notes", *notes, key="join"))
    return len(notes)


@registry.register
def ask_about(ctx: TaskContext, subject: str) -> dict[str, Any]:
    return {"system": "You write crisp research notes.", "messages": [
        {"role": "user", "content": f"In one sentence, the most important fact about the {subject}."}]}


@registry.register
def first_line(ctx: TaskContext, text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


@registry.register
def join_notes(ctx: TaskContext, *notes: str) -> str:
    return "\n".join(f"- {n}" for n in notes)


@registry.register
def headline(ctx: TaskContext) -> str:
    return f"Write a six-word headline about {ctx.graph_input['topic']}."


# The sub-graph: critique a draft, then score the critique. Used like a function below.
@registry.register
def critique_prompt(ctx: TaskContext) -> str:
    return f"Name the weakest claim in this brief:\n{ctx.graph_input}"


@registry.register
def score(ctx: TaskContext, critique: str) -> dict[str, Any]:
    return {"critique": critique, "words": len(critique.split())}


@registry.register
def brief_text(ctx: TaskContext, title: str, planned: int) -> str:
    return f"{title} ({planned} aspects researched)"


@registry.register
def assemble(ctx: TaskContext, title: str, review: dict[str, Any]) -> dict[str, Any]:
    return {"headline": title, "review": review}


def build_graph(topic: str = "octopuses", aspects: tuple[str, ...] = ("biology", "intelligence", "habitat")) -> TaskGraph:
    critic = TaskGraph()
    critique = critic.add_task(LLMTask("critique_prompt", "first_line", name="critique"))
    critic.add_output_task(PythonTask("score", critique))

    graph = TaskGraph({"topic": topic, "aspects": list(aspects)})
    listed = graph.add_task(PythonTask("list_aspects"))
    planned = graph.add_task(PythonTask("plan", listed))
    title = graph.add_task(LLMTask("headline", "first_line", name="headline", params={"max_tokens": 30}))
    brief = graph.add_task(PythonTask("brief_text", title, planned))
    review = graph.add_task(TaskGraphTask(critic, "identity", brief, name="review"))
    graph.add_output_task(PythonTask("assemble", title, review))
    return graph


@registry.register
def identity(ctx: TaskContext, value: Any) -> Any:
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmtaskgraph.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default="demo_trace.json", help="where to write the trace (default: %(default)s)")
    parser.add_argument("--topic", default="octopuses")
    args = parser.parse_args(argv)

    graph = build_graph(args.topic)
    started = time.perf_counter()
    output = graph.run(registry, progress=False)
    elapsed = time.perf_counter() - started
    report = graph.last_run
    assert report is not None
    inside = sum(" > " in path for path in report.executed)
    print(
        f"ran {len(report.executed)} tasks ({inside} inside the sub-graph, {report.llm_calls} LLM calls) in {elapsed:.2f}s; "
        f"the graph grew to {len(graph.tasks)} top-level tasks"
    )
    print(f"dynamic tasks: {', '.join(t for t in graph.tasks if graph.tasks[t].created_by)}")
    print("output:")
    print(f"  headline: {output['headline']}")
    print(f"  review:   {output['review']}")
    graph.save(args.trace)
    print(f"trace written to {args.trace}")

    replay = TaskGraph.load(args.trace)
    assert replay.run(registry, progress=False) == output
    again = replay.last_run
    assert again is not None
    print(f"replayed the trace: {len(again.executed)} tasks executed, {again.reused} reused, {again.llm_calls} LLM calls")
    return 0


if __name__ == "__main__":
    sys.exit(main())
