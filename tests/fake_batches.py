"""The Message Batches API on the loopback server (``fake_messages_api.FakeMessagesAPI``).

``FakeBatches(api)`` adds the endpoints the real SDK calls, so ``client.messages.batches.*`` and
:class:`~llmtaskgraph.llm.batch.AnthropicBatchLLM` run unpatched against it::

    POST /v1/messages/batches                 create (requests: [{custom_id, params}])
    GET  /v1/messages/batches/{id}            retrieve (processing_status, request_counts, results_url)
    GET  /v1/messages/batches/{id}/results    the results as JSONL (only once the batch has ended)
    POST /v1/messages/batches/{id}/cancel     cancel: entries not yet processed end as ``canceled``

A batch ends ``delay`` seconds after it was created (a number, or a function of the batch's
requests); ``expire_after`` seconds after creation a batch not yet ended ends with every entry
``expired``. ``outcome(custom_id, params)`` scripts one entry: None (it succeeds, answered by the
server's ``reply`` function like ``/v1/messages``), ``"canceled"``, ``"expired"``, or an error dict
``{"type": "invalid_request_error", "message": "..."}`` (``errored``). Params are checked as
``/v1/messages`` checks them: an entry with an unknown field errors with the API's message.

Counts: ``created`` (batches), ``submitted`` (requests in them), ``retrieves``, ``result_fetches``,
``cancels``; ``batches`` holds every batch by id.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from fake_messages_api import Exchange, FakeMessagesAPI

Outcome = Callable[[str, dict[str, Any]], "str | dict[str, str] | None"]

_BATCH = re.compile(r"^/v1/messages/batches/([A-Za-z0-9_]+)(/results|/cancel)?$")


@dataclass
class Batch:
    """One batch as the fake holds it."""

    id: str
    requests: list[dict[str, Any]]
    created: float
    """Unix time of creation."""
    ready_at: float
    """Monotonic time at which it ends."""
    expires_at: float
    """Monotonic time after which unfinished entries expire."""
    canceled: bool = False
    results: list[dict[str, Any]] | None = None
    """The JSONL lines once it ended."""
    ended_at: float | None = None
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    """custom_id -> the message sent for a succeeded entry (what the client should have recorded)."""


class FakeBatches:
    """The batch endpoints of one :class:`FakeMessagesAPI` (see the module docstring)."""

    def __init__(self, api: FakeMessagesAPI, *, delay: float | Callable[[list[dict[str, Any]]], float] = 0.0,
                 expire_after: float = 24 * 3600.0, outcome: Outcome | None = None) -> None:
        self.api = api
        self.delay = delay
        self.expire_after = expire_after
        self.outcome = outcome
        self.batches: dict[str, Batch] = {}
        self.created = 0
        self.submitted = 0
        self.retrieves = 0
        self.result_fetches = 0
        self.cancels = 0
        self._lock = threading.Lock()
        api.routes["/v1/messages/batches"] = self.handle

    def handle(self, exchange: Exchange) -> None:
        """The route handler (see "Extra endpoints" in ``fake_messages_api``)."""
        status, payload = self.route(exchange.method, exchange.path, exchange.body) or (
            404, _error("not_found_error", f"Not found: {exchange.path}"))
        if isinstance(payload, bytes):
            exchange.send_bytes(status, payload, "application/binary")
        else:
            exchange.send_json(status, payload)

    # -- routing ------------------------------------------------------------------------------------
    def route(self, method: str, path: str, body: Any) -> tuple[int, Any] | None:
        """``(status, JSON payload or JSONL bytes)`` for a request to the batch endpoints; None for another path."""
        if path == "/v1/messages/batches" and method == "POST":
            return self._create(body)
        match = _BATCH.match(path)
        if match is None:
            return None
        batch_id, tail = match.groups()
        with self._lock:
            batch = self.batches.get(batch_id)
        if batch is None:
            return 404, _error("not_found_error", f"No batch with id {batch_id}")
        if tail is None and method == "GET":
            with self._lock:
                self.retrieves += 1
            return 200, self._describe(batch)
        if tail == "/results" and method == "GET":
            with self._lock:
                self.result_fetches += 1
                self._settle(batch)
                results = batch.results
            if results is None:
                return 404, _error("not_found_error", f"Batch {batch_id} has not ended: no results yet")
            return 200, "".join(json.dumps(line) + "\n" for line in results).encode()
        if tail == "/cancel" and method == "POST":
            with self._lock:
                self.cancels += 1
                if batch.results is None:
                    batch.canceled = True
                    batch.ready_at = min(batch.ready_at, time.monotonic())
            return 200, self._describe(batch)
        return 405, _error("invalid_request_error", f"{method} is not allowed on {path}")

    def _create(self, body: Any) -> tuple[int, Any]:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return 400, _error("invalid_request_error", "requests: at least one request is required")
        ids = [r.get("custom_id") if isinstance(r, dict) else None for r in requests]
        for cid in ids:
            if not isinstance(cid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", cid):
                return 400, _error("invalid_request_error", f"custom_id: invalid value {cid!r}")
        if len(set(ids)) != len(ids):
            return 400, _error("invalid_request_error", "custom_id: each request's custom_id must be unique")
        delay = self.delay(requests) if callable(self.delay) else self.delay
        now = time.monotonic()
        batch = Batch(id=f"msgbatch_{uuid.uuid4().hex[:24]}", requests=requests, created=time.time(),
                      ready_at=now + delay, expires_at=now + self.expire_after)
        with self._lock:
            self.batches[batch.id] = batch
            self.created += 1
            self.submitted += len(requests)
        return 200, self._describe(batch)

    # -- state --------------------------------------------------------------------------------------
    def _settle(self, batch: Batch) -> None:
        """End ``batch`` if its time has come (called with the lock held)."""
        if batch.results is not None:
            return
        now = time.monotonic()
        expired = now >= batch.expires_at and batch.ready_at > batch.expires_at
        if now < batch.ready_at and not expired:
            return
        lines = []
        for request in batch.requests:
            cid, params = request["custom_id"], request.get("params")
            lines.append({"custom_id": cid, "result": self._result(batch, cid, params, expired)})
        batch.results = lines
        batch.ended_at = time.time()

    def _result(self, batch: Batch, cid: str, params: Any, expired: bool) -> dict[str, Any]:
        if batch.canceled:
            return {"type": "canceled"}
        if expired:
            return {"type": "expired"}
        scripted = self.outcome(cid, params) if self.outcome is not None else None
        if scripted in ("canceled", "expired"):
            return {"type": scripted}
        if isinstance(scripted, dict):
            return {"type": "errored", "error": {"type": "error", "error": scripted}}
        status, message = self.api.answer(params)
        if status != 200:
            return {"type": "errored", "error": message}
        message["usage"] = {**message["usage"], "service_tier": "batch"}
        batch.replies[cid] = message
        return {"type": "succeeded", "message": message}

    def _describe(self, batch: Batch) -> dict[str, Any]:
        with self._lock:
            self._settle(batch)
            ended = batch.results is not None
            counts = {"processing": 0 if ended else len(batch.requests), "succeeded": 0, "errored": 0, "canceled": 0,
                      "expired": 0}
            for line in batch.results or []:
                counts[line["result"]["type"]] += 1
        status = "ended" if ended else "canceling" if batch.canceled else "in_progress"
        return {
            "id": batch.id, "type": "message_batch", "processing_status": status, "request_counts": counts,
            "created_at": _iso(batch.created), "expires_at": _iso(batch.created + self.expire_after),
            "ended_at": _iso(batch.ended_at) if batch.ended_at else None, "archived_at": None,
            "cancel_initiated_at": _iso(time.time()) if batch.canceled else None,
            "results_url": f"{self.api.url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }

    def replies(self) -> dict[str, dict[str, Any]]:
        """custom_id -> message, for every succeeded entry of every batch."""
        with self._lock:
            return {cid: m for b in self.batches.values() for cid, m in b.replies.items()}


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _error(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}
