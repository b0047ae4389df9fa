"""Run events as an async iterator: ``async for event in graph.events(registry): ...``.

The run goes on in a background asyncio task while the caller consumes its events; a slow consumer
never slows the run (events queue up). Closing the iterator early cancels the run: completed outputs
stay in the trace, so running again resumes without repeating them. Python closes an async
generator left by ``break`` only when it is collected, so to stop at once write::

    async with contextlib.aclosing(graph.events(registry)) as events:
        async for event in events:
            ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..model.graph import TaskGraph
    from ..model.registry import Registry
    from .scheduler import RunEvent


async def stream_events(graph: TaskGraph, registry: Registry, **options: Any) -> AsyncIterator[RunEvent]:
    """Yield every :class:`RunEvent` of a run of ``graph``; raise its ``TaskGraphError`` at the end."""
    queue: asyncio.Queue[RunEvent | None] = asyncio.Queue()
    also = options.pop("on_event", None)
    # The caller's own callback is a listener of its own: if it raises it is dropped, not the stream.
    listeners = [queue.put_nowait, *([] if also is None else [also] if callable(also) else also)]
    runner = asyncio.ensure_future(graph.arun(registry, on_event=listeners, **options))
    runner.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (event := await queue.get()) is not None:
            yield event
        runner.result()  # the run's own error, if any, once every event was delivered
    finally:
        if not runner.done():
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
