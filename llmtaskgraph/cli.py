"""The ``llmtaskgraph`` command: run a graph, plan a run, summarise a trace, make an HTML report, diff two traces.

::

    llmtaskgraph run MODULE:FUNCTION [-o trace.json] [--resume | --fresh] [--input JSON] [--llm offline] [--checkpoint-every N]
    llmtaskgraph plan MODULE:FUNCTION [TRACE] [--input JSON] [--llm offline]
    llmtaskgraph show TRACE
    llmtaskgraph report TRACE [-o report.html]
    llmtaskgraph diff A B [--all]
    llmtaskgraph export TRACE --otlp URL [--content] [--service-name NAME]
    llmtaskgraph dataset run | plan | show | compare ...   (see llmtaskgraph.dataset.cli)

``run`` calls ``FUNCTION()`` from ``MODULE`` (a dotted module name importable from the current
folder, or a path to a ``.py`` file); it must return ``(graph, registry)``: a :class:`TaskGraph`
and the mapping of names to functions it needs. Before anything runs it checks that the trace can
be written, and it never overwrites a trace by accident: when ``-o`` already holds one, pass
``--resume`` (continue from it: completed work is not repeated; what changed since and what runs
again is printed first) or ``--fresh`` (start over). The trace is saved even when tasks fail or the
run is interrupted (and every 10 s while it runs, or as ``--checkpoint-*`` say). ``plan`` prints
what such a run would execute and why, running nothing.

Exit codes: 0 success; 1 the run had failed tasks (``run``), the traces differ (``diff``), a case
failed (``dataset run``) or outputs differ (``dataset compare``);
2 a usage error, a file that is missing, unreadable or not a valid trace, or a run refused before
it starts (a registry missing functions, a run option that cannot work): the message says which and
why, without a Python traceback; 130 interrupted with Ctrl-C (the trace is saved first).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shlex
import sys
import tempfile
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from .errors import InvalidTraceError, LLMTaskGraphError, MissingFunctionError, RunOptionsError, TaskGraphError
from .llm.reply import stop_note
from .model.graph import TaskGraph
from .text import count_text, seconds_text, shorten, terminal_safe
from .trace.summary import task_rows, totals, utc_time

if TYPE_CHECKING:
    from .run.plan import Plan

__all__ = ["CLIError", "load_trace", "main", "print_table", "terminal_safe"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CLIError(LLMTaskGraphError):
    """A problem the user can fix (a bad file or argument): printed as one message, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llmtaskgraph`` script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.command(args)
    except LLMTaskGraphError as exc:  # a CLIError, or the library refusing before anything ran (e.g. in plan)
        print(f"llmtaskgraph: error: {terminal_safe(str(exc), keep_newlines=True)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `llmtaskgraph show t.json | head`
        sys.stderr.close()
        return EXIT_OK
    return code


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="llmtaskgraph", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"llmtaskgraph {__version__}")
    commands = parser.add_subparsers(dest="name", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="build a graph with MODULE:FUNCTION, run it and save the trace")
    run.add_argument("target", metavar="MODULE:FUNCTION", help="FUNCTION() must return (graph, registry)")
    run.add_argument("-o", "--output", default="trace.json", help="where to save the trace (default: trace.json)")
    existing = run.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true",
                          help="continue from the trace in --output: completed work is not repeated")
    existing.add_argument("--fresh", action="store_true", help="start over, overwriting the trace in --output")
    _add_input_options(run)
    run.add_argument("--max-concurrency", type=_positive(int), metavar="N", help="LLM calls in flight at once")
    run.add_argument("--max-tasks", type=_positive(int), metavar="N", help="stop after executing N tasks")
    run.add_argument("--timeout", type=_positive(float), metavar="SECONDS", help="start no new task after this long")
    run.add_argument("--checkpoint-every", type=_positive(int), metavar="N",
                     help="also save the trace (atomically) after every N finished tasks, so a killed run can resume")
    run.add_argument("--checkpoint-seconds", type=_positive(float), metavar="SECONDS",
                     help="also save the trace when this many seconds passed since the last save")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress display and no summary table")
    run.set_defaults(command=_cmd_run)

    plan = commands.add_parser("plan", help="print what a run would execute and why, running nothing")
    plan.add_argument("target", metavar="MODULE:FUNCTION", help="FUNCTION() must return (graph, registry)")
    plan.add_argument("trace", nargs="?", help="a saved trace to plan the next run of (default: the graph as built)")
    _add_input_options(plan)
    plan.set_defaults(command=_cmd_plan)

    show = commands.add_parser("show", help="print a summary table of a trace: tasks, statuses, tokens, time")
    show.add_argument("trace")
    show.set_defaults(command=_cmd_show)

    report = commands.add_parser("report", help="write a self-contained HTML report of a trace")
    report.add_argument("trace")
    report.add_argument("-o", "--output", help="HTML file to write (default: the trace's name with .html)")
    report.add_argument("--title", help="title shown in the report (default: the trace's file name)")
    report.set_defaults(command=_cmd_report)

    diff = commands.add_parser("diff", help="list the tasks whose spec, status, prompt, reply or output differ")
    diff.add_argument("a")
    diff.add_argument("b")
    diff.add_argument("--all", action="store_true", dest="all_fields",
                      help="compare every field, timings, fingerprints and call metadata included")
    diff.set_defaults(command=_cmd_diff)

    export = commands.add_parser("export", help="send a trace as OpenTelemetry spans to an OTLP/HTTP endpoint")
    export.add_argument("trace")
    export.add_argument("--otlp", metavar="URL", required=True,
                        help="the OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318 (Jaeger, Phoenix, Langfuse)")
    export.add_argument("--content", action="store_true", help="include prompts and replies (off by default)")
    export.add_argument("--service-name", default="llmtaskgraph", help="the service.name of the spans")
    export.set_defaults(command=_cmd_export)

    from .dataset.cli import add_dataset_commands  # (here: that module imports this one)

    add_dataset_commands(commands)
    return parser


