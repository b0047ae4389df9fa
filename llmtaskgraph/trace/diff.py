"""Which tasks differ between two traces: added, removed, or changed in spec, status, prompt, reply or output.

Both traces are compared through their JSON form (the one the files hold), task by task along
their paths (``outer > inner`` inside sub-graphs), so the answer is exactly what a person diffing
the files would find, minus the noise: timings and call metadata (latency, ...) change on every run
and hashes (fingerprints, code versions, basis) say nothing readable, so by default they are left
out and only the reply text and token usage of a call are compared.

Values are compared as JSON text, not with Python's ``==``: ``1``, ``1.0`` and ``true`` are three
different outputs, and so are ``0.0`` and ``-0.0``. A long text that changed is shown as a word
diff of the changed parts (``[-removed-]{+added+}`` with a few words around), not as its first line.
"""

from __future__ import annotations

import difflib
import json
import re
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..text import shorten

if TYPE_CHECKING:
    from ..model.graph import TaskGraph

NOISY_FIELDS = ("started_at", "finished_at", "fingerprints", "versions", "basis", "response")
"""Left out unless ``all_fields``: timings, hashes (of inputs and of code) and call metadata."""
SHORT = 60
"""A change is shown as ``a -> b`` when both JSON texts are at most this long, else as a word diff."""
CONTEXT_CHARS = 25
"""Unchanged text shown on each side of a change in a word diff: whole words, until this many characters."""
MAX_PLACES = 8
"""Changed places shown per field; the rest are counted."""
MAX_PART = 100
"""Characters shown of one removed, added or unchanged piece of a changed place."""
EXACT_TOKENS = 2000
"""Tokens (of both sides) beyond which the changed middle of two texts is matched piece by piece first."""

_Op = tuple[str, int, int, int, int]
"""A difflib opcode: tag, start and end in A, start and end in B."""


def same_json(a: Any, b: Any) -> bool:
    """Whether two JSON values are the same JSON: like ``==``, but ``1``, ``1.0`` and ``true`` differ,
    and so do ``0.0`` and ``-0.0`` (the key order of objects does not matter)."""
    return a == b and (_canonical(a) == _canonical(b) if _may_hide_a_difference(a) else True)


def _may_hide_a_difference(value: Any) -> bool:
    """Only numbers and containers can be ``==`` while their JSON differs; skip the encoding for the rest."""
    return not (value is None or type(value) is str)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=True)


@dataclass
class TaskChange:
    """How one task differs between trace A and trace B."""

    path: str
    kind: str
    """``added`` (only in B), ``removed`` (only in A) or ``changed``."""
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Changed field -> (value in A, value in B)."""

    def describe(self) -> str:
        """One line per change, e.g. ``changed `t3`: status "done" -> "failed"``; a long text that changed
        adds indented lines below, one per changed place."""
        if self.kind != "changed":
            return f"{self.kind} `{self.path}`"
        return "\n".join(_describe_fields(f"changed `{self.path}`: ", self.fields))


@dataclass
class GraphDiff:
    """Everything that differs between two traces."""

    tasks: list[TaskChange] = field(default_factory=list)
    graph_fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Top-level fields that differ (``graph_input``, ``output_task``)."""

    def __bool__(self) -> bool:
        return bool(self.tasks or self.graph_fields)

    def lines(self) -> list[str]:
        out = []
        for name, change in self.graph_fields.items():
            out += _describe_fields("changed graph ", {name: change}, separator=": ")
        for task in self.tasks:
            out += task.describe().split("\n")
        return out


def diff_graphs(a: TaskGraph, b: TaskGraph, all_fields: bool = False) -> GraphDiff:
    """Compare ``a`` to ``b``; ``all_fields=True`` also compares timings, fingerprints and call metadata."""
    ja, jb = a.to_json(), b.to_json()
    result = GraphDiff()
    for name in ("graph_input", "output_task"):
        if not same_json(ja.get(name), jb.get(name)):
            result.graph_fields[name] = (ja.get(name), jb.get(name))
    ta, tb = _flatten(ja, ""), _flatten(jb, "")
    ignored = () if all_fields else NOISY_FIELDS
    for path, task in ta.items():
        other = tb.get(path)
        if other is None:
            result.tasks.append(TaskChange(path, "removed"))
            continue
        changed = {
            key: (task.get(key), other.get(key))
            for key in dict.fromkeys([*task, *other])
            if key not in ignored and not same_json(task.get(key), other.get(key))
        }
        if changed:
            result.tasks.append(TaskChange(path, "changed", changed))
    result.tasks += [TaskChange(path, "added") for path in tb if path not in ta]
    return result


