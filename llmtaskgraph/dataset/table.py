"""Tables of a dataset run: plain rows, pandas DataFrames (an extra), and compact HTML for notebooks.

Rows are lists of plain dicts, so they work without pandas (``csv.DictWriter``, ``json.dumps``);
:func:`to_dataframe` turns any of them into a DataFrame when pandas is installed
(``pip install 'llmtaskgraph[pandas]'``), imported only then. A dict input or output is spread into
one column per key (``input.text``, ``output.label``) for filtering and grouping; other values stay
in one ``input`` / ``output`` column.

In a notebook a dataset run shows its summary and its first cases (failed ones first); clicking a
case id opens that case's graph drawing in place. A comparison shows its summary and the changed
cases, worst first, with word diffs of their outputs.
"""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING, Any

from ..text import count_text, shorten

if TYPE_CHECKING:
    from .compare import Comparison
    from .run import DatasetRun

__all__ = ["case_rows", "code_names", "comparison_html", "dataset_html", "summary_line", "task_rows", "to_dataframe"]

ROWS_SHOWN = 10
"""Cases a dataset run shows in a notebook (the rest are counted)."""
CHANGES_SHOWN = 20
"""Changed cases a comparison shows in a notebook."""
CELL_CHARS = 80
"""Characters of a value shown in one table cell."""
_LEFT = " style='text-align:left;vertical-align:top'"
_MONO = " style='text-align:left;vertical-align:top;font-family:monospace'"


def case_rows(run: DatasetRun) -> list[dict[str, Any]]:
    """One dict per case: ``case``, ``status``, the input and output (spread by key when dicts),
    ``errors``, ``tasks``, ``executed``, ``llm_calls``, ``new_llm_calls``, tokens, ``cost``, ``new_cost``
    (dollars: in the trace, paid by the latest run) and ``seconds``.

    Every row has the same keys (None where a case has no value), so the rows make a table as they are.
    """
    cases = list(run)
    input_keys = _dict_keys(c.input for c in cases)
    output_keys = _dict_keys(c.output for c in cases)
    rows = []
    for case in cases:
        row: dict[str, Any] = {"case": case.id, "status": case.status}
        _spread(row, "input", case.input, input_keys)
        _spread(row, "output", case.output, output_keys)
        row.update(errors="; ".join(case.errors) or None, tasks=case.tasks, executed=case.executed,
                   llm_calls=case.llm_calls, new_llm_calls=case.new_llm_calls, input_tokens=case.input_tokens,
                   output_tokens=case.output_tokens, cost=case.cost, new_cost=case.new_cost, seconds=case.seconds)
        rows.append(row)
    return rows


def _dict_keys(values: Any) -> tuple[list[str], bool]:
    """The keys of the dict values (in first-seen order), and whether some value is not a dict."""
    keys: dict[str, None] = {}
    other = False
    for value in values:
        if isinstance(value, dict):
            keys.update(dict.fromkeys(value))
        elif value is not None:
            other = True
    return list(keys), other or not keys


def _spread(row: dict[str, Any], name: str, value: Any, keys: tuple[list[str], bool]) -> None:
    names, whole = keys
    if whole:
        row[name] = None if isinstance(value, dict) and names else value
    for key in names:
        row[f"{name}.{key}"] = value.get(key) if isinstance(value, dict) else None


def task_rows(run: DatasetRun) -> list[dict[str, Any]]:
    """One dict per task of every case (loads every trace): ``case``, ``task`` (its path), ``type``,
    ``status``, ``output``, ``error``, ``input_tokens``, ``output_tokens``, ``cost`` (dollars of its reply; None
    for no reply or an unknown price), ``seconds``."""
    from ..trace.summary import task_rows as graph_rows

    rows = []
    for case in run:
        if case.tasks == 0 and case.status != "pending":
            continue  # its graph could not be built: it has no tasks
        for row in graph_rows(run._open(case)):
            rec = row.task.record
            err = rec.error
            rows.append({
                "case": case.id, "task": row.path, "type": row.task.type, "status": rec.status, "output": rec.output,
                "error": f"{err.type}: {err.message}" if err else None,
                "input_tokens": row.usage.input_tokens, "output_tokens": row.usage.output_tokens,
                "cost": row.usage.cost if row.usage.calls and not row.usage.unpriced else None, "seconds": row.duration,
            })
    return rows


