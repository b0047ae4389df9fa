"""A whole Messages API reply as the streaming API sends it: server-sent events.

The loopback server builds every reply as one message dict; for ``stream: true`` this module cuts it
into the event sequence of the real streaming API, so the SDK's own accumulator must reassemble
exactly the message a non-streaming request would have got:

``message_start`` (the message with no content, no stop reason, and its usage but for
``output_tokens``), ``ping``, then per content block ``content_block_start`` (the block with its
streamed fields empty), ``content_block_delta`` events (``text_delta``, ``citations_delta``,
``thinking_delta`` then ``signature_delta``, ``input_json_delta``), ``content_block_stop``; then
``message_delta`` (stop reason, stop sequence, stop details, the final usage counts) and
``message_stop``. Blocks with nothing to stream (``redacted_thinking``, server tool results, unknown
types) arrive whole in their ``content_block_start``.
"""

from __future__ import annotations

import json
import re
from typing import Any

Event = tuple[str, dict[str, Any]]

# message_delta carries these usage counts (cumulative); the rest of usage comes with message_start.
_DELTA_USAGE = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                "server_tool_use", "output_tokens_details")


def _pieces(text: str) -> list[str]:
    """Words with their trailing whitespace: the text deltas (their concatenation is ``text``)."""
    return re.findall(r"\s*\S+\s*|\s+", text) if text else []


def _json_pieces(value: Any) -> list[str]:
    """``value`` as JSON in three uneven pieces, as ``input_json_delta`` sends tool input."""
    data = json.dumps(value, ensure_ascii=False)
    if data == "{}":
        return [""]
    cut1, cut2 = len(data) // 3, (2 * len(data)) // 3
    return [p for p in (data[:cut1], data[cut1:cut2], data[cut2:]) if p]


def block_events(block: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(content_block_start's block, deltas)`` for one content block."""
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        start = {**block, "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        if isinstance(block.get("citations"), list) and block["citations"]:
            start["citations"] = []
            deltas += [{"type": "citations_delta", "citation": c} for c in block["citations"]]
        return start, deltas
    if kind == "thinking" and isinstance(block.get("thinking"), str):
        start = {**block, "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"])]
        return start, [*deltas, {"type": "signature_delta", "signature": block.get("signature", "")}]
    if kind in ("tool_use", "server_tool_use", "mcp_tool_use") and isinstance(block.get("input"), dict):
        return {**block, "input": {}}, [{"type": "input_json_delta", "partial_json": p} for p in _json_pieces(block["input"])]
    return block, []


def message_events(message: dict[str, Any]) -> list[Event]:
    """Every event of ``message`` streamed, in order (the last is ``message_stop``)."""
    usage = dict(message.get("usage") or {})
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": min(1, usage.get("output_tokens", 0))}}
    start.pop("stop_details", None)
    events: list[Event] = [("message_start", {"type": "message_start", "message": start}), ("ping", {"type": "ping"})]
    for index, block in enumerate(message.get("content") or []):
        first, deltas = block_events(block)
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": first}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta: dict[str, Any] = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    if "stop_details" in message:
        delta["stop_details"] = message["stop_details"]
    delta_usage = {k: usage[k] for k in _DELTA_USAGE if k in usage}
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": delta_usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def encode(name: str, data: dict[str, Any]) -> bytes:
    """One event on the wire."""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode("utf-8", "surrogatepass")


def error_event(error_type: str, message: str) -> bytes:
    """The ``error`` event the API sends when a stream fails after it began (e.g. ``overloaded_error``)."""
    return encode("error", {"type": "error", "error": {"type": error_type, "message": message}})
