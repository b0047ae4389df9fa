"""A notebook editor for a graph, built around the interactive view: pick a task (click its node, or
the dropdown from the keyboard), edit its prompt, reply or output, then Replay, Step, Stop, Plan or
Rerun this task, and watch the nodes change colour as the run goes.

Every edit goes through ``task.edit(...)``, the same rule as edits made in Python or in the JSON
file, so the editor adds no second way of deciding what runs again; what an edit makes run is
said from ``graph.plan`` (the scheduler's own rule), naming tasks by path. Text typed into a
field and not applied is never dropped: switching task (or a refresh after a run) keeps it as a
draft and puts it back when the task is chosen again.

In a notebook, runs started here go on in the background on the kernel's event loop, so the
kernel stays free for the Stop button (first click: no new task starts; second: running ones are
cancelled; the trace keeps what finished). Without a running loop (scripts, tests driving the
buttons) a run finishes before the click returns.

Build one with ``graph.editor(registry)``; this module is imported only then.
"""

from __future__ import annotations

import asyncio
import html
import json
from typing import TYPE_CHECKING, Any

from ..errors import GraphValidationError, LLMTaskGraphError, TaskGraphError
from ..model.tasks import LLMTask, Task
from ..run.plan import stale_paths
from ..run.progress import ProgressCounter, Throttle, with_text_hint
from ..text import clip
from .cards import as_text, task_html
from .common import Limits
from .graph_view import STATUS_INTERVAL, GraphView
from .render import iter_tasks

if TYPE_CHECKING:
    from ..model.graph import TaskGraph
    from ..model.registry import Registry
    from ..run.scheduler import RunEvent

try:
    import ipywidgets as w
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the graph editor needs ipywidgets: pip install 'llmtaskgraph[jupyter]'") from exc

FIELDS = ("prompt", "reply", "output")
TEXT_HINT = ("[task graph editor: shown by a Jupyter front end with ipywidgets and anywidget "
             "(JupyterLab, Notebook 7, VS Code, Voilà); run the notebook to use it]")
_OK, _ERROR = "var(--jp-success-color1,#2e7d32)", "var(--jp-error-color1,#c62828)"


