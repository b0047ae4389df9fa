"""Run PythonTasks on a Dask ``distributed`` cluster while LLM calls stay on the driver's loop.

>>> from distributed import Client                                      # doctest: +SKIP
>>> graph.run(registry, backend=DaskBackend(Client("tcp://scheduler:8786")))  # doctest: +SKIP

Functions are looked up in the registry on the driver and shipped with each task (cloudpickle), so
a worker needs no registry, only what the functions import. Functions defined in an importable
module are shipped by reference: that module must be importable on the workers too. Functions
defined in ``__main__`` or a notebook are shipped by value. On a worker a function receives a
:class:`WorkerContext` (``graph_input``, ``task.id``, ``task.name``) instead of the driver's :class:`TaskContext`: it cannot
add tasks, so list such creator functions in ``local=`` to keep them on the driver.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import GraphValidationError

if TYPE_CHECKING:
    from distributed import Client

    from ..model.context import TaskContext

__all__ = ["DaskBackend", "TaskRef", "WorkerContext"]


@dataclass(frozen=True)
class TaskRef:
    """A worker's view of the running task: its id and name (the task object stays on the driver)."""

    id: str
    name: str | None


class WorkerContext:
    """What a function running on a Dask worker sees as its ``ctx``."""

    def __init__(self, task: TaskRef, stage: str, graph_input: Any) -> None:
        self.task = task
        """``ctx.task.id`` and ``ctx.task.name`` work as on the driver."""
        self.task_id = task.id
        self.stage = stage
        self._graph_input = graph_input
        self.read_graph_input = False

    @property
    def graph_input(self) -> Any:
        self.read_graph_input = True
        return self._graph_input

    def add_task(self, task: Any) -> Any:
        raise GraphValidationError(
            f"task `{self.task_id}` runs on a Dask worker, where it cannot add tasks; "
            "keep its function on the driver with DaskBackend(client, local=[...its registry name...])"
        )

    add_output_task = add_task


def _call_on_worker(fn: Callable[..., Any], task: TaskRef, stage: str, graph_input: Any,
                    args: list[Any], kwargs: dict[str, Any]) -> tuple[Any, bool]:
    """Runs in the worker process: the registry function, awaited there if it is async."""
    ctx = WorkerContext(task, stage, graph_input)
    result = fn(ctx, *args, **kwargs)
    if inspect.isawaitable(result):
        async def wait() -> Any:
            return await result

        result = asyncio.run(wait())
    return result, ctx.read_graph_input


class DaskBackend:
    """Ships each PythonTask's function to a ``distributed`` cluster and brings its output back.

    ``client`` is a ``distributed.Client`` (synchronous, the usual kind, or asynchronous on the
    run's own loop). ``local`` lists registry names that run on the driver instead, e.g. functions
    that call ``ctx.add_task``. ``retries`` is passed to Dask: how often a task whose function
    raised is tried again (a task lost with a dying worker is rescheduled by Dask regardless).
    """

    def __init__(self, client: Client, *, local: Collection[str] = (), retries: int = 0) -> None:
        self.client: Any = client  # Any: distributed's own annotations are partial
        self.local = frozenset(local)
        self.retries = retries

    def handles(self, fn_name: str) -> bool:
        return fn_name not in self.local

    async def run(self, fn_name: str, fn: Callable[..., Any], ctx: TaskContext, args: list[Any], kwargs: dict[str, Any]) -> Any:
        task_id = str(ctx.task.id)
        future: Any = self.client.submit(
            _call_on_worker, fn, TaskRef(task_id, ctx.task.name), ctx.stage, ctx._graph.graph_input, args, kwargs,
            key=f"{fn_name}-{task_id}-{uuid.uuid4().hex[:12]}", pure=False, retries=self.retries,
        )
        try:
            result, read = await self._wait(future)
        except asyncio.CancelledError:
            future.cancel()
            raise
        finally:
            future.release()  # the output is in the trace now; the cluster need not keep it
        ctx.read_graph_input = read
        return result

    async def _wait(self, future: Any) -> Any:
        if getattr(self.client, "asynchronous", False):
            return await future
        # A synchronous client runs its own loop in another thread: hand the result over to ours.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()

        def deliver(done: Any) -> None:
            value, error = None, None
            try:
                value = done.result()
            except BaseException as exc:  # the function's exception, with the worker's traceback
                error = exc
            try:
                loop.call_soon_threadsafe(_settle, waiter, value, error)
            except RuntimeError:  # the run ended and closed its loop meanwhile
                pass

        future.add_done_callback(deliver)
        return await waiter

    def __repr__(self) -> str:
        return f"DaskBackend({self.client!r})"


def _settle(waiter: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if waiter.done():  # cancelled meanwhile
        return
    if exc is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(value)