def to_dataframe(rows: list[dict[str, Any]]) -> Any:
    """``rows`` as a pandas DataFrame; pandas is imported only here."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError("a DataFrame needs pandas: pip install 'llmtaskgraph[pandas]' (or use .rows(), plain dicts "
                          "that need nothing)") from exc
    return pd.DataFrame.from_records(rows)


def summary_line(run: DatasetRun) -> str:
    """``20 cases: 18 done, 1 failed, 1 pending; 40 LLM calls, tokens 1,234 in, 567 out, cost $0.0123``."""
    from ..trace.usage import dollars_text

    counts: dict[str, int] = {}
    calls = tokens_in = tokens_out = unpriced = 0
    cost = 0.0
    for case in run:
        counts[case.status] = counts.get(case.status, 0) + 1
        calls += case.llm_calls
        tokens_in += case.input_tokens
        tokens_out += case.output_tokens
        cost += case.cost
        unpriced += case.unpriced
    states = ", ".join(f"{n:,} {s}" for s in ("done", "failed", "pending") if (n := counts.get(s)))
    c = count_text
    paid = f", cost {dollars_text(cost)}" if cost else ""
    paid += f" + {c(unpriced, True)} call(s) of unknown price" if unpriced else ""
    return (f"{len(run):,} case(s): {states or 'none'}; {c(calls, True)} LLM call(s) in the traces, "
            f"tokens {c(tokens_in, True)} in, {c(tokens_out, True)} out{paid}")


# -- HTML -------------------------------------------------------------------------------------------
def code_names(text: str) -> str:
    """``text`` HTML-escaped, with the `names` in backticks shown as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return html.escape(shorten(text, CELL_CHARS))


def dataset_html(run: DatasetRun, rows: int = ROWS_SHOWN) -> str:
    """The summary and the first ``rows`` cases, failed ones first; a case id opens its graph drawing."""
    from ..views.render import to_html

    cases = sorted(run, key=lambda c: c.status != "failed")[:rows]
    body = []
    for case in cases:
        drawing = to_html(run._open(case)) if case.tasks or case.status == "pending" else ""
        name = (f"<details><summary style='cursor:pointer'><code>{html.escape(case.id)}</code></summary>{drawing}</details>"
                if drawing else f"<code>{html.escape(case.id)}</code>")
        shown = "; ".join(case.errors) if case.status == "failed" else case.output
        body.append(f"<tr><td{_LEFT}>{name}</td><td{_LEFT}>{case.status}</td><td{_MONO}>{_cell(case.input)}</td>"
                    f"<td{_MONO}>{_cell(shown)}</td><td style='text-align:right'>{case.llm_calls:,}</td></tr>")
    more = len(run) - len(cases)
    note = (f"<div style='text-align:left'>… {more:,} more case(s): <code>.rows()</code> or <code>.to_dataframe()</code> "
            "lists them all</div>" if more > 0 else "")
    head = "".join(f"<th{_LEFT}>{h}</th>" for h in ("case", "status", "input", "output or error")) + \
        "<th style='text-align:right'>LLM calls</th>"
    where = f" in <code>{html.escape(str(run.path))}</code>" if run.path is not None else ""
    return (f"<div class='llmtaskgraph-dataset' style='text-align:left'><b>dataset run{where}: "
            f"{html.escape(summary_line(run))}</b><table style='margin:0'><tr>{head}</tr>{''.join(body)}</table>"
            f"{note}</div>")


_MARKS = re.compile(r"\[-(.*?)-\]|\{\+(.*?)\+\}", re.S)


def _diff_html(line: str) -> str:
    """A diff line escaped, its ``[-removed-]`` and ``{+added+}`` parts struck out and underlined."""
    def mark(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return f"<del style='color:#b00020'>{m.group(1)}</del>"
        return f"<ins style='color:#1b5e20'>{m.group(2)}</ins>"

    return _MARKS.sub(mark, html.escape(line))


def comparison_html(comparison: Comparison, rows: int = CHANGES_SHOWN) -> str:
    """The summary and the changed cases, worst first, with their output diffs."""
    changed = comparison.changed
    body = []
    for case in changed[:rows]:
        score = (f"{_score(case.score_before)} → {_score(case.score_after)}" if comparison.scored else "")
        diff = "<br>".join(_diff_html(line) for line in case.output_diff())
        body.append(f"<tr><td{_LEFT}>{case.verdict}</td><td{_LEFT}><code>{html.escape(case.id)}</code></td>"
                    f"<td{_LEFT}>{score}</td><td{_MONO}>{diff}</td></tr>")
    more = len(changed) - min(len(changed), rows)
    note = f"<div style='text-align:left'>… {more:,} more changed case(s): <code>.rows()</code> lists them all</div>" \
        if more else ""
    head = "".join(f"<th{_LEFT}>{h}</th>" for h in ("", "case", "score" if comparison.scored else "", "what changed"))
    table = f"<table style='margin:0'><tr>{head}</tr>{''.join(body)}</table>" if body else ""
    return (f"<div class='llmtaskgraph-comparison' style='text-align:left'><b>{html.escape(comparison.summary())}</b>"
            f"{table}{note}</div>")


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
