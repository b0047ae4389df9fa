"""Drawing graphs for notebooks: DOT source, an SVG within a time budget, and the graph as HTML.

Free functions (:func:`to_dot`, :func:`to_svg`, :func:`to_html`); ``_repr_mimebundle_`` on graphs
and tasks only delegates here (task cards live in :mod:`llmtaskgraph.views.cards`). Every piece of
user or model text is escaped exactly once, where it enters DOT or HTML, so a reply containing
``</svg>`` or ``<script>`` shows as text.

A drawing is bounded whatever the graph's shape (see :class:`Limits`): tasks past ``max_tasks``
become summary nodes; past ``max_edges``, edges implied by others are left out, then the rest;
``dot`` gets a time budget and is killed when it runs out (:mod:`llmtaskgraph.views.dot`), and
then a simple layered layout made in Python is drawn instead (:mod:`llmtaskgraph.views.layout`).
Notes under the drawing say what was left out. Without the ``dot`` binary the graph is shown as
an HTML table that says how to install graphviz.
"""

from __future__ import annotations

import graphlib
import html
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..model.tasks import Task, TaskGraphTask
from ..text import shorten
from .cards import as_text, counts_text, is_edited, kind_text, task_html
from .common import (
    CELL,
    EDITED_BORDER,
    FAILED_BORDER,
    PLAN_COLOURS,
    STATUS_COLOURS,
    STYLE,
    Limits,
    badge,
    legend,
)
from .dot import _DotFailed, _DotMissing, _DotTimeout, run_dot
from .layout import EdgeSpec, NodeSpec, layered_svg

if TYPE_CHECKING:
    from ..model.graph import TaskGraph
    from ..run.plan import Plan

__all__ = [
    "INSTALL_GRAPHVIZ", "PLAN_COLOURS", "STATUS_COLOURS", "Drawing", "Limits", "as_text", "drawing", "graph_html",
    "graph_svg", "iter_tasks", "task_html", "to_dot", "to_html", "to_svg",
]

INSTALL_GRAPHVIZ = (
    "Install graphviz's <code>dot</code> program to see the graph drawn: "
    "<code>apt-get install graphviz</code> (Debian/Ubuntu), <code>brew install graphviz</code> (macOS) "
    "or <code>conda install graphviz</code>; and the Python package with "
    "<code>pip install 'llmtaskgraph[jupyter]'</code>."
)
MIN_SCALE = 0.7
"""Inline drawings shrink to fit the cell down to this share of their natural size (10 pt labels stay
above 9 px), then scroll."""
_DENSE = 80
"""Past this many edges, ``dot`` is asked to spend less effort on crossings (it is quadratic there)."""


def _dot_str(text: str) -> str:
    """A DOT double-quoted string. ``&`` is pre-escaped because graphviz passes entities through."""
    text = text.replace("&", "&amp;").replace("\\", "\\\\").replace('"', '\\"')
    text = "".join(ch for ch in text if ch >= " " or ch == "\n")
    return '"' + text.replace("\n", "\\n") + '"'


# -- DOT --------------------------------------------------------------------------------------------
@dataclass
class Drawing:
    """DOT source of a graph plus notes on what was left out of it, and the same nodes and edges as
    data (for the Python layout and the interactive view)."""

    dot: str
    notes: list[str] = field(default_factory=list)
    nodes: list[NodeSpec] = field(default_factory=list)
    edges: list[EdgeSpec] = field(default_factory=list)

    @property
    def paths(self) -> dict[str, str]:
        """DOT node name -> task path, for the nodes that draw one task."""
        return {n.name: n.dom_id[5:] for n in self.nodes if n.dom_id is not None}


