"""The HTML card of one task: prompt, reply, output, error, tokens, time.

Every piece of user or model text is escaped exactly once, here, where it enters HTML. Texts sit in
``pre`` boxes coloured from the theme (see :mod:`llmtaskgraph.views.common`); a traceback keeps its
columns. A task that has not finished since its last change shows no output as if it were current:
a pending task's kept output is labelled as the previous one.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..llm.prices import cost_of
from ..llm.reply import content_of, stop_note
from ..model.agent import AgentTask, ToolCallTask, TurnTask
from ..model.tasks import EDITED, STATUSES, LLMTask, PythonTask, Task, TaskGraphTask
from ..text import clip, count_text, seconds_text, shorten
from ..trace.summary import span_seconds
from ..trace.usage import dollars_text, seconds
from .common import CELL, STYLE, Limits, badge

__all__ = ["as_text", "block_text", "counts_text", "is_edited", "kind_text", "task_html"]


def as_text(value: Any) -> str:
    """A JSON value as readable text: strings as they are, everything else as indented JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def kind_text(task: Task) -> str:
    """What a task does, in one line (``LLM: ask → parse``)."""
    if isinstance(task, AgentTask):
        return f"agent: {task.formatter_name} → {task.parser_name} · tools {', '.join(task.tool_names())}"
    if isinstance(task, TurnTask):
        return f"LLM turn {task.turn} of at most {task.max_turns} → {task.parser_name}"
    if isinstance(task, ToolCallTask):
        return f"tool call: {task.tool}({shorten(', '.join(f'{k}={v!r}' for k, v in task.inputs.items()), 80)})"
    if isinstance(task, LLMTask):
        return f"LLM: {task.formatter_name} → {task.parser_name}"
    if isinstance(task, PythonTask):
        return f"python: {task.fn_name}"
    if isinstance(task, TaskGraphTask):
        return f"sub-graph: {task.input_formatter_name}"
    return type(task).__name__


def block_text(block: dict[str, Any]) -> str:
    """One non-text content block in a line or a few: ``[tool_use add] {"a": 1}``, ``[thinking] ...``."""
    kind = str(block.get("type"))
    if kind == "thinking":
        return f"[thinking] {block.get('thinking', '')}"
    if kind in ("tool_use", "server_tool_use"):
        return f"[{kind} {block.get('name')}] {as_text(block.get('input'))}"
    if kind == "redacted_thinking":
        return "[redacted thinking]"
    return f"[{kind}] {shorten(as_text({k: v for k, v in block.items() if k != 'type'}), 300)}"


def counts_text(tasks: Iterable[Task]) -> str:
    """``3 done, 1 failed`` for a group of tasks."""
    counts = Counter(t.record.status for t in tasks)
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])


def is_edited(task: Task) -> bool:
    """Whether a stored result of ``task`` was set by hand (an edit no run has replaced)."""
    rec = task.record
    return EDITED in rec.fingerprints.values() or bool(rec.response and rec.response.get("edited"))


def _number(value: Any) -> str:
    """A value of a reply's metadata as card text: a count readably however large (a hand-edited
    ``10**3000`` is ``1.00e+3000``), anything else cut to a line."""
    if isinstance(value, int) and not isinstance(value, bool):
        return count_text(value, grouped=True)
    return shorten(str(value), 200)


def _seconds(value: float | None) -> str:
    """Seconds as card text; ``?`` (with why) for a time a hand-edited trace made unusable."""
    if value is None:
        return '<span class="ltg-time">?</span> (out of order or out of range)'
    return f'<span class="ltg-time">{seconds_text(value, 2)} s</span>'


def _row(title: str, body: str) -> str:
    return f"<tr><th{CELL}>{html.escape(title)}</th><td{CELL}>{body}</td></tr>"


def _section(title: str, text: str, limit: int) -> str:
    return _row(title, f'<pre class="ltg-pre">{html.escape(clip(text, limit))}</pre>')


def prompt_text(prompt: Any) -> str:
    """A prompt as a person reads it: plain text, or ``role: content`` per message."""
    if isinstance(prompt, str):
        return prompt
    messages = prompt.get("messages") if isinstance(prompt, dict) else prompt
    if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
        extra = {k: v for k, v in prompt.items() if k != "messages"} if isinstance(prompt, dict) else {}
        head = "".join(f"[{k}] {as_text(v)}\n" for k, v in extra.items())
        return head + "\n".join(f"[{m.get('role')}] {as_text(m.get('content'))}" for m in messages)
    return as_text(prompt)


