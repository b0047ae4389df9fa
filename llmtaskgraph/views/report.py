"""A trace as one self-contained HTML file, to attach to a bug report or send to a colleague.

The file holds the graph drawing, a timeline of task starts and finishes (overlapping bars are
tasks that ran at the same time), every task's prompt, reply, output and error, and token totals.
It needs no network: styles and the small script are inline, and a Content-Security-Policy with
the script's hash forbids every other script and every fetch, so even a trace crafted to inject
markup could not run code or phone home. All text from the trace is HTML-escaped as well.
"""

from __future__ import annotations

import base64
import hashlib
import math
from html import escape
from typing import TYPE_CHECKING

from ..text import count_text, seconds_text, shorten
from ..trace.summary import (
    TaskRow,
    Totals,
    intervals,
    leaf_spans,
    running_counts,
    task_rows,
    totals,
    utc_time,
)
from .render import STATUS_COLOURS, Limits, graph_html, task_html

if TYPE_CHECKING:
    from ..model.graph import TaskGraph

MAX_TIMELINE_ROWS = 500
"""Tasks drawn in the timeline (the first to start); the running-at-once line always covers all."""
_LIMITS = Limits(max_tasks=400, max_chars=200_000)
"""A report is read at leisure: draw more of the graph and cut texts later than a notebook does."""

