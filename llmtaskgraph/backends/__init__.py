"""Execution backends: where PythonTasks run when not in this process.

The scheduler stays on the driver's asyncio loop (so LLM calls, fingerprints and the trace stay
there too) and hands each PythonTask's function to a backend. ``backends.dask.DaskBackend`` runs
them on a ``distributed`` cluster; it is imported only when used, so the core needs no Dask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..model.context import TaskContext

__all__ = ["ExecutionBackend"]


@runtime_checkable
class ExecutionBackend(Protocol):
    """Runs PythonTask functions somewhere else; pass one as ``graph.run(..., backend=...)``."""

    def handles(self, fn_name: str) -> bool:
        """Whether this backend runs ``fn_name``; the others run in this process as usual."""
        ...

    async def run(self, fn_name: str, fn: Callable[..., Any], ctx: TaskContext, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Run ``fn(ctx, *args, **kwargs)`` and return its result.

        Set ``ctx.read_graph_input`` when the function read the graph input, so memoization knows
        whether an edit of the input must re-run it.
        """
        ...