def spec_difference(built: TaskGraph, saved: TaskGraph, prefix: str = "") -> str | None:
    """Why the graph in a saved trace is not the graph ``built`` declares, or None when it is.

    Tasks the trace holds that were added at run time are not compared: the run that resumes from
    the trace re-creates or removes them as their creators run. Otherwise this is
    :func:`~llmtaskgraph.trace.serialization.same_spec`, naming the first difference.
    """
    from ..model.tasks import TaskGraphTask
    from .serialization import same_spec

    ours, theirs_out = built.output_task, saved.output_task
    same_output = (ours and ours.id) == (theirs_out and theirs_out.id)
    if same_spec(built, saved) and same_output:
        return None
    declared = [tid for tid, task in saved.tasks.items() if task.created_by is None]
    new = [tid for tid in built.tasks if tid not in saved.tasks]
    if new:
        return f"task {_names(prefix, new)} {'is' if len(new) == 1 else 'are'} not in the trace"
    gone = [tid for tid in declared if tid not in built.tasks]
    if gone:
        return f"task {_names(prefix, gone)} {'is' if len(gone) == 1 else 'are'} no longer in the graph"
    if declared != list(built.tasks):
        return "the tasks are added in another order" + (f" inside `{prefix[:-3]}`" if prefix else "")
    for tid, mine in built.tasks.items():
        theirs = saved.tasks[tid]
        if not mine.spec_equals(theirs):
            return f"task `{prefix}{tid}` has changed (its type, functions, dependencies or settings)"
        if isinstance(mine, TaskGraphTask) and isinstance(theirs, TaskGraphTask):
            inner = spec_difference(mine.subgraph, theirs.subgraph, f"{prefix}{tid} > ")
            if inner is not None:
                return inner
    if not same_output:
        return "the output task is another one" + (f" inside `{prefix[:-3]}`" if prefix else "")
    return None


def _names(prefix: str, ids: list[str]) -> str:
    shown = ", ".join(f"`{prefix}{tid}`" for tid in ids[:3])
    return shown + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")


