"""A persistent response cache, so re-running a notebook from scratch pays for no call twice.

The trace already memoizes calls, but only while the trace exists: a fresh kernel that rebuilds
the graph would call the LLM again. With ``graph.run(registry, cache="llm_cache/")`` every reply is
also stored on disk under :func:`cache_key`: the call fingerprint (backend kind + full request +
sample number, the key that decides reuse in the trace) and the task's path. So a fresh sample or
an edited prompt still calls, and N tasks sending the same request (N samples of one question)
keep N distinct replies instead of collapsing into one.

The run option ``cache_mode`` says how a run uses the cache: ``write`` (the default: look up, store
new replies), ``read`` (look up, store nothing: a shared cache stays as it is), ``refresh`` (look
nothing up, call and overwrite: fresh replies for everything the run calls) or ``off``. Hits are
counted in ``last_run.llm_cache_hits`` with the dollars they saved in ``last_run.cache_saved``.

One JSON file per entry, written to a temporary file and renamed into place: concurrent writers
(threads, processes, several notebooks) never leave a torn entry, and two writers of the same key
both write a complete reply for it.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import RunOptionsError
from ..files import write_json_atomically
from ..fingerprint import check_json, digest, json_problem

FORMAT = "llmtaskgraph-cache/1"
_KEY = re.compile(r"^[0-9a-f]{16,128}$")


@runtime_checkable
class ResponseStore(Protocol):
    """What the scheduler needs from a cache: look a reply up by call fingerprint, store one."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, response: dict[str, Any], request: dict[str, Any] | None = None) -> None: ...


class ResponseCache:
    """LLM replies on disk under ``path``, one file per call fingerprint. Implements :class:`ResponseStore`.

    Entries also hold the request they answer, so a cache directory can be read (and pruned) by hand.
    Delete the directory to forget everything.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        """The cache directory (created on first write)."""

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"

    def _file(self, key: str) -> Path:
        if not _KEY.match(key):
            raise RunOptionsError(f"a response cache key must be a hex fingerprint, got {key[:80]!r}")
        return self.path / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored reply for ``key``, or None.

        An entry that cannot be read, or that holds a value a trace cannot store (a lone surrogate,
        NaN, a number too long for text), counts as missing, with a warning naming its file: the
        LLM is called again and the entry re-written.
        """
        path = self._file(key)
        try:
            with open(path, encoding="utf-8") as f:
                entry = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON, a number too long
            _skip(path, f"cannot be read ({type(exc).__name__}: {str(exc)[:200]})")
            return None
        if not isinstance(entry, dict) or entry.get("format") != FORMAT:
            _skip(path, f"is not a {FORMAT} entry")
            return None
        response = entry.get("response")
        if not (isinstance(response, dict) and isinstance(response.get("text"), str)):
            _skip(path, "holds no reply with a string `text`")
            return None
        problem = json_problem(response, "response")
        if problem is not None:
            _skip(path, f"holds a reply a trace cannot store: `{problem[0]}` {problem[1]}")
            return None
        return response

    def put(self, key: str, response: dict[str, Any], request: dict[str, Any] | None = None) -> None:
        """Store ``response`` under ``key`` atomically (a reader sees the old entry or the new one, never half).

        Raises :class:`~llmtaskgraph.errors.OutputNotJSONError` for an entry a reader would refuse.
        """
        target = self._file(key)
        entry = {"format": FORMAT, "key": key, "stored_at": time.time(), "request": request, "response": response}
        check_json(entry, f"the response cache entry for `{key}`", "entry")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(target, entry)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __len__(self) -> int:
        return sum(1 for _ in self.path.glob("??/*.json"))

    def keys(self) -> list[str]:
        """Every stored fingerprint (in no particular order)."""
        return [p.stem for p in self.path.glob("??/*.json")]


def cache_key(call_fingerprint: str, path: str) -> str:
    """The cache key of one task's call: its call fingerprint and its path (``outer > inner``).

    The path keeps distinct samples distinct: tasks sending equal requests each get their own reply,
    in the cache as in the trace, so replaying from the cache gives the replies the first run gave.
    """
    return digest({"call": call_fingerprint, "task": path})


def _skip(path: Path, why: str) -> None:
    warnings.warn(f"response cache entry `{path}` {why}; it counts as missing, so the LLM is called again", stacklevel=3)


def as_store(cache: ResponseStore | str | os.PathLike[str]) -> ResponseStore:
    """The ``cache=`` run option: a store as given, or a directory path made into a :class:`ResponseCache`."""
    if isinstance(cache, (str, os.PathLike)):
        return ResponseCache(cache)
    if isinstance(cache, ResponseStore):
        return cache
    raise RunOptionsError(f"`cache=` takes a directory path or an object with get/put, got {type(cache).__name__}")
