"""Text and numbers from a trace, made fit to show: the helpers every view (CLI, notebook card, report,
diff, progress line) uses, so that a long text or a huge number looks the same wherever it appears.

A trace may be hand-edited or come from someone else, and :meth:`TaskGraph.load` accepts any string
and any JSON number, so one rule each, kept here, says how a view shows them:

- :func:`shorten` cuts a text to a width with ``…`` (one table cell, label or tooltip);
  :func:`clip` cuts a whole text shown in a card and says how much was cut.
- :func:`terminal_safe` shows control characters as escapes, so a trace cannot drive the terminal.
- :func:`count_text` and :func:`seconds_text` show a ``10**3000`` count or a ``1e308`` second short,
  and a number that cannot be shown as ``?``.
"""

from __future__ import annotations

import math

__all__ = ["clip", "count_text", "seconds_text", "shorten", "terminal_safe"]

_MAX_DIGITS = 15
"""Longer counts are shown in scientific form."""


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with ``…`` at the end, for one table cell, label or tooltip."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut (never silently): for whole texts
    (a prompt, a reply, a traceback) shown in a card."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… [truncated: {len(text) - limit:,} more characters not shown]"


def terminal_safe(text: str, keep_newlines: bool = False) -> str:
    """``text`` with control characters (and lone surrogates) shown as escapes, so a hostile trace
    can neither drive the terminal nor make printing fail."""
    if text.isprintable():
        return text
    if keep_newlines:
        return "\n".join(terminal_safe(line) for line in text.split("\n"))
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def count_text(count: int, grouped: bool = False) -> str:
    """A count as digits (``1,234`` when ``grouped``), or in scientific form when longer than 15 digits
    (a hand-edited ``10**3000`` shows as ``1.00e+3000``)."""
    digits = str(abs(count))
    if len(digits) <= _MAX_DIGITS:
        return f"{count:,}" if grouped else str(count)
    sign = "-" if count < 0 else ""
    return f"{sign}{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"


def seconds_text(value: float | None, digits: int = 3) -> str:
    """``1.250`` for a number of seconds, ``1.000e+308`` for a hand-edited huge one, ``?`` for one that
    cannot be shown (None, inf, nan)."""
    if value is None or not math.isfinite(value):
        return "?"
    return f"{value:.{digits}f}" if abs(value) < 1e12 else f"{value:.{digits}e}"
