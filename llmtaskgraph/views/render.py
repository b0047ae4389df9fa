"""Drawing graphs and tasks for notebooks: a graphviz SVG of the graph and an HTML card per task.

Free functions (:func:`to_dot`, :func:`to_svg`, :func:`to_html`); ``_repr_mimebundle_`` on graphs
and tasks only delegates here. Every piece of user or model text is escaped exactly once, at the
point where it enters DOT or HTML, so a reply containing ``</svg>`` or ``<script>`` shows as text.
Big graphs are drawn in part (see :class:`Limits`) with a note of what was left out; without the
``dot`` binary the graph is shown as an HTML table that says how to install graphviz.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..model.tasks import STATUSES, LLMTask, PythonTask, Task, TaskGraphTask
from ..text import clip, count_text, seconds_text, shorten
from ..trace.summary import span_seconds
from ..trace.usage import seconds

if TYPE_CHECKING:
    from ..model.graph import TaskGraph
    from ..run.plan import Plan

STATUS_COLOURS = {"pending": "#e0e0e0", "running": "#ffd54f", "done": "#a5d6a7", "failed": "#ef9a9a", "blocked": "#ffcc80",
                  "stale": "#b3e5fc"}
"""Fill colour of each task status, in the SVG, the fallback table and the legend. ``stale`` is not a
stored status: it is shown for a done task that an edit left to run again (computed by the memo rule)."""
PLAN_COLOURS = {"will run": "#90caf9", "reused": "#a5d6a7"}
"""Fill colours of a drawing coloured by a plan (``to_html(graph, plan=graph.plan(registry))``)."""

INSTALL_GRAPHVIZ = (
    "Install graphviz's <code>dot</code> program to see the graph drawn: "
    "<code>apt-get install graphviz</code> (Debian/Ubuntu), <code>brew install graphviz</code> (macOS) "
    "or <code>conda install graphviz</code>; and the Python package with "
    "<code>pip install 'llmtaskgraph[jupyter]'</code>."
)


@dataclass(frozen=True)
class Limits:
    """How much of a graph to draw, so a 10,000-task graph still renders in a second or two."""

    max_tasks: int = 150
    """Task nodes drawn in all; later tasks are summarized in one node per graph."""
    max_children: int = 12
    """Dynamic children drawn per creator; the rest become one summary node."""
    max_subgraph: int = 40
    """Sub-graphs with more tasks than this are drawn as one node instead of a cluster."""
    max_chars: int = 4000
    """Characters of any one text shown in a task card before it is cut (visibly)."""
    max_edit_chars: int = 100_000
    """Characters of a prompt, reply or output the editor puts in an editable field; longer ones are shown cut, read-only."""


# -- text helpers (cutting texts and showing numbers: llmtaskgraph.text) ------------------------------
def as_text(value: Any) -> str:
    """A JSON value as readable text: strings as they are, everything else as indented JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


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


def _dot_str(text: str) -> str:
    """A DOT double-quoted string. ``&`` is pre-escaped because graphviz passes entities through."""
    text = text.replace("&", "&amp;").replace("\\", "\\\\").replace('"', '\\"')
    text = "".join(ch for ch in text if ch >= " " or ch == "\n")
    return '"' + text.replace("\n", "\\n") + '"'


def _kind(task: Task) -> str:
    if isinstance(task, LLMTask):
        return f"LLM: {task.formatter_name} → {task.parser_name}"
    if isinstance(task, PythonTask):
        return f"python: {task.fn_name}"
    if isinstance(task, TaskGraphTask):
        return f"sub-graph: {task.input_formatter_name}"
    return type(task).__name__


def _counts(tasks: Iterable[Task]) -> str:
    counts = Counter(t.record.status for t in tasks)
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])


# -- DOT --------------------------------------------------------------------------------------------
@dataclass
class Drawing:
    """DOT source of a graph plus notes on what was left out of it."""

    dot: str
    notes: list[str] = field(default_factory=list)


