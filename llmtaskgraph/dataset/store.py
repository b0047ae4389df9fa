"""A dataset run on disk: one trace file per case plus an index, so it reopens in a fresh kernel or the CLI.

::

    runs/v1/
        dataset.json        the index: every case's id, input, status, output, errors and counts
        graph.json          the graph the cases are copies of (absent when a function built them)
        cases/0.json        the trace of case `0`: an ordinary trace (``TaskGraph.load``, ``llmtaskgraph show``)
        cases/1.json        ...

Each trace is the truth about its case; the index is a summary of them, kept so that listing,
showing and comparing 2,000 cases does not load 2,000 traces. Every file is written atomically
(a temporary file, flushed to disk, renamed into place) by the library's trace writer, so a run
killed at any moment leaves complete files. The index is rewritten every few seconds and when the
run ends however it ends; if it lags behind a trace (after ``kill -9``), loading reads the
unfinished cases' traces again, so the summary never contradicts the trace.

A folder may come from someone else: the index is checked field by field, and a case file must be
a plain name inside ``cases/``.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DatasetError, InvalidTraceError
from ..files import write_json_atomically
from ..fingerprint import json_problem
from ..model.tasks import TaskGraphTask

if TYPE_CHECKING:
    from ..model.graph import TaskGraph
    from ..run.state import RunReport

__all__ = ["FORMAT", "STATUSES", "CaseResult", "DatasetFolder", "summarize"]

FORMAT = "llmtaskgraph-dataset/1"
INDEX = "dataset.json"
TEMPLATE = "graph.json"
CASES = "cases"
STATUSES = ("pending", "done", "failed")
"""A case is ``done`` when its output task finished and no task failed, ``failed`` when a task failed
(or its graph could not be built), else ``pending`` (never ran, or interrupted or stopped before the end)."""
_CASE_FILE = re.compile(r"^cases/[A-Za-z0-9_][A-Za-z0-9_.-]*\.json$")


@dataclass
class CaseResult:
    """One case of a dataset run: its input and what its trace holds now (a row of the index)."""

    id: str
    """The case id (its position in the inputs, or what ``ids=`` took from the input)."""
    input: Any
    """The case's graph input."""
    file: str | None = None
    """Its trace file inside the run's folder (``cases/3.json``); None for a run kept in memory."""
    status: str = "pending"
    """``pending``, ``done`` or ``failed`` (see :data:`STATUSES`)."""
    output: Any = None
    """The output of the case's graph when ``done``, else None."""
    errors: list[str] = field(default_factory=list)
    """One line per failed task (``path: Type in stage: message``), or why its graph could not be built."""
    tasks: int = 0
    """Tasks in the case's graph, those of sub-graphs included."""
    task_outputs: dict[str, str] = field(default_factory=dict)
    """Task path -> digest of its output, for every done task: what changed between two runs is told
    from the index, without loading the traces."""
    llm_calls: int = 0
    """LLM replies in the trace (what producing its current results took; cached replies included)."""
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    """US dollars of those replies, over the ones whose price is known (local backends are free)."""
    unpriced: int = 0
    """Replies whose model has no known price (not in ``cost``)."""
    executed: int = 0
    """Tasks the latest run of this case executed (0: everything was reused)."""
    new_llm_calls: int = 0
    """LLM requests the latest run of this case sent (cached replies not counted)."""
    new_cost: float = 0.0
    """US dollars the latest run of this case paid."""
    seconds: float | None = None
    """Wall time of the latest run of this case."""

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Any, where: str) -> CaseResult:
        if not isinstance(data, dict):
            raise DatasetError(f"{where} must be an object, got {type(data).__name__}")
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise DatasetError(f"{where} has unknown field(s) {', '.join(f'`{k}`' for k in unknown)}")
        case = cls(id=_typed(data, "id", str, where), input=data.get("input"))
        file = data.get("file")
        if file is not None and (not isinstance(file, str) or not _CASE_FILE.match(file)):
            raise DatasetError(f"{where}.file must be a file name inside `cases/`, got {file!r:.80}")
        case.file = file
        status = data.get("status", "pending")
        if status not in STATUSES:
            raise DatasetError(f"{where}.status must be one of {', '.join(STATUSES)}, got {status!r:.40}")
        case.status = status
        case.output = data.get("output")
        case.errors = _str_list(data.get("errors", []), f"{where}.errors")
        case.task_outputs = _str_dict(data.get("task_outputs", {}), f"{where}.task_outputs")
        for name in ("tasks", "llm_calls", "input_tokens", "output_tokens", "unpriced", "executed", "new_llm_calls"):
            setattr(case, name, _typed(data, name, int, where, default=0))
        for name in ("cost", "new_cost", "seconds"):
            value = data.get(name, None if name == "seconds" else 0.0)
            if (value is not None or name != "seconds") and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise DatasetError(f"{where}.{name} must be a number" + (" or null" if name == "seconds" else ""))
            setattr(case, name, value)
        return case


_FIELDS = frozenset(f.name for f in fields(CaseResult))


def _typed(data: dict[str, Any], name: str, kind: type, where: str, default: Any = None) -> Any:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise DatasetError(f"{where}.{name} must be a {kind.__name__}, got {value!r:.80}")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DatasetError(f"{where} must be a list of strings")
    return value


