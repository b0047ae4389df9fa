"""How the loop calls a registry function: async ones on the loop, plain ones inline while quick.

A worker-thread round trip costs more than most plain functions do (a parser, a join, a lookup),
so a plain function is called on the loop thread itself once it is known to be quick: its first
call runs in a worker thread and is timed (other calls of it wait for that one), and while every
call takes under :data:`QUICK_SECONDS` the next ones run inline. One seen slower runs in worker
threads from then on, so a slow or blocking function never holds up LLM calls or other tasks
after its first slow call. What is known of a function lasts as long as the function object (a
notebook cell run again starts afresh).

A plain function called inline that starts an event loop of its own (``asyncio.run`` inside it)
cannot run on the loop's thread: it is called again in a worker thread, and stays there.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

__all__ = ["QUICK_SECONDS", "FunctionCaller"]

QUICK_SECONDS = 0.002
"""A plain function whose calls take less than this runs on the loop's thread."""

_quick: weakref.WeakKeyDictionary[Callable[..., Any], bool] = weakref.WeakKeyDictionary()
"""Function -> whether its calls so far were all quick (kept across runs, dropped with the function)."""


def _known(fn: Callable[..., Any]) -> bool | None:
    try:
        return _quick.get(fn)
    except TypeError:  # not weak-referable (a builtin): never inline, so never measured
        return False


def _remember(fn: Callable[..., Any], seconds: float) -> None:
    try:
        _quick[fn] = seconds < QUICK_SECONDS and _quick.get(fn, True)
    except TypeError:
        pass


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def _needs_own_loop(exc: RuntimeError) -> bool:
    text = str(exc)
    return "running event loop" in text or "loop is already running" in text or "another loop is running" in text


class FunctionCaller:
    """Calls registry functions for one run (and its sub-graphs); owns the worker threads."""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self.executor: ThreadPoolExecutor | None = None
        self._is_async: dict[Callable[..., Any], bool] = {}
        self._probes: dict[Callable[..., Any], asyncio.Future[None]] = {}
        """Function -> its first call, timed in a thread, that the other calls of it wait for."""

    def is_async(self, fn: Callable[..., Any]) -> bool:
        known = self._is_async.get(fn)
        if known is None:  # also catches callable objects whose __call__ is async
            known = self._is_async[fn] = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
                type(fn).__call__)
        return known

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, awaited if async; see the module docstring for where it runs."""
        if self.is_async(fn):
            return await fn(*args, **kwargs)
        quick = _known(fn)
        if quick is None:
            probe = self._probes.get(fn)
            if probe is None:
                self._probes[fn] = asyncio.get_running_loop().create_future()
                try:
                    return await self.in_thread(fn, *args, **kwargs)
                finally:
                    self._probes.pop(fn).set_result(None)
            await asyncio.shield(probe)
            quick = _known(fn)
        if not quick:
            return await self.in_thread(fn, *args, **kwargs)
        start = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except RuntimeError as exc:
            if not _needs_own_loop(exc):
                raise
            _remember(fn, float("inf"))
            return await self.in_thread(fn, *args, **kwargs)
        _remember(fn, time.perf_counter() - start)
        return result

    async def in_thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a plain function in a worker thread (and learn how long it takes)."""
        if self.executor is None:
            self.executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix="llmtaskgraph")
        loop = asyncio.get_running_loop()
        result, seconds = await loop.run_in_executor(self.executor, partial(_timed, fn, *args, **kwargs))
        _remember(fn, seconds)
        return result

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False)
