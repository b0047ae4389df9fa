"""``AnthropicBatchLLM``: LLM calls through the Message Batches API, at half the price, for work that can wait.

The calls that are ready together are collected (until none arrived for ``collect_seconds``, or
``max_batch_size`` are waiting), sent as one Message Batch, and the batch is polled every
``poll_seconds``; when it ends, each result goes to its task by ``custom_id``. Tasks that become
ready later (because they read those results) go in later batches.

Paying twice is what a batch backend must never do, so every submitted call is written into its
task's trace at once: ``record.response["pending_batch"] = {"id", "custom_id", "submitted_at"}``,
followed by an ``llm_submitted`` run event on which a checkpointing run (``checkpoint=path``)
saves the trace. A run that was killed, or a kernel that restarted, loads that trace and runs
again: each pending call finds its batch and ``custom_id`` there and resumes polling that batch;
nothing is submitted again. The ``custom_id`` is the call's response-cache key (call fingerprint
and task path), so an edited prompt is a new call, never answered by an old batch.

An entry that errored, was canceled or expired fails its task with the reason, and its mark is
removed, so the next run submits it anew. A batch the API no longer knows (deleted, archived,
another workspace) fails its tasks saying so. Replies carry ``usage.service_tier == "batch"`` and
``backend == "anthropic-batch"``; :mod:`llmtaskgraph.llm.prices` prices them at the batch factor.

The SDK is imported when the backend is created, as for :class:`~llmtaskgraph.llm.anthropic.AnthropicLLM`.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import LLMCallError, RunOptionsError
from ..fingerprint import digest
from .anthropic import reply_from_message
from .base import LLMResponse

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from ..model.tasks import TaskRecord

__all__ = ["PENDING", "AnthropicBatchLLM", "PendingCall"]

PENDING = "pending_batch"
"""The key of ``record.response`` that marks a call submitted in a batch whose result is not in yet."""


@dataclass
class PendingCall:
    """One task's call as the scheduler hands it to a backend that collects calls (see ``collects_calls``)."""

    custom_id: str
    """Identifies the call in its batch: the response-cache key (call fingerprint and task path)."""
    path: str
    """The task's path, for messages."""
    record: TaskRecord
    """The task's record, where the batch and ``custom_id`` are written while the call is pending."""
    announce: Callable[[], None] = field(default=lambda: None)
    """Tells the run the trace changed (an ``llm_submitted`` event: a checkpointing run saves)."""

    def pending(self) -> dict[str, Any] | None:
        """The batch this very call was submitted in by an earlier run, if its result is not in yet."""
        response = self.record.response
        mark = response.get(PENDING) if isinstance(response, dict) else None
        if isinstance(mark, dict) and mark.get("custom_id") == self.custom_id and isinstance(mark.get("id"), str):
            return mark
        return None

    def submitted(self, batch_id: str, at: float) -> None:
        """Record the batch in the trace (keeping whatever reply was there) and say so."""
        previous = self.record.response if isinstance(self.record.response, dict) else {"text": ""}
        self.record.response = {**previous, PENDING: {"id": batch_id, "custom_id": self.custom_id, "submitted_at": at}}
        self.announce()

    def settled(self) -> None:
        """The batch answered this call (a reply or a final error): remove the mark."""
        response = self.record.response
        if isinstance(response, dict) and PENDING in response:
            self.record.response = {k: v for k, v in response.items() if k != PENDING}


@dataclass
class _Entry:
    call: PendingCall
    params: dict[str, Any]
    future: asyncio.Future[dict[str, Any]]


