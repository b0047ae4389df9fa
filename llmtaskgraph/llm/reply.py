"""A stored reply read as a typed object, and the rules for editing one.

A task's ``record.response`` is plain JSON (see :class:`~llmtaskgraph.llm.base.LLMResponse`). Parsers
written as ``parse(ctx, text)`` get the text; a parser that annotates its second parameter as
:class:`Reply` gets the whole reply instead: its content blocks, tool uses, thinking, stop reason and
usage::

    def parse(ctx, reply: Reply):
        if reply.stopped_early:
            raise ValueError(f"the reply was cut off: {reply.stop_note}")
        return reply.text

Content blocks are kept exactly as the API returned them. Thinking blocks carry a ``signature`` the
API checks when they are sent back (as a tool loop must do), so an edit may change text and tool
blocks but never a thinking block: :func:`edited_response` refuses that.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import GraphValidationError

__all__ = ["STOPPED_EARLY", "Reply", "content_of", "edited_response", "stop_note", "text_of", "wants_reply"]

STOPPED_EARLY: dict[str, str] = {
    "max_tokens": "cut off at `max_tokens`: raise it in `params` to get the whole reply",
    "refusal": "the model refused to answer",
    "pause_turn": "the API paused a long turn (`pause_turn`): send the reply back to let it continue",
    "model_context_window_exceeded": "the conversation no longer fits the model's context window",
}
"""Stop reasons after which a reply is not a complete answer, with what they mean for the user."""

SIGNED = ("thinking", "redacted_thinking")
"""Block types the API verifies when they come back in a later request."""


def content_of(response: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The reply's content blocks (a reply stored without them, by an older trace or a hand edit, is its text)."""
    if not response:
        return []
    content = response.get("content")
    if isinstance(content, list):
        return content
    text = response.get("text")
    return [{"type": "text", "text": text}] if isinstance(text, str) and text else []


def text_of(content: list[dict[str, Any]]) -> str:
    """The concatenation of the text blocks: what ``(ctx, text)`` parsers receive."""
    return "".join(b["text"] for b in content if b.get("type") == "text" and isinstance(b.get("text"), str))


def stop_note(response: dict[str, Any] | None) -> str | None:
    """Why a reply is not a complete answer (cut off, refused, paused, too long), or None."""
    reason = (response or {}).get("stop_reason")
    return STOPPED_EARLY.get(reason) if isinstance(reason, str) else None


@dataclass(frozen=True)
class Reply:
    """One stored reply as a parser that asks for it (``reply: Reply``) receives it."""

    text: str
    """The concatenation of the text blocks."""
    content: list[dict[str, Any]]
    """Every content block as the API returned it."""
    stop_reason: str | None = None
    """``end_turn``, ``max_tokens``, ``stop_sequence``, ``tool_use``, ``refusal``, ``pause_turn``, ..."""
    stop_sequence: str | None = None
    """The stop sequence that ended the reply, if one did."""
    usage: dict[str, Any] = field(default_factory=dict)
    """Token usage as the API reported it (cache and thinking details included)."""
    model: str | None = None
    """The model that answered."""
    id: str | None = None
    """The message id."""

    @classmethod
    def from_response(cls, response: dict[str, Any] | None) -> Reply:
        """Read a task's ``record.response``."""
        r = response or {}
        content = content_of(r)
        text = r.get("text")
        return cls(
            text=text if isinstance(text, str) else text_of(content), content=content,
            stop_reason=r.get("stop_reason"), stop_sequence=r.get("stop_sequence"),
            usage=dict(r.get("usage") or {}), model=r.get("model"), id=r.get("id"),
        )

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        """The ``tool_use`` blocks (``id``, ``name``, ``input``), in order."""
        return [b for b in self.content if b.get("type") == "tool_use"]

    @property
    def thinking(self) -> str:
        """The text of the thinking blocks (redacted ones hold none)."""
        return "".join(str(b.get("thinking", "")) for b in self.content if b.get("type") == "thinking")

    @property
    def stopped_early(self) -> bool:
        """True when the reply is cut off, refused, paused or over the context window."""
        return self.stop_reason in STOPPED_EARLY

    @property
    def stop_note(self) -> str | None:
        """What an early stop means, or None."""
        return STOPPED_EARLY.get(self.stop_reason or "")


def wants_reply(fn: Callable[..., Any]) -> bool:
    """Whether parser ``fn`` annotates its reply parameter (the second) as :class:`Reply`."""
    try:
        return _wants_reply(fn)
    except TypeError:  # unhashable callable: look every time
        return _look(fn)