_SCRIPT = r"""
(function () {
  var byPath = {}, byLoose = {};
  // graphviz rewrites some characters in node ids (newlines, runs of spaces, control characters):
  // compare ids without them when the exact one is not found.
  function loose(s) { return s.replace(/\\n/g, "").replace(/[\s\u0000-\u001f\u007f\u00a0]/g, ""); }
  document.querySelectorAll("details[data-path]").forEach(function (d) {
    var path = d.getAttribute("data-path");
    byPath[path] = d;
    byLoose[loose(path)] = path;
  });
  function select(path) {
    var d = byPath[path];
    if (!d) { return; }
    document.querySelectorAll(".selected").forEach(function (e) { e.classList.remove("selected"); });
    d.open = true;
    d.classList.add("selected");
    d.scrollIntoView({block: "nearest"});
  }
  document.querySelectorAll("[data-path]").forEach(function (e) {
    if (e.tagName.toLowerCase() !== "details") {
      e.addEventListener("click", function () { select(e.getAttribute("data-path")); });
    }
  });
  document.querySelectorAll("#graph g.node").forEach(function (g) {
    var id = g.getAttribute("id") || "";
    var path = id.slice(5);
    if (!byPath[path]) { path = byLoose[loose(path)]; }
    if (id.indexOf("task:") === 0 && path) {
      g.style.cursor = "pointer";
      g.addEventListener("click", function () { select(path); });
    }
  });
})();
"""

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
table.totals td { padding: 0 1em 0 0; }
#graph svg { max-width: 100%; height: auto; }
.timeline text { font: 11px monospace; }
.timeline rect.bar { cursor: pointer; }
details { border: 1px solid #ddd; border-radius: 4px; margin: 4px 0; padding: 4px 8px; }
details.selected { border-color: #1e88e5; box-shadow: 0 0 0 2px #90caf9; }
summary { cursor: pointer; font-family: monospace; }
pre { background: #f6f6f6; padding: 6px; white-space: pre-wrap; word-break: break-word; max-height: 30em; overflow: auto; }
.status { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff; }
.muted { color: #777; }
"""


def render_report(graph: TaskGraph, title: str = "llmtaskgraph trace") -> str:
    """The whole report as one HTML document (a ``str``)."""
    # A file name that is not UTF-8 comes in with lone surrogates, which the written file could not hold.
    title = title.encode("utf-8", "backslashreplace").decode("utf-8")
    rows = task_rows(graph)
    sums = totals(graph, rows)
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{script_hash}'"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{escape(csp)}">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _totals_table(sums),
        '<h2>Graph</h2><div id="graph">', _graph_drawing(graph), "</div>",
        '<h2>Timeline</h2><div id="timeline">', _timeline(rows, sums), "</div>",
        f'<h2>Tasks</h2><div id="tasks">{"".join(_task_details(row) for row in rows)}</div>',
        f"<script>{_SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts)


# -- sections ---------------------------------------------------------------------------------------
def _totals_table(sums: Totals) -> str:
    statuses = ", ".join(f"{n} {escape(s)}" for s, n in sorted(sums.by_status.items())) or "none"
    wall = "–" if sums.wall_time is None else f"{seconds_text(sums.wall_time)} s"
    when = "–" if sums.started_at is None else escape(utc_time(sums.started_at))
    usage = sums.usage
    cells = [
        ("Tasks", f"{sums.tasks} ({statuses})"),
        ("LLM calls", str(usage.calls)),
        ("Tokens", f"{count_text(usage.input_tokens)} in, {count_text(usage.output_tokens)} out"),
        ("Retries", count_text(usage.retries)),
        ("Cost", escape(usage.cost_text)),
        ("Started", when),
        ("Wall time", wall),
        ("Most tasks at once", str(sums.max_concurrency)),
    ]
    body = "".join(f"<tr><td>{name}</td><td id=\"total-{name.split()[0].lower()}\">{value}</td></tr>" for name, value in cells)
    return f'<table class="totals">{body}</table>'


def _graph_drawing(graph: TaskGraph) -> str:
    """The drawing of :mod:`llmtaskgraph.views.render` (an HTML table saying how to get graphviz without ``dot``)."""
    try:
        return graph_html(graph, _LIMITS)
    except Exception as exc:  # a drawing problem must not cost the user the rest of the report
        return f'<p class="muted">The graph could not be drawn: {escape(type(exc).__name__)}: {escape(str(exc))}</p>'


def _timeline(rows: list[TaskRow], sums: Totals) -> str:
    """One bar per task from its start to its finish, under a step line of how many tasks ran at once."""
    spans = sorted(intervals(rows), key=lambda span: (span[1], span[2]))
    if not spans or sums.started_at is None or sums.finished_at is None:
        return '<p class="muted">No task has both a start and a finish time yet.</p>'
    t0 = min(s for _, s, _ in spans)
    total = max(max(f for _, _, f in spans) - t0, 1e-9)
    if not math.isfinite(total):  # hand-edited times such as -1e308 and 1e308: no scale can hold both
        return '<p class="muted">The task times span more seconds than can be drawn; see each task below.</p>'
    shown = spans[:MAX_TIMELINE_ROWS]
    label_w, plot_w, row_h, strip_h = 220, 640, 16, 40
    top = strip_h + 10
    height = top + row_h * len(shown) + 24
    scale = plot_w / total
    out = [f'<svg class="timeline" width="{label_w + plot_w + 10}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    steps = running_counts(leaf_spans(rows))
    peak = max(sums.max_concurrency, 1)
    points, last = [], 0
    for t, running in steps:
        x = label_w + (t - t0) * scale
        points += [f"{x:.1f},{strip_h - last * strip_h / peak:.1f}", f"{x:.1f},{strip_h - running * strip_h / peak:.1f}"]
        last = running
    out.append(f'<text x="0" y="14">running at once</text><text x="0" y="{strip_h}">(at most {sums.max_concurrency})</text>')
    out.append(f'<polyline class="running" points="{" ".join(points)}" fill="none" stroke="#1565c0" stroke-width="1.5"/>')
    for i, (row, start, finish) in enumerate(shown):
        y = top + i * row_h
        x = label_w + (start - t0) * scale
        w = max((finish - start) * scale, 1.5)
        colour = STATUS_COLOURS.get(row.task.status, "#ffffff")
        tip = escape(f"{row.path}: {row.task.status}, {seconds_text(finish - start)} s, from +{seconds_text(start - t0)} s")
        out.append(f'<text x="0" y="{y + 12}">{escape(shorten(row.path, 30))}</text>')
        out.append(f'<rect class="bar" data-path="{escape(row.path)}" x="{x:.1f}" y="{y + 2}" width="{w:.1f}" '
                   f'height="{row_h - 4}" fill="{colour}" stroke="#616161" stroke-width="0.5"><title>{tip}</title></rect>')
    axis_y = top + row_h * len(shown) + 16
    out.append(f'<text x="{label_w}" y="{axis_y}">0 s</text>')
    out.append(f'<text x="{label_w + plot_w - 60}" y="{axis_y}">{seconds_text(total)} s</text>')
    out.append("</svg>")
    if len(spans) > len(shown):
        out.append(f'<p class="muted">{len(spans) - len(shown):,} later tasks are not drawn in the timeline '
                   "(they are all listed below).</p>")
    return "".join(out)


def _task_details(row: TaskRow) -> str:
    """A collapsible entry: a one-line summary, and the task card of :mod:`llmtaskgraph.views.render` inside."""
    task, rec = row.task, row.task.record
    colour = STATUS_COLOURS.get(rec.status, "#ffffff")
    bits = [task.type]
    if row.usage.calls:
        bits.append(f"{count_text(row.usage.input_tokens)}+{count_text(row.usage.output_tokens)} tokens")
        bits.append(row.usage.cost_text)
    if row.duration is not None:
        bits.append(f"{seconds_text(row.duration)} s")
    elif row.bad_timing:
        bits.append("time ? (start and finish out of order or out of range)")
    if task.name:
        bits.append(f"name {task.name!r}")
    summary = (f'<summary>{escape(row.path)} <span class="status" style="background:{colour}">{escape(rec.status)}</span> '
               f'<span class="muted">{escape(" · ".join(bits))}</span></summary>')
    return f'<details data-path="{escape(row.path)}">{summary}{_task_card(row)}</details>'


def _task_card(row: TaskRow) -> str:
    """The task card of :mod:`llmtaskgraph.views.render`; if a hand-edited value breaks it, a note instead:
    one task must not cost the user the rest of the report."""
    try:
        return task_html(row.task, _LIMITS)
    except Exception as exc:
        return (f'<p class="muted">The details of this task could not be shown: {escape(type(exc).__name__)}: '
                f"{escape(str(exc))}</p>")