class _DotWriter:
    """Walks a graph (and its sub-graphs) within :class:`Limits`, writing DOT lines."""

    def __init__(self, limits: Limits, plan: Plan | None = None) -> None:
        self.limits = limits
        self.will_run = None if plan is None else set(plan.will_run)
        self.reasons = {} if plan is None else plan.reasons
        self.stale: set[str] = set()
        self.budget = limits.max_tasks
        self.lines: list[str] = []
        self.notes: list[str] = []
        self.n = 0

    def node_id(self) -> str:
        self.n += 1
        return f"n{self.n}"

    def node(self, nid: str, label: str, colour: str, tooltip: str, **attrs: str) -> None:
        extra = "".join(f" {k}={v}" for k, v in attrs.items())
        self.lines.append(
            f"{nid} [label={_dot_str(label)} fillcolor={_dot_str(colour)} tooltip={_dot_str(tooltip)}{extra}]"
        )

    def graph(self, graph: TaskGraph, prefix: str) -> dict[str, str]:
        """Write ``graph``'s tasks and edges; returns task id -> DOT node id (hidden tasks map to summaries)."""
        limits = self.limits
        ids: dict[str, str] = {}
        hidden_children: dict[str, list[Task]] = {}
        shown_per_creator: Counter[str] = Counter()
        chosen: list[Task] = []
        # Failed and running tasks are what a person looks for first: they get the budget first.
        urgent = {tid for tid, t in graph.tasks.items() if t.record.status in ("failed", "running")}
        urgent = set(list(urgent)[: max(self.budget, 0)])
        budget_left = self.budget - len(urgent)
        for tid, task in graph.tasks.items():
            creator = task.created_by
            if creator is not None and tid not in urgent:
                if shown_per_creator[creator] >= limits.max_children:
                    hidden_children.setdefault(creator, []).append(task)
                    continue
                shown_per_creator[creator] += 1
            if tid in urgent:
                chosen.append(task)
            elif budget_left > 0:
                budget_left -= 1
                chosen.append(task)
        chosen_ids = {t.id for t in chosen}
        for task in chosen:
            self.task(task, prefix, ids)
        for creator, children in hidden_children.items():
            nid = self.node_id()
            self.node(
                nid, f"… {len(children):,} more tasks\nadded by {shorten(creator, 40)}\n({_counts(children)})",
                "#ffffff", f"{len(children)} tasks added by {creator} are not drawn", style='"dashed,rounded"',
            )
            for child in children:
                ids[str(child.id)] = nid
            self.notes.append(
                f"{len(children):,} of the tasks added by `{prefix}{creator}` are summarized in one node"
            )
        rest = [t for tid, t in graph.tasks.items() if tid not in chosen_ids and tid not in ids]
        if rest:
            nid = self.node_id()
            self.node(nid, f"… {len(rest):,} more tasks\n({_counts(rest)})", "#ffffff",
                      f"{len(rest)} tasks not drawn", style='"dashed,rounded"')
            for task in rest:
                ids[str(task.id)] = nid
            self.notes.append(
                f"{len(rest):,} tasks{' in `' + prefix.rstrip(' >') + '`' if prefix else ''} are not drawn "
                f"(the drawing stops at {limits.max_tasks:,} tasks; pass a larger `max_tasks` to draw more)"
            )
        self.edges(graph, ids)
        return ids

    def task(self, task: Task, prefix: str, ids: dict[str, str]) -> None:
        tid = str(task.id)
        self.budget -= 1
        nid = self.node_id()
        ids[tid] = nid
        rec = task.record
        lines = [shorten(task.label, 40), _kind(task)]
        if task.name and task.name != tid:
            lines.insert(1, f"id: {shorten(tid, 40)}")
        status = rec.status if self.will_run is None else "will run" if prefix + tid in self.will_run else "reused"
        if status == "done" and prefix + tid in self.stale:
            status = "stale"
        colour = STATUS_COLOURS.get(status) or PLAN_COLOURS.get(status, "#ffffff")
        tip = f"{prefix}{tid}: {status}"
        if self.will_run is not None:  # coloured by a plan: say why, and what the last run left
            why = self.reasons.get(prefix + tid)
            tip += (f"\nwhy: {'; '.join(why)}" if why else "") + f"\nlast run: {rec.status}"
        if task.created_by is not None:
            status += f" · added by {shorten(task.created_by, 30)}"
        lines.append(status)
        if rec.error is not None:
            tip += f"\n{rec.error.type}: {rec.error.message}"
        elif task.is_complete:
            tip += "\n" + as_text(rec.output)
        attrs = {"id": _dot_str(f"task:{prefix}{tid}")}
        if rec.status == "failed":
            attrs["color"] = '"#c62828"'
            attrs["penwidth"] = "2"
        if task.created_by is not None:
            attrs["style"] = '"filled,rounded,dashed"'
        if not isinstance(task, TaskGraphTask):
            self.node(nid, "\n".join(lines), colour, shorten(tip, 300), **attrs)
            return
        sub = task.subgraph
        if len(sub.tasks) > self.limits.max_subgraph or len(sub.tasks) > self.budget:
            lines.append(f"{len(sub.tasks):,} inner tasks ({_counts(sub.tasks.values()) or 'empty'})")
            attrs["shape"] = "box3d"
            self.node(nid, "\n".join(lines), colour, shorten(tip, 300), **attrs)
            self.notes.append(
                f"sub-graph `{prefix}{tid}` ({len(sub.tasks):,} tasks) is drawn as one node; "
                f"display `graph.find({prefix + tid!r}).subgraph` to see it"
            )
            return
        self.lines.append(f"subgraph cluster_{nid} {{")
        self.lines.append(f"label={_dot_str(task.label + ' (sub-graph)')} style=\"rounded,dashed\" color=\"#757575\"")
        attrs["shape"] = "tab"
        self.node(nid, "\n".join(lines), colour, shorten(tip, 300), **attrs)
        inner = self.graph(sub, f"{prefix}{tid} > ")
        for inner_id, inner_task in sub.tasks.items():
            if not inner_task.all_deps() and inner_task.created_by is None and inner_id in inner:
                self.lines.append(f"{nid} -> {inner[inner_id]} [style=dotted arrowhead=none color=\"#757575\"]")
        self.lines.append("}")

    def edges(self, graph: TaskGraph, ids: dict[str, str]) -> None:
        seen: set[tuple[str, str]] = set()
        created: set[tuple[str, str]] = set()
        for tid, task in graph.tasks.items():
            head = ids.get(tid)
            if head is None:
                continue
            for dep in task.all_deps():
                tail = ids.get(dep)
                if tail is not None and tail != head and (tail, head) not in seen:
                    seen.add((tail, head))
                    self.lines.append(f"{tail} -> {head}")
            creator = ids.get(task.created_by) if task.created_by else None
            if creator is not None and creator != head and (creator, head) not in created:
                created.add((creator, head))
                self.lines.append(f'{creator} -> {head} [style=dashed color="#1565c0" arrowhead=empty]')


