"""The interactive graph: an anywidget (JupyterLab, Notebook 7, VS Code, Colab, Voilà) drawing the
graphviz layout as SVG, with pan and zoom, click to select a task, hover for its status and time.

The layout is made once per shape of the graph (``dot`` within its budget, see
:mod:`llmtaskgraph.views.render`) and sent to the browser as SVG; run events then only send small
dicts (status per task, hover texts, the text of a streaming reply) and the browser recolours the
nodes in place. Both are throttled on the run's loop with a trailing edge
(:class:`~llmtaskgraph.run.progress.Throttle`): the statuses every 0.1 s, a new layout (when tasks
were added) at most once a second and never more than a fifth of the time.

``graph.view()`` makes one; :class:`~llmtaskgraph.views.widgets.GraphEditor` is built around one.
Follow a run with ``graph.run(registry, on_event=view.on_event)``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..llm.prices import cost_of
from ..run.progress import Throttle
from ..text import seconds_text, shorten
from ..trace.summary import span_seconds
from ..trace.usage import dollars_text
from .cards import is_edited, kind_text
from .common import PLAN_COLOURS, STATUS_COLOURS, Limits, legend
from .dot import _DotMissing
from .render import drawing, iter_tasks, layout

if TYPE_CHECKING:
    from ..model.graph import TaskGraph
    from ..run.plan import Plan
    from ..run.state import RunEvent

try:
    import anywidget
    import traitlets as t
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the interactive graph needs anywidget: pip install 'llmtaskgraph[jupyter]'") from exc

_HERE = Path(__file__).parent
STATUS_INTERVAL = 0.1
"""Seconds between status repaints during a run (the last change of a window is painted when it ends)."""
LAYOUT_INTERVAL = 1.0
"""Least seconds between new layouts during a run (tasks added at run time)."""
TEXT_HINT = "[interactive task graph: shown by a Jupyter front end with anywidget (JupyterLab, Notebook 7, VS Code, Voilà)]"
_clock = time.monotonic
"""What layouts are timed by (a module attribute so tests can stop the clock)."""


class GraphView(anywidget.AnyWidget):
    """The graph, drawn and kept up to date. ``selected`` is the path of the task clicked last."""

    _esm = (_HERE / "graph_view.js").read_text(encoding="utf-8")
    _css = (_HERE / "graph_view.css").read_text(encoding="utf-8")

    svg = t.Unicode("").tag(sync=True)
    """The laid-out drawing (our own SVG; every text in it is escaped)."""
    paths = t.Dict().tag(sync=True)
    """DOT node name -> task path, for the nodes that draw one task."""
    statuses = t.Dict().tag(sync=True)
    """Task path -> status as shown (``stale`` for a done task an edit left to run again; ``will run``
    or ``reused`` while a plan is shown)."""
    colours = t.Dict().tag(sync=True)
    """Shown status -> fill colour."""
    marks = t.Dict().tag(sync=True)
    """Task path -> ``failed`` or ``edited`` (drawn as the node's border)."""
    info = t.Dict().tag(sync=True)
    """Task path -> what hovering over its node says."""
    live_text = t.Dict().tag(sync=True)
    """Task path -> the text of its streaming reply so far (while it arrives)."""
    selected = t.Unicode("").tag(sync=True)
    """Path of the selected task (set by a click in the browser, or from Python)."""
    legend = t.Unicode("").tag(sync=True)
    notes = t.List(t.Unicode()).tag(sync=True)

    def __init__(self, graph: TaskGraph, limits: Limits | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.graph = graph
        self.limits = limits or Limits()
        self.plan: Plan | None = None
        """The plan the nodes are coloured by, until the next refresh."""
        self.edited: dict[str, tuple[str, Any]] = {}
        """Path -> (field, value) of edits made here: the node shows "edited" while the trace holds that
        value (an output edit of a task that had run leaves no mark in the trace itself)."""
        self._dot: str | None = None
        self._layout_cost = 0.0
        self._last_layout = -1e9
        self._status_throttle = Throttle(self._paint, STATUS_INTERVAL)
        self._layout_throttle = Throttle(self._relayout_if_changed, LAYOUT_INTERVAL)
        self.colours = {**STATUS_COLOURS, **PLAN_COLOURS}
        self.add_class("ltg-view")
        self.refresh()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        return {**data, "text/plain": TEXT_HINT}, metadata  # (its own text form would spell out the whole SVG)

    # -- drawing ----------------------------------------------------------------------------------
    def refresh(self, plan: Plan | None = None) -> None:
        """Lay out again if the graph's shape changed, and repaint every status (by ``plan`` if given)."""
        self.plan = plan
        self._relayout_if_changed()
        self._paint()

    def _relayout_if_changed(self) -> None:
        try:
            draw = drawing(self.graph, self.limits, live=True)
        except RuntimeError:  # a worker thread added a task while it was walked: the next event redraws
            return
        if draw.dot == self._dot:
            return
        started = _clock()
        try:
            svg, notes = layout(draw, self.limits)
        except _DotMissing:  # no graphviz: the Python layout, and say how to get the better one
            from .layout import layered_svg

            svg, notes = layered_svg(draw.nodes, draw.edges), [*draw.notes, "install graphviz's `dot` for a tidier drawing"]
        self._last_layout = _clock()
        self._layout_cost = self._last_layout - started
        self._dot = draw.dot
        with self.hold_sync():
            self.paths = draw.paths
            self.svg = svg
            self.notes = notes

    def _paint(self) -> None:
        statuses: dict[str, str] = {}
        marks: dict[str, str] = {}
        info: dict[str, str] = {}
        texts: dict[str, str] = {}
        stale: set[str] = set()
        if self.plan is None and not self.graph.running:
            from ..run.plan import stale_paths

            stale = stale_paths(self.graph)
        will_run = None if self.plan is None else set(self.plan.will_run)
        for path, task in iter_tasks(self.graph):
            rec = task.record
            status = rec.status
            if will_run is not None:
                status = "will run" if path in will_run else "reused"
            elif status == "done" and path in stale:
                status = "stale"
            statuses[path] = status
            if rec.status == "failed":
                marks[path] = "failed"
            elif is_edited(task) or self._holds_edit(path, rec):
                marks[path] = "edited"
            info[path] = self._hover(path, task, status)
            partial = getattr(rec, "partial_text", None)
            if rec.status == "running" and partial:
                texts[path] = partial[-2000:]
        with self.hold_sync():
            self.statuses, self.marks, self.info, self.live_text = statuses, marks, info, texts
            self.legend = legend(self.plan is not None)

    def _holds_edit(self, path: str, rec: Any) -> bool:
        edit = self.edited.get(path)
        if edit is None:
            return False
        name, value = edit
        held = rec.output if name == "output" else rec.prompt if name == "prompt" else (rec.response or {}).get("text")
        return bool(held == value)

    def _hover(self, path: str, task: Any, status: str) -> str:
        rec = task.record
        lines = [path, status if status == rec.status else f"{status} (last run: {rec.status})", kind_text(task)]
        if rec.started_at is not None and rec.finished_at is not None:
            lines.append(f"took {seconds_text(span_seconds(rec.started_at, rec.finished_at), 2)} s")
        elif rec.status == "running" and isinstance(rec.started_at, (int, float)):
            lines.append("started at " + time.strftime("%H:%M:%S", time.localtime(rec.started_at)))
        if task.created_by:
            lines.append(f"added by {task.created_by}")
        response = rec.response or {}
        if response.get("backend"):  # a paid-for reply (a hand-written one has no backend)
            usage = response.get("usage")
            usage = usage if isinstance(usage, dict) else {}  # a hand-edited trace may hold anything here
            lines.append(f"{usage.get('input_tokens', '?')} in + {usage.get('output_tokens', '?')} out tokens · "
                         f"cost {dollars_text(cost_of(response))}")
        if self.plan is not None and path in self.plan.reasons:
            lines.append("why: " + "; ".join(self.plan.reasons[path]))
        if rec.error is not None:
            lines.append(shorten(f"{rec.error.type}: {rec.error.message}", 300))
        return "\n".join(lines)

    # -- following a run --------------------------------------------------------------------------
    def on_event(self, event: RunEvent) -> None:
        """A run listener (``on_event=view.on_event``): statuses repaint within 0.1 s of any event; tasks
        added are laid out again at most once a second. Unknown event kinds just repaint."""
        if event.kind == "run_finished":
            self.finish()
            return
        self.plan = None
        self._status_throttle.poke()
        if event.kind == "task_added":
            self._layout_throttle.interval = max(LAYOUT_INTERVAL, 4 * self._layout_cost)
            self._layout_throttle.poke()

    def finish(self) -> None:
        """The run ended: drop what is still scheduled and draw the final state."""
        self._status_throttle.cancel()
        self._layout_throttle.cancel()
        self.refresh()

