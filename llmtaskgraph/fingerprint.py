"""The one rule that decides "reuse or run again".

Every stage of a task (format, call, parse for an LLMTask; run for a PythonTask; input for a
TaskGraphTask) stores the fingerprint of its inputs next to its result. On the next run the stored
result is reused if and only if the stored fingerprint equals the fingerprint of the current inputs.
Edits therefore need no bookkeeping: change a value and every fingerprint downstream of it changes.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from .errors import OutputNotJSONError

_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

#: Fingerprint of "nothing": used where an input is absent.
NONE = "0" * 32


def canonical(value: Any) -> str:
    """Stable JSON text for ``value`` (sorted keys, no whitespace) so equal values hash equally."""
    return _encoder.encode(value)


def digest(value: Any) -> str:
    """Short stable hash of a JSON value; 128 bits is ample to tell edits apart."""
    return hashlib.blake2b(canonical(value).encode(), digest_size=16).hexdigest()


def stage_fingerprint(*parts: Any) -> str:
    """Fingerprint of one stage from its parts: stage kind, function name, input fingerprints, ..."""
    return digest(parts)


def check_json(value: Any, what: str, root: str = "output") -> None:
    """Raise :class:`OutputNotJSONError` naming the path of the first value JSON cannot round-trip.

    ``json.dumps`` would silently turn tuples into lists and int keys into strings, which would
    break the promise that a loaded trace equals the saved one, so those are refused as well.
    """
    problem = _find_problem(value, root)
    if problem is not None:
        path, why = problem
        raise OutputNotJSONError(f"{what} returned a value that is not plain JSON: `{path}` {why}")


def json_problem(value: Any, root: str = "value") -> tuple[str, str] | None:
    """``(path, why)`` of the first part of ``value`` JSON cannot hold exactly (the check of
    :func:`check_json`), or None; ``root`` begins the path."""
    return _find_problem(value, root)


MAX_DEPTH = 256
"""Deepest nesting of lists and objects a stored value may have: the JSON encoder and decoder recurse,
so deeper values (or a list that contains itself) could be stored but never saved, hashed or loaded."""
_MAX_INT_BITS = 13_000  # about 3900 digits; Python refuses to turn ints over 4300 digits into text


_EXIT = object()
_FAST_DEPTH = 32
"""Nesting the quick check below follows; deeper values are left to the full walk, which also
keeps the quick check's recursion far from Python's limit."""


def _plain_container(value: list[Any] | dict[Any, Any], depth: int, seen: set[int] | None) -> bool:
    """Whether a list or dict is plainly JSON, without building any path: a quick yes, or "look closer".

    False does not mean wrong: a container met twice (shared, or a reference cycle), nesting over
    ``_FAST_DEPTH`` or anything unusual sends the value to the full walk, which decides and names
    the path. Met-twice refusal also keeps this linear in the size of the value. ``seen`` holds the
    ids of the containers met so far; it is made when the first nested one is met (flat values need none).
    """
    if type(value) is dict:
        for k in value:
            if type(k) is not str or (not k.isascii() and _bad_text(k)):
                return False
        items: Any = value.values()
    else:
        items = value
    for v in items:
        t = type(v)
        if t is str:
            if not v.isascii() and _bad_text(v):
                return False
        elif t is int:
            if v.bit_length() > _MAX_INT_BITS:
                return False
        elif t is float:
            if not math.isfinite(v):
                return False
        elif t is list or t is dict:
            if seen is None:
                seen = {id(value)}
            if depth >= _FAST_DEPTH or id(v) in seen:
                return False
            seen.add(id(v))
            if v and not _plain_container(v, depth + 1, seen):
                return False
        elif v is not None and t is not bool:
            return False
    return True


def _plainly_fine(value: Any) -> bool:
    """A quick yes for values JSON holds exactly; False sends the value to the walk that finds the problem."""
    t = type(value)
    if t is str:
        return value.isascii() or not _bad_text(value)
    if value is None or t is bool:
        return True
    if t is list or t is dict:
        try:
            return not value or _plain_container(value, 1, None)
        except RecursionError:  # called near the stack's limit: the iterative walk needs no stack
            return False
    if t is int:
        bits: int = value.bit_length()
        return bits <= _MAX_INT_BITS
    if t is float:
        return math.isfinite(value)
    return False


def _find_problem(value: Any, path: str) -> tuple[str, str] | None:
    """(path, why) of the first value JSON cannot hold exactly, or None.

    Iterative, so deep values cannot exhaust the stack. A list or dict met again while inside itself
    is a reference cycle. One met again elsewhere (shared) is not walked twice, which keeps values
    built from many shared references linear to check instead of exponential; but the writer writes
    it again at each place, so its nesting counts from each place: the depth checked is the one
    along every path, from the memoized height of each container.
    """
    if _plainly_fine(value):
        return None  # nearly every value: skip the path-building walk below, which only runs to name a problem
    stack: list[tuple[Any, Any, int]] = [(value, path, 0)]  # (value, its path, its depth); exits: (_EXIT, container, 0)
    inside: set[int] = set()  # ids of the containers enclosing the value being checked
    height: dict[int, int] = {}  # container id -> how many levels of containers it holds below itself
    while stack:
        v, p, depth = stack.pop()
        if v is _EXIT:
            inside.discard(id(p))
            height[id(p)] = max((height[id(x)] + 1 for x in _items(p) if type(x) is list or type(x) is dict), default=0)
            continue
        if v is None or v is True or v is False:
            continue
        if type(v) is str:
            if not v.isascii() and _bad_text(v):
                return p, "contains a lone surrogate (\\ud800-\\udfff), which UTF-8 cannot encode; fix the text"
            continue
        if type(v) is int:
            if v.bit_length() > _MAX_INT_BITS:
                return p, "is an integer too long for JSON text (over 3900 digits); store it as a string"
            continue
        if type(v) is list or type(v) is dict:
            cid = id(v)
            if cid in inside:
                return p, "contains itself (a reference cycle), which JSON cannot hold"
            if depth >= MAX_DEPTH:
                return p, f"is nested more than {MAX_DEPTH} lists/objects deep; flatten it"
            if cid in height:  # checked already, elsewhere: only its depth from here is new
                if depth + height[cid] >= MAX_DEPTH:
                    return _deepest(v, p, depth, height), f"is nested more than {MAX_DEPTH} lists/objects deep; flatten it"
                continue
            inside.add(cid)
            stack.append((_EXIT, v, 0))
        if type(v) is float:
            if not math.isfinite(v):
                return p, f"is {v!r}, which JSON cannot hold; use None or a string"
        elif type(v) is list:
            stack.extend((item, f"{p}[{i}]", depth + 1) for i, item in enumerate(v))
        elif type(v) is dict:
            for k, item in v.items():
                if type(k) is not str:
                    return p, f"has the key {k!r} of type {type(k).__name__}; JSON object keys must be str"
                if not k.isascii() and _bad_text(k):
                    return p, f"has a key with a lone surrogate ({k!r:.40}), which UTF-8 cannot encode"
                stack.append((item, f"{p}[{json.dumps(k, ensure_ascii=False)}]", depth + 1))
        elif isinstance(v, tuple):
            return p, "is a tuple; return a list instead so the trace round-trips unchanged"
        else:
            return p, f"is of type {type(v).__name__}; convert it to str, number, bool, None, list or dict"
    return None


def _items(container: list[Any] | dict[str, Any]) -> Any:
    return container.values() if type(container) is dict else container


def _deepest(v: Any, p: str, depth: int, height: dict[int, int]) -> str:
    """The path of the container at depth :data:`MAX_DEPTH` down the deepest chain of ``v`` (met at ``depth``)."""
    while depth < MAX_DEPTH:
        below = height[id(v)] - 1
        pairs = v.items() if type(v) is dict else enumerate(v)
        for k, x in pairs:
            if (type(x) is list or type(x) is dict) and height[id(x)] == below:
                v, p, depth = x, f"{p}[{json.dumps(k, ensure_ascii=False) if type(k) is str else k}]", depth + 1
                break
    return p


def _bad_text(text: str) -> bool:
    """True if ``text`` holds a lone surrogate (from a bad decode or a ``\\ud800`` escape in JSON)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_copy(value: Any) -> Any:
    """A copy of a JSON value sharing nothing mutable with it (strings and numbers are immutable)."""
    t = type(value)
    if t is list:
        return [v if type(v) in (str, int, float, bool) or v is None else json_copy(v) for v in value]
    if t is dict:
        return {k: v if type(v) in (str, int, float, bool) or v is None else json_copy(v) for k, v in value.items()}
    return value