@functools.lru_cache(maxsize=4096)
def _wants_reply(fn: Callable[..., Any]) -> bool:
    return _look(fn)


def _look(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if len(params) < 2:
        return False
    return _names_reply(params[1].annotation)


def _names_reply(note: Any) -> bool:
    """``Reply``, or ``Reply | None``, ``Optional[Reply]``, ``Annotated[Reply, ...]`` (as objects or as the text
    ``from __future__ import annotations`` leaves)."""
    if note is Reply:
        return True
    if isinstance(note, str):
        return any(name.rsplit(".", 1)[-1] == "Reply" for name in re.findall(r"[A-Za-z_][\w.]*", note))
    return any(_names_reply(arg) for arg in typing.get_args(note))


def edited_response(task_id: str, old: dict[str, Any] | None, new: str | dict[str, Any]) -> dict[str, Any]:
    """The stored reply after a person's edit, marked ``edited``.

    ``new`` is the new text (it replaces the text blocks, other blocks stay) or a dict of reply fields
    (``content`` replaces the blocks, ``text`` then follows from them). Thinking blocks must come out
    unchanged: their signature would no longer match, and a tool loop sends them back to the API.
    """
    base = dict(old or {})
    before = content_of(old)
    if isinstance(new, str):
        content = _with_text(before, new)
        base["text"] = new
    elif isinstance(new, dict):
        base.update(new)
        if "content" in new:
            content = new["content"]
            _check_blocks(task_id, content)
            if "text" in new and new["text"] != text_of(content):
                raise GraphValidationError(f"a response edit of task `{task_id}`: `text` differs from the text blocks of "
                                           "`content`; give one of them")
            base["text"] = text_of(content)
            if "stop_reason" not in new:  # what the blocks now say: asking for tools, or answering
                uses = any(b["type"] == "tool_use" for b in content)
                if uses or base.get("stop_reason") == "tool_use":
                    base["stop_reason"] = "tool_use" if uses else "end_turn"
        else:
            if not isinstance(new.get("text"), str):
                raise GraphValidationError(f"a response edit of task `{task_id}` must give the reply text (str) or `content`")
            content = _with_text(before, new["text"])
    else:
        raise GraphValidationError(f"a response edit of task `{task_id}` must be the reply text (str) or a dict")
    if not isinstance(base.get("text"), str):
        raise GraphValidationError(f"a response edit of task `{task_id}` must give the reply text (str)")
    if [b for b in before if b.get("type") in SIGNED] != [b for b in content if b.get("type") in SIGNED]:
        raise GraphValidationError(
            f"a response edit of task `{task_id}` changes its thinking blocks: they are signed by the API and sent back "
            "byte for byte in tool loops, so edit the text or tool blocks only (or resample the call)"
        )
    if old is not None and "content" not in old and all(b.get("type") == "text" for b in content):
        base.pop("content", None)  # a reply stored as text stays text
    else:
        base["content"] = content
    base["edited"] = True
    return base


def _with_text(blocks: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """``blocks`` with their text blocks replaced by one holding ``text``, where the first one was (else after
    the thinking, before any tool use, where the API puts text)."""
    out: list[dict[str, Any]] = []
    placed = False
    for block in blocks:
        if block.get("type") != "text":
            out.append(block)
        elif not placed:
            out.append({"type": "text", "text": text})
            placed = True
    if not placed and text:
        at = next((i for i, b in enumerate(out) if b.get("type") not in SIGNED), len(out))
        out.insert(at, {"type": "text", "text": text})
    return out


_NEEDS: dict[str, dict[str, type]] = {"text": {"text": str}, "tool_use": {"id": str, "name": str, "input": dict},
          "thinking": {"thinking": str, "signature": str}, "redacted_thinking": {"data": str}}
"""What a block of each type must hold to be sent back to the API (other types are kept as they are)."""


def _check_blocks(task_id: str, content: Any) -> None:
    if not isinstance(content, list) or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in content):
        raise GraphValidationError(f"a response edit of task `{task_id}`: `content` must be a list of blocks, "
                                   "each a dict with a `type`")
    for i, block in enumerate(content):
        for key, kind in _NEEDS.get(block["type"], {}).items():
            if not isinstance(block.get(key), kind):
                raise GraphValidationError(
                    f"a response edit of task `{task_id}`: block {i} ({block['type']}) needs `{key}` "
                    f"({'an object' if kind is dict else 'a string'}), as the API sends it")
