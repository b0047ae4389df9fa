"""``llmtaskgraph dataset run | plan | show | compare``: datasets from the command line.

::

    llmtaskgraph dataset run graphs.py:build reviews.jsonl -o runs/v1      # one trace per case + an index
    llmtaskgraph dataset run graphs.py:build reviews.jsonl -o runs/v1 --resume   # continue; after a change, only what it affects
    llmtaskgraph dataset plan graphs.py:build runs/v1                      # what --resume would run, running nothing
    llmtaskgraph dataset show runs/v1                                      # one line per case, then totals
    llmtaskgraph dataset compare runs/v1 runs/v2 --score graphs.py:score   # what changed, worst first

``MODULE:FUNCTION`` is what ``llmtaskgraph run`` takes: ``FUNCTION()`` returns ``(graph, registry)``;
each input becomes that graph's input in its own case. Exit codes are those of the other commands:
``run`` 1 when a case failed, 130 when interrupted (everything finished is kept: ``--resume``);
``compare`` 1 when an output differs; 2 for a usage error or a bad file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ..cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, CLIError, _build, _import, _make_llm, _positive
from ..errors import DatasetError
from ..text import count_text, shorten, terminal_safe
from .run import DatasetRun, open_dataset
from .store import DatasetFolder

__all__ = ["add_dataset_commands"]


def add_dataset_commands(commands: Any) -> None:
    """Add ``dataset`` and its sub-commands to the ``llmtaskgraph`` command's sub-parsers."""
    dataset = commands.add_parser("dataset", help="run a graph over many inputs, plan, show and compare dataset runs")
    sub = dataset.add_subparsers(dest="dataset_command", required=True, metavar="SUBCOMMAND")

    run = sub.add_parser("run", help="run MODULE:FUNCTION's graph once per input; save every case's trace in a folder")
    run.add_argument("target", metavar="MODULE:FUNCTION", help="FUNCTION() must return (graph, registry)")
    run.add_argument("inputs", help="a .jsonl, .json or .csv file: one graph input per line, item or row")
    run.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the traces and the index")
    existing = run.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", help="continue the run in DIR: finished work is not repeated")
    existing.add_argument("--fresh", action="store_true", help="start over, replacing the run in DIR")
    run.add_argument("--ids", metavar="KEY", help="take each case's id from this key of its input (default: its position)")
    run.add_argument("--llm", choices=("auto", "offline", "anthropic"), default="auto",
                     help="LLM backend (auto: anthropic when ANTHROPIC_API_KEY is set, else offline)")
    run.add_argument("--max-concurrency", type=_positive(int), metavar="N", help="LLM calls in flight at once, all cases")
    run.add_argument("--max-cases", type=_positive(int), metavar="N", help="cases run at once (default: twice the calls)")
    run.add_argument("--cache", metavar="DIR", help="a response cache folder shared by every case (and later runs)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress line and no table")
    run.set_defaults(command=_cmd_run)

    plan = sub.add_parser("plan", help="print what `dataset run --resume` would execute, running nothing")
    plan.add_argument("target", metavar="MODULE:FUNCTION", help="FUNCTION() must return (graph, registry)")
    plan.add_argument("folder", metavar="DIR")
    plan.add_argument("--llm", choices=("auto", "offline", "anthropic"), default="auto")
    plan.set_defaults(command=_cmd_plan)

    show = sub.add_parser("show", help="print one line per case of a dataset run, then totals")
    show.add_argument("folder", metavar="DIR")
    show.set_defaults(command=_cmd_show)

    compare = sub.add_parser("compare", help="list the cases whose output differs between two dataset runs")
    compare.add_argument("a", metavar="BEFORE")
    compare.add_argument("b", metavar="AFTER")
    compare.add_argument("--score", metavar="MODULE:FUNCTION",
                         help="score(ctx, case_input, output) -> number or bool, compared between the runs")
    compare.set_defaults(command=_cmd_compare)


def _cmd_run(args: argparse.Namespace) -> int:
    folder = DatasetFolder(args.output)
    if folder.exists() and not (args.resume or args.fresh):
        raise CLIError(f"`{args.output}` already holds a dataset run ({_load(args.output)}); pass --resume to continue it "
                       "(finished work is not repeated) or --fresh to start over, or -o another folder")
    if folder.path.exists() and not folder.exists() and (not folder.path.is_dir() or any(folder.path.iterdir())):
        raise CLIError(f"`{args.output}` exists and is not a dataset run folder; give -o a new or empty folder")
    graph, registry = _build(args.target)
    options: dict[str, Any] = {"llm": _make_llm(args.llm), "progress": False if args.quiet else None}
    if args.max_concurrency is not None:
        options["max_concurrency"] = args.max_concurrency
    if args.cache is not None:
        options["cache"] = args.cache
    resuming = args.resume and folder.exists()
    run = open_dataset(graph, args.inputs, args.output, ids=args.ids, fresh=args.fresh)
    if resuming:
        plan = run.plan(registry, **{k: v for k, v in options.items() if k != "progress"})
        print(terminal_safe(str(plan), keep_newlines=True), file=sys.stderr)
    code = EXIT_OK
    try:
        run.run(registry, max_cases=args.max_cases, **options)
    except KeyboardInterrupt:
        print(f"interrupted; finished work is kept in {terminal_safe(args.output)}: run again with --resume to continue",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.quiet:
        print_cases(run)
    if run.failed:
        code = EXIT_FAILED
    if run.last_run is not None:
        print(terminal_safe(str(run.last_run)), file=sys.stderr)
    print(f"dataset run saved to {terminal_safe(args.output)}", file=sys.stderr)
    return code


def _cmd_plan(args: argparse.Namespace) -> int:
    graph, registry = _build(args.target)
    run = _load(args.folder)
    print(terminal_safe(str(run.plan(registry, graph=graph, llm=_make_llm(args.llm))), keep_newlines=True))
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    print_cases(_load(args.folder))
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    score = _function(args.score) if args.score else None
    comparison = _load(args.a).compare(_load(args.b), score=score)
    for line in comparison.lines():
        print(terminal_safe(line))
    return EXIT_FAILED if comparison else EXIT_OK


def _load(folder: str) -> DatasetRun:
    try:
        return DatasetRun.load(folder)
    except DatasetError as exc:
        raise CLIError(str(exc)) from exc


def _function(target: str) -> Callable[..., Any]:
    module_name, sep, name = target.rpartition(":")
    if not sep or not module_name or not name:
        raise CLIError(f"expected MODULE:FUNCTION for --score (e.g. `graphs.py:score`), got `{target}`")
    fn = getattr(_import(module_name), name, None)
    if not callable(fn):
        raise CLIError(f"`{module_name}` has no function `{name}`")
    return fn  # type: ignore[no-any-return]


def print_cases(run: DatasetRun, file: Any = None) -> None:
    """One line per case (id, status, LLM calls, output or first error), then the totals."""
    out = file or sys.stdout
    table = [("CASE", "STATUS", "LLM CALLS", "OUTPUT OR ERROR")]
    for case in run:
        shown = case.errors[0] if case.errors else "" if case.output is None else _text(case.output)
        table.append((shorten(terminal_safe(case.id), 30), case.status, count_text(case.llm_calls),
                      shorten(terminal_safe(shown), 80)))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table:
        print(f"{r[0].ljust(widths[0])}  {r[1].ljust(widths[1])}  {r[2].rjust(widths[2])}  {r[3]}".rstrip(), file=out)
    print(f"\n{terminal_safe(str(run))}", file=out)


def _text(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
