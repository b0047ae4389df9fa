"""Checkpointing: periodic atomic saves during a run, and resuming after the process is killed."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from llmtaskgraph import OfflineLLM, PythonTask, RunEvent, TaskGraph, TaskGraphError
from llmtaskgraph.errors import RunOptionsError
from llmtaskgraph.run import checkpoint as checkpoint_module
from llmtaskgraph.run.checkpoint import Checkpointer


def chain(n: int, fn: str = "peek") -> TaskGraph:
    graph = TaskGraph()
    prev = None
    for i in range(n):
        prev = graph.add_task(PythonTask(fn, *([prev] if prev else []), id=f"t{i}"))
    return graph


def done_in(path: Path) -> list[str]:
    return [t["id"] for t in json.loads(path.read_text())["tasks"] if t["status"] == "done"]


@pytest.mark.parametrize("every", [2, 3])
def test_saves_every_n_finished_tasks(tmp_path: Path, every: int) -> None:
    path = tmp_path / "trace.json"
    seen: dict[str, list[str]] = {}

    def peek(ctx: Any, *deps: Any) -> int:
        # What a process killed right now would leave behind.
        seen[str(ctx.task.id)] = done_in(path) if path.exists() else []
        return len(seen)

    chain(7).run({"peek": peek}, llm=OfflineLLM(), checkpoint=path, checkpoint_every=every, progress=False)
    for i in range(7):
        saved_after = i - i % every  # tasks finished at the last save before t{i} started
        assert seen[f"t{i}"] == [f"t{j}" for j in range(saved_after)], f"t{i}"
    assert done_in(path) == [f"t{i}" for i in range(7)]  # the final save at the end of the run


def test_a_checkpoint_lists_the_children_a_finished_creator_added(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    seen: list[Any] = []

    def make(ctx: Any) -> None:
        ctx.add_task(PythonTask("child", ctx.task, key="only"))  # runs once `make` has finished

    def child(ctx: Any, made: None) -> None:
        # The save after `make` finished must already record its child, or a resumed run would
        # reuse `make` without ever scheduling the child again.
        seen.append({t["id"]: t["children"] for t in json.loads(path.read_text())["tasks"]})

    graph = TaskGraph()
    graph.add_task(PythonTask("make"))
    graph.run({"make": make, "child": child}, llm=OfflineLLM(), checkpoint=path, checkpoint_every=1, progress=False)
    assert seen == [{"make": ["make/only"], "make/only": []}]


def test_saves_after_an_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "trace.json"
    seen: dict[str, list[str]] = {}
    now = [0.0]
    monkeypatch.setattr(checkpoint_module, "_clock", lambda: now[0])  # each task takes 0.3 s of this clock

    def peek(ctx: Any, *deps: Any) -> None:
        seen[str(ctx.task.id)] = done_in(path) if path.exists() else []
        now[0] += 0.3

    chain(4).run({"peek": peek}, llm=OfflineLLM(), checkpoint=path, checkpoint_seconds=0.5, progress=False)
    # t0 and t1 take 0.6 s together, so the first save comes after t1 (not after t0), the next
    # one only at the end (t2 ends 0.3 s after that save).
    assert seen == {"t0": [], "t1": [], "t2": ["t0", "t1"], "t3": ["t0", "t1"]}


def test_a_failed_or_stopped_run_still_leaves_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"

    def peek(ctx: Any, *deps: Any) -> None:
        if ctx.task.id == "t2":
            raise RuntimeError("no")

    with pytest.raises(TaskGraphError):
        chain(4).run({"peek": peek}, llm=OfflineLLM(), checkpoint=path, checkpoint_every=100, progress=False)
    statuses = {t["id"]: t["status"] for t in json.loads(path.read_text())["tasks"]}
    assert statuses == {"t0": "done", "t1": "done", "t2": "failed", "t3": "blocked"}

    chain(4).run({"peek": lambda ctx, *d: None}, llm=OfflineLLM(), checkpoint=path, max_tasks=1, progress=False)
    assert done_in(path) == ["t0"]


def test_interval_options_need_a_checkpoint_file() -> None:
    with pytest.raises(RunOptionsError, match="need `checkpoint=`"):
        chain(1).run({"peek": lambda ctx: None}, llm=OfflineLLM(), checkpoint_every=5, progress=False)
    with pytest.raises(RunOptionsError, match="`checkpoint_every` must be"):
        chain(1).run({"peek": lambda ctx: None}, llm=OfflineLLM(), checkpoint="x.json", checkpoint_every=0, progress=False)


# -- tasks added from worker threads; saves that fail ------------------------------------------------

def test_a_task_added_from_a_worker_thread_waits_for_the_save_in_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "trace.json"
    saving, added = threading.Event(), threading.Event()
    during_save: list[tuple[int, bool]] = []  # (thread of the save, whether a task was added meanwhile)
    save = TaskGraph.save

    def watched_save(graph: TaskGraph, to: Any) -> None:
        if not during_save:  # the first save: let the worker try to add its task now
            saving.set()
            added.wait(1.0)  # (with the save guarded, the worker cannot add before the save is done)
            during_save.append((threading.get_ident(), added.is_set()))
        save(graph, to)

    monkeypatch.setattr(TaskGraph, "save", watched_save)
    loop_thread: list[int] = []

    def maker(ctx: Any) -> str:  # plain: runs in a worker thread
        assert saving.wait(60), "no checkpoint was saved"
        ctx.add_task(PythonTask("child", key="c"))
        added.set()
        return "made"

    async def quick(ctx: Any) -> str:  # its end triggers the first save, on the loop thread
        loop_thread.append(threading.get_ident())
        return "quick"

    graph = TaskGraph()
    graph.add_task(PythonTask("maker", id="maker"))
    graph.add_task(PythonTask("quick", id="quick"))
    graph.run({"maker": maker, "quick": quick, "child": lambda ctx: "child"}, llm=OfflineLLM(),
              checkpoint=path, checkpoint_every=1, progress=False)
    assert during_save[0] == (loop_thread[0], False)
    assert graph.last_run is not None and graph.last_run.checkpoint_errors == []
    saved = {t["id"]: t for t in json.loads(path.read_text())["tasks"]}
    assert saved["maker/c"]["created_by"] == "maker" and saved["maker/c"]["status"] == "done"
    assert TaskGraph.load(path).tasks["maker/c"].output == "child"


def test_many_worker_threads_adding_tasks_never_break_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"

    def maker(ctx: Any) -> int:
        for i in range(40):
            ctx.add_task(PythonTask("leaf", key=str(i)))
        return 40

    graph = TaskGraph()
    for m in range(8):
        graph.add_task(PythonTask("maker", id=f"m{m}"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed save would warn
        graph.run({"maker": maker, "leaf": lambda ctx: "leaf"}, llm=OfflineLLM(), checkpoint=path,
                  checkpoint_every=5, max_workers=8, progress=False)
    assert graph.last_run is not None and graph.last_run.checkpoint_errors == []
    assert len(done_in(path)) == 8 * 41
    assert set(TaskGraph.load(path).tasks) == set(graph.tasks)


def test_a_checkpoint_that_cannot_be_written_is_warned_about_and_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()

    def peek(ctx: Any, *deps: Any) -> str:
        if ctx.task.id == "t1":
            shutil.rmtree(folder)  # every save from now on fails
        return str(ctx.task.id)

    graph = chain(3)
    with pytest.warns(RuntimeWarning, match=r"could not save the checkpoint `.*trace.json` \(FileNotFoundError: "):
        assert graph.run({"peek": peek}, llm=OfflineLLM(), checkpoint=folder / "trace.json", checkpoint_every=1,
                         progress=False) == "t2"
    errors = graph.last_run.checkpoint_errors if graph.last_run else []
    assert errors and all(e.startswith("FileNotFoundError: ") for e in errors)
    assert [t.status for t in graph.tasks.values()] == ["done", "done", "done"]


def test_a_checkpoint_path_that_is_a_folder_is_reported_at_the_final_save(tmp_path: Path) -> None:
    graph = chain(1)
    with pytest.warns(RuntimeWarning, match="could not save the checkpoint") as warned:
        graph.run({"peek": lambda ctx: 1}, llm=OfflineLLM(), checkpoint=tmp_path, progress=False)
    assert graph.last_run is not None and len(graph.last_run.checkpoint_errors) == 1 == len(warned)
    assert graph.last_run.checkpoint_errors[0].startswith(("IsADirectoryError: ", "OSError: "))


def test_a_failed_run_is_not_hidden_by_a_failed_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()

    def peek(ctx: Any, *deps: Any) -> None:
        if ctx.task.id == "t1":
            shutil.rmtree(folder)
            raise RuntimeError("no")

    graph = chain(3)
    with pytest.warns(RuntimeWarning, match="could not save the checkpoint"), pytest.raises(TaskGraphError) as info:
        graph.run({"peek": peek}, llm=OfflineLLM(), checkpoint=folder / "trace.json", checkpoint_every=100, progress=False)
    assert info.value.failed == [("t1", "RuntimeError in run: no")]
    assert graph.last_run is not None and [e.split(":")[0] for e in graph.last_run.checkpoint_errors] == ["FileNotFoundError"]


async def test_an_event_from_another_thread_is_saved_on_the_loop_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved_on: list[int] = []
    save = TaskGraph.save
    monkeypatch.setattr(TaskGraph, "save", lambda graph, to: (saved_on.append(threading.get_ident()), save(graph, to)))
    checkpointer = Checkpointer(chain(1), tmp_path / "trace.json", every=1, seconds=None)
    await asyncio.to_thread(checkpointer, RunEvent(kind="task_finished", path="t0", task=None))
    while not saved_on:  # the save is queued on this loop
        await asyncio.sleep(0)
    assert saved_on == [threading.get_ident()] and checkpointer.saves == 1


GROWING = textwrap.dedent('''
    """A graph that grows for ever: each `step` adds the next step and a `leaf`, and logs its id.

    Both runs log to the same file (a global the functions read is part of their code version, so
    a different one per run would make every task run again); a resumed run starts with a marker.
    """
    import sys, time
    from pathlib import Path
    from llmtaskgraph import OfflineLLM, PythonTask, TaskGraph

    checkpoint, max_tasks = Path(sys.argv[1]), int(sys.argv[2]) or None
    log = str(checkpoint) + ".log"

    def logged(ctx):
        with open(log, "a") as f:
            f.write(f"{ctx.task.id}\\n")
        time.sleep(0.01)

    def step(ctx):
        logged(ctx)
        k = int(str(ctx.task.id)[4:])
        ctx.add_task(PythonTask("step", id=f"step{k + 1}"))
        ctx.add_task(PythonTask("leaf", id=f"leaf{k}"))
        return k

    def leaf(ctx):
        logged(ctx)
        return "leaf"

    if checkpoint.exists():
        with open(log, "a") as f:
            f.write("\\n--- resumed\\n")  # (after a line the killed run may have left unfinished)
        graph = TaskGraph.load(checkpoint)
    else:
        graph = TaskGraph()
        graph.add_task(PythonTask("step", id="step0"))
    graph.run({"step": step, "leaf": leaf}, llm=OfflineLLM(), checkpoint=checkpoint, checkpoint_every=1,
              max_tasks=max_tasks, progress=False)
''')


def test_a_killed_process_resumes_from_its_checkpoint_without_repeating_completed_tasks(tmp_path: Path) -> None:
    script = tmp_path / "grow.py"
    script.write_text(GROWING)
    path = tmp_path / "trace.json"
    log = tmp_path / "trace.json.log"
    proc = subprocess.Popen([sys.executable, str(script), str(path), "0"])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if len(done_in(path)) >= 30:
                    break
            except (FileNotFoundError, json.JSONDecodeError):
                pass  # not written yet; a partly written checkpoint would fail the asserts below instead
            time.sleep(0.02)
        assert proc.poll() is None, "the growing graph should run until it is killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    completed = set(done_in(path))  # valid JSON, or json.loads raises here
    assert len(completed) >= 30
    assert completed <= set(log.read_text().split())
    TaskGraph.load(path)  # and a valid trace

    result = subprocess.run([sys.executable, str(script), str(path), "20"], timeout=60,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rerun = log.read_text().split("\n--- resumed\n")[1].split()
    assert len(rerun) == 20
    assert not completed & set(rerun), f"completed tasks ran again: {sorted(completed & set(rerun))}"
    assert len(done_in(path)) >= len(completed) + 19  # the resumed run went on growing the same trace
