"""TaskContext: the first argument of every registry function."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ..fingerprint import json_copy

if TYPE_CHECKING:
    from ..run.scheduler import Run
    from .graph import TaskGraph
    from .tasks import Task

T = TypeVar("T", bound="Task")


class TaskContext:
    """What a running function may see and do: read the graph input, see its task, add tasks.

    Reading ``graph_input`` is recorded, because only stages that read it must run again when it
    is edited.
    """

    __slots__ = ("_graph", "_input", "_run", "_stage", "read_graph_input", "task")

    def __init__(self, graph: TaskGraph, task: Task, run: Run | None, stage: str) -> None:
        self._graph = graph
        self._run = run
        self._stage = stage
        self.task = task
        """The task whose function is running."""
        self.read_graph_input = False
        self._input: Any = None

    @property
    def graph_input(self) -> Any:
        """The graph's input (for a sub-graph, what its TaskGraphTask's input formatter returned).

        A copy, made once per call of the function: changing it changes nothing stored.
        """
        if not self.read_graph_input:
            self.read_graph_input = True
            self._input = json_copy(self._graph.graph_input)
        return self._input

    @property
    def stage(self) -> str:
        """The stage running: ``run``, ``format``, ``parse`` or ``input``."""
        return self._stage

    def add_task(self, task: T) -> T:
        """Add a task to the graph while it runs; it starts as soon as its dependencies are done.

        Its id is derived from this task's id and ``task.key`` (or the order of creation), so when
        this task runs again and re-creates it, the child keeps its memoized results.
        """
        return self._graph._add_child(self.task, task, self._run)

    def stop(self) -> None:
        """Stop the whole run cleanly (from any depth of sub-graph): no new task starts."""
        if self._run is not None and self._run.shared.report.stopped is None:
            self._run.shared.report.stopped = "stop"

    def add_output_task(self, task: T) -> T:
        """Add a task and make it the graph's output."""
        added = self.add_task(task)
        self._graph.output_task = added
        return added
