"""A notebook editor for a graph (ipywidgets 8): pick a task, edit it, replay or step, watch it run.

Every edit goes through ``task.edit(...)``, the same rule as edits made in Python or in the JSON
file, so the editor adds no second way of deciding what runs again. Runs are synchronous (the
kernel is busy while one runs); the drawing and the status line still update live, because widget
state is sent to the browser as the run's events arrive. Interrupt the kernel to stop a run.

During a run the status line follows every event; the drawing, which costs far more, is redrawn on
the run's loop at most once per ``refresh_interval`` (and never more than a fifth of the time), and
a change that arrives inside that window is drawn when the window ends, so the drawing never stays
behind the graph while the run waits (on a long LLM call, say). The run's end draws everything.

Build one with ``graph.editor(registry)``; this module is imported only then.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import GraphValidationError, LLMTaskGraphError, TaskGraphError
from ..model.tasks import LLMTask, Task
from ..run.plan import stale_paths
from ..run.progress import ProgressCounter
from ..text import clip
from .render import Limits, as_text, graph_html, iter_tasks, task_html

if TYPE_CHECKING:
    from ..model.graph import TaskGraph
    from ..model.registry import Registry
    from ..run.scheduler import RunEvent

try:
    import ipywidgets as w
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the graph editor needs ipywidgets: pip install 'llmtaskgraph[jupyter]'") from exc

FIELDS = ("prompt", "reply", "output")
_clock = time.monotonic
"""What redraws are timed by (a module attribute so tests can stop the clock)."""


class GraphEditor:
    """The editor; display it (it is the last expression of a cell) or put ``.widget`` in a layout.

    Attributes are the widgets themselves, so code and tests can drive it as a person would:
    ``editor.picker.value = "summarize"``, ``editor.fields["output"].value = "[1, 2]"``,
    ``editor.apply_button.click()``.
    """

    def __init__(
        self, graph: TaskGraph, registry: Registry, *, limits: Limits | None = None, refresh_interval: float = 0.5,
        **run_options: Any,
    ) -> None:
        self.graph = graph
        self.registry = registry
        self.limits = limits
        self.refresh_interval = refresh_interval
        """Least seconds between redraws of the graph during a run (more if drawing is slow, see
        :meth:`_redraw_gap`); a change inside that window is drawn when it ends."""
        self.run_options = run_options
        """Passed to every run the editor starts (``llm=``, ``max_concurrency=``, ...)."""
        self._shown: dict[str, str] = {}
        self._last_draw = 0.0
        self._draw_cost = 0.0
        self._stale = False
        """The graph changed since the drawing was made (during a run)."""
        self._redraw: asyncio.Handle | None = None
        """The redraw scheduled on the run's loop, if one is."""

        wide = w.Layout(width="100%")
        self.view = w.HTML(layout=wide)
        self.picker = w.Dropdown(description="task", options=[], layout=w.Layout(width="60%"))
        self.detail = w.HTML(layout=wide)
        self.fields = {
            "prompt": w.Textarea(description="prompt", layout=w.Layout(width="100%", height="6em")),
            "reply": w.Textarea(description="reply", layout=w.Layout(width="100%", height="6em")),
            "output": w.Textarea(description="output", placeholder="JSON", layout=w.Layout(width="100%", height="6em")),
        }
        self.apply_button = w.Button(description="Apply edit", icon="check", tooltip="record the edit (task.edit)")
        self.replay_button = w.Button(description="Replay", icon="play", tooltip="run what the edits affect")
        self.step_button = w.Button(description="Step", icon="step-forward", tooltip="run the next ready task")
        self.message = w.HTML()
        self.status = w.HTML()
        self.apply_button.add_class("ltg-apply")
        self.replay_button.add_class("ltg-replay")
        self.step_button.add_class("ltg-step")
        self.view.add_class("ltg-view")
        self.status.add_class("ltg-status")

        self.picker.observe(lambda _change: self._load_fields(), names="value")
        self.apply_button.on_click(lambda _b: self.apply())
        self.replay_button.on_click(lambda _b: self.replay())
        self.step_button.on_click(lambda _b: self.step())
        buttons = w.HBox([self.apply_button, self.replay_button, self.step_button])
        editor = w.VBox([self.picker, *self.fields.values(), buttons, self.message, self.detail])
        self.widget = w.VBox([self.status, self.view, editor])
        self.widget.add_class("ltg-editor")
        self.refresh()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        # The widget's own text form spells out every child's value (the whole SVG): keep it short.
        if isinstance(bundle, dict) and "text/plain" in bundle:
            bundle["text/plain"] = f"GraphEditor({self.graph!r})"
        return bundle

    def __repr__(self) -> str:
        return f"GraphEditor({self.graph!r})"

    # -- reading the graph ------------------------------------------------------------------------
    @property
    def task(self) -> Task | None:
        """The task chosen in the picker."""
        path = self.picker.value
        return None if not path else self.graph.find(path)

    def select(self, path: str) -> None:
        """Choose the task at ``path`` (``outer > inner`` inside sub-graphs)."""
        self.picker.value = path

    def refresh(self) -> None:
        """Redraw everything from the graph (after changes made outside the editor, say)."""
        current = self.picker.value
        statuses = self._statuses()
        options = [(f"{path} · {status}", path) for path, status in statuses.items()]
        self.picker.options = options
        paths = [p for _, p in options]
        if current in paths:
            self.picker.value = current
        elif paths and not self.picker.value:
            self.picker.value = paths[0]
        self._load_fields()
        self._draw()
        self.status.value = html.escape(self._summary(statuses))

    def _statuses(self) -> dict[str, str]:
        """Path -> status as shown: ``stale`` for a done task that an edit left to run again."""
        stale = stale_paths(self.graph) if not self.graph.running else set()  # (a run shows live statuses)
        return {
            path: "stale" if task.status == "done" and path in stale else task.status
            for path, task in iter_tasks(self.graph)
        }

    def _draw(self) -> None:
        started = _clock()
        self.view.value = graph_html(self.graph, self.limits)
        self._last_draw = _clock()
        self._draw_cost = self._last_draw - started

    # -- the live drawing during a run ------------------------------------------------------------
    def _redraw_gap(self) -> float:
        # Drawing runs on the run's loop thread: never spend more than ~1/5 of the time on it.
        return max(self.refresh_interval, 4 * self._draw_cost)

    def _graph_changed(self) -> None:
        """Called on the run's loop for each event: schedule a redraw unless one is already due.

        At once (on the loop's next turn, so a burst of events costs one drawing) if the last drawing
        is older than the gap, else when the gap ends: a change is never left undrawn until some
        later event happens to come.
        """
        self._stale = True
        if self._redraw is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # (events come from the run's loop; without one, draw now)
            self._redraw_now()
            return
        wait = self._last_draw + self._redraw_gap() - _clock()
        self._redraw = loop.call_soon(self._redraw_now) if wait <= 0 else loop.call_later(wait, self._redraw_now)

    def _redraw_now(self) -> None:
        self._redraw = None
        if not self._stale:
            return
        self._stale = False
        try:
            self._draw()
        except RuntimeError:  # a worker thread added a task while the graph was drawn: draw again
            self._graph_changed()

    def _stop_redraws(self) -> None:
        """At the run's end (which draws everything itself): drop the redraw still scheduled."""
        if self._redraw is not None:
            self._redraw.cancel()
            self._redraw = None
        self._stale = False

    def _summary(self, statuses: dict[str, str]) -> str:
        counts: dict[str, int] = {}
        for status in statuses.values():
            counts[status] = counts.get(status, 0) + 1
        text = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no tasks"
        report = self.graph.last_run
        if report is not None:
            text += f" · last run: {len(report.executed)} executed, {report.reused} reused, {report.llm_calls} LLM calls"
            if report.stopped:
                text += f", stopped ({report.stopped})"
        return text

    def _load_fields(self) -> None:
        task = self.task
        is_llm = isinstance(task, LLMTask)
        rec = None if task is None else task.record
        shown = {
            "prompt": "" if rec is None or rec.prompt is None or not is_llm else as_text(rec.prompt),
            "reply": "" if rec is None or not rec.response else str(rec.response.get("text", "")),
            "output": "" if task is None or not task.is_complete else json.dumps(task.output, indent=2, ensure_ascii=False),
        }
        limit = (self.limits or Limits()).max_edit_chars
        for name, field in self.fields.items():
            # A multi-megabyte value would stall the browser: show its start, read-only, and say so.
            too_big = len(shown[name]) > limit
            field.value = clip(shown[name], limit) + ("\n(too large to edit here: use task.edit(...))" if too_big else "")
            field.disabled = task is None or too_big or (name != "output" and not is_llm)
        self._shown = {name: field.value for name, field in self.fields.items()}
        self.detail.value = "" if task is None else task_html(task, self.limits)

    # -- actions ----------------------------------------------------------------------------------
    def _say(self, text: str, error: bool = False) -> None:
        colour = "#c62828" if error else "#2e7d32"
        self.message.value = f'<pre style="color:{colour};white-space:pre-wrap">{html.escape(text)}</pre>'

    def apply(self) -> bool:
        """Record the changed field as an edit of the chosen task; True if the graph changed.

        One field at a time: a prompt edit calls the LLM again and a reply edit parses again, so an
        edit of a later field made at the same time would be overwritten on replay.
        """
        task = self.task
        if task is None:
            self._say("choose a task first", error=True)
            return False
        changed = [name for name in FIELDS if self.fields[name].value != self._shown[name]]
        if not changed:
            self._say("nothing to apply: change the prompt, the reply or the output first", error=True)
            return False
        if len(changed) > 1:
            self._say(
                f"change one field at a time (changed: {', '.join(changed)}): an earlier stage's edit makes the "
                "later ones run again, which would overwrite them",
                error=True,
            )
            return False
        name = changed[0]
        text = self.fields[name].value
        try:
            value: Any = text
            if name == "output" or (name == "prompt" and not isinstance(task.record.prompt, str)):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise GraphValidationError(
                        f"the {name} of task `{task.id}` is not valid JSON ({exc}); nothing was changed"
                    ) from exc
            task.edit(**{"response" if name == "reply" else name: value})
        except (LLMTaskGraphError, ValueError, TypeError) as exc:  # (an edit that cannot be stored)
            self._say(str(exc), error=True)
            return False
        again = len(stale_paths(self.graph))
        self._say(f"edited the {name} of `{task.id}`; {again} task(s) are now stale: Replay runs what the edit affects")
        self.refresh()
        return True

    def replay(self) -> None:
        """Run the graph: only what the edits affect executes; the view follows the run live."""
        self._run(lambda opts: self.graph.run(self.registry, **opts), "replayed")

    def step(self) -> None:
        """Run the next ready task that needs running, then show it."""
        task = self._run(lambda opts: self.graph.step(self.registry, **opts), "stepped")
        report = self.graph.last_run
        if task is not None and report is not None and report.executed:
            self.select(report.executed[-1])  # a path: the step may have run a task inside a sub-graph
        elif task is None and report is not None and not report.failed:
            self._say("nothing left to run: every task is done")

    def _run(self, action: Callable[[dict[str, Any]], Any], verb: str) -> Any:
        counter = ProgressCounter()
        user_listeners = self.run_options.get("on_event")

        def on_event(event: RunEvent) -> None:
            if event.kind == "run_finished":
                # Drawn here, on the thread that sent the live updates: a front end gets a kernel's
                # messages in order per thread only, so a final state sent from the caller's thread
                # could arrive before the last live update and be overwritten by it.
                self._stop_redraws()
                self.refresh()
                return
            counter.on_event(event)
            self.status.value = "running: " + html.escape(counter.describe())
            self._graph_changed()

        # The user's listeners stay listeners of their own: one that raises is dropped, not this one.
        listeners = [on_event, *([] if user_listeners is None else [user_listeners] if callable(user_listeners) else user_listeners)]
        for button in (self.apply_button, self.replay_button, self.step_button):
            button.disabled = True
        result = None
        try:
            result = action({**self.run_options, "on_event": listeners, "progress": False})
            self._say(f"{verb}: {counter.describe()}")
        except TaskGraphError as exc:
            self._say(str(exc), error=True)
        except (LLMTaskGraphError, ValueError, TypeError, KeyError) as exc:
            self._say(f"{type(exc).__name__}: {exc}", error=True)
        finally:
            for button in (self.apply_button, self.replay_button, self.step_button):
                button.disabled = False
            self._stop_redraws()
            self.refresh()
        return result