def task_html(task: Task, limits: Limits | None = None, shown_status: str | None = None) -> str:
    """A card with everything known about one task: prompt, reply, output, error, tokens, time.

    ``shown_status`` is the status a view shows for it (``stale`` for a done task an edit left to
    run again); the card's badge says it, with the stored one beside it."""
    limit = (limits or Limits()).max_chars
    rec = task.record
    e = html.escape
    rows = [_row("kind", e(kind_text(task)))]
    if task.all_deps():
        rows.append(_row("depends on", e(", ".join(task.all_deps()))))
    if task.created_by:
        rows.append(_row("added by", e(task.created_by)))
    if rec.children:
        rows.append(_row("added", e(shorten(", ".join(rec.children), 400))))
    if isinstance(task, TaskGraphTask):
        rows.append(_row("sub-graph", f"{len(task.subgraph.tasks)} tasks ({e(counts_text(task.subgraph.tasks.values()))})"))
    if rec.prompt is not None:
        rows.append(_section("sub-graph input" if isinstance(task, TaskGraphTask) else "prompt", prompt_text(rec.prompt), limit))
    response = rec.response or {}
    if response:
        rows.append(_section("reply (edited)" if response.get("edited") else "reply", str(response.get("text", "")), limit))
        others = [b for b in content_of(response) if b.get("type") != "text"]
        if others:  # thinking, tool uses, server tools: what the text alone does not show
            rows.append(_section("other blocks", "\n".join(block_text(b) for b in others), limit))
        note = stop_note(response)
        if note is not None:
            rows.append(_row("stopped early", f'<span class="ltg-note">{e(str(response.get("stop_reason")))}: {e(note)}</span>'))
        usage = response.get("usage")
        usage = usage if isinstance(usage, dict) else {}  # a hand-edited trace may hold anything here
        facts = [e(f"{shorten(k.replace('_tokens', ''), 60)} {_number(v)} tokens") for k, v in usage.items()
                 if isinstance(v, int) and not isinstance(v, bool)]
        facts += [e(f"{k} {_number(response[k])}") for k in ("model", "backend", "stop_reason") if response.get(k)]
        latency = response.get("latency")
        if isinstance(latency, (int, float)) and not isinstance(latency, bool):
            facts.append(f"latency {_seconds(seconds(latency))}")
        if response.get("retries"):
            facts.append(e(f"{_number(response['retries'])} retries"))
        if response.get("backend"):  # a paid-for reply (a hand-written one has no backend)
            facts.append(e(f"cost {dollars_text(cost_of(response))}"))
        rows.append(_row("call", " · ".join(facts)))
    if task.is_complete:
        edited = " (edited)" if rec.fingerprints.get(task.stages[-1]) == EDITED else ""
        # A task that has not run since it became pending shows what it held as the previous output.
        title = "output" + edited if rec.status == "done" else f"previous output{edited} (the task is {rec.status})"
        rows.append(_section(title, as_text(rec.output), limit))
    if rec.error is not None:
        err = rec.error
        where = f" in {err.stage}" if err.stage else ""
        rows.append(_section(f"error{where}", f"{err.type}: {err.message}", limit))
        if err.traceback:
            rows.append(_row("", f'<details><summary>traceback</summary><pre class="ltg-pre ltg-traceback">'
                                 f"{e(clip(err.traceback, limit))}</pre></details>"))
    if rec.started_at is not None and rec.finished_at is not None:  # (not rec.duration: it may not fit a float)
        rows.append(_row("time", _seconds(span_seconds(rec.started_at, rec.finished_at))))
    title = e(task.label) + (f" <code>{e(str(task.id))}</code>" if task.name and task.name != task.id else "")
    shown = badge(rec.status) if shown_status in (None, rec.status) else \
        f'{badge(shown_status)} <span class="ltg-note">(last run: {e(rec.status)})</span>'
    return (f'{STYLE}<div class="ltg ltg-root ltg-task"><b>{title}</b> {shown}'
            f'<table class="ltg-table">{"".join(rows)}</table></div>')
