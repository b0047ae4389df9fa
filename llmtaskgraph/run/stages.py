"""Running one task: its stale stages in order, each through the registry, the LLM or its sub-graph.

The scheduler (:mod:`.scheduler`) decides when a task runs; the rule (:mod:`llmtaskgraph.memo.rule`)
decides which stages; this module runs them and stores what they computed. A stage after the first
one that ran is asked again (a formatter that re-formats to the same request calls no LLM).

Functions receive copies of the values they read (dependency outputs, ``inputs``, the graph input),
so a function that mutates its arguments cannot change a stored value or a fingerprint.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import warnings
from typing import TYPE_CHECKING, Any

from ..errors import MissingFunctionError, OutputNotJSONError, OutputSchemaError, SubgraphFailed
from ..fingerprint import check_json, json_copy
from ..llm.batch import PendingCall
from ..llm.cache import cache_key
from ..llm.prices import cost_of
from ..llm.reply import Reply, wants_reply
from ..llm.schema import check_output
from ..model.context import TaskContext
from ..model.registry import lookup
from ..model.tasks import PATH_SEP, Stage, Task, TaskGraphTask

if TYPE_CHECKING:
    from .scheduler import Run

__all__ = ["run_stages"]

_JSON_TYPES = (str, int, float, list, dict, type(None))


class _StageError(Exception):
    """Carries the stage in which a task failed, wrapping the original exception (never shown to users)."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        self.stage = stage
        self.cause = cause


async def run_stages(run: Run, task: Task, start: Stage) -> str:
    """Run ``task`` from ``start`` on: ``done``; ``reused`` or ``stopped`` for a sub-graph task."""
    memo, rec = run.memo, task.record
    table = task.stage_table
    for stage in table[table.index(start):]:
        if stage is not start and memo.fresh(task, stage):
            if stage is table[-1] and rec.children:  # the stage that may have added them did not run again: they stay
                run.children_kept.add(str(task.id))
            continue
        if stage.reads == "subgraph":
            assert isinstance(task, TaskGraphTask)
            return await _run_subgraph(run, task, ran_before=stage is not start)
        if stage.reads == "deps":
            deps_part = memo.deps_part(task)  # taken before the function runs, whatever it then does
            args, kwargs = _arguments(run, task)
            try:
                result, read = await call_function(run, task, stage, args, kwargs)
            except _StageError as err:
                if not task.absorbs(err.cause):
                    raise
                result, read = task.error_output(err.cause), False
        elif stage.reads == "reply":
            deps_part = None
            result, read = await _parse(run, task, stage)
        else:  # the LLM call
            try:
                request = task.call_request()
            except Exception as exc:
                name = task.function_names().get("formatter")
                raise _StageError("format", type(exc)(f"formatter `{name}` of task `{task.id}`: {exc}")) from exc
            rec.fingerprints.pop(stage.name, None)
            rec.response = await _call_llm(run, task, request)
            memo.store(task, stage, False)
            continue
        if stage.writes == "output":
            rec.set_output(result)
        else:
            rec.prompt = result
        memo.store(task, stage, read, deps_part)
    return "done"


def _arguments(run: Run, task: Task) -> tuple[list[Any], dict[str, Any]]:
    tasks = run.graph.tasks
    kwargs = {k: json_copy(tasks[d].record.output) for k, d in task.kwdeps.items()} if task.kwdeps else {}
    if task.inputs:
        kwargs.update(json_copy(task.inputs))
    return [json_copy(tasks[d].record.output) for d in task.deps], kwargs


async def call_function(run: Run, task: Task, stage: Stage, args: list[Any], kwargs: dict[str, Any]) -> tuple[Any, bool]:
    """Call the registry function of ``stage``; returns its JSON-checked result and whether it read the input."""
    shared = run.shared
    fn_name = task.function_of(stage)
    fn = lookup(shared.registry, fn_name)
    if fn is None:
        raise _StageError(stage.name, MissingFunctionError({fn_name: [run.prefix + str(task.id)]}))
    ctx = TaskContext(run.graph, task, run, stage.name)
    shared.report.calls[fn_name] += 1
    rec = task.record
    rec.fingerprints.pop(stage.name, None)
    backend, calls = shared.backend, shared.calls
    try:
        if backend is not None and stage.name == "run" and backend.handles(fn_name):
            result = await backend.run(fn_name, fn, ctx, args, kwargs)
        elif calls.is_async(fn):
            result = await fn(ctx, *args, **kwargs)
        else:
            result = await calls.call(fn, ctx, *args, **kwargs)
        if result is not None:  # None is JSON: no need to build the message below
            # e.g. a partial or lambda wrapping an async function; JSON values are never awaitable
            if not isinstance(result, _JSON_TYPES) and inspect.isawaitable(result):
                result = await result
            check_json(result, f"`{fn_name}` ({stage.name} of task `{task.id}`)",
                       "prompt" if stage.writes == "prompt" else "output")
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except BaseException as exc:
        raise _StageError(stage.name, exc) from exc
    read = ctx.read_graph_input
    reads = rec.reads_graph_input
    if read and stage.name not in reads:
        reads.append(stage.name)
    elif not read and stage.name in reads:
        reads.remove(stage.name)
    return result, read


