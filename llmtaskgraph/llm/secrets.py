"""Keeping API keys out of everything a run stores or shows.

Two defences, because either alone leaks. Keys are checked where they enter: a key read from a file
often ends with a newline, and the HTTP layer then refuses the header in an error that quotes it
(``Illegal header value b'Bearer sk-ant-...\\n'``), which would land in the task's error, its
traceback and the ``TaskGraphError``. So :func:`clean_key` strips surrounding whitespace and refuses
a key with a control character inside, before any request, in a message without the key. And every
error a trace stores passes through :func:`redact`, which masks anything shaped like an Anthropic
key (``sk-ant-...``, or a long ``sk-...`` token) and every key given to a backend in this process.
"""

from __future__ import annotations

import re
import unicodedata

from ..errors import RunOptionsError

__all__ = ["MASK", "clean_key", "redact", "remember"]

MASK = "[redacted key]"
"""What :func:`redact` writes in place of a key."""

_KEY_SHAPES = re.compile(r"(?<![A-Za-z0-9_-])sk-(?:ant-[A-Za-z0-9_-]{6,}|[A-Za-z0-9_-]{20,})")
_MIN_SECRET = 8  # shorter "keys" (test stubs) would mask ordinary words

_known: frozenset[str] = frozenset()
"""Keys given to backends in this process. Rebound, never mutated, so readers need no lock."""


def remember(secret: str) -> None:
    """Mask ``secret`` wherever :func:`redact` meets it from now on (in this process)."""
    global _known
    if len(secret) >= _MIN_SECRET and secret not in _known:
        _known = _known | {secret}


def redact(text: str) -> str:
    """``text`` with every remembered key and every key-shaped token replaced by :data:`MASK`."""
    if not text:
        return text
    for secret in _known:
        if secret in text:
            text = text.replace(secret, MASK)
    return _KEY_SHAPES.sub(MASK, text)


def clean_key(value: str, source: str) -> str:
    """``value`` without surrounding whitespace, remembered for :func:`redact`.

    Raises :class:`RunOptionsError` (naming ``source``, never the key) if a character inside is not
    printable ASCII: a header cannot carry it, and the HTTP layer's error would quote the key.
    """
    key = value.strip()
    for position, char in enumerate(key, start=1):
        if not (char.isascii() and char.isprintable()) or char.isspace():
            what = f"U+{ord(char):04X} ({unicodedata.name(char, 'a control character')})"
            raise RunOptionsError(
                f"the key from {source} has {what} at character {position} of {len(key)}: a key is one "
                "line of printable ASCII; check the file or variable it was read from"
            )
    remember(key)
    return key