def drawing(graph: TaskGraph, limits: Limits | None = None, plan: Plan | None = None) -> Drawing:
    """DOT source of ``graph`` within ``limits`` and the notes saying what was left out; coloured by
    ``plan`` ("will run" / "reused") instead of by status when one is given."""
    writer = _DotWriter(limits or Limits(), plan)
    if plan is None and not graph.running:  # (while it runs, statuses say it all)
        from ..run.plan import stale_paths

        writer.stale = stale_paths(graph)
    body_start = [
        "digraph taskgraph {",
        'graph [rankdir=TB fontname="Helvetica,Arial,sans-serif" fontsize=11]',
        'node [shape=box style="filled,rounded" fontname="Helvetica,Arial,sans-serif" fontsize=10]',
        'edge [color="#616161"]',
    ]
    writer.graph(graph, "")
    return Drawing("\n".join([*body_start, *writer.lines, "}"]) + "\n", writer.notes)


def to_dot(graph: TaskGraph, limits: Limits | None = None, plan: Plan | None = None) -> str:
    """The graph as DOT source (status colours, sub-graph clusters, dashed edges from creators)."""
    return drawing(graph, limits, plan).dot


def to_svg(graph: TaskGraph, limits: Limits | None = None, plan: Plan | None = None) -> str:
    """The graph as an SVG document. Raises ``graphviz.ExecutableNotFound`` when ``dot`` is missing."""
    import graphviz

    svg: str = graphviz.Source(to_dot(graph, limits, plan)).pipe(format="svg", encoding="utf-8")
    return svg[svg.index("<svg"):]


