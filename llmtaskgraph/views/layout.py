"""A simple layered drawing made in Python, for when ``dot`` runs out of its time budget or fails.

It cannot hang: longest-path layers, one ordering pass by the mean position of each node's
dependencies, straight edges. Less tidy than ``dot`` (edges may cross nodes), but every task is
there, coloured by status, with the same SVG structure as graphviz's output (``g.node`` with the
``task:<path>`` id, a ``<title>`` holding the DOT node name, a tooltip, one filled shape), so the
notebook view, the report and the tests treat both drawings alike.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass
from html import escape

__all__ = ["EdgeSpec", "NodeSpec", "layered_svg"]

_CHAR = 5.6
"""Width in points of one character at the 10 pt label font (an average for Helvetica)."""
_LINE = 13.0
_GAP_X, _GAP_Y = 18.0, 40.0


@dataclass
class NodeSpec:
    """One node of a drawing, as the DOT writer describes it."""

    name: str
    """DOT node name (``n12``)."""
    lines: list[str]
    """Label lines."""
    fill: str
    tooltip: str
    dom_id: str | None = None
    """``task:<path>`` for task nodes; None for summary nodes."""
    dashed: bool = False
    stroke: str = "#000000"
    penwidth: float = 1.0


@dataclass
class EdgeSpec:
    tail: str
    head: str
    kind: str = "data"
    """``data`` (a dependency), ``created`` (creator -> child) or ``inner`` (sub-graph -> its first tasks)."""


def _clean(text: str) -> str:
    """``text`` without the control characters XML cannot hold (graphviz drops them too)."""
    return "".join(ch for ch in text if ch >= " " or ch in "\t\n\r")


def _attr(text: str) -> str:
    """An attribute value that reads back exactly: XML turns a raw newline or tab in one into a space."""
    return escape(_clean(text)).replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")


def _layers(nodes: list[NodeSpec], edges: list[EdgeSpec]) -> dict[str, int]:
    preds: dict[str, set[str]] = {n.name: set() for n in nodes}
    for e in edges:
        if e.tail in preds and e.head in preds and e.tail != e.head:
            preds[e.head].add(e.tail)
    try:
        order = list(graphlib.TopologicalSorter(preds).static_order())
    except graphlib.CycleError:  # (a drawing of a DAG has none; never fail a fallback over it)
        order = [n.name for n in nodes]
    layer: dict[str, int] = {}
    for name in order:
        layer[name] = 1 + max((layer.get(p, -1) for p in preds[name]), default=-1)
    return layer


def layered_svg(nodes: list[NodeSpec], edges: list[EdgeSpec]) -> str:
    """An SVG document drawing ``nodes`` in layers, top to bottom, with straight ``edges``."""
    layer = _layers(nodes, edges)
    rows: dict[int, list[NodeSpec]] = {}
    for node in nodes:
        rows.setdefault(layer[node.name], []).append(node)
    size = {n.name: (max(max((len(s) for s in n.lines), default=1) * _CHAR + 16, 40.0), len(n.lines) * _LINE + 10)
            for n in nodes}
    preds: dict[str, list[str]] = {}
    for e in edges:
        preds.setdefault(e.head, []).append(e.tail)
    pos: dict[str, tuple[float, float]] = {}
    y = 8.0
    width = 0.0
    for depth in sorted(rows):
        row = rows[depth]
        if depth:  # one ordering pass: by the mean position of the node's predecessors
            def key(n: NodeSpec) -> float:
                xs = [pos[p][0] for p in preds.get(n.name, []) if p in pos]
                return sum(xs) / len(xs) if xs else 0.0

            row.sort(key=key)
        x = 8.0
        height = max(size[n.name][1] for n in row)
        for n in row:
            w, h = size[n.name]
            pos[n.name] = (x + w / 2, y + h / 2)
            x += w + _GAP_X
        width = max(width, x)
        y += height + _GAP_Y
    total_w, total_h = width + 8, y - _GAP_Y + 16
    out = [f'<svg width="{total_w:.0f}pt" height="{total_h:.0f}pt" viewBox="0 0 {total_w:.2f} {total_h:.2f}" '
           'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">',
           '<g id="graph0" class="graph"><title>taskgraph</title>']
    for i, e in enumerate(edges):
        if e.tail not in pos or e.head not in pos:
            continue
        (x1, y1), (x2, y2) = pos[e.tail], pos[e.head]
        y1 += size[e.tail][1] / 2
        y2 -= size[e.head][1] / 2
        colour = "#1565c0" if e.kind == "created" else "#757575" if e.kind == "inner" else "#616161"
        dash = ' stroke-dasharray="5,2"' if e.kind != "data" else ""
        out.append(f'<g id="edge{i + 1}" class="edge"><title>{e.tail}&#45;&gt;{e.head}</title>'
                   f'<path fill="none" stroke="{colour}"{dash} d="M{x1:.1f},{y1:.1f}L{x2:.1f},{y2 - 6:.1f}"/>'
                   f'<polygon fill="{colour}" stroke="{colour}" points="{x2 - 3:.1f},{y2 - 6:.1f} {x2 + 3:.1f},{y2 - 6:.1f} '
                   f'{x2:.1f},{y2:.1f} {x2 - 3:.1f},{y2 - 6:.1f}"/></g>')
    for n in nodes:
        cx, cy = pos[n.name]
        w, h = size[n.name]
        x0, y0 = cx - w / 2, cy - h / 2
        dom_id = f' id="{_attr(n.dom_id)}"' if n.dom_id is not None else ""
        dash = ' stroke-dasharray="5,2"' if n.dashed else ""
        out.append(f'<g{dom_id} class="node"><title>{n.name}</title><g><a xlink:title="{_attr(n.tooltip)}">'
                   f'<path fill="{escape(n.fill)}" stroke="{escape(n.stroke)}" stroke-width="{n.penwidth:g}"{dash} '
                   f'd="M{x0 + 4:.1f},{y0:.1f}H{x0 + w - 4:.1f}Q{x0 + w:.1f},{y0:.1f} {x0 + w:.1f},{y0 + 4:.1f}'
                   f'V{y0 + h - 4:.1f}Q{x0 + w:.1f},{y0 + h:.1f} {x0 + w - 4:.1f},{y0 + h:.1f}H{x0 + 4:.1f}'
                   f'Q{x0:.1f},{y0 + h:.1f} {x0:.1f},{y0 + h - 4:.1f}V{y0 + 4:.1f}Q{x0:.1f},{y0:.1f} {x0 + 4:.1f},{y0:.1f}Z"/>')
        top = cy - (len(n.lines) - 1) * _LINE / 2 + 3.5
        for k, line in enumerate(n.lines):
            out.append(f'<text text-anchor="middle" x="{cx:.1f}" y="{top + k * _LINE:.1f}" '
                       f'font-family="Helvetica,Arial,sans-serif" font-size="10.00">{escape(_clean(line), quote=False)}</text>')
        out.append("</a></g></g>")
    out.append("</g></svg>")
    return "\n".join(out)