def _add_input_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--input", metavar="JSON", help="set the graph input to this JSON value")
    command.add_argument("--llm", choices=("auto", "offline", "anthropic"), default="auto",
                         help="LLM backend (auto: anthropic when ANTHROPIC_API_KEY is set, else offline)")


# -- commands ---------------------------------------------------------------------------------------
def _cmd_run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    check_writable(out)  # before anything runs, user code included
    saved = _trace_to_resume(out, resume=args.resume, fresh=args.fresh)
    graph_input = parse_input(args.input) if args.input is not None else _NO_INPUT
    graph, registry = _build(args.target)
    if saved is not None:
        graph = _resume(args.target, graph, saved, out, keep_input=graph_input is _NO_INPUT)
    if graph_input is not _NO_INPUT:
        graph.graph_input = graph_input
    options: dict[str, Any] = {"llm": _make_llm(args.llm), "progress": False if args.quiet else None}
    for name in ("max_concurrency", "max_tasks", "timeout", "checkpoint_every", "checkpoint_seconds"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    options["checkpoint"] = out  # saved as it goes (every 10 s unless told otherwise): a killed run can resume
    if saved is not None:
        _print_plan(graph, registry, options, args.target, out)
    code = EXIT_OK
    before = graph.last_run  # replaced once the run has started, even if it then fails
    try:
        graph.run(registry, **options)
    except TaskGraphError as exc:
        print(terminal_safe(str(exc), keep_newlines=True), file=sys.stderr)
        code = EXIT_FAILED
    except LLMTaskGraphError as exc:
        if graph.last_run is before:  # refused before the run started (missing functions, a bad option): nothing to save
            raise CLIError(str(exc)) from exc
        _save(graph, out)  # e.g. a task added at run time with a clashing id
        raise CLIError(f"{exc} (the trace is saved to {out})") from exc
    except KeyboardInterrupt:
        print("interrupted; completed tasks are kept in the trace", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except BaseException:
        _save(graph, out)  # whatever went wrong, completed work is kept
        raise
    _save(graph, out)
    if not args.quiet:
        print_table(graph)
    stopped = graph.last_run.stopped if graph.last_run else None
    unfinished = f"stopped: {stopped}" if stopped else "failed tasks" if code == EXIT_FAILED else (
        "interrupted" if code == EXIT_INTERRUPTED else "")
    note = f" ({unfinished}; run again with --resume to continue: completed work is not repeated)" if unfinished else ""
    print(f"trace saved to {terminal_safe(str(out))}{note}", file=sys.stderr)
    return code


_NO_INPUT = object()
"""``--input`` was not given (None is a valid input: JSON ``null``)."""


def _trace_to_resume(out: Path, resume: bool, fresh: bool) -> TaskGraph | None:
    """The trace in ``out`` when resuming; None to start afresh; a :class:`CLIError` rather than
    overwrite a trace (or any other file with something in it) that neither flag allows to replace."""
    if fresh or not out.exists():
        if resume:
            print(f"no trace at {terminal_safe(str(out))} yet: starting a new one", file=sys.stderr)
        return None
    if not resume and out.stat().st_size == 0:
        return None  # an empty file (``mktemp``): nothing to lose
    try:
        saved = load_trace(out)
    except CLIError as exc:
        if resume:
            raise CLIError(f"cannot resume: {exc}") from exc
        raise CLIError(f"`{out}` exists and is not a trace ({exc}); pass --fresh to overwrite it, "
                       "or -o another file") from exc
    if resume:
        return saved
    counts = totals(saved).by_status
    states = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no tasks"
    raise CLIError(f"`{out}` already holds a trace ({states}); pass --resume to continue from it (completed work "
                   "is not repeated) or --fresh to start over (overwriting it), or -o another file")


def _resume(target: str, built: TaskGraph, saved: TaskGraph, out: Path, keep_input: bool) -> TaskGraph:
    """The saved graph, to run with the registry of ``target``, if it is the graph ``target`` builds."""
    from .trace.diff import same_json, spec_difference

    difference = spec_difference(built, saved)
    if difference is not None:
        raise CLIError(f"`{target}` builds another graph than the one saved in `{out}`: {difference}; "
                       "pass --fresh to start over (overwriting the trace), or -o another file")
    print(f"resuming from {terminal_safe(str(out))} ({len(saved.tasks)} tasks)", file=sys.stderr)
    if keep_input and not same_json(built.graph_input, saved.graph_input):
        print(f"note: the graph input in the trace differs from the one `{terminal_safe(target)}` sets; "
              "the trace's is kept (pass --input to set another)", file=sys.stderr)
    return saved


def _print_plan(graph: TaskGraph, registry: Mapping[str, Callable[..., Any]], options: dict[str, Any],
                target: str, out: Path, limit: int = 20) -> None:
    """What changed since the trace and what that runs again: the plan's first ``limit`` tasks."""
    plan = _plan(graph, registry, options)
    lines = str(plan).split("\n")  # a head line, one line per task that runs, then notes
    tasks = lines[1:1 + len(plan.will_run)]
    if len(tasks) > limit:
        command = shlex.join(["llmtaskgraph", "plan", target, str(out)])
        tasks = [*tasks[:limit], f"  … and {len(tasks) - limit} more (`{command}` lists them all)"]
    text = "\n".join([lines[0], *tasks, *lines[1 + len(plan.will_run):]])
    print(terminal_safe(text, keep_newlines=True), file=sys.stderr)


def _plan(graph: TaskGraph, registry: Mapping[str, Callable[..., Any]], options: dict[str, Any]) -> Plan:
    from .model.registry import check_registry

    options = {k: v for k, v in options.items() if k != "llm" or v is not None}
    try:
        check_registry(registry, graph.required_functions())  # as a run does first: it would stop there
    except MissingFunctionError as exc:
        raise CLIError(str(exc)) from exc
    return graph.plan(registry, **options)


def _cmd_plan(args: argparse.Namespace) -> int:
    from .trace.diff import spec_difference

    graph_input = parse_input(args.input) if args.input is not None else _NO_INPUT
    graph, registry = _build(args.target)
    if args.trace is not None:
        saved = load_trace(Path(args.trace))
        difference = spec_difference(graph, saved)
        if difference is not None:
            print(f"note: `{terminal_safe(args.target)}` builds another graph than the one in the trace "
                  f"({terminal_safe(difference)}); this is the plan of the trace's graph, which "
                  "`run --resume` would refuse to continue", file=sys.stderr)
        graph = saved
    if graph_input is not _NO_INPUT:
        graph.graph_input = graph_input
    plan = _plan(graph, registry, {"llm": _make_llm(args.llm)})
    print(terminal_safe(str(plan), keep_newlines=True))
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    print_table(load_trace(Path(args.trace)))
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from .views.report import render_report

    trace = Path(args.trace)
    graph = load_trace(trace)
    out = Path(args.output) if args.output else trace.with_suffix(".html")
    try:
        out.write_text(render_report(graph, title=args.title or trace.name), encoding="utf-8")
    except OSError as exc:
        raise CLIError(f"cannot write `{out}`: {exc.strerror or exc}") from exc
    print(f"report written to {terminal_safe(str(out))}", file=sys.stderr)
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    graph = load_trace(Path(args.trace))
    try:
        from .trace.otel import export_trace
    except ImportError as exc:
        raise CLIError(f'export needs `pip install "llmtaskgraph[otel]"` ({exc})') from exc
    count = export_trace(graph, args.otlp, include_content=args.content, service_name=args.service_name)
    print(f"{count} spans sent to {terminal_safe(args.otlp)}", file=sys.stderr)
    return EXIT_OK


def _cmd_diff(args: argparse.Namespace) -> int:
    from .trace.diff import diff_graphs

    result = diff_graphs(load_trace(Path(args.a)), load_trace(Path(args.b)), all_fields=args.all_fields)
    if not result:
        print("no differences")
        return EXIT_OK
    for line in result.lines():
        print(terminal_safe(line))
    return EXIT_FAILED


# -- helpers ----------------------------------------------------------------------------------------
def load_trace(path: Path) -> TaskGraph:
    """Load a trace, turning every way a file can be wrong into a :class:`CLIError` that names it."""
    if path.is_dir():
        raise CLIError(f"`{path}` is a folder, not a trace file")
    try:
        return TaskGraph.load(path)
    except FileNotFoundError as exc:
        raise CLIError(f"`{path}` does not exist") from exc
    except OSError as exc:
        raise CLIError(f"cannot read `{path}`: {exc.strerror or exc}") from exc
    except InvalidTraceError as exc:
        message = str(exc)
        raise CLIError(message if str(path) in message else f"`{path}`: {message}") from exc


def check_writable(out: Path) -> None:
    """Raise a :class:`CLIError` unless a trace can be saved to ``out`` the way ``save`` writes it
    (a temporary file in the same folder, renamed over ``out``), so no run is lost to a typo."""
    where = f"cannot save the trace to `{out}`"
    if out.is_dir():
        raise CLIError(f"{where}: it is a folder; give a file name, e.g. `{out / 'trace.json'}`")
    if out.exists() and not out.is_file():
        raise CLIError(f"{where}: it is not a regular file (a device or a pipe would be replaced by the trace)")
    folder = out.parent
    if not folder.exists():
        raise CLIError(f"{where}: the folder `{folder}` does not exist")
    if not folder.is_dir():
        raise CLIError(f"{where}: `{folder}` is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".check", dir=folder)
    except OSError as exc:
        raise CLIError(f"{where}: cannot write in the folder `{folder}` ({exc.strerror or exc})") from exc
    os.close(fd)
    os.unlink(probe)


def parse_input(text: str) -> Any:
    """The value of ``--input``: JSON that a trace can hold (no NaN or Infinity, no lone surrogates)."""
    from .fingerprint import json_problem

    def no_constant(name: str) -> Any:
        raise CLIError(f"--input holds {name}, which is not JSON (a trace could not save it); use null or a string")

    try:
        value = json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise CLIError(f"--input is not valid JSON: {exc}") from exc
    except ValueError as exc:  # a number too long to read
        raise CLIError(f"--input cannot be read: {exc}") from exc
    except RecursionError as exc:
        raise CLIError("--input is nested too deeply") from exc
    problem = json_problem(value, "input")
    if problem is not None:
        raise CLIError(f"--input is not JSON a trace can hold: `{problem[0]}` {problem[1]}")
    return value


def _save(graph: TaskGraph, path: Path) -> None:
    try:
        graph.save(path)
    except OSError as exc:
        raise CLIError(f"cannot save the trace to `{path}`: {exc.strerror or exc}") from exc


def _build(target: str) -> tuple[TaskGraph, Mapping[str, Callable[..., Any]]]:
    module_name, sep, func_name = target.rpartition(":")
    if not sep or not module_name or not func_name:
        raise CLIError(f"expected MODULE:FUNCTION (e.g. `mypkg.graphs:build` or `graphs.py:build`), got `{target}`")
    module = _import(module_name)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise CLIError(f"`{module_name}` has no function `{func_name}`")
    try:
        built = func()
    except Exception as exc:
        _user_code_failed(f"`{target}` raised", exc)
    if not (isinstance(built, tuple) and len(built) == 2 and isinstance(built[0], TaskGraph) and isinstance(built[1], Mapping)):
        raise CLIError(f"`{target}` must return (graph, registry): a TaskGraph and a mapping of name -> function; "
                       f"it returned {type(built).__name__}")
    return built[0], built[1]


def _import(name: str) -> Any:
    if name.endswith(".py") or "/" in name or "\\" in name:
        path = Path(name)
        if not path.is_file():
            raise CLIError(f"`{name}` does not exist")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise CLIError(f"`{name}` cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))
        sys.modules[path.stem] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            _user_code_failed(f"importing `{name}` raised", exc)
        return module
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules in the current folder are importable
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise CLIError(f"no module named `{name}` (run from the folder that holds it, or give a path to the .py file)") from exc
        _user_code_failed(f"importing `{name}` raised", exc)
    except Exception as exc:
        _user_code_failed(f"importing `{name}` raised", exc)


def _user_code_failed(what: str, exc: BaseException) -> NoReturn:
    """A bug in the user's own module: say where, in one line, rather than dumping our stack."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    raise CLIError(f"{what} {type(exc).__name__}: {exc}{where}") from exc


def _make_llm(choice: str) -> Any:
    if choice == "offline":
        from .llm import OfflineLLM

        return OfflineLLM()
    if choice == "anthropic":
        try:
            from .llm.anthropic import AnthropicLLM
        except ImportError as exc:
            raise CLIError(f"the anthropic backend needs `pip install \"llmtaskgraph[anthropic]\"` ({exc})") from exc
        try:
            return AnthropicLLM()
        except RunOptionsError as exc:  # no API key
            raise CLIError(str(exc)) from exc
    return None


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: ``kind`` (int or float), greater than zero."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value

    return parse


def print_table(graph: TaskGraph, file: TextIO | None = None) -> None:
    """The summary table ``show`` prints: one row per task (sub-graph tasks indented), then totals."""
    out = file or sys.stdout
    rows = task_rows(graph)
    sums = totals(graph, rows)
    t0 = sums.started_at
    table = [("TASK", "TYPE", "STATUS", "TOKENS IN", "OUT", "RETRIES", "COST", "TIME S", "START +S")]
    for row in rows:
        rec = row.task.record
        name = terminal_safe("  " * row.depth + row.path.rsplit(" > ", 1)[-1])
        start = row.started_at
        table.append((
            shorten(name, 40), row.task.type, terminal_safe(rec.status)[:10],
            *((count_text(row.usage.input_tokens), count_text(row.usage.output_tokens), count_text(row.usage.retries),
               row.usage.cost_text) if row.usage.calls else ("", "", "", "")),
            seconds_text(row.duration) if row.duration is not None or row.bad_timing else "",
            "" if rec.started_at is None else "?" if t0 is None or start is None else seconds_text(start - t0),
        ))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        cells = [r[0].ljust(widths[0]), *(c.ljust(w) for c, w in zip(r[1:3], widths[1:3], strict=True)),
                 *(c.rjust(w) for c, w in zip(r[3:], widths[3:], strict=True))]
        print("  ".join(cells).rstrip(), file=out)
    statuses = ", ".join(f"{n} {terminal_safe(s)}" for s, n in sorted(sums.by_status.items())) or "no tasks"
    wall = "" if sums.wall_time is None else f"; wall time {seconds_text(sums.wall_time)} s, at most {sums.max_concurrency} at once"
    when = "" if t0 is None else f"; started {utc_time(t0)}"
    usage = sums.usage
    print(f"\n{sums.tasks} tasks ({statuses}); {usage.calls} LLM calls, tokens {count_text(usage.input_tokens)} in, "
          f"{count_text(usage.output_tokens)} out, {count_text(usage.retries)} retries, cost {usage.cost_text}{wall}{when}",
          file=out)
    if usage.by_model:
        models = "; ".join(f"{terminal_safe(m)} {u.calls} call{'s' if u.calls != 1 else ''} {u.cost_text}"
                           for m, u in usage.by_model.items())
        print(f"cost by model: {models}", file=out)
    for row in rows:  # a reply cut off, refused or paused is not a complete answer, whatever its status says
        note = stop_note(row.task.record.response)
        if note is not None:
            print(f"stopped early: `{terminal_safe(row.path)}`: {note}", file=out)


if __name__ == "__main__":
    sys.exit(main())
