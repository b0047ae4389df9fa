"""Run a coroutine to completion from synchronous code, even inside a running event loop.

Jupyter already runs a loop in the kernel's thread, where ``asyncio.run`` refuses to start.
There the coroutine runs on a fresh loop in a helper thread while the caller waits; Ctrl-C
(KeyboardInterrupt) in the caller cancels it cleanly, so completed work is kept.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(make_coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    # Run outside the `except`: inside it, every error of the run would be chained to the
    # "no running event loop" RuntimeError ("During handling of the above exception, ...").
    if _loop_running():
        return _run_in_thread(make_coro)
    return asyncio.run(make_coro())


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run_in_thread(make_coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    loop = asyncio.new_event_loop()
    result: concurrent.futures.Future[T] = concurrent.futures.Future()

    def target() -> None:
        asyncio.set_event_loop(loop)
        try:
            result.set_result(loop.run_until_complete(make_coro()))
        except BaseException as exc:  # delivered to the waiting caller
            result.set_exception(exc)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=target, name="llmtaskgraph-run", daemon=True)
    thread.start()
    try:
        return result.result()
    except KeyboardInterrupt:
        try:
            loop.call_soon_threadsafe(_cancel_all, loop)
        except RuntimeError:  # the loop already finished and closed
            pass
        thread.join()
        raise


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()
