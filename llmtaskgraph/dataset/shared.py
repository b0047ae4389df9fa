"""What the cases of one dataset run share: one limit on LLM calls in flight, and one progress line.

Each case is an ordinary graph run, and a run limits its own calls (``max_concurrency``); 32 cases
at once would otherwise send 32 times that many. So the dataset run hands every case the same
backend wrapped in :class:`SharedLimit`: one semaphore for all of them, taken around each call.
The wrapper answers to the same ``kind``, so fingerprints, traces and the response cache are
exactly those of the backend itself. The response cache is shared by passing every case the same
store object (``cache=`` accepts one).

The progress line counts cases, not tasks: ``37/2,000 cases done · 2 failed · 12 LLM calls in
flight``, shown where a run's progress shows (a bar in notebooks, one line on stderr in a terminal).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import TYPE_CHECKING, Any

from ..run.progress import ProgressCounter, WidgetDisplay, make_display
from ..text import count_text

if TYPE_CHECKING:
    from ..llm.base import LLMBackend, LLMResponse
    from ..run.progress import Display

__all__ = ["CaseCounter", "CaseProgress", "SharedLimit"]


class SharedLimit:
    """An LLM backend that lets at most ``limit`` calls of every case of a dataset run be in flight.

    Everything but ``complete`` is the wrapped backend's own (``kind`` above all: it is part of
    every call fingerprint).
    """

    def __init__(self, llm: LLMBackend, limit: int, counter: CaseCounter | None = None) -> None:
        self.llm = llm
        self.kind = llm.kind
        """The wrapped backend's: part of every call fingerprint."""
        self.limit = limit
        self.counter = counter
        self._semaphore: asyncio.Semaphore | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.llm, name)

    async def complete(self, request: dict[str, Any], *, on_text: Any = None) -> LLMResponse:
        """The wrapped backend's reply, once fewer than ``limit`` calls of the dataset are in flight.

        ``on_text`` (streaming, asked for when a run is watched) is passed on only if the wrapped backend
        takes it. A backend that collects calls itself (``collects_calls``: batches) is called by the
        scheduler through ``complete_call``, which is its own and not limited here, as for one run.
        """
        if self._semaphore is None:  # made on the loop that runs the cases
            self._semaphore = asyncio.Semaphore(self.limit)
        async with self._semaphore:
            counter = self.counter
            if counter is not None:
                counter.call_started()
            try:
                if on_text is not None and _streams(self.llm):
                    return await self.llm.complete(request, on_text=on_text)  # type: ignore[call-arg]
                return await self.llm.complete(request)
            finally:
                if counter is not None:
                    counter.call_finished()

    def __repr__(self) -> str:
        return f"SharedLimit({self.llm!r}, limit={self.limit})"


def _streams(llm: Any) -> bool:
    try:
        return "on_text" in inspect.signature(llm.complete).parameters
    except (TypeError, ValueError):
        return False


class CaseCounter(ProgressCounter):
    """Cases done of all cases, failed cases and LLM calls in flight (the run counter, counting cases)."""

    def __init__(self, total: int, on_change: Any = None) -> None:
        super().__init__(total=total)
        self.on_change = on_change

    def case_finished(self, status: str) -> None:
        self.done += 1
        if status == "failed":
            self.failed += 1
        self._changed()

    def call_started(self) -> None:
        self.llm_in_flight += 1
        self._changed()

    def call_finished(self) -> None:
        self.llm_in_flight -= 1
        self.llm_calls += 1
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def describe(self) -> str:
        """One line, e.g. ``37/2,000 cases done · 2 failed · 12 LLM calls in flight``."""
        parts = [f"{count_text(self.done, grouped=True)}/{count_text(self.total, grouped=True)} cases done"]
        if self.failed:
            parts.append(f"{count_text(self.failed, grouped=True)} failed")
        parts.append(f"{self.llm_in_flight} LLM calls in flight" if self.llm_in_flight
                     else f"{count_text(self.llm_calls, grouped=True)} LLM calls")
        return " · ".join(parts)


class CaseProgress:
    """Shows a :class:`CaseCounter`, redrawn at most every ``interval`` seconds, and once at the end."""

    def __init__(self, total: int, progress: bool | Display | None, interval: float = 0.1) -> None:
        self.counter = CaseCounter(total, self._redraw)
        self.display = make_display(progress) if progress is None or isinstance(progress, bool) else progress
        if isinstance(self.display, WidgetDisplay):
            self.display.bar.description = "cases"
        self.interval = interval
        self._last = 0.0

    def _redraw(self) -> None:
        now = time.monotonic()
        if self.display is not None and now - self._last >= self.interval:
            self._last = now
            self.display.update(self.counter, final=False)

    def close(self) -> None:
        if self.display is not None:
            self.display.update(self.counter, final=True)