# -- HTML -------------------------------------------------------------------------------------------
_STYLE = (
    "<style>.ltg{line-height:1.35}.ltg pre{white-space:pre-wrap;max-height:24em;line-height:1.3;overflow:auto;margin:2px 0;padding:4px;"
    "background:#f7f7f7;border:1px solid #ddd}.ltg .ltg-badge{padding:1px 6px;border-radius:3px}"
    ".ltg td,.ltg th{text-align:left;vertical-align:top;padding:1px 8px}.ltg-note{color:#555;font-size:90%}</style>"
)


def _badge(status: str) -> str:
    return f'<span class="ltg-badge" style="background:{STATUS_COLOURS.get(status, "#fff")}">{html.escape(status)}</span>'


def _legend(plan: Plan | None = None) -> str:
    if plan is not None:
        return '<div class="ltg-note">' + " ".join(
            f'<span class="ltg-badge" style="background:{c}">{k}</span>' for k, c in PLAN_COLOURS.items()) + "</div>"
    return '<div class="ltg-note">' + " ".join(_badge(s) for s in (*STATUSES, "stale")) + (
        " · dashed border: added at run time (blue dashed edge from its creator)</div>"
    )


def graph_html(graph: TaskGraph, limits: Limits | None = None, plan: Plan | None = None) -> str:
    """The graph as HTML: the SVG, a legend and notes, or an HTML table when graphviz is missing."""
    limits = limits or Limits()
    draw = drawing(graph, limits, plan)
    try:
        import graphviz
    except ImportError:
        return _fallback_html(graph, limits)
    try:
        svg: str = graphviz.Source(draw.dot).pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound:
        return _fallback_html(graph, limits)
    body = svg[svg.index("<svg"):]
    notes = "".join(f'<div class="ltg-note">{html.escape(n)}</div>' for n in draw.notes)
    return f'{_STYLE}<div class="ltg ltg-graph">{body}{_legend(plan)}{notes}</div>'


def _fallback_html(graph: TaskGraph, limits: Limits) -> str:
    rows: list[str] = []
    for path, task in iter_tasks(graph):
        if len(rows) >= limits.max_tasks:
            break
        deps = ", ".join(task.all_deps())
        by = f" (added by {task.created_by})" if task.created_by else ""
        rows.append(
            f"<tr><td>{html.escape(path)}</td><td>{_badge(task.record.status)}</td>"
            f"<td>{html.escape(_kind(task))}</td><td>{html.escape(deps + by)}</td></tr>"
        )
    total = sum(1 for _ in iter_tasks(graph))
    more = f'<div class="ltg-note">{total - len(rows):,} more tasks not listed</div>' if total > len(rows) else ""
    return (
        f'{_STYLE}<div class="ltg ltg-graph ltg-fallback"><div class="ltg-note">{INSTALL_GRAPHVIZ}</div>'
        f"<table><tr><th>task</th><th>status</th><th>kind</th><th>depends on</th></tr>{''.join(rows)}</table>{more}</div>"
    )


def iter_tasks(graph: TaskGraph, prefix: str = "") -> Iterable[tuple[str, Task]]:
    """(path, task) for every task, sub-graph tasks right after their TaskGraphTask."""
    return ((path, task) for path, task, _ in graph.walk(prefix))


