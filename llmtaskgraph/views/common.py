"""What every notebook view shares: how much to draw (:class:`Limits`), the colours, and the stylesheet.

The stylesheet has to survive the front ends it lands in. JupyterLab 4 styles rendered HTML with
``:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td { text-align: right }`` and its own ``pre``
and striped-row rules, which beat plain class selectors; so every rule here is scoped under
``.ltg.ltg-root`` plus a class of the element (three classes outrank their two), and table cells
also carry ``text-align:left`` inline, which a sanitizer keeps when it drops the ``<style>`` of an
untrusted output. Colours come from the front end's theme variables (``--jp-*``) with light
fallbacks (Voilà, VS Code, the HTML report), so dark themes stay readable; the status colours are
light, so text on them is always dark.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from ..model.tasks import STATUSES

STATUS_COLOURS = {"pending": "#e0e0e0", "running": "#ffd54f", "done": "#a5d6a7", "failed": "#ef9a9a", "blocked": "#ffcc80",
                  "stale": "#b3e5fc"}
"""Fill colour of each task status, in the SVG, the fallback table and the legend. ``stale`` is not a
stored status: it is shown for a done task that an edit left to run again (computed by the memo rule)."""
PLAN_COLOURS = {"will run": "#90caf9", "reused": "#a5d6a7"}
"""Fill colours of a drawing coloured by a plan (``to_html(graph, plan=graph.plan(registry))``)."""
EDITED_BORDER = "#6a1b9a"
"""Border of a task whose stored result was set by hand (``task.edit``, the editor, the JSON file)."""
FAILED_BORDER = "#c62828"
TEXT_ON_COLOUR = "#1a1a1a"
"""Text on a status colour (all of them are light, in light and dark themes alike)."""

CELL = ' style="text-align:left;vertical-align:top"'
"""Inline on every card cell: JupyterLab right-aligns table cells, and a sanitizer keeps this."""


@dataclass(frozen=True)
class Limits:
    """How much of a graph to draw, so a 10,000-task graph still renders in a second or two."""

    max_tasks: int = 150
    """Task nodes drawn in all; later tasks are summarized in one node per graph."""
    max_children: int = 12
    """Dynamic children drawn per creator; the rest become one summary node."""
    max_subgraph: int = 40
    """Sub-graphs with more tasks than this are drawn as one node instead of a cluster."""
    max_edges: int = 300
    """Dependency edges drawn in all. Past it, edges implied by others (``a -> c`` when ``a -> b -> c``
    is drawn) are left out, then the rest past the limit; a note says how many."""
    dot_seconds: float = 4.0
    """Time budget of graphviz's ``dot``; past it, ``dot`` is killed and a simpler layout is drawn."""
    max_chars: int = 4000
    """Characters of any one text shown in a task card before it is cut (visibly)."""
    max_edit_chars: int = 100_000
    """Characters of a prompt, reply or output the editor puts in an editable field; longer ones are shown cut, read-only."""


_R = ".ltg.ltg-root"
STYLE = "<style>" + "".join([
    f"{_R}{{line-height:1.35;text-align:left;color:var(--jp-content-font-color1,inherit)}}",
    f"{_R} .ltg-table{{border-collapse:collapse;table-layout:auto;width:auto;margin:2px 0;font-size:inherit}}",
    f"{_R} .ltg-table tr,{_R} .ltg-table tr:hover,{_R} .ltg-table tbody tr:nth-child(odd),"
    f"{_R} .ltg-table tbody tr:nth-child(even){{background:transparent}}",
    f"{_R} .ltg-table td,{_R} .ltg-table th{{text-align:left;vertical-align:top;padding:1px 8px;border:none;"
    "white-space:normal;max-width:none;line-height:1.35}",
    f"{_R} .ltg-table th{{font-weight:600;color:var(--jp-content-font-color2,#555)}}",
    f"{_R} pre.ltg-pre{{white-space:pre-wrap;word-break:break-word;max-height:24em;overflow:auto;margin:2px 0;"
    "padding:4px 6px;text-align:left;line-height:1.3;border-radius:3px;"
    "background:var(--jp-layout-color2,#f5f5f5);color:var(--jp-content-font-color1,#1a1a1a);"
    "border:1px solid var(--jp-border-color1,#cccccc);"
    "font-family:var(--jp-code-font-family,SFMono-Regular,Menlo,Consolas,monospace);font-size:var(--jp-code-font-size,12px)}",
    # a traceback keeps its columns (the ^^^ markers under the failing expression): no wrapping
    f"{_R} pre.ltg-pre.ltg-traceback{{white-space:pre;word-break:normal;overflow:auto}}",
    f"{_R} .ltg-badge{{padding:1px 6px;border-radius:3px;color:{TEXT_ON_COLOUR};white-space:nowrap}}",
    f"{_R} .ltg-note{{color:var(--jp-content-font-color2,#555);font-size:90%}}",
    f"{_R} .ltg-legend-border{{padding:0 5px;border:2px solid {EDITED_BORDER};border-radius:3px}}",
    f"{_R} .ltg-canvas{{overflow:auto;max-width:100%;max-height:85vh}}",
    f"{_R} .ltg-canvas svg{{display:block;height:auto}}",
    # graphviz draws cluster labels and edges dark: follow the theme's text colours instead
    f"{_R} svg g.cluster>text,{_R} svg g.graph>text{{fill:var(--jp-content-font-color1,#1a1a1a)}}",
    f'{_R} svg g.edge>path[stroke="#616161"]{{stroke:var(--jp-content-font-color2,#616161)}}',
    f'{_R} svg g.edge>polygon[stroke="#616161"]{{stroke:var(--jp-content-font-color2,#616161);'
    "fill:var(--jp-content-font-color2,#616161)}",
    f'{_R} svg g.cluster>path[stroke="#757575"],{_R} svg g.cluster>polygon[stroke="#757575"]'
    "{stroke:var(--jp-content-font-color3,#757575)}",
]) + "</style>"
"""The stylesheet every card and drawing carries (each output is shown on its own)."""


def badge(status: str, colour: str | None = None) -> str:
    """A status word on its colour."""
    fill = colour or STATUS_COLOURS.get(status, "#ffffff")
    return f'<span class="ltg-badge" style="background:{fill}">{html.escape(status)}</span>'


def legend(plan: bool = False) -> str:
    """What the colours and borders of a drawing mean."""
    if plan:
        return '<div class="ltg-note ltg-legend">' + " ".join(badge(k, c) for k, c in PLAN_COLOURS.items()) + "</div>"
    return ('<div class="ltg-note ltg-legend">' + " ".join(badge(s) for s in (*STATUSES, "stale"))
            + ' · <span class="ltg-legend-border">purple border</span>: edited by hand'
            + " · dashed border: added at run time (blue dashed edge from its creator)</div>")
