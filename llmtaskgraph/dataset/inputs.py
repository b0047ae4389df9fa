"""The inputs of a dataset: a list of JSON values, or a JSONL, JSON or CSV file; and the id of each case.

Every input becomes one case: one graph run, whose graph input it is. A case is known by its id, in
the index, on the command line and when two runs are compared, so ids must stay the same when the
same dataset is run again: by default the position of the input (``"0"``, ``"1"``, ...), or, with
``ids="key"``, the value of that key in each input (a JSONL file with an ``id`` field keeps its
ids when lines are added or reordered), or a function of the input.

Values are checked where they enter: an input that a trace could not store (NaN, a tuple, a lone
surrogate) is refused with the line or position that holds it, before anything runs.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from ..fingerprint import digest, json_problem

__all__ = ["CaseIds", "case_file_name", "case_ids", "read_inputs"]

CaseIds = str | Callable[[Any], Any] | None
"""How cases get their ids: None (their position), a key of each input, or a function of the input."""

_SAFE_NAME = re.compile(r"^[a-z0-9_][a-z0-9_.-]{0,79}$")
"""Ids that can be a file name as they are, on every file system (lower case: macOS ignores case)."""


def read_inputs(source: Iterable[Any] | str | os.PathLike[str]) -> list[Any]:
    """The inputs of a dataset: ``source`` itself when it is a list (or any iterable of JSON values),
    else the file it names: ``.jsonl``/``.ndjson`` (one JSON value per line, blank lines skipped),
    ``.json`` (an array) or ``.csv`` (one dict per row, keyed by the header, values as text)."""
    if isinstance(source, (str, os.PathLike)):
        return _read_file(Path(source))
    if isinstance(source, (bytes, dict)):
        raise DatasetError(f"dataset inputs are a list of JSON values or a file path, got {type(source).__name__}; "
                           "wrap a single input in a list")
    values = list(source)
    for i, value in enumerate(values):
        _check(value, f"input {i}")
    return values


def _read_file(path: Path) -> list[Any]:
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".json", ".csv"):
        raise DatasetError(f"cannot read dataset inputs from `{path}`: give a .jsonl, .json or .csv file "
                           "(or a list of JSON values)")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a spreadsheet's CSV often starts with a BOM
    except FileNotFoundError:
        raise DatasetError(f"the dataset inputs file `{path}` does not exist") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"the dataset inputs file `{path}` is not UTF-8 text ({exc})") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read the dataset inputs file `{path}`: {exc.strerror or exc}") from exc
    if suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        for n, row in enumerate(rows, start=2):
            if None in row or any(v is None for v in row.values()):
                raise DatasetError(f"`{path}` line {n}: the row has another number of fields than the header")
        return rows
    if suffix == ".json":
        value = _loads(text, f"`{path}`")
        if not isinstance(value, list):
            raise DatasetError(f"`{path}` must hold a JSON array of inputs, got a {type(value).__name__}; "
                               "for one value per line use a .jsonl file")
        for i, item in enumerate(value):
            _check(item, f"`{path}` item {i}")
        return value
    values = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            value = _loads(line, f"`{path}` line {n}")
            _check(value, f"`{path}` line {n}")
            values.append(value)
    return values


def _loads(text: str, where: str) -> Any:
    def no_constant(name: str) -> Any:
        raise DatasetError(f"{where} holds {name}, which is not JSON (a trace could not store it)")

    try:
        return json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{where} is not valid JSON: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # a number too long to read, nesting too deep
        raise DatasetError(f"{where} cannot be read: {exc}") from exc


def _check(value: Any, where: str) -> None:
    problem = json_problem(value, "input")
    if problem is not None:
        raise DatasetError(f"{where} cannot be a graph input: `{problem[0]}` {problem[1]}")


def case_ids(inputs: list[Any], ids: CaseIds) -> list[str]:
    """The id of each input's case (see the module docstring); they must be unique."""
    if ids is None:
        found = [str(i) for i in range(len(inputs))]
    elif isinstance(ids, str):
        found = []
        for i, value in enumerate(inputs):
            if not isinstance(value, dict) or ids not in value:
                raise DatasetError(f"input {i} has no key `{ids}` to take its case id from (ids={ids!r}); "
                                   "give every input that key, or leave `ids` out to number the cases")
            found.append(_as_id(value[ids], i))
    elif callable(ids):
        found = [_as_id(ids(value), i) for i, value in enumerate(inputs)]
    else:
        raise DatasetError(f"`ids` takes None, a key of the inputs or a function of an input, got {type(ids).__name__}")
    twice = [cid for cid, n in Counter(found).items() if n > 1]
    if twice:
        shown = ", ".join(f"`{c}`" for c in twice[:5]) + (f" and {len(twice) - 5} more" if len(twice) > 5 else "")
        raise DatasetError(f"case ids must be unique; these name more than one input: {shown}")
    return found


def _as_id(value: Any, position: int) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DatasetError(f"the case id of input {position} must be a string or a whole number, got {value!r:.80}")
    text = str(value)
    if not text or not text.isprintable():
        raise DatasetError(f"the case id of input {position} must be printable text, got {text!r:.80}")
    return text


def case_file_name(case_id: str) -> str:
    """The trace file of a case in a dataset folder: the id itself when it is a safe file name, else a
    digest of it (ids may hold anything: ``/``, ``..``, or differ only in case)."""
    if _SAFE_NAME.match(case_id) and not case_id.startswith("case-") and case_id not in (".", ".."):
        return f"{case_id}.json"
    return f"case-{digest(case_id)[:16]}.json"
