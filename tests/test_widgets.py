"""The widget editor, driven from Python: set values, click buttons, check the graph afterwards."""

from __future__ import annotations

import pytest

from llmtaskgraph import PythonTask, TaskGraph


def test_editing_a_running_task_is_refused_with_a_message():
    graph = TaskGraph()
    graph.add_task(PythonTask("slow", id="slow"))
    refusals: list[str] = []

    def try_edit(event):
        if event.kind == "task_started":
            with pytest.raises(ValueError) as info:
                event.task.edit(output="edited while running")
            refusals.append(str(info.value))

    assert graph.run({"slow": lambda ctx: "computed"}, on_event=try_edit, progress=False) == "computed"
    assert refusals == [
        "task `slow` is running: wait for the run to finish (or call `graph.stop()`) before editing it"
    ]
    graph.tasks["slow"].edit(output="edited")  # once finished, the same edit is accepted
    assert graph.tasks["slow"].output == "edited"