def _str_dict(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise DatasetError(f"{where} must be an object of strings")
    return value


def summarize(case: CaseResult, graph: TaskGraph, report: RunReport | None = None, seconds: float | None = None) -> None:
    """Bring ``case`` up to date with ``graph`` (its trace) and, when given, the report of its latest run."""
    failed: list[str] = []
    outputs: dict[str, str] = {}
    pending = False
    total = 0
    for path, task, _ in graph.walk():
        total += 1
        rec = task.record
        if rec.status == "failed" and not isinstance(task, TaskGraphTask):  # the tasks inside say why
            err = rec.error
            failed.append(f"{path}: {err.type} in {err.stage}: {err.message}" if err else f"{path}: failed")
        elif rec.status == "done":
            outputs[path] = rec.output_fingerprint()[:16]
        else:
            pending = True
    result = graph.result_task()
    done = not failed and not pending and result is not None and result.record.status == "done"
    case.status = "failed" if failed else "done" if done else "pending"
    case.output = graph.output if done else None
    case.errors = failed
    case.tasks = total
    case.task_outputs = outputs
    usage = graph.usage()
    case.llm_calls, case.input_tokens, case.output_tokens = usage.calls, usage.input_tokens, usage.output_tokens
    case.cost, case.unpriced = usage.cost, usage.unpriced
    if report is not None:
        case.executed = len(report.executed)
        case.new_llm_calls = report.llm_calls
        case.new_cost = report.cost
        case.seconds = seconds


class DatasetFolder:
    """The files of one dataset run (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"DatasetFolder({str(self.path)!r})"

    @property
    def index_path(self) -> Path:
        return self.path / INDEX

    def exists(self) -> bool:
        """Whether the folder holds a dataset run (its index)."""
        return self.index_path.is_file()

    def case_path(self, file: str) -> Path:
        return self.path / file

    def create(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise DatasetError(f"cannot keep a dataset run in `{self.path}`: it is a file, not a folder")
        (self.path / CASES).mkdir(parents=True, exist_ok=True)

    # -- the index --------------------------------------------------------------------------------
    def write_index(self, cases: list[CaseResult], created_at: float) -> None:
        data = {"format": FORMAT, "created_at": created_at, "updated_at": time.time(),
                "cases": [c.to_json() for c in cases]}
        problem = json_problem(data, "index")
        if problem is not None:  # an output is checked when stored, so this is a bug: say where
            raise DatasetError(f"the dataset index cannot be saved: `{problem[0]}` {problem[1]}")

        write_json_atomically(self.index_path, data)

    def read_index(self) -> tuple[list[CaseResult], float]:
        """The cases in the index and when the run was created; a :class:`DatasetError` names what is wrong."""
        where = f"`{self.index_path}`"
        if not self.exists():
            hint = " (it holds no `dataset.json`)" if self.path.is_dir() else ""
            raise DatasetError(f"`{self.path}` is not a dataset run folder{hint}; run_dataset(..., path=...) makes one")
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise DatasetError(f"cannot read the dataset index {where}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise DatasetError(f"{where} is not a dataset index (format {found!r:.60}; this version reads {FORMAT!r})")
        raw = data.get("cases")
        if not isinstance(raw, list):
            raise DatasetError(f"{where}: `cases` must be a list")
        cases = [CaseResult.from_json(item, f"{where} cases[{i}]") for i, item in enumerate(raw)]
        seen: set[str] = set()
        for case in cases:
            if case.id in seen:
                raise DatasetError(f"{where}: the case id `{case.id}` appears twice")
            seen.add(case.id)
        created = data.get("created_at")
        return cases, float(created) if isinstance(created, (int, float)) and not isinstance(created, bool) else 0.0

    # -- traces -----------------------------------------------------------------------------------
    def save_case(self, graph: TaskGraph, file: str) -> None:
        graph.save(self.case_path(file))

    def load_case(self, file: str) -> TaskGraph:
        from ..model.graph import TaskGraph

        path = self.case_path(file)
        try:
            return TaskGraph.load(path)
        except InvalidTraceError as exc:
            raise DatasetError(f"the trace of a case, `{path}`, cannot be loaded: {exc}") from exc

    def has_case(self, file: str | None) -> bool:
        return file is not None and self.case_path(file).is_file()

    def save_template(self, graph_json: dict[str, Any] | None) -> None:
        """Keep the graph the cases are copies of (None: a function built them, so none is kept)."""
        from ..model.graph import TaskGraph

        if graph_json is None:
            (self.path / TEMPLATE).unlink(missing_ok=True)
        else:
            TaskGraph.from_json(graph_json).save(self.path / TEMPLATE)

    def load_template(self) -> dict[str, Any] | None:
        """The graph the cases are copies of, as JSON; None when a function built them."""
        path = self.path / TEMPLATE
        if not path.is_file():
            return None
        from ..model.graph import TaskGraph

        try:
            return TaskGraph.load(path).to_json()
        except InvalidTraceError as exc:
            raise DatasetError(f"the dataset's graph `{path}` cannot be loaded: {exc}") from exc