class _DotWriter:
    """Walks a graph (and its sub-graphs) within :class:`Limits`, writing DOT lines."""

    def __init__(self, limits: Limits, plan: Plan | None = None, live: bool = False) -> None:
        self.limits = limits
        self.live = live
        """For the interactive view: no status in labels or tooltips (it colours nodes itself)."""
        self.will_run = None if plan is None else set(plan.will_run)
        self.reasons = {} if plan is None else plan.reasons
        self.stale: set[str] = set()
        self.budget = limits.max_tasks
        self.edge_budget = limits.max_edges
        self.lines: list[str] = []
        self.notes: list[str] = []
        self.nodes: list[NodeSpec] = []
        self.edge_specs: list[EdgeSpec] = []
        self.n = 0

    def node_id(self) -> str:
        self.n += 1
        return f"n{self.n}"

    def node(self, spec: NodeSpec, **attrs: str) -> None:
        self.nodes.append(spec)
        extra = "".join(f" {k}={v}" for k, v in attrs.items())
        if spec.dom_id is not None:
            extra += f" id={_dot_str(spec.dom_id)}"
        if spec.stroke != "#000000":
            extra += f' color="{spec.stroke}" penwidth={spec.penwidth:g}'
        self.lines.append(f"{spec.name} [label={_dot_str(chr(10).join(spec.lines))} fillcolor={_dot_str(spec.fill)} "
                          f"tooltip={_dot_str(spec.tooltip)}{extra}]")

    def edge(self, tail: str, head: str, kind: str, attrs: str = "") -> None:
        self.edge_specs.append(EdgeSpec(tail, head, kind))
        self.lines.append(f"{tail} -> {head}{attrs}")

    def summary(self, label: str, tooltip: str) -> str:
        nid = self.node_id()
        self.node(NodeSpec(nid, label.split("\n"), "#ffffff", tooltip, dashed=True), style='"dashed,rounded"')
        return nid

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
        for tid, task in list(graph.tasks.items()):
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
            nid = self.summary(f"… {len(children):,} more tasks\nadded by {shorten(creator, 40)}\n({counts_text(children)})",
                               f"{len(children)} tasks added by {creator} are not drawn")
            for child in children:
                ids[str(child.id)] = nid
            self.notes.append(
                f"{len(children):,} of the tasks added by `{prefix}{creator}` are summarized in one node"
            )
        rest = [t for tid, t in list(graph.tasks.items()) if tid not in chosen_ids and tid not in ids]
        if rest:
            nid = self.summary(f"… {len(rest):,} more tasks\n({counts_text(rest)})", f"{len(rest)} tasks not drawn")
            for task in rest:
                ids[str(task.id)] = nid
            self.notes.append(
                f"{len(rest):,} tasks{' in `' + prefix.rstrip(' >') + '`' if prefix else ''} are not drawn "
                f"(the drawing stops at {limits.max_tasks:,} tasks; pass a larger `max_tasks` to draw more)"
            )
        self.edges(graph, ids, prefix)
        return ids

    def _status(self, task: Task, path: str) -> str:
        rec = task.record
        if self.will_run is not None:
            return "will run" if path in self.will_run else "reused"
        return "stale" if rec.status == "done" and path in self.stale else rec.status

    def task(self, task: Task, prefix: str, ids: dict[str, str]) -> None:
        tid = str(task.id)
        path = prefix + tid
        self.budget -= 1
        nid = self.node_id()
        ids[tid] = nid
        rec = task.record
        lines = [shorten(task.label, 40), kind_text(task)]
        if task.name and task.name != tid:
            lines.insert(1, f"id: {shorten(tid, 40)}")
        status = self._status(task, path)
        colour = STATUS_COLOURS.get(status) or PLAN_COLOURS.get(status, "#ffffff")
        tip = path if self.live else f"{path}: {status}"
        if self.will_run is not None:  # coloured by a plan: say why, and what the last run left
            why = self.reasons.get(path)
            tip += (f"\nwhy: {'; '.join(why)}" if why else "") + f"\nlast run: {rec.status}"
        shown = "" if self.live else status
        if task.created_by is not None:
            shown += (" · " if shown else "") + f"added by {shorten(task.created_by, 30)}"
        if shown:
            lines.append(shown)
        if not self.live:
            if rec.error is not None:
                tip += f"\n{rec.error.type}: {rec.error.message}"
            elif task.is_complete:
                tip += "\n" + as_text(rec.output)
        if self.live:  # the view colours nodes and draws their borders itself: the layout stays as it is
            colour = "#ffffff"
        spec = NodeSpec(nid, lines, colour, shorten(tip, 300), dom_id=f"task:{path}", dashed=task.created_by is not None)
        if self.live:
            pass
        elif rec.status == "failed":
            spec.stroke, spec.penwidth = FAILED_BORDER, 2
        elif is_edited(task):
            spec.stroke, spec.penwidth = EDITED_BORDER, 2
        attrs = {"style": '"filled,rounded,dashed"'} if task.created_by is not None else {}
        if not isinstance(task, TaskGraphTask):
            self.node(spec, **attrs)
            return
        sub = task.subgraph
        if len(sub.tasks) > self.limits.max_subgraph or len(sub.tasks) > self.budget:
            spec.lines.append(f"{len(sub.tasks):,} inner tasks ({counts_text(sub.tasks.values()) or 'empty'})")
            self.node(spec, shape="box3d", **attrs)
            self.notes.append(
                f"sub-graph `{path}` ({len(sub.tasks):,} tasks) is drawn as one node; "
                f"display `graph.find({path!r}).subgraph` to see it"
            )
            return
        self.lines.append(f"subgraph cluster_{nid} {{")
        self.lines.append(f"label={_dot_str(task.label + ' (sub-graph)')} style=\"rounded,dashed\" color=\"#757575\"")
        self.node(spec, shape="tab", **attrs)
        inner = self.graph(sub, f"{path} > ")
        for inner_id, inner_task in list(sub.tasks.items()):
            if not inner_task.all_deps() and inner_task.created_by is None and inner_id in inner:
                self.edge(nid, inner[inner_id], "inner", ' [style=dotted arrowhead=none color="#757575"]')
        self.lines.append("}")

    def edges(self, graph: TaskGraph, ids: dict[str, str], prefix: str) -> None:
        data: list[tuple[str, str]] = []
        created: list[tuple[str, str]] = []
        for tid, task in list(graph.tasks.items()):
            head = ids.get(tid)
            if head is None:
                continue
            for dep in task.all_deps():
                tail = ids.get(dep)
                if tail is not None and tail != head:
                    data.append((tail, head))
            creator = ids.get(task.created_by) if task.created_by else None
            if creator is not None and creator != head:
                created.append((creator, head))
        data = list(dict.fromkeys(data))
        where = f" in `{prefix.rstrip(' >')}`" if prefix else ""
        if len(data) > self.edge_budget:
            reduced = _transitive_reduction(data)
            if len(reduced) < len(data):
                self.notes.append(f"{len(data) - len(reduced):,} dependency edges{where} are not drawn: each is implied "
                                  "by a longer path that is (a task's card lists all its dependencies)")
                data = reduced
        if len(data) > self.edge_budget:
            cut = max(self.edge_budget, 0)
            self.notes.append(f"{len(data) - cut:,} more dependency edges{where} are not drawn (the drawing stops at "
                              f"{self.limits.max_edges:,} edges; pass a larger `max_edges` to draw more)")
            data = data[:cut]
        self.edge_budget -= len(data)
        for tail, head in data:
            self.edge(tail, head, "data")
        for tail, head in dict.fromkeys(created):
            self.edge(tail, head, "created", ' [style=dashed color="#1565c0" arrowhead=empty]')


