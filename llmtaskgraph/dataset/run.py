"""Run one graph over many inputs: each input is a case, with its own trace, all on one event loop.

::

    v1 = run_dataset(graph, "reviews.jsonl", registry, path="runs/v1", llm=llm)
    print(v1.plan(registry))                  # after a code or prompt change: what would run again
    v2 = v1.copy("runs/v2").run(registry)     # only the cases (and tasks) the change affects run
    print(v1.compare(v2, score="score", registry=registry))

Cases run at once (``max_cases``, default twice ``max_concurrency``) under one limit of LLM calls
in flight and one response cache (see :mod:`.shared`), with one progress line. A case is an
ordinary graph run, so everything a run does holds per case: memoization, failures that leave
the other tasks (here: the other cases) running, Ctrl-C that keeps completed work. Run options
(``llm``, ``max_concurrency``, ``cache``, ``backend``, ``timeout``, ...) apply to every case;
``timeout``, ``max_tasks`` and ``max_cost`` bound each case, not the dataset.
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DatasetError, LLMTaskGraphError, RunOptionsError, TaskGraphError
from ..memo.code import CodeVersions
from ..model.graph import TaskGraph, default_llm
from ..model.registry import check_registry
from ..run._sync import run_sync
from ..trace.diff import same_json, spec_difference
from ..trace.usage import dollars_text
from .inputs import CaseIds, case_file_name, case_ids, read_inputs
from .shared import CaseProgress, SharedLimit
from .store import CASES, CaseResult, DatasetFolder, summarize

if TYPE_CHECKING:
    from typing import Unpack

    from ..model.registry import Registry
    from ..run.state import RunSettings
    from .compare import Comparison, Score
    from .plan import DatasetPlan

__all__ = ["DatasetReport", "DatasetRun", "GraphSource", "arun_dataset", "open_dataset", "run_dataset"]

GraphSource = TaskGraph | Callable[[Any], TaskGraph]
"""A graph whose copies run the cases, or a function that builds the graph of one case from its input."""
INDEX_SECONDS = 5.0
"""While a run goes on, the index is rewritten when a case finishes and this many seconds have passed."""


@dataclass
class DatasetReport:
    """What one run of a dataset did: read it from ``dataset_run.last_run``."""

    cases: int = 0
    """Cases run (memoized ones included)."""
    executed: list[str] = field(default_factory=list)
    """Ids of the cases in which at least one task executed (in the order of the inputs, as the lists below)."""
    failed: list[str] = field(default_factory=list)
    """Ids of the cases with failed tasks (or whose graph could not be built)."""
    pending: list[str] = field(default_factory=list)
    """Ids of the cases that did not finish (interrupted, or stopped by a bound)."""
    tasks_executed: int = 0
    llm_calls: int = 0
    """LLM requests sent (replies from the response cache not counted)."""
    llm_cache_hits: int = 0
    cost: float = 0.0
    """US dollars the calls of this run cost (replies of a known price)."""
    seconds: float = 0.0
    interrupted: bool = False
    """Whether the run was interrupted (Ctrl-C, cancellation): run again to continue, nothing is repeated."""

    def __str__(self) -> str:
        return (f"{self.cases} case(s) run: {len(self.executed)} with tasks executed, {self.cases - len(self.executed)} "
                f"entirely reused; {len(self.failed)} failed, {len(self.pending)} unfinished; {self.tasks_executed} task(s) "
                f"executed, {self.llm_calls} LLM call(s){f' ({dollars_text(self.cost)})' if self.cost else ''}, "
                f"{self.llm_cache_hits} from the response cache; "
                f"{self.seconds:.2f} s" + (" (interrupted)" if self.interrupted else ""))


class DatasetRun:
    """The cases of one graph run over a dataset, in memory or in a folder (see :mod:`.store`).

    Iterate over it for :class:`~.store.CaseResult` s, index it by case id, open a case's graph with
    :meth:`graph`. ``run`` runs every case again (memoized: after an interruption or a change only
    what is needed runs), ``plan`` says what that would do, ``copy`` keeps this run as it is for a
    comparison, ``compare`` tells what changed, ``rows``/``to_dataframe`` make tables.
    """

    def __init__(self, cases: Iterable[CaseResult], path: str | os.PathLike[str] | None = None,
                 graph: GraphSource | None = None, created_at: float | None = None) -> None:
        self.cases: dict[str, CaseResult] = {c.id: c for c in cases}
        """Case id -> its result, in the order of the inputs."""
        self.folder = DatasetFolder(path) if path is not None else None
        self.created_at = time.time() if created_at is None else created_at
        self.last_run: DatasetReport | None = None
        """What the latest ``run`` did."""
        self._template: dict[str, Any] | None = None
        self._builder: Callable[[Any], TaskGraph] | None = None
        self._check_spec = False
        self._graphs: dict[str, TaskGraph] = {}
        """Graphs in memory: every one for a run kept in memory, the ones opened by ``graph()`` otherwise."""
        self._index_written = 0.0
        self._template_saved = False
        if graph is not None:
            self._set_source(graph)

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DatasetRun:
        """Reopen the dataset run saved in the folder ``path`` (in a fresh kernel, say)."""
        folder = DatasetFolder(path)
        cases, created = folder.read_index()
        run = cls(cases, path, created_at=created)
        run._template = folder.load_template()
        run._template_saved = True
        for case in cases:  # the index lags behind a run killed between two of its writes: ask the trace
            if case.status == "pending" and folder.has_case(case.file):
                assert case.file is not None
                summarize(case, folder.load_case(case.file))
        return run

    @property
    def path(self) -> Path | None:
        """The folder the run is kept in, or None for a run kept in memory."""
        return None if self.folder is None else self.folder.path

    def _set_source(self, graph: GraphSource) -> None:
        self._template_saved = False
        if isinstance(graph, TaskGraph):
            self._template, self._builder = graph.to_json(), None
        elif callable(graph):
            self._template, self._builder = None, graph
        else:
            raise DatasetError(f"a dataset runs a TaskGraph or a function that builds one from a case input, "
                               f"got {type(graph).__name__}")

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[CaseResult]:
        return iter(self.cases.values())

    def __getitem__(self, case_id: str) -> CaseResult:
        return self._case(case_id)

    def _case(self, case_id: str) -> CaseResult:
        case = self.cases.get(str(case_id))
        if case is None:
            import difflib

            close = difflib.get_close_matches(str(case_id), list(self.cases), n=3)
            hint = f"; did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""
            raise DatasetError(f"no case `{case_id}` in this dataset run{hint}")
        return case

    def graph(self, case_id: str) -> TaskGraph:
        """The graph (with its trace) of a case; it stays in memory, so edits made to it are kept and
        used by the next ``run``, which also saves it."""
        case = self._case(case_id)
        graph = self._graphs.get(case.id)
        if graph is None:
            graph = self._graphs[case.id] = self._open(case)
        return graph

    def _open(self, case: CaseResult) -> TaskGraph:
        """The case's graph: from memory, from its trace file, else built afresh for its input."""
        graph = self._graphs.get(case.id)
        if graph is None and self.folder is not None and self.folder.has_case(case.file):
            assert case.file is not None
            graph = self.folder.load_case(case.file)
            if self._check_spec:
                built = self._build(case)
                difference = spec_difference(built, graph)
                if difference is not None:
                    raise DatasetError(f"case `{case.id}` in `{self.path}` was run with another graph: {difference}; "
                                       "pass fresh=True to start over, or another path")
        if graph is None:
            graph = self._build(case)
        if not same_json(graph.graph_input, case.input):
            graph.graph_input = case.input  # an edited input: the memo rule re-runs what reads it
        return graph

    def _build(self, case: CaseResult) -> TaskGraph:
        if self._template is not None:
            graph = TaskGraph.from_json(self._template)
        elif self._builder is not None:
            graph = self._builder(case.input)
            if not isinstance(graph, TaskGraph):
                raise DatasetError(f"the graph builder must return a TaskGraph, it returned {type(graph).__name__} "
                                   f"for case `{case.id}`")
        else:
            raise DatasetError(f"case `{case.id}` never ran and this dataset run has no graph to build it from "
                               "(a function built them); pass graph= to run or plan")
        graph.graph_input = case.input
        return graph

    # -- running ----------------------------------------------------------------------------------
    def run(self, registry: Registry, *, graph: GraphSource | None = None, max_cases: int | None = None,
            **options: Unpack[RunSettings]) -> DatasetRun:
        """Run every case (memoized: finished work is reused) and return this run; see :meth:`arun`."""
        return run_sync(lambda: self.arun(registry, graph=graph, max_cases=max_cases, **options))

    async def arun(self, registry: Registry, *, graph: GraphSource | None = None, max_cases: int | None = None,
                   **options: Unpack[RunSettings]) -> DatasetRun:
        """Run every case; a failed case is recorded (``status``, ``errors``) and the others go on.

        ``graph`` replaces the graph new cases are built from, and saved cases are checked to be of it.
        ``options`` are the run options of every case (``llm``, ``max_concurrency``, ``cache``, ...).
        A missing registry function or a bad option is refused before anything runs.
        """
        if graph is not None:
            self._set_source(graph)
            self._check_spec = True
        settings: dict[str, Any] = dict(options)
        progress_option = settings.pop("progress", None)
        if settings.get("checkpoint") is not None:
            raise RunOptionsError("a dataset run saves each case's trace in its own folder: give run_dataset a `path=` "
                                  "instead of `checkpoint=`")
        if max_cases is not None and (isinstance(max_cases, bool) or not isinstance(max_cases, int) or max_cases < 1):
            raise RunOptionsError(f"`max_cases` must be a whole number >= 1 (cases run at once), got {max_cases!r}")
        cases = list(self.cases.values())
        report = self.last_run = DatasetReport(cases=len(cases))
        if not cases:
            self._write_index()
            return self
        first = self._first_graph(cases[0])
        if first is not None:  # every case of a copied graph needs the same functions: say what is missing now
            check_registry(registry, first.required_functions())
        llm = settings.pop("llm", None) or default_llm(first)
        _check_options(llm, settings)
        limit = settings.setdefault("max_concurrency", 16)
        cases_at_once = 2 * limit if max_cases is None else max_cases
        if settings.get("cache") is not None:
            from ..llm.cache import as_store

            settings["cache"] = as_store(settings["cache"])  # one store object: one cache for every case
        if self.folder is not None:
            self.folder.create()
        progress = CaseProgress(len(cases), progress_option)
        settings["llm"] = SharedLimit(llm, limit, progress.counter)
        settings["progress"] = False
        settings.setdefault("code_versions", CodeVersions(registry))  # read each function's code once, not per case
        todo = iter(cases)
        started = time.perf_counter()

        async def worker() -> None:
            for case in todo:
                await self._run_case(case, registry, settings, report)
                progress.counter.case_finished(case.status)
                self._write_index(due=True)

        workers = [asyncio.ensure_future(worker()) for _ in range(min(cases_at_once, len(cases)))]
        try:
            await asyncio.gather(*workers)
        except (asyncio.CancelledError, KeyboardInterrupt):
            report.interrupted = True
            raise
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            report.seconds = time.perf_counter() - started
            report.pending = [c.id for c in cases if c.status == "pending"]
            order = {cid: i for i, cid in enumerate(self.cases)}  # the order of the inputs, not of finishing
            report.executed.sort(key=order.__getitem__)
            report.failed.sort(key=order.__getitem__)
            progress.close()
            self._write_index()
        return self

    def _first_graph(self, case: CaseResult) -> TaskGraph | None:
        """The first case's graph, kept open; None when the user's builder fails on it (its case fails, the others run)."""
        saved = case.id in self._graphs or (self.folder is not None and self.folder.has_case(case.file))
        if self._builder is not None and not saved:
            try:
                self._graphs[case.id] = self._build(case)
            except Exception:
                return None
        return self._graphs.setdefault(case.id, self._open(case))

    async def _run_case(self, case: CaseResult, registry: Registry, settings: dict[str, Any], report: DatasetReport) -> None:
        started = time.perf_counter()
        try:
            graph = self._open(case)
        except DatasetError as exc:
            case.status, case.errors, case.output = "failed", [str(exc)], None
            report.failed.append(case.id)
            return
        except Exception as exc:  # the user's graph builder raised
            case.status, case.errors, case.output = "failed", [f"building its graph raised {type(exc).__name__}: {exc}"], None
            report.failed.append(case.id)
            return
        if self.folder is not None:
            case.file = case.file or f"{CASES}/{case_file_name(case.id)}"
            settings = {**settings, "checkpoint": self.folder.case_path(case.file)}  # saved as it goes and at the end
        else:
            self._graphs[case.id] = graph
        before = graph.last_run
        refused: str | None = None
        try:
            await graph.arun(registry, **settings)
        except TaskGraphError:
            pass  # recorded in the trace; the other cases go on
        except LLMTaskGraphError as exc:  # a graph of its own refused (missing functions), a clashing child id, ...
            refused = str(exc)
        finally:
            ran = graph.last_run if graph.last_run is not before else None
            summarize(case, graph, ran, time.perf_counter() - started)
            if refused is not None:
                case.status, case.errors = "failed", [*case.errors, refused]
            if ran is not None:
                report.tasks_executed += len(ran.executed)
                report.llm_calls += ran.llm_calls
                report.llm_cache_hits += ran.llm_cache_hits
                report.cost += ran.cost
                if ran.executed:
                    report.executed.append(case.id)
            if case.status == "failed":
                report.failed.append(case.id)

    def _write_index(self, due: bool = False) -> None:
        if self.folder is None or (due and time.monotonic() - self._index_written < INDEX_SECONDS):
            return
        self._index_written = time.monotonic()
        self.folder.write_index(list(self.cases.values()), self.created_at)
        if not self._template_saved:
            self.folder.save_template(self._template)
            self._template_saved = True

    def copy(self, path: str | os.PathLike[str] | None = None) -> DatasetRun:
        """A copy of this run (every case's trace), in memory or in a new folder ``path``: run the copy
        after a change and compare it with this one, which stays as it is."""
        new = DatasetRun([copy.deepcopy(c) for c in self.cases.values()], path, created_at=time.time())
        new._template, new._builder = self._template, self._builder
        if new.folder is not None:
            if new.folder.exists() or (new.folder.path.is_dir() and any(new.folder.path.iterdir())):
                raise DatasetError(f"cannot copy the dataset run to `{new.folder.path}`: the folder is not empty")
            new.folder.create()
        for case in self.cases.values():
            stored = self._graphs.get(case.id)
            if stored is None and not (self.folder is not None and self.folder.has_case(case.file)):
                continue  # never ran: nothing to copy
            graph = TaskGraph.from_json((stored or self._open(case)).to_json())
            if new.folder is not None:
                file = new.cases[case.id].file = f"{CASES}/{case_file_name(case.id)}"
                new.folder.save_case(graph, file)
            else:
                new._graphs[case.id] = graph
        new._write_index()
        return new

    # -- what it holds and what would change -------------------------------------------------------
    def plan(self, registry: Registry | None, *, graph: GraphSource | None = None,
             **options: Unpack[RunSettings]) -> DatasetPlan:
        """What ``run(registry, **options)`` would execute now, case by case, running nothing."""
        from .plan import plan_dataset

        if graph is not None:
            self._set_source(graph)
            self._check_spec = True
        return plan_dataset(self, registry, options)

    def compare(self, after: DatasetRun, *, score: Score | None = None, registry: Registry | None = None) -> Comparison:
        """How the run ``after`` (e.g. a copy run after a change) differs from this one, case by case.

        ``score`` is a function ``score(ctx, case_input, output) -> number or bool``, or its name in
        ``registry``; its values in both runs are compared and the cases that got worse listed first.
        """
        from .compare import compare_runs

        return compare_runs(self, after, score=score, registry=registry)

    @property
    def failed(self) -> list[CaseResult]:
        return [c for c in self.cases.values() if c.status == "failed"]

    @property
    def outputs(self) -> dict[str, Any]:
        """Case id -> output, for the cases that are done."""
        return {c.id: c.output for c in self.cases.values() if c.status == "done"}

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per case (see :func:`.table.case_rows`)."""
        from .table import case_rows

        return case_rows(self)

    def task_rows(self) -> list[dict[str, Any]]:
        """One plain dict per task of every case (see :func:`.table.task_rows`); loads every trace."""
        from .table import task_rows

        return task_rows(self)

    def to_dataframe(self, tasks: bool = False) -> Any:
        """:meth:`rows` (or, with ``tasks=True``, :meth:`task_rows`) as a pandas DataFrame (needs pandas)."""
        from .table import to_dataframe

        return to_dataframe(self.task_rows() if tasks else self.rows())

    def __str__(self) -> str:
        from .table import summary_line

        return summary_line(self)

    def __repr__(self) -> str:
        where = f" in {str(self.path)!r}" if self.path is not None else ""
        return f"<DatasetRun{where}: {self}>"

    def _repr_html_(self) -> str:
        from .table import dataset_html

        return dataset_html(self)


def _check_options(llm: Any, settings: dict[str, Any]) -> None:
    """Refuse a bad run option once, before any case runs, as a run would."""
    from ..run.state import RunOptions

    RunOptions(llm=llm, **{k: v for k, v in settings.items() if k != "resample"})


def run_dataset(graph: GraphSource, inputs: Iterable[Any] | str | os.PathLike[str], registry: Registry,
                path: str | os.PathLike[str] | None = None, *, ids: CaseIds = None, fresh: bool = False,
                max_cases: int | None = None, **options: Unpack[RunSettings]) -> DatasetRun:
    """Run ``graph`` (or ``graph(case_input)``, a function building one) once per input; see :func:`arun_dataset`."""
    return run_sync(lambda: arun_dataset(graph, inputs, registry, path, ids=ids, fresh=fresh, max_cases=max_cases,
                                         **options))


async def arun_dataset(graph: GraphSource, inputs: Iterable[Any] | str | os.PathLike[str], registry: Registry,
                       path: str | os.PathLike[str] | None = None, *, ids: CaseIds = None, fresh: bool = False,
                       max_cases: int | None = None, **options: Unpack[RunSettings]) -> DatasetRun:
    """Run one case per input and return the :class:`DatasetRun`: :func:`open_dataset`, then its ``arun``.

    ``max_cases`` cases run at once; ``options`` are the run options of every case (``llm``,
    ``max_concurrency`` for all cases together, ``cache``, ``backend``, ...).
    """
    run = open_dataset(graph, inputs, path, ids=ids, fresh=fresh)
    return await run.arun(registry, max_cases=max_cases, **options)


def open_dataset(graph: GraphSource, inputs: Iterable[Any] | str | os.PathLike[str],
                 path: str | os.PathLike[str] | None = None, *, ids: CaseIds = None, fresh: bool = False) -> DatasetRun:
    """The dataset run of ``graph`` over ``inputs``, ready to plan or run; nothing runs.

    ``inputs`` is a list of JSON values or a ``.jsonl``/``.json``/``.csv`` file; ``ids`` names the cases
    (default: their position; a key of the inputs; or a function of an input). With ``path``, every
    case's trace and an index are kept in that folder. A folder that already holds a run of these cases
    is continued (an interrupted run resumes; after a change only what it affects runs; an input that
    changed re-runs what reads it), unless ``fresh``, which starts over.
    """
    values = read_inputs(inputs)
    found = case_ids(values, ids)
    folder = DatasetFolder(path) if path is not None else None
    if folder is not None and folder.exists() and not fresh:
        run = DatasetRun.load(folder.path)
        wanted = set(found)
        extra = [cid for cid in run.cases if cid not in wanted]
        if extra:
            shown = ", ".join(f"`{c}`" for c in extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
            raise DatasetError(f"`{path}` holds cases these inputs do not have ({shown}); pass fresh=True to start "
                               "over, or another path")
        for cid, value in zip(found, values, strict=True):
            run.cases.setdefault(cid, CaseResult(cid, value)).input = value
        run.cases = {cid: run.cases[cid] for cid in found}
        run._set_source(graph)
        run._check_spec = True
        return run
    if folder is not None and fresh and folder.exists():
        _clear(folder)
    return DatasetRun([CaseResult(cid, value) for cid, value in zip(found, values, strict=True)], path, graph)


def _clear(folder: DatasetFolder) -> None:
    """Start a folder over (``fresh=True``): remove the traces its index lists, then the index."""
    cases, _ = folder.read_index()
    for case in cases:
        if case.file is not None:
            folder.case_path(case.file).unlink(missing_ok=True)
    folder.save_template(None)
    folder.index_path.unlink()