def _section(title: str, text: str, limit: int) -> str:
    return f"<tr><th>{html.escape(title)}</th><td><pre>{html.escape(clip(text, limit))}</pre></td></tr>"


def _prompt_text(prompt: Any) -> str:
    """A prompt as a person reads it: plain text, or ``role: content`` per message."""
    if isinstance(prompt, str):
        return prompt
    messages = prompt.get("messages") if isinstance(prompt, dict) else prompt
    if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
        extra = {k: v for k, v in prompt.items() if k != "messages"} if isinstance(prompt, dict) else {}
        head = "".join(f"[{k}] {as_text(v)}\n" for k, v in extra.items())
        return head + "\n".join(f"[{m.get('role')}] {as_text(m.get('content'))}" for m in messages)
    return as_text(prompt)


def task_html(task: Task, limits: Limits | None = None) -> str:
    """A card with everything known about one task: prompt, reply, output, error, tokens, time."""
    limit = (limits or Limits()).max_chars
    rec = task.record
    e = html.escape
    rows = [f"<tr><th>kind</th><td>{e(_kind(task))}</td></tr>"]
    if task.all_deps():
        rows.append(f"<tr><th>depends on</th><td>{e(', '.join(task.all_deps()))}</td></tr>")
    if task.created_by:
        rows.append(f"<tr><th>added by</th><td>{e(task.created_by)}</td></tr>")
    if rec.children:
        rows.append(f"<tr><th>added</th><td>{e(shorten(', '.join(rec.children), 400))}</td></tr>")
    if isinstance(task, TaskGraphTask):
        rows.append(f"<tr><th>sub-graph</th><td>{len(task.subgraph.tasks)} tasks ({e(_counts(task.subgraph.tasks.values()))})</td></tr>")
    if rec.prompt is not None:
        rows.append(_section("sub-graph input" if isinstance(task, TaskGraphTask) else "prompt", _prompt_text(rec.prompt), limit))
    response = rec.response or {}
    if response:
        rows.append(_section("reply (edited)" if response.get("edited") else "reply", str(response.get("text", "")), limit))
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
        rows.append(f"<tr><th>call</th><td>{' · '.join(facts)}</td></tr>")
    if task.is_complete:
        rows.append(_section("output", as_text(rec.output), limit))
    if rec.error is not None:
        err = rec.error
        where = f" in {err.stage}" if err.stage else ""
        rows.append(_section(f"error{where}", f"{err.type}: {err.message}", limit))
        if err.traceback:
            rows.append(
                f"<tr><th></th><td><details><summary>traceback</summary><pre>{e(clip(err.traceback, limit))}</pre>"
                "</details></td></tr>"
            )
    if rec.started_at is not None and rec.finished_at is not None:  # (not rec.duration: it may not fit a float)
        rows.append(f"<tr><th>time</th><td>{_seconds(span_seconds(rec.started_at, rec.finished_at))}</td></tr>")
    title = e(task.label) + (f" <code>{e(str(task.id))}</code>" if task.name and task.name != task.id else "")
    return f'{_STYLE}<div class="ltg ltg-task"><b>{title}</b> {_badge(rec.status)}<table>{"".join(rows)}</table></div>'


# -- what _repr_mimebundle_ delegates to --------------------------------------------------------------
def graph_mimebundle(graph: TaskGraph) -> dict[str, str]:
    return {"text/plain": repr(graph), "text/html": graph_html(graph)}


def task_mimebundle(task: Task) -> dict[str, str]:
    return {"text/plain": repr(task), "text/html": task_html(task)}


def to_html(obj: TaskGraph | Task, limits: Limits | None = None, plan: Plan | None = None) -> str:
    """HTML for a graph (drawing; coloured by ``plan`` when given) or a task (detail card)."""
    if isinstance(obj, Task):
        return task_html(obj, limits)
    return graph_html(obj, limits, plan)