@dataclass
class _Waiting:
    """What one event loop is waiting for: calls not yet sent, and the batches being polled."""

    queue: list[_Entry] = field(default_factory=list)
    flush: asyncio.TimerHandle | None = None
    waiters: dict[str, dict[str, tuple[PendingCall, asyncio.Future[dict[str, Any]], float]]] = field(default_factory=dict)
    """Batch id -> custom_id -> (call, future for its result entry, when it was submitted)."""
    pollers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class AnthropicBatchLLM:
    """Serves LLMTasks through the Message Batches API (see the module docstring).

    Takes :class:`~llmtaskgraph.llm.anthropic.AnthropicLLM`'s settings (``api_key``, ``base_url``,
    ``model``, ``max_tokens``, ``timeout``, ``max_retries``, client options) plus ``poll_seconds``
    (between status checks of a batch), ``collect_seconds`` (how long no new call must arrive
    before the waiting ones are sent) and ``max_batch_size``. Its ``kind`` is AnthropicLLM's: a
    reply is the model's answer to the request whichever way it was sent, so switching between the
    two backends calls nothing again.

    ``max_concurrency`` does not apply: every ready call goes in the batch. Budgets do
    (``max_cost`` counts each call at the batch price).
    """

    collects_calls = True
    """The scheduler hands every ready call to :meth:`complete_call` at once, without ``max_concurrency``."""
    batch = True
    """Replies are billed at the batch price (read by budgets)."""

    def __init__(
        self, *, poll_seconds: float = 30.0, collect_seconds: float = 0.5, max_batch_size: int = 10_000,
        **settings: Any,
    ) -> None:
        from .anthropic import AnthropicLLM

        for name, value in (("poll_seconds", poll_seconds), ("collect_seconds", collect_seconds)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise RunOptionsError(f"AnthropicBatchLLM `{name}` must be a number of seconds >= 0, got {value!r}")
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or not 1 <= max_batch_size <= 100_000:
            raise RunOptionsError(f"AnthropicBatchLLM `max_batch_size` must be a whole number from 1 to 100,000 "
                                  f"(the API's limit), got {max_batch_size!r}")
        self._llm = AnthropicLLM(**settings)
        self.kind = self._llm.kind
        """Part of every call fingerprint: the same as AnthropicLLM's with the same model and max_tokens."""
        self.poll_seconds = float(poll_seconds)
        self.collect_seconds = float(collect_seconds)
        self.max_batch_size = max_batch_size
        self.batches_created = 0
        """Batches this backend object submitted (across runs)."""
        self.requests_submitted = 0
        """Requests it submitted in them."""
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Waiting] = weakref.WeakKeyDictionary()

    @property
    def model(self) -> str:
        return self._llm.model

    @property
    def max_tokens(self) -> int:
        return self._llm.max_tokens

    @property
    def base_url(self) -> str | None:
        return self._llm.base_url

    def __repr__(self) -> str:  # never shows the key
        where = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"AnthropicBatchLLM(model={self.model!r}, max_tokens={self.max_tokens}{where})"

    async def client(self) -> AsyncAnthropic:
        return await self._llm.client()

    # -- the backend interface ----------------------------------------------------------------------
    async def complete(self, request: dict[str, Any]) -> LLMResponse:
        """Answer one request through a batch (with nowhere to record the batch: prefer running in a graph)."""
        from ..model.tasks import TaskRecord

        return await self.complete_call(request, PendingCall(f"req-{digest([request, time.time_ns()])}", "", TaskRecord()))

    async def complete_call(self, request: dict[str, Any], call: PendingCall) -> LLMResponse:
        """Answer one task's request: resume the batch it is pending in, else send it with the next batch."""
        if request.get("stream"):
            raise LLMCallError("`stream` does not apply to batches; remove it from `params`", error_type="invalid_request_error")
        params = {"model": self.model, "max_tokens": self.max_tokens, **request}
        waiting = self._waiting()
        loop = asyncio.get_running_loop()
        mark = call.pending()
        if mark is not None:
            batch_id = str(mark["id"])
            submitted = mark.get("submitted_at")
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            at = float(submitted) if isinstance(submitted, (int, float)) else time.time()
            waiting.waiters.setdefault(batch_id, {})[call.custom_id] = (call, future, at)
            self._poll(waiting, batch_id)
        else:
            future = loop.create_future()
            waiting.queue.append(_Entry(call, params, future))
            if len(waiting.queue) >= self.max_batch_size:
                self._flush(waiting)
            else:  # wait until no call arrived for collect_seconds: those ready together go together
                if waiting.flush is not None:
                    waiting.flush.cancel()
                waiting.flush = loop.call_later(self.collect_seconds, self._flush, waiting)
        entry = await future
        return self._reply(entry, call)

    # -- sending ------------------------------------------------------------------------------------
    def _waiting(self) -> _Waiting:
        loop = asyncio.get_running_loop()
        waiting = self._loops.get(loop)
        if waiting is None:
            waiting = self._loops[loop] = _Waiting()
        return waiting

    def _flush(self, waiting: _Waiting) -> None:
        if waiting.flush is not None:
            waiting.flush.cancel()
            waiting.flush = None
        entries = [e for e in waiting.queue if not e.future.done()]  # a cancelled task's call is not sent
        waiting.queue = []
        if entries:
            task = asyncio.get_running_loop().create_task(self._submit(waiting, entries))
            waiting.tasks.add(task)
            task.add_done_callback(waiting.tasks.discard)

    async def _submit(self, waiting: _Waiting, entries: list[_Entry]) -> None:
        requests = [{"custom_id": e.call.custom_id, "params": e.params} for e in entries]
        try:
            client = await self.client()
            batch = await client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        except Exception as exc:
            error = self._llm._call_error(exc, _NoAttempts())
            for e in entries:
                if not e.future.done():
                    e.future.set_exception(error)
            return
        self.batches_created += 1
        self.requests_submitted += len(entries)
        now = time.time()
        mine = waiting.waiters.setdefault(batch.id, {})
        for e in entries:
            e.call.submitted(batch.id, now)  # in the trace before anything else can happen
            mine[e.call.custom_id] = (e.call, e.future, now)
        self._poll(waiting, batch.id)

    # -- polling ------------------------------------------------------------------------------------
    def _poll(self, waiting: _Waiting, batch_id: str) -> None:
        if batch_id not in waiting.pollers:
            task = asyncio.get_running_loop().create_task(self._poll_until_ended(waiting, batch_id))
            waiting.pollers[batch_id] = task
            task.add_done_callback(lambda _: waiting.pollers.pop(batch_id, None))

    async def _poll_until_ended(self, waiting: _Waiting, batch_id: str) -> None:
        import anthropic

        client = await self.client()
        try:
            while True:
                calls = waiting.waiters.get(batch_id, {})
                if not any(not f.done() for _, f, _ in calls.values()):
                    return  # every task waiting for it was cancelled: the batch goes on, the trace keeps its mark
                batch = await client.messages.batches.retrieve(batch_id)
                if batch.processing_status == "ended":
                    break
                await asyncio.sleep(self.poll_seconds)
            if batch.archived_at is not None:
                self._fail_all(waiting, batch_id, f"batch `{batch_id}` was archived: its results are no longer "
                               "available; run again to submit the calls anew", settle=True)
                return
            results = await client.messages.batches.results(batch_id)
            async for item in results:
                self._deliver(waiting, batch_id, item.custom_id, item.result.to_dict())
            self._fail_all(waiting, batch_id, f"batch `{batch_id}` ended without a result for this call; "
                           "run again to submit it anew", settle=True)
        except asyncio.CancelledError:
            raise
        except anthropic.NotFoundError:
            self._fail_all(waiting, batch_id, f"batch `{batch_id}` is unknown to the API (deleted, or made with another "
                           "key or workspace); run again to submit the calls anew", settle=True)
        except Exception as exc:
            error = self._llm._call_error(exc, _NoAttempts())
            self._fail_all(waiting, batch_id, f"could not poll batch `{batch_id}` ({error}); run again to resume "
                           "polling it (nothing is submitted again)", settle=False)
        finally:
            waiting.waiters.pop(batch_id, None)

    def _deliver(self, waiting: _Waiting, batch_id: str, custom_id: str, result: dict[str, Any]) -> None:
        found = waiting.waiters.get(batch_id, {}).pop(custom_id, None)
        if found is None:
            return
        _call, future, at = found
        if not future.done():
            future.set_result({"result": result, "batch_id": batch_id, "submitted_at": at})

    def _fail_all(self, waiting: _Waiting, batch_id: str, why: str, *, settle: bool) -> None:
        for call, future, _ in waiting.waiters.get(batch_id, {}).values():
            if settle:
                call.settled()
            if not future.done():
                future.set_exception(LLMCallError(why, error_type="batch_error"))
        waiting.waiters.get(batch_id, {}).clear()

    # -- results ------------------------------------------------------------------------------------
    def _reply(self, entry: dict[str, Any], call: PendingCall) -> LLMResponse:
        """A result entry as a reply, or the entry's reason as an :class:`LLMCallError`."""
        result, batch_id = entry["result"], entry["batch_id"]
        call.settled()
        kind = result.get("type")
        where = f"batch `{batch_id}` entry `{call.custom_id}`"
        if kind == "errored":
            error = (result.get("error") or {}).get("error") or {}
            etype, message = error.get("type") or "error", error.get("message") or ""
            raise LLMCallError(f"{etype}: {message} ({where}); fix the cause and run again to submit it anew",
                               error_type=etype)
        if kind == "canceled":
            raise LLMCallError(f"canceled before it was processed ({where}); run again to submit it anew",
                               error_type="canceled")
        if kind == "expired":
            raise LLMCallError(f"expired: not processed within the batch's 24 hours ({where}); run again to submit "
                               "it anew", error_type="expired")
        if kind != "succeeded" or not isinstance(result.get("message"), dict):
            raise LLMCallError(f"unexpected result type {kind!r} ({where})", error_type="malformed_reply")
        try:
            response = reply_from_message(result["message"], backend="anthropic-batch",
                                          latency=time.time() - entry["submitted_at"])
        except ValueError as exc:
            raise LLMCallError(f"malformed result: {exc} ({where})", error_type="malformed_reply") from None
        response.extra["batch"] = {"id": batch_id, "custom_id": call.custom_id}
        return response

    # -- managing batches -----------------------------------------------------------------------------
    async def cancel(self, batch_id: str) -> str:
        """Ask the API to cancel a batch (its unprocessed calls then fail as canceled); returns its status."""
        client = await self.client()
        batch = await client.messages.batches.cancel(batch_id)
        return str(batch.processing_status)


class _NoAttempts:
    retries = 0
    request_id: str | None = None