def _flatten(graph_json: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    """Path -> task JSON (without its sub-graph, whose tasks get their own paths)."""
    found: dict[str, dict[str, Any]] = {}
    for task in graph_json["tasks"]:
        path = prefix + task["id"]
        sub = task.get("subgraph")
        found[path] = {k: v for k, v in task.items() if k != "subgraph"}
        response = task.get("response")
        if isinstance(response, dict):
            found[path]["reply"] = response.get("text")
            found[path]["usage"] = response.get("usage")
        if isinstance(sub, dict):
            found[path]["subgraph_input"] = sub.get("graph_input")
            found.update(_flatten(sub, f"{path} > "))
    return found


# -- showing a change -------------------------------------------------------------------------------
def _describe_fields(head: str, fields: dict[str, tuple[Any, Any]], separator: str = " ") -> list[str]:
    """``head`` + ``name a -> b`` for each short change, on one line; a long value that changed is named
    there and shown below it, one indented line per changed place (see :func:`word_diff`)."""
    parts: list[str] = []
    below: list[str] = []
    for name, (a, b) in fields.items():
        ta, tb = _json_text(a), _json_text(b)
        if max(len(ta), len(tb)) <= SHORT:
            parts.append(f"{name}{separator}{ta} -> {tb}")
            continue
        if isinstance(a, str) and isinstance(b, str):  # the text itself, not its JSON escapes
            ta, tb = a, b
        parts.append(f"{name} ({len(ta):,} -> {len(tb):,} characters, word diff below)")
        below += [f"    {name}: {place}" for place in word_diff(ta, tb)]
    return [head + "; ".join(parts), *below]


def word_diff(a: str, b: str) -> list[str]:
    """The places where ``b`` differs from ``a``, one string each: ``…words [-old-]{+new+} words…``.

    Words and single punctuation marks (each with the spaces after it) are the units, so a changed
    comma in a long JSON text shows as that comma. Places closer than twice the context are shown as one.
    """
    wa, wb = _tokens(a), _tokens(b)
    groups: list[list[_Op]] = []
    for op in _changes(wa, wb):
        if groups and sum(map(len, wa[groups[-1][-1][2]:op[1]])) <= 2 * CONTEXT_CHARS:
            groups[-1].append(op)
        else:
            groups.append([op])
    places = [_place(wa, wb, group) for group in groups[:MAX_PLACES]]
    if len(groups) > MAX_PLACES:
        places.append(f"… and {len(groups) - MAX_PLACES} more changed places")
    return places


def _place(wa: list[str], wb: list[str], group: list[_Op]) -> str:
    """One changed place: the changes of ``group`` with the unchanged words between and around them."""
    start, end = group[0][1], group[-1][2]
    while start > 0 and sum(map(len, wa[start:group[0][1]])) < CONTEXT_CHARS:
        start -= 1
    while end < len(wa) and sum(map(len, wa[group[-1][2]:end])) < CONTEXT_CHARS:
        end += 1
    before = "".join(wa[start:group[0][1]])
    out = ["…" + before[-MAX_PART:] if start > 0 or len(before) > MAX_PART else before]
    pos = group[0][1]
    for _tag, i1, i2, j1, j2 in group:
        out.append(shorten("".join(wa[pos:i1]), MAX_PART))
        old, new = "".join(wa[i1:i2]), "".join(wb[j1:j2])
        # spaces both sides end with go after the markers: `[-cat-]{+dog+} sat`, not `[-cat -]{+dog +}sat`
        space = old[len(old.rstrip()):] if old.rstrip() and new.endswith(old[len(old.rstrip()):]) else ""
        if not new.rstrip():
            space = old[len(old.rstrip()):]
        elif not old:
            space = new[len(new.rstrip()):]
        old, new = old[: len(old) - len(space)], new[: len(new) - len(space)]
        out += [f"[-{shorten(old, MAX_PART)}-]" if old else "", f"{{+{shorten(new, MAX_PART)}+}}" if new else "", space]
        pos = i2
    after = "".join(wa[pos:end])
    out.append(shorten(after, MAX_PART) if len(after) > MAX_PART else after.rstrip() + "…" if end < len(wa) else after)
    return "".join(out)


def _changes(wa: list[str], wb: list[str]) -> list[_Op]:
    """difflib's opcodes other than ``equal``, token by token.

    The common start and end are set aside first, so one edit in a long text costs nothing. A long
    middle is matched piece by piece first (see :func:`_lines`), and token by token only within the
    pieces that changed: matching every token against every other would take seconds, and difflib's
    shortcut for that (skipping frequent tokens) mismatches whole texts.
    """
    limit = min(len(wa), len(wb))
    head = 0
    while head < limit and wa[head] == wb[head]:
        head += 1
    tail = 0
    while tail < limit - head and wa[-1 - tail] == wb[-1 - tail]:
        tail += 1
    ma, mb = wa[head:len(wa) - tail], wb[head:len(wb) - tail]
    if len(ma) + len(mb) <= EXACT_TOKENS:
        return _shift(_token_changes(ma, mb), head, head)
    la, lb = _lines(ma), _lines(mb)
    ops: list[_Op] = []
    line_ops = difflib.SequenceMatcher(None, [t for t, _ in la], [t for t, _ in lb]).get_opcodes()
    for tag, i1, i2, j1, j2 in line_ops:
        if tag == "equal":
            continue
        a_start, a_end = _span(la, i1, i2, len(ma))
        b_start, b_end = _span(lb, j1, j2, len(mb))
        if (a_end - a_start) + (b_end - b_start) <= EXACT_TOKENS:
            inner = _token_changes(ma[a_start:a_end], mb[b_start:b_end])
            ops += _shift(inner, head + a_start, head + b_start)
        else:
            ops.append((tag, head + a_start, head + a_end, head + b_start, head + b_end))
    return ops


def _token_changes(ma: list[str], mb: list[str]) -> list[_Op]:
    matcher = difflib.SequenceMatcher(None, ma, mb, autojunk=False)
    return [op for op in matcher.get_opcodes() if op[0] != "equal"]


def _shift(ops: list[_Op], da: int, db: int) -> list[_Op]:
    return [(tag, i1 + da, i2 + da, j1 + db, j2 + db) for tag, i1, i2, j1, j2 in ops]


def _lines(tokens: list[str]) -> list[tuple[str, int]]:
    """(text, index of the first token) of each piece of ``tokens``: a piece ends at a newline, or after
    a token picked by its own content (about one in 16), so a long single line is cut the same way in
    both texts whatever was inserted before."""
    lines, start = [], 0
    for i, token in enumerate(tokens):
        if token.endswith("\n") or zlib.crc32(token.encode("utf-8", "surrogatepass")) % 16 == 0:
            lines.append(("".join(tokens[start:i + 1]), start))
            start = i + 1
    if start < len(tokens):
        lines.append(("".join(tokens[start:]), start))
    return lines


def _span(lines: list[tuple[str, int]], first: int, end: int, n_tokens: int) -> tuple[int, int]:
    """Token range of lines ``first`` to ``end`` (exclusive)."""
    start = lines[first][1] if first < len(lines) else n_tokens
    stop = lines[end][1] if end < len(lines) else n_tokens
    return start, stop


_TOKEN = re.compile(r"(?:-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])|\w+|[^\w\s])[^\S\n]*|[^\S\n]+|\n")
"""A number (``-4.5e3``), a word or a punctuation mark, with the spaces after it; leading spaces; a newline."""


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
