"""A small review-classification graph and a counting registry, shared by the dataset tests.

Every registry function counts its *completed* calls per case text, so a test can tell exactly which
(case, function) pairs ran, and that none ran twice across an interruption and a resume.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from llmtaskgraph import LLMTask, PythonTask, ScriptedLLM, TaskGraph

REVIEWS = [
    {"id": "r1", "product": "kitchen", "text": "Great pan, heats evenly.", "label": "positive"},
    {"id": "r2", "product": "books", "text": "Dull plot and flat characters.", "label": "negative"},
    {"id": "r3", "product": "kitchen", "text": "Sharp knife but the handle cracked.", "label": "mixed"},
    {"id": "r4", "product": "toys", "text": "My son loves it.", "label": "positive"},
    {"id": "r5", "product": "books", "text": "Fine story, but too long.", "label": "mixed"},
    {"id": "r6", "product": "toys", "text": "Broke after one day.", "label": "negative"},
]
HINTS = {"kitchen": "", "books": "", "toys": ""}
"""Per-product hints in the prompt (module data: part of the formatter's code version)."""


def model_reply(prompt: str) -> str:
    """A deterministic stand-in for a model: says ``mixed`` only when the prompt asks for it."""
    text = prompt.rsplit("Review:", 1)[-1].lower()
    if " but " in text and "say mixed" in prompt:
        return "Mixed"
    if any(w in text for w in ("great", "loves", "fine", "sharp")):
        return "Positive"
    return "Negative"


def scripted() -> ScriptedLLM:
    return ScriptedLLM(model_reply)


class Counting:
    """The registry of :func:`review_graph`, counting completed calls as ``(function, case text)``."""

    def __init__(self) -> None:
        self.done: Counter[tuple[str, str]] = Counter()
        self.fail_on: str | None = None
        """A review text whose ``result`` raises ValueError (a failing case)."""
        self.interrupt_at: int | None = None
        """Raise KeyboardInterrupt in the n-th call of ``result`` (a Ctrl-C landing in a function)."""
        self.result_calls = 0

    def registry(self) -> dict[str, Any]:
        return {"clean": self.clean, "ask": self.ask, "parse": self.parse, "result": self.result, "score": score}

    def clean(self, ctx: Any) -> dict[str, str]:
        review = ctx.graph_input
        self.done["clean", review["text"]] += 1
        return {"product": review["product"], "text": review["text"].strip()}

    def ask(self, ctx: Any, review: dict[str, str]) -> str:
        self.done["ask", review["text"]] += 1
        hint = HINTS.get(review["product"], "")
        return f"Classify the sentiment.{hint}\nReview: {review['text']}"

    def parse(self, ctx: Any, reply: str) -> str:
        self.done["parse", ctx.graph_input["text"]] += 1  # (per case: the reply alone repeats between cases)
        return reply.strip().lower()

    def result(self, ctx: Any, review: dict[str, str], label: str) -> dict[str, str]:
        self.result_calls += 1
        if self.interrupt_at is not None and self.result_calls == self.interrupt_at:
            raise KeyboardInterrupt
        if review["text"] == self.fail_on:
            raise ValueError(f"cannot file {review['text']!r}")
        self.done["result", review["text"]] += 1
        return {"product": review["product"], "label": label}

    def calls(self, name: str) -> int:
        return sum(n for (fn, _), n in self.done.items() if fn == name)


def score(ctx: Any, case_input: dict[str, str], output: dict[str, str]) -> bool:
    return output["label"] == case_input["label"]


def review_graph() -> TaskGraph:
    """clean (reads the input) -> classify (LLM: ask, parse) -> result (the output)."""
    graph = TaskGraph()
    clean = graph.add_task(PythonTask("clean"))
    label = graph.add_task(LLMTask("ask", "parse", clean, name="classify"))
    graph.add_output_task(PythonTask("result", clean, label))
    return graph