class GraphEditor:
    """The editor; display it (it is the last expression of a cell) or put ``.widget`` in a layout.

    Attributes are the widgets themselves, so code and tests can drive it as a person would:
    ``editor.picker.value = "summarize"`` (or ``editor.view.selected = ...``, what a click on a node
    does), ``editor.fields["output"].value = "[1, 2]"``, ``editor.apply_button.click()``.
    """

    def __init__(
        self, graph: TaskGraph, registry: Registry, *, limits: Limits | None = None,
        refresh_interval: float = STATUS_INTERVAL, background: bool = True, **run_options: Any,
    ) -> None:
        self.graph = graph
        self.registry = registry
        self.limits = limits
        self.background = background
        """Run in the background when a loop is running (a notebook), so Stop can be clicked."""
        self.run_options = run_options
        """Passed to every run the editor starts (``llm=``, ``max_concurrency=``, ...)."""
        self._shown: dict[str, str] = {}
        self._loaded: str | None = None
        """Path of the task whose values are in the fields."""
        self.drafts: dict[str, dict[str, str]] = {}
        """Task path -> field -> text typed and not applied (kept when switching task)."""
        self._task: asyncio.Task[Any] | None = None
        self._stopping = False
        self._counter = ProgressCounter()
        self._status_throttle = Throttle(self._show_progress, refresh_interval)

        self.view = GraphView(graph, limits)
        self.picker = w.Dropdown(description="task", options=[], layout=w.Layout(width="60%"))
        self.detail = w.HTML(layout=w.Layout(width="100%"))
        self.fields = {
            name: w.Textarea(description=name, placeholder="JSON" if name == "output" else "",
                             layout=w.Layout(width="100%", height="6em"))
            for name in FIELDS
        }
        self.apply_button = w.Button(description="Apply edit", icon="check", tooltip="record the edit (task.edit)")
        self.replay_button = w.Button(description="Replay", icon="play", tooltip="run what the edits affect")
        self.step_button = w.Button(description="Step", icon="step-forward", tooltip="run the next ready task")
        self.stop_button = w.Button(description="Stop", icon="stop", tooltip="start no new task (click again: cancel running ones)",
                                    disabled=True)
        self.plan_button = w.Button(description="Plan", icon="list", tooltip="show what Replay would run and why")
        self.rerun_button = w.Button(description="Rerun this task", icon="refresh",
                                     tooltip="run the chosen task (and what depends on it) again")
        self.message = w.HTML()
        self.status = w.HTML()
        for widget, cls in ((self.apply_button, "ltg-apply"), (self.replay_button, "ltg-replay"),
                            (self.step_button, "ltg-step"), (self.stop_button, "ltg-stop"),
                            (self.plan_button, "ltg-plan"), (self.rerun_button, "ltg-rerun"),
                            (self.status, "ltg-status"), (self.message, "ltg-message"), (self.picker, "ltg-picker"),
                            (self.detail, "ltg-detail"), *((f, f"ltg-field-{n}") for n, f in self.fields.items())):
            widget.add_class(cls)

        self.picker.observe(self._picked, names="value")
        self.view.observe(lambda change: self.select(change["new"]) if change["new"] else None, names="selected")
        self.apply_button.on_click(lambda _b: self.apply())
        self.replay_button.on_click(lambda _b: self.replay())
        self.step_button.on_click(lambda _b: self.step())
        self.stop_button.on_click(lambda _b: self.stop())
        self.plan_button.on_click(lambda _b: self.show_plan())
        self.rerun_button.on_click(lambda _b: self.rerun())
        self._run_buttons = (self.apply_button, self.replay_button, self.step_button, self.plan_button, self.rerun_button)
        buttons = w.HBox([*self._run_buttons[:3], self.stop_button, self.plan_button, self.rerun_button],
                         layout=w.Layout(flex_flow="row wrap"))
        editor = w.VBox([self.picker, *self.fields.values(), buttons, self.message, self.detail])
        self.widget = w.VBox([self.status, self.view, editor])
        self.widget.add_class("ltg-editor")
        self.refresh()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # The widget's own text form spells out every child's value: a hint reads better where no
        # front end draws widgets (a notebook opened before its kernel runs, GitHub, nbviewer).
        return with_text_hint(self.widget, TEXT_HINT)

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
        self._stash()
        current = self.picker.value
        statuses = self._statuses()
        options = [(f"{path} · {status}", path) for path, status in statuses.items()]
        self._loaded = None  # (the options change below must not stash the fields again)
        self.picker.options = options
        paths = [p for _, p in options]
        if current in paths:
            self.picker.value = current
        elif paths and not self.picker.value:
            self.picker.value = paths[0]
        self.view.refresh()
        self._load_fields()
        self.status.value = html.escape(self._summary(statuses))

    def _statuses(self) -> dict[str, str]:
        """Path -> status as shown: ``stale`` for a done task that an edit left to run again."""
        stale = stale_paths(self.graph) if not self.graph.running else set()  # (a run shows live statuses)
        return {
            path: "stale" if task.status == "done" and path in stale else task.status
            for path, task in iter_tasks(self.graph)
        }

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

    # -- the fields and drafts --------------------------------------------------------------------
    def _unapplied(self) -> dict[str, str]:
        return {name: f.value for name, f in self.fields.items() if name in self._shown and f.value != self._shown[name]}

    def _stash(self) -> list[str]:
        """Keep the text typed into the fields of the loaded task as its draft; the fields' names."""
        if self._loaded is None:
            return []
        unapplied = self._unapplied()
        if unapplied:
            self.drafts[self._loaded] = unapplied
        return list(unapplied)

    def _picked(self, change: dict[str, Any]) -> None:
        old = self._loaded
        kept = self._stash()
        self._load_fields()
        self.view.selected = self.picker.value or ""
        notes = []
        if kept and old is not None and old != self.picker.value:
            notes.append(f"kept your unapplied edit of the {' and '.join(kept)} of `{old}`: choose it again to apply it")
        restored = self.drafts.get(self.picker.value or "")
        if restored:
            notes.append(f"your unapplied edit of the {' and '.join(restored)} of `{self.picker.value}` is back: "
                         "Apply edit records it")
        if notes:
            self._say("; ".join(notes))

    def _load_fields(self) -> None:
        path = self.picker.value or None
        task = self.task
        is_llm = isinstance(task, LLMTask)
        rec = None if task is None else task.record
        shown = {
            "prompt": "" if rec is None or rec.prompt is None or not is_llm else as_text(rec.prompt),
            "reply": "" if rec is None or not rec.response else str(rec.response.get("text", "")),
            "output": "" if task is None or not task.is_complete else json.dumps(task.output, indent=2, ensure_ascii=False),
        }
        limit = (self.limits or Limits()).max_edit_chars
        self._loaded = None  # (setting values below must not count as typing)
        for name, field in self.fields.items():
            # A multi-megabyte value would stall the browser: show its start, read-only, and say so.
            too_big = len(shown[name]) > limit
            field.value = clip(shown[name], limit) + ("\n(too large to edit here: use task.edit(...))" if too_big else "")
            field.disabled = task is None or too_big or (name != "output" and not is_llm)
            # an output the task holds while not done is from an earlier run: say so where it is edited
            field.description = "output (previous)" if name == "output" and rec is not None and shown["output"] \
                and rec.status != "done" else name
        self._shown = {name: field.value for name, field in self.fields.items()}
        for name, text in self.drafts.get(path or "", {}).items():
            if not self.fields[name].disabled:
                self.fields[name].value = text
        self._loaded = path
        status = self.view.statuses.get(path or "") if self.view.plan is None else None
        self.detail.value = "" if task is None else task_html(task, self.limits, status)

    # -- actions ----------------------------------------------------------------------------------
    def _say(self, text: str, error: bool = False, pre: bool = True) -> None:
        colour = _ERROR if error else _OK
        cls = "ltg-msg-error" if error else "ltg-msg-ok"
        body = html.escape(text)
        self.message.value = (f'<pre class="ltg-msg {cls}" style="color:{colour};white-space:pre-wrap;'
                              f'font-family:var(--jp-code-font-family,monospace);margin:2px 0">{body}</pre>')

    def _plan_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.run_options.items() if k != "on_event"}

    def _will_run(self) -> list[str]:
        """Paths Replay would execute now, from ``graph.plan`` (the scheduler's own rule)."""
        try:
            return self.graph.plan(self.registry, **self._plan_options()).will_run
        except LLMTaskGraphError:  # (a missing function, say: Replay will say so; stale tasks are known anyway)
            return sorted(stale_paths(self.graph))

    def apply(self) -> bool:
        """Record the changed field as an edit of the chosen task; True if the graph changed.

        One field at a time: a prompt edit calls the LLM again and a reply edit parses again, so an
        edit of a later field made at the same time would be overwritten on replay.
        """
        task, path = self.task, self.picker.value
        if task is None:
            self._say("choose a task first", error=True)
            return False
        changed = list(self._unapplied())
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
        was = task.status
        try:
            value: Any = text
            if name == "output" or (name == "prompt" and not isinstance(task.record.prompt, str)):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise GraphValidationError(
                        f"the {name} of task `{path}` is not valid JSON ({exc}); nothing was changed"
                    ) from exc
            task.edit(**{"response" if name == "reply" else name: value})
        except (LLMTaskGraphError, ValueError, TypeError) as exc:  # (an edit that cannot be stored)
            self._say(str(exc).replace(f"`{task.id}`", f"`{path}`", 1), error=True)
            return False
        self.drafts.pop(path, None)
        self.view.edited[path] = (name, value)
        self._loaded = None  # applied: nothing left to stash
        will = self._will_run()
        lines = [f"edited the {name} of `{path}`" + (f" (it was {was}; now {task.status}, its old error cleared)"
                                                        if was in ("failed", "blocked") else "")]
        if will:
            shown = ", ".join(f"`{p}`" for p in will[:8]) + (f" and {len(will) - 8} more" if len(will) > 8 else "")
            lines.append(f"Replay will run {len(will)} task(s): {shown}")
        else:
            lines.append("nothing needs to run again: the edit is the task's result")
        self._say("\n".join(lines))
        self.refresh()
        return True

    def show_plan(self) -> None:
        """Colour the nodes by what Replay would do (will run / reused) and say why each one runs."""
        try:
            plan = self.graph.plan(self.registry, **self._plan_options())
        except LLMTaskGraphError as exc:
            self._say(f"{type(exc).__name__}: {exc}", error=True)
            return
        self.view.refresh(plan)
        self._say(str(plan))

    def rerun(self) -> None:
        """Run the chosen task again (and what depends on it), whatever the trace holds."""
        path = self.picker.value
        if not path:
            self._say("choose a task first", error=True)
            return
        try:
            self.graph.invalidate(path)
        except LLMTaskGraphError as exc:
            self._say(str(exc), error=True)
            return
        self._start("replay", f"reran `{path}`")

    def replay(self) -> None:
        """Run the graph: only what the edits affect executes; the view follows the run live."""
        self._start("replay", "replayed")

    def step(self) -> None:
        """Run the next ready task that needs running, then show it."""
        self._start("step", "stepped")

    def stop(self) -> None:
        """First click: start no new task (running ones finish). Second click: cancel the running ones."""
        if not self.graph.running:
            self._say("nothing is running")
            return
        if self._stopping and self._task is not None:
            self._task.cancel()
            self._say("cancelling the running tasks; what finished stays in the trace")
            return
        self.graph.stop()
        self._stopping = True
        self.stop_button.description = "Stop now"
        self._say("stopping: no new task starts; running ones finish" +
                  (" (click Stop now to cancel them)" if self._task is not None else ""))

    # -- running ----------------------------------------------------------------------------------
    def _show_progress(self) -> None:
        self.status.value = "running: " + html.escape(self._counter.describe())

    def _on_event(self, event: RunEvent) -> None:
        if event.kind == "run_finished":
            # Drawn here, on the thread that sent the live updates: a front end gets a kernel's
            # messages in order per thread only, so a final state sent from another thread could
            # arrive before the last live update and be overwritten by it.
            self._status_throttle.cancel()
            self.view.finish()
            return
        self._counter.on_event(event)
        self._status_throttle.poke()
        self.view.on_event(event)

    def _options(self, kind: str) -> dict[str, Any]:
        user = self.run_options.get("on_event")
        # The user's listeners stay listeners of their own: one that raises is dropped, not this one.
        listeners = [self._on_event, *([] if user is None else [user] if callable(user) else user)]
        options = {**self.run_options, "on_event": listeners, "progress": False}
        if kind == "step":
            options["max_tasks"] = 1
        return options

    def _start(self, kind: str, verb: str) -> Any:
        if self.graph.running:
            self._say("a run is going on: wait for it, or Stop it", error=True)
            return None
        self._counter = ProgressCounter()
        self._stopping = False
        self._stash()
        for button in self._run_buttons:
            button.disabled = True
        self.stop_button.disabled = False
        options = self._options(kind)
        try:
            loop = asyncio.get_running_loop() if self.background else None
        except RuntimeError:
            loop = None
        if loop is not None:  # a notebook: the kernel stays free while the run goes on
            self._task = loop.create_task(self._arun(kind, verb, options))
            return None
        error: BaseException | None = None
        try:
            self.graph.run(self.registry, **options)
        except (LLMTaskGraphError, ValueError, TypeError, KeyError) as exc:
            error = exc
        return self._finished(kind, verb, error)

    async def _arun(self, kind: str, verb: str, options: dict[str, Any]) -> None:
        error: BaseException | None = None
        try:
            await self.graph.arun(self.registry, **options)
        except (LLMTaskGraphError, ValueError, TypeError, KeyError, asyncio.CancelledError) as exc:
            error = exc
        finally:
            self._task = None
        self._finished(kind, verb, error)

    def _finished(self, kind: str, verb: str, error: BaseException | None) -> Task | None:
        for button in self._run_buttons:
            button.disabled = False
        self.stop_button.disabled = True
        self.stop_button.description = "Stop"
        self._status_throttle.cancel()
        if isinstance(error, TaskGraphError):
            self._say(str(error), error=True)
        elif isinstance(error, asyncio.CancelledError):
            self._say(f"cancelled: {self._counter.describe()}; what finished stays in the trace", error=True)
        elif error is not None:
            self._say(f"{type(error).__name__}: {error}", error=True)
        else:
            self._say(f"{verb}: {self._counter.describe()}")
        report = self.graph.last_run
        stepped = None
        if kind == "step" and error is None and report is not None:
            if report.executed:
                stepped = self.graph.find(report.executed[-1])
                self.refresh()
                self.select(report.executed[-1])  # a path: the step may have run a task inside a sub-graph
                return stepped
            if not report.failed:
                self._say("nothing left to run: every task is done")
        self.refresh()
        return stepped
