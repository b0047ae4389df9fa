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


def _find_problem(value: Any, path: str) -> tuple[str, str] | None:
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        v, p = stack.pop()
        if v is None or v is True or v is False or type(v) is str or type(v) is int:
            continue
        if type(v) is float:
            if not math.isfinite(v):
                return p, f"is {v!r}, which JSON cannot hold; use None or a string"
        elif type(v) is list:
            stack.extend((item, f"{p}[{i}]") for i, item in enumerate(v))
        elif type(v) is dict:
            for k, item in v.items():
                if type(k) is not str:
                    return p, f"has the key {k!r} of type {type(k).__name__}; JSON object keys must be str"
                stack.append((item, f"{p}[{json.dumps(k, ensure_ascii=False)}]"))
        elif isinstance(v, tuple):
            return p, "is a tuple; return a list instead so the trace round-trips unchanged"
        else:
            return p, f"is of type {type(v).__name__}; convert it to str, number, bool, None, list or dict"
    return None