def _transitive_reduction(edges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``edges`` without those implied by a longer path (``a -> c`` when ``a -> b -> c``), order kept."""
    preds: dict[str, set[str]] = {}
    for tail, head in edges:
        preds.setdefault(head, set()).add(tail)
        preds.setdefault(tail, set())
    try:
        order = list(graphlib.TopologicalSorter(preds).static_order())
    except graphlib.CycleError:
        return edges
    bit = {name: 1 << i for i, name in enumerate(order)}
    ancestors: dict[str, int] = {}  # strict ancestors, as a bit set
    for name in order:
        mask = 0
        for p in preds[name]:
            mask |= ancestors[p] | bit[p]
        ancestors[name] = mask
    # tail -> head is implied when tail is an ancestor of another direct predecessor of head
    implied: set[tuple[str, str]] = set()
    for head, tails in preds.items():
        via = 0
        for p in tails:
            via |= ancestors[p]
        implied.update((t, head) for t in tails if via & bit[t])
    return [e for e in edges if e not in implied]


def drawing(graph: TaskGraph, limits: Limits | None = None, plan: Plan | None = None, live: bool = False) -> Drawing:
    """DOT source of ``graph`` within ``limits`` and the notes saying what was left out; coloured by
    ``plan`` ("will run" / "reused") instead of by status when one is given. ``live`` leaves the
    status out of labels and tooltips (the interactive view colours and explains nodes itself)."""
    writer = _DotWriter(limits or Limits(), plan, live)
    if plan is None and not live and not graph.running:  # (while it runs, statuses say it all)
        from ..run.plan import stale_paths

        writer.stale = stale_paths(graph)
    writer.graph(graph, "")
    dense = len(writer.edge_specs) > _DENSE
    head = [
        "digraph taskgraph {",
        'graph [rankdir=TB bgcolor="transparent" fontname="Helvetica,Arial,sans-serif" fontsize=11'
        + (" mclimit=0.2 nslimit=3 nslimit1=3 searchsize=10" if dense else "") + "]",
        'node [shape=box style="filled,rounded" fontname="Helvetica,Arial,sans-serif" fontsize=10 fontcolor="#1a1a1a"]',
        'edge [color="#616161"]',
    ]
    return Drawing("\n".join([*head, *writer.lines, "}"]) + "\n", writer.notes, writer.nodes, writer.edge_specs)


def to_dot(graph: TaskGraph, limits: Limits | None = None, plan: Plan | None = None) -> str:
    """The graph as DOT source (status colours, sub-graph clusters, dashed edges from creators)."""
    return drawing(graph, limits, plan).dot


def layout(draw: Drawing, limits: Limits | None = None) -> tuple[str, list[str]]:
    """An SVG of ``draw`` and notes: laid out by ``dot`` within its budget, else by the Python layout.

    Raises :class:`~llmtaskgraph.errors.DrawingError` when ``dot`` is not installed.
    """
    seconds = (limits or Limits()).dot_seconds
    try:
        svg = run_dot(draw.dot, seconds)
        return svg[svg.index("<svg"):], list(draw.notes)
    except _DotTimeout:
        why = f"graphviz took more than {seconds:g} s to lay this graph out"
    except _DotFailed as exc:
        why = f"graphviz could not lay this graph out ({shorten(str(exc), 200)})"
    return layered_svg(draw.nodes, draw.edges), [*draw.notes, f"{why}: it is drawn with a simpler layout"]


def graph_svg(graph: TaskGraph, limits: Limits | None = None, plan: Plan | None = None) -> tuple[str, list[str]]:
    """``(svg, notes)`` of ``graph``, bounded in size and time (see :func:`layout`)."""
    return layout(drawing(graph, limits, plan), limits)


def to_svg(graph: TaskGraph, limits: Limits | None = None, plan: Plan | None = None) -> str:
    """The graph as an SVG document. Raises :class:`~llmtaskgraph.errors.DrawingError` without ``dot``."""
    return graph_svg(graph, limits, plan)[0]


_SIZE = re.compile(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"')


def sized_svg(svg: str) -> str:
    """The SVG made to fit its cell: as wide as the cell up to its natural width, never narrower than
    :data:`MIN_SCALE` of it (the canvas around it scrolls then), height from its aspect ratio."""
    found = _SIZE.search(svg)
    if found is None:
        return svg
    natural = float(found.group(1)) * 4 / 3  # pt -> CSS px
    style = f'style="width:100%;max-width:{natural:.0f}px;min-width:{natural * MIN_SCALE:.0f}px;height:auto"'
    return svg[: found.start()] + f"<svg {style}" + svg[found.end():]


# -- HTML -------------------------------------------------------------------------------------------
def graph_html(graph: TaskGraph, limits: Limits | None = None, plan: Plan | None = None) -> str:
    """The graph as HTML: the SVG, a legend and notes, or an HTML table when ``dot`` is missing."""
    limits = limits or Limits()
    try:
        svg, notes = graph_svg(graph, limits, plan)
    except _DotMissing:
        return _fallback_html(graph, limits)
    shown = "".join(f'<div class="ltg-note">{html.escape(n)}</div>' for n in notes)
    return (f'{STYLE}<div class="ltg ltg-root ltg-graph"><div class="ltg-canvas">{sized_svg(svg)}</div>'
            f"{legend(plan is not None)}{shown}</div>")


def _fallback_html(graph: TaskGraph, limits: Limits) -> str:
    rows: list[str] = []
    for path, task in iter_tasks(graph):
        if len(rows) >= limits.max_tasks:
            break
        deps = ", ".join(task.all_deps())
        by = f" (added by {task.created_by})" if task.created_by else ""
        rows.append(
            f"<tr><td{CELL}>{html.escape(path)}</td><td{CELL}>{badge(task.record.status)}</td>"
            f"<td{CELL}>{html.escape(kind_text(task))}</td><td{CELL}>{html.escape(deps + by)}</td></tr>"
        )
    total = sum(1 for _ in iter_tasks(graph))
    more = f'<div class="ltg-note">{total - len(rows):,} more tasks not listed</div>' if total > len(rows) else ""
    head = "".join(f"<th{CELL}>{h}</th>" for h in ("task", "status", "kind", "depends on"))
    return (
        f'{STYLE}<div class="ltg ltg-root ltg-graph ltg-fallback"><div class="ltg-note">{INSTALL_GRAPHVIZ}</div>'
        f'<table class="ltg-table"><tr>{head}</tr>{"".join(rows)}</table>{more}</div>'
    )


def iter_tasks(graph: TaskGraph, prefix: str = "") -> Iterable[tuple[str, Task]]:
    """(path, task) for every task, sub-graph tasks right after their TaskGraphTask."""
    return ((path, task) for path, task, _ in graph.walk(prefix))


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