async def _parse(run: Run, task: Task, stage: Stage) -> tuple[Any, bool]:
    """The parse stage: the parser gets the reply text, or the whole :class:`Reply` if it asks for it; a
    tool loop's turn that asks for tools grows the next turn instead; an ``output_schema`` is checked."""
    response = task.record.response or {}
    if task.grows():
        task.record.fingerprints.pop(stage.name, None)
        try:
            return task.grow(TaskContext(run.graph, task, run, stage.name)), False
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except BaseException as exc:
            raise _StageError(stage.name, exc) from exc
    fn = lookup(run.shared.registry, task.function_of(stage))
    arg = Reply.from_response(response) if fn is not None and wants_reply(fn) else response.get("text")
    result, read = await call_function(run, task, stage, [arg], {})
    schema = getattr(task, "output_schema", None)
    if schema is not None:
        try:
            check_output(result, schema, run.prefix + str(task.id))
        except OutputSchemaError as exc:
            raise _StageError(stage.name, exc) from None
    return result, read


async def _complete(run: Run, task: Task, path: str, request: dict[str, Any]) -> Any:
    """Ask the backend. When the run is watched (``on_event``: a notebook view, ``graph.events()``) and the backend
    can stream (takes ``on_text``), each piece of text is told as it arrives, as an ``llm_text`` event whose task's
    ``record.partial_text`` holds the reply so far; unwatched runs do not ask for streaming they would not show."""
    llm = run.shared.options.llm
    if run.shared.options.on_event is None or not _streams(type(llm)):
        return await llm.complete(request)
    shared, rec = run.shared, task.record

    def on_text(text: str) -> None:
        rec.partial_text = text
        shared.emit("llm_text", path, task)

    try:
        return await llm.complete(request, on_text=on_text)  # type: ignore[call-arg]
    finally:
        rec.partial_text = None


@functools.lru_cache(maxsize=64)
def _streams(backend: type) -> bool:
    try:
        return "on_text" in inspect.signature(getattr(backend, "complete")).parameters  # noqa: B009
    except (TypeError, ValueError):
        return False


async def _call_llm(run: Run, task: Task, request: dict[str, Any]) -> dict[str, Any]:
    shared = run.shared
    path = run.prefix + str(task.id)
    call_fp = run.memo.fingerprint(task, task.stage_table[1])
    assert call_fp is not None
    cache, mode, report = shared.cache, shared.cache_mode, shared.report
    key = cache_key(call_fp, path)
    if cache is not None and mode in ("write", "read"):
        hit = cache.get(key)
        if hit is not None:
            report.llm_cache_hits += 1
            report.cache_saved += cost_of(hit) or 0.0
            return {**hit, "cached": True}
    llm = shared.options.llm
    collects = getattr(llm, "collects_calls", False)  # the batch backend gathers every ready call itself
    async with contextlib.nullcontext() if collects else shared.semaphore:
        held = shared.budget.reserve(path, request)  # BudgetStop: the run stops, this task waits for the next one
        shared.emit("llm_started", path, task)
        try:
            if collects:
                call = PendingCall(key, path, task.record, lambda: shared.emit("llm_submitted", path, task))
                response = await llm.complete_call(request, call)  # type: ignore[attr-defined]
            else:
                response = await _complete(run, task, path, request)
            reply: dict[str, Any] = response.to_json()
            check_json(reply, f"the reply to task `{task.id}`", "response")
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except BaseException as exc:
            raise _StageError("call", exc) from exc
        finally:
            shared.budget.release(held)
            report.llm_calls += 1
            shared.emit("llm_finished", path, task)
    shared.budget.spend(reply)
    if cache is not None and mode in ("write", "refresh"):
        try:
            cache.put(key, reply, request)
        except (OSError, OutputNotJSONError) as exc:  # the reply is in the trace; losing its cached copy must not fail the task
            warnings.warn(f"could not store the reply of task `{task.id}` in the response cache: {exc}", stacklevel=1)
    return reply


async def _run_subgraph(run: Run, task: TaskGraphTask, ran_before: bool) -> str:
    """Run the sub-graph: ``done``, ``reused`` if nothing ran (here or inside), ``stopped`` if a bound stopped it."""
    from .scheduler import Run

    rec, sub = task.record, task.subgraph
    if ran_before:  # the input formatter ran: its result is the sub-graph's input now
        sub.graph_input = json_copy(rec.prompt)
    rec.fingerprints.pop("subgraph", None)
    try:
        task.prepare(run.shared.registry)
    except Exception as exc:
        raise _StageError("subgraph", exc) from exc
    inner = Run(sub, run.shared, f"{run.prefix}{task.id}{PATH_SEP}")
    await inner.execute()
    if inner.failed_here:
        failed = [p for p, _ in run.shared.report.failed if p.startswith(inner.prefix)]
        raise _StageError("subgraph", SubgraphFailed(f"sub-graph tasks failed: {', '.join(failed)}"))
    result = task.result_task()
    if result is not None and inner.finished.get(str(result.id)) != "done":
        if run.shared.report.stopped is not None:
            return "stopped"
        raise _StageError("subgraph", SubgraphFailed(f"sub-graph output task `{result.id}` did not finish"))
    rec.set_output(None if result is None else result.record.output)
    rec.fingerprints["subgraph"] = rec.output_fingerprint()
    return "done" if ran_before or inner.launched else "reused"
