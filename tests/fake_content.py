"""Content blocks the loopback Messages API server puts in replies, and the checks the real API makes
on requests that carry earlier replies back.

Why a module of its own: a tool loop or a thinking conversation only tests anything if the server
holds the client to the API's rules. So the blocks built here are the ones the server later
verifies: a ``thinking`` block's ``signature`` (and a ``redacted_thinking`` block's ``data``) is an
HMAC over its content with the server's secret, so a client that edits a thinking block, or sends
back a signature the server never issued, gets the API's 400. Everything is deterministic (no
clock, no randomness), so two runs against two servers see byte-identical blocks.

Builders: :func:`text`, :func:`citation`, :func:`tool_use`, :func:`thinking`,
:func:`redacted_thinking`, :func:`server_tool_use`, :func:`web_search_result`, :func:`full_usage`;
:func:`every_block_type` puts one of each in a reply.
Checks: :func:`check_conversation` (the 400 message, or None). Structured outputs:
:func:`example_for_schema` (a JSON value valid for a simple JSON schema).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

SECRET = b"llmtaskgraph fake messages api"
"""Signs thinking blocks. Fixed, so signatures are the same on every server and every run."""

Block = dict[str, Any]


def _mac(kind: str, content: str) -> bytes:
    return hmac.new(SECRET, f"{kind}\x00{content}".encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


def signature_for(thinking_text: str) -> str:
    """The signature the server issues for a thinking block with this text (base64, like the API's)."""
    mac = _mac("thinking", thinking_text)
    return base64.b64encode(b"\x12\x08" + mac + mac[:14]).decode()


def text(value: str, citations: list[Block] | None = None) -> Block:
    """A ``text`` block; with ``citations`` (see :func:`citation`) as the API returns cited text."""
    block: Block = {"type": "text", "text": value}
    if citations is not None:
        block["citations"] = citations
    return block


def citation(cited_text: str, *, document_index: int = 0, start: int = 0, document_title: str | None = "Doc") -> Block:
    """A ``char_location`` citation of a plain-text document."""
    return {
        "type": "char_location", "cited_text": cited_text, "document_index": document_index,
        "document_title": document_title, "start_char_index": start, "end_char_index": start + len(cited_text),
    }


def _id(prefix: str, *parts: Any) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return f"{prefix}_01{digest[:22]}"


def tool_use(name: str, input: dict[str, Any], id: str | None = None, *, n: int = 0) -> Block:
    """A ``tool_use`` block. Its id is derived from ``name``, ``input`` and ``n`` unless given (pass a
    different ``n`` to two identical calls in one turn)."""
    return {"type": "tool_use", "id": id or _id("toolu", name, input, n), "name": name, "input": input}


def thinking(value: str) -> Block:
    """A ``thinking`` block with the signature this server verifies when the block comes back."""
    return {"type": "thinking", "thinking": value, "signature": signature_for(value)}


def redacted_thinking(secret_note: str = "redacted") -> Block:
    """A ``redacted_thinking`` block: opaque ``data`` that must come back unchanged."""
    payload = base64.b64encode(secret_note.encode()).decode()
    mac = base64.b64encode(_mac("redacted", payload)).decode()
    return {"type": "redacted_thinking", "data": f"{payload}.{mac}"}


def server_tool_use(input: dict[str, Any], name: str = "web_search", id: str | None = None) -> Block:
    """A ``server_tool_use`` block (a tool the API runs itself, e.g. web search)."""
    return {"type": "server_tool_use", "id": id or _id("srvtoolu", name, input), "name": name, "input": input}


def web_search_result(tool_use_id: str, pages: list[tuple[str, str]]) -> Block:
    """A ``web_search_tool_result`` block answering ``tool_use_id`` with ``(url, title)`` pages."""
    return {
        "type": "web_search_tool_result", "tool_use_id": tool_use_id,
        "content": [
            {"type": "web_search_result", "url": url, "title": title, "page_age": "April 1, 2026",
             "encrypted_content": base64.b64encode(_mac("page", url)).decode()}
            for url, title in pages
        ],
    }


def full_usage(input_tokens: int = 10, output_tokens: int = 5, *, cache_read: int = 0, cache_write_5m: int = 0,
               cache_write_1h: int = 0, web_searches: int | None = None, thinking_tokens: int | None = None,
               service_tier: str = "standard", inference_geo: str | None = None) -> dict[str, Any]:
    """Usage as the API reports it, with the cache split and (when given) server tool counts, thinking
    tokens and where the model ran."""
    usage: dict[str, Any] = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write_5m + cache_write_1h,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache_write_5m, "ephemeral_1h_input_tokens": cache_write_1h},
        "output_tokens": output_tokens,
        "service_tier": service_tier,
    }
    if web_searches is not None:
        usage["server_tool_use"] = {"web_search_requests": web_searches, "web_fetch_requests": 0}
    if thinking_tokens is not None:
        usage["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
    if inference_geo is not None:
        usage["inference_geo"] = inference_geo
    return usage


def every_block_type() -> list[Block]:
    """One reply holding every kind of content block (and one kind no SDK knows), for round-trip tests."""
    search = server_tool_use({"query": "tallest building"})
    return [
        thinking("The user asks about buildings. Let me search, then answer with a citation."),
        redacted_thinking("hidden reasoning"),
        search,
        web_search_result(search["id"], [("https://example.com/towers", "Towers"), ("https://example.org/x", "X")]),
        text("The tallest is the Burj Khalifa.", citations=[citation("Burj Khalifa", start=4)]),
        text(" Unicode: Zürich, 東京, emoji 🏙 and a quote \" and a backslash \\."),
        tool_use("lookup_height", {"building": "Burj Khalifa", "units": ["m", "ft"], "precise": True, "n": 2.5, "none": None}),
        {"type": "future_block", "payload": {"nested": [1, {"deep": "value"}]}, "note": "unknown to every SDK"},
    ]


# -- what the API checks when earlier replies come back ---------------------------------------------
def _thinking_problem(block: Block) -> str | None:
    if block.get("type") == "thinking":
        issued = isinstance(block.get("thinking"), str) and hmac.compare_digest(
            str(block.get("signature", "")), signature_for(block["thinking"]))
        return None if issued else "Invalid `signature` in `thinking` block"
    if block.get("type") == "redacted_thinking":
        payload, _, mac = str(block.get("data", "")).partition(".")
        issued = hmac.compare_digest(mac, base64.b64encode(_mac("redacted", payload)).decode())
        return None if issued else "Invalid `data` in `redacted_thinking` block"
    return None


def _blocks(message: Any) -> list[Block]:
    content = message.get("content") if isinstance(message, dict) else None
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def check_conversation(body: dict[str, Any]) -> str | None:
    """The API's 400 message for a conversation that breaks the tool-use or thinking rules, or None.

    - every thinking / redacted_thinking block sent back is one this server issued, unchanged;
    - a ``tool_result`` answers a ``tool_use`` id of the assistant turn just before it, and every
      ``tool_use`` of an assistant turn followed by a user turn is answered there;
    - with ``thinking`` enabled, an assistant turn whose tool uses are being answered by the last
      message starts with its thinking block (the API needs it back to continue the reasoning).
    """
    messages = body.get("messages") or []
    for i, message in enumerate(messages):
        blocks = _blocks(message)
        if message.get("role") == "assistant":
            for j, block in enumerate(blocks):
                problem = _thinking_problem(block)
                if problem is not None:
                    return f"messages.{i}.content.{j}: {problem}"
        uses = [str(b.get("id")) for b in blocks if b.get("type") == "tool_use"]
        if message.get("role") == "assistant" and uses and i + 1 < len(messages):
            answered = {str(b.get("tool_use_id")) for b in _blocks(messages[i + 1]) if b.get("type") == "tool_result"}
            missing = [u for u in uses if u not in answered]
            if missing:
                return (f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                        f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block "
                        "in the next message.")
        if message.get("role") == "user":
            before = messages[i - 1] if i > 0 else {}
            issued = {str(b.get("id")) for b in _blocks(before) if b.get("type") == "tool_use"}
            for j, block in enumerate(blocks):
                if block.get("type") == "tool_result" and str(block.get("tool_use_id")) not in issued:
                    return (f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                            f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                            "`tool_use` block in the previous message.")
    thinking_on = isinstance(body.get("thinking"), dict) and body["thinking"].get("type") in ("enabled", "adaptive")
    if thinking_on and len(messages) >= 2 and any(b.get("type") == "tool_result" for b in _blocks(messages[-1])):
        i = len(messages) - 2
        blocks = _blocks(messages[i])
        first = blocks[0].get("type") if blocks else "text"
        if first not in ("thinking", "redacted_thinking"):
            return (f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. "
                    "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
                    "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
                    "thinking blocks from previous turns. To avoid this requirement, disable `thinking`.")
    return None


# -- structured outputs -------------------------------------------------------------------------------
def output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema of ``output_config.format`` when the request asks for JSON output."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        return fmt["schema"]
    return None


def example_for_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A small JSON value valid for ``schema``: the default reply to a structured-output request.

    Covers what the API's structured outputs accept: objects (every property, so ``required`` holds),
    arrays (``minItems`` items), strings (``enum``/``const``/``minLength``), numbers and integers
    (``minimum``), booleans, null, ``anyOf``/``oneOf`` (the first), ``$ref`` into ``$defs``.
    """
    root = root if root is not None else schema
    if "$ref" in schema:
        target: Any = root
        for part in str(schema["$ref"]).lstrip("#/").split("/"):
            target = target[part]
        return example_for_schema(target, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example_for_schema(schema[key][0], root)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: example_for_schema(sub, root) for name, sub in props.items()}
    if kind == "array":
        items = schema.get("items") or {}
        return [example_for_schema(items, root) for _ in range(max(1, int(schema.get("minItems", 1))))]
    if kind == "string":
        return "example".ljust(int(schema.get("minLength", 0)), "x")
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return True
    return None
