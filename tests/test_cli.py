"""The ``llmtaskgraph`` command: run, show, report, diff; exit codes and messages on bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import llmtaskgraph.cli as cli_module
from llmtaskgraph import LLMTaskGraphError, TaskGraph
from llmtaskgraph.cli import CLIError, main, terminal_safe

GRAPHS = '''
import os
from pathlib import Path
from llmtaskgraph import LLMTask, PythonTask, TaskGraph

LOG = Path(__file__).with_name("calls.log")


def logged(name, fn):
    def call(*args, **kwargs):
        with LOG.open("a") as f:
            f.write(name + "\\n")
        return fn(*args, **kwargs)
    return call


def check(ctx, a, b):
    if Path(__file__).with_name("break").exists():
        raise RuntimeError("the check is broken")
    return [a, b]


def build():
    graph = TaskGraph({"topic": "cats"})
    load = graph.add_task(PythonTask("load"))
    ask = graph.add_task(LLMTask("ask", "parse", load))
    ask2 = graph.add_task(LLMTask("ask", "parse", load, id="ask_again", params={"temperature": 1}))
    graph.add_task(PythonTask("check", ask, ask2))
    registry = {
        "load": lambda ctx: ctx.graph_input["topic"],
        "ask": lambda ctx, topic: f"Tell me about {topic}",
        "parse": lambda ctx, text: text.upper(),
        "check": check,
    }
    return graph, {name: logged(name, fn) for name, fn in registry.items()}


def not_a_graph():
    return 42


def raises():
    raise ValueError("cannot build today")


def missing_functions():
    graph, registry = build()
    return graph, {"load": registry["load"]}


def build_changed():
    graph, registry = build()
    graph.add_task(PythonTask("load", id="extra"))
    return graph, registry


def planner():
    """A task that adds one task per word of the graph input, at run time."""
    graph = TaskGraph("a b c")
    split = graph.add_task(PythonTask("split"))
    graph.add_task(PythonTask("spawn", split))

    def spawn(ctx, words):
        for word in words:
            ctx.add_task(PythonTask("shout", inputs={"word": word}, key=word))
        return len(words)

    registry = {"split": lambda ctx: ctx.graph_input.split(), "spawn": spawn, "shout": lambda ctx, word: word.upper()}
    return graph, {name: logged(name, fn) for name, fn in registry.items()}
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "graphs.py").write_text(GRAPHS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # `run file.py:f` puts the file's folder first: not for the next test
    for name in ("graphs", "hostile", "broken_mod", "chain", "wide"):  # main() runs in this process: import each test's own
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def calls(project: Path) -> list[str]:
    log = project / "calls.log"
    return log.read_text().split() if log.exists() else []


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_saves_the_trace_and_show_summarises_it(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline")
    assert code == 0, err
    assert "trace saved to t.json" in err
    graph = TaskGraph.load(project / "t.json")
    assert [t.status for t in graph.tasks.values()] == ["done"] * 4
    assert sorted(calls(project)) == ["ask", "ask", "check", "load", "parse", "parse"]

    code, out, err = run_cli(capsys, "show", "t.json")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["TASK", "TYPE", "STATUS", "TOKENS", "IN", "OUT", "RETRIES", "COST", "TIME", "S", "START", "+S"]
    for tid, line in zip(graph.tasks, lines[1:5], strict=True):
        assert line.split()[:3] == [tid, graph.tasks[tid].type, "done"]
    usage = graph.usage()
    assert usage.input_tokens > 0
    assert f"4 tasks (4 done); 2 LLM calls, tokens {usage.input_tokens} in, {usage.output_tokens} out, 0 retries" in out
    assert "; wall time " in out and " at once; started " in out  # (how many at once: see test_summary.py)


def test_a_failed_run_exits_1_keeps_the_trace_and_resume_repeats_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "break").touch()
    code, _out, err = run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline", "-q")
    assert code == 1
    assert "`check`: RuntimeError in run: the check is broken" in err
    assert "Traceback" not in err
    graph = TaskGraph.load(project / "t.json")
    assert graph.tasks["check"].status == "failed" and graph.tasks["ask_again"].status == "done"
    first = calls(project)

    assert "failed tasks; run again with --resume to continue: completed work is not repeated" in err

    (project / "break").unlink()
    code, _out, err = run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline", "--resume", "-q")
    assert code == 0, err
    assert "resuming from t.json (4 tasks)" in err
    assert "plan: 1 of 4 task(s) will run, 0 LLM call(s)\n  check  " in err  # said before it runs
    assert calls(project)[len(first):] == ["check"]  # only the failed task ran again


def test_report_writes_one_html_file_next_to_the_trace(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline", "-q")
    code, _out, err = run_cli(capsys, "report", "t.json")
    assert code == 0 and "report written to t.html" in err
    page = (project / "t.html").read_text()
    for tid in ("load", "ask", "ask_again", "check"):
        assert f'data-path="{tid}"' in page
    assert "Tell me about cats" in page and "<svg" in page
    assert "http://" not in page.replace("http://www.w3.org/", "") and "https://" not in page  # nothing to fetch


def test_report_of_a_trace_whose_name_is_not_utf8(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline", "-q")
    name = os.fsdecode(b"t\xff.json")  # as the name arrives in sys.argv
    (project / "t.json").rename(project / name)
    code, _out, err = run_cli(capsys, "report", name)
    assert code == 0 and "report written to t\\udcff.html" in err
    assert "<title>t\\udcff.json</title>" in (project / os.fsdecode(b"t\xff.html")).read_text()


def test_diff_names_the_tasks_that_changed(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "run", "graphs:build", "-o", "a.json", "--llm", "offline", "-q")
    run_cli(capsys, "run", "graphs:build", "-o", "b.json", "--llm", "offline", "-q")
    code, out, _ = run_cli(capsys, "diff", "a.json", "b.json")
    assert (code, out) == (0, "no differences\n")  # timings differ, and are left out by default
    code, out, _ = run_cli(capsys, "diff", "a.json", "b.json", "--all")
    assert code == 1 and "started_at" in out

    graph = TaskGraph.load(project / "b.json")
    graph.tasks["ask_again"].edit(response="a different reply")
    graph.save(project / "b.json")
    code, out, _ = run_cli(capsys, "diff", "a.json", "b.json")
    assert code == 1
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["changed `ask_again`"]  # `check` is stale, not changed in the file
    assert 'reply "[offline reply' in lines[0] and '-> "a different reply"' in lines[0]

    run_cli(capsys, "run", "graphs:build", "-o", "c.json", "--llm", "offline", "-q", "--input", '{"topic": "dogs"}')
    code, out, _ = run_cli(capsys, "diff", "a.json", "c.json")
    assert code == 1
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines if not line.startswith(" ")] == [
        "changed graph graph_input", "changed `load`", "changed `ask`", "changed `ask_again`", "changed `check`",
    ]
    assert lines[-2].startswith("changed `check`: output (94 -> 94 characters, word diff below)")
    assert lines[-1].startswith('    output: ["[OFFLINE REPLY [-') and "] TELL ME ABOUT [-CATS-]{+DOGS+}" in lines[-1]


BAD_FILES = {
    "missing.json": (None, "`missing.json` does not exist"),
    "folder": ("<dir>", "`folder` is a folder, not a trace file"),
    "broken.json": ("{", "`broken.json` is not valid JSON"),
    "latin1.json": (b"\xff\xfe\x00", "`latin1.json` is not UTF-8 text"),
    "list.json": ("[]", "invalid trace at `<root>`: expected an object, got a list"),
    "bad_dep.json": ("BAD_DEP", "invalid trace at `tasks[1].deps`: task `b` refers to `nowhere`"),
}


@pytest.mark.parametrize("command", ["show", "report", "diff"])
@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_trace_files_exit_2_with_one_clear_line(
    project: Path, capsys: pytest.CaptureFixture[str], command: str, name: str
) -> None:
    content, message = BAD_FILES[name]
    if content == "<dir>":
        (project / name).mkdir()
    elif content == "BAD_DEP":
        trace = {"format": "llmtaskgraph/1", "tasks": [
            {"id": "a", "type": "python", "fn": "f"}, {"id": "b", "type": "python", "fn": "f", "deps": ["nowhere"]}]}
        (project / name).write_text(json.dumps(trace))
    elif isinstance(content, bytes):
        (project / name).write_bytes(content)
    elif content is not None:
        (project / name).write_text(content)
    args = [command, name] + (["ok.json"] if command == "diff" else [])
    code, _out, err = run_cli(capsys, *args)
    assert code == 2
    assert err.startswith("llmtaskgraph: error: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("target", "message"), [
    ("graphs", "expected MODULE:FUNCTION"),
    ("nosuchmodule:build", "no module named `nosuchmodule`"),
    ("graphs:nosuch", "`graphs` has no function `nosuch`"),
    ("graphs:not_a_graph", "`graphs:not_a_graph` must return (graph, registry)"),
    ("graphs:raises", "`graphs:raises` raised ValueError: cannot build today at "),
    ("graphs:missing_functions", "`ask` is missing (needed by `ask`, `ask_again`)"),
    ("graphs.py:build", None),
    ("nosuch.py:build", "`nosuch.py` does not exist"),
])
def test_run_targets(project: Path, capsys: pytest.CaptureFixture[str], target: str, message: str | None) -> None:
    code, _out, err = run_cli(capsys, "run", target, "-o", "t.json", "--llm", "offline", "-q")
    if message is None:
        assert code == 0, err
        return
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (project / "t.json").exists()


def test_a_module_that_fails_to_import_is_reported_in_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "broken_mod.py").write_text("import nosuchdependency_xyz\n")
    code, _, err = run_cli(capsys, "run", "broken_mod:build")
    assert code == 2
    assert "importing `broken_mod` raised ModuleNotFoundError: No module named 'nosuchdependency_xyz' at " in err


def test_hostile_task_ids_cannot_drive_the_terminal(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "hostile.py").write_text(textwrap.dedent('''
        from llmtaskgraph import PythonTask, TaskGraph
        def build():
            graph = TaskGraph()
            graph.add_task(PythonTask("f", id="\\x1b[2J\\x1b[31mred\\rX"))
            return graph, {"f": lambda ctx: 1}
    '''))
    assert run_cli(capsys, "run", "hostile:build", "-o", "h.json", "-q")[0] == 0
    code, out, _ = run_cli(capsys, "show", "h.json")
    assert code == 0 and "\x1b" not in out and "\r" not in out
    assert "\\x1b[2J\\x1b[31mred\\rX" in out
    assert terminal_safe("plain ü 字") == "plain ü 字"


def test_the_installed_entry_point(project: Path) -> None:
    script = Path(sys.executable).with_name("llmtaskgraph")
    assert script.exists(), "reinstall the package (pip install -e .) to create the entry point"
    version = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("llmtaskgraph ")
    bad = subprocess.run([script, "show", "missing.json"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr == "llmtaskgraph: error: `missing.json` does not exist\n"
    usage = subprocess.run([script, "frobnicate"], capture_output=True, text=True)
    assert usage.returncode == 2 and "invalid choice: 'frobnicate'" in usage.stderr


def test_run_checkpoints_the_trace_while_it_runs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "chain.py").write_text(textwrap.dedent('''
        import json
        from pathlib import Path
        from llmtaskgraph import PythonTask, TaskGraph

        def peek(ctx, *previous):
            """Reads the checkpoint as it stands while this task runs: how many tasks were done then."""
            path = Path(ctx.graph_input)
            data = json.loads(path.read_text()) if path.exists() else {"tasks": []}
            return sum(t["status"] == "done" for t in data["tasks"])

        def build():
            graph = TaskGraph("chain.json")
            last = None
            for i in range(5):
                last = graph.add_task(PythonTask("peek", *([last] if last else []), id=f"p{i}"))
            return graph, {"peek": peek}
    '''))
    code, _, err = run_cli(capsys, "run", "chain:build", "-o", "chain.json", "--checkpoint-every", "1", "-q")
    assert code == 0, err
    seen = [TaskGraph.load(project / "chain.json").tasks[f"p{i}"].output for i in range(5)]
    assert seen == [0, 1, 2, 3, 4]  # each task found the ones before it already saved
    code, _, err = run_cli(capsys, "run", "chain:build", "-o", "other.json", "-q", "--input", '"other.json"')
    assert code == 0, err
    assert [TaskGraph.load(project / "other.json").tasks[f"p{i}"].output for i in range(5)] == [0] * 5


def test_a_big_trace_reports_every_task_but_draws_the_first_500_in_the_timeline(tmp_path: Path) -> None:
    from llmtaskgraph import PythonTask
    from llmtaskgraph.views.report import MAX_TIMELINE_ROWS, render_report

    graph = TaskGraph()
    for i in range(MAX_TIMELINE_ROWS + 100):
        graph.add_task(PythonTask("f", id=f"t{i}"))
    graph.run({"f": lambda ctx: 1}, progress=False)
    page = render_report(graph)
    assert page.count('<details data-path="') == MAX_TIMELINE_ROWS + 100
    assert page.count('<rect class="bar"') == MAX_TIMELINE_ROWS
    assert "100 later tasks are not drawn in the timeline" in page


@pytest.mark.parametrize(("args", "message"), [
    (["--max-concurrency", "0"], "argument --max-concurrency: must be greater than 0, got 0"),
    (["--checkpoint-every", "x"], "argument --checkpoint-every: expected a number, got 'x'"),
])
def test_bad_run_options_are_usage_errors(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse's own exit, status 2, before anything runs
        main(["run", "graphs:build", "--llm", "offline", *args])
    assert exited.value.code == 2 and message in capsys.readouterr().err
    assert calls(project) == []


def test_bad_input_json_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "run", "graphs:build", "--llm", "offline", "--input", "{nope")
    assert code == 2 and "--input is not valid JSON" in err and calls(project) == []


def test_the_anthropic_backend_without_a_key_is_a_clear_error(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    code, _, err = run_cli(capsys, "run", "graphs:build", "--llm", "anthropic")
    assert code == 2 and "AnthropicLLM needs an API key: set ANTHROPIC_API_KEY" in err and "Traceback" not in err



def test_cli_errors_are_llmtaskgraph_errors(project: Path) -> None:
    with pytest.raises(CLIError) as info:
        cli_module.load_trace(Path("missing.json"))  # (the project folder is the current one)
    assert isinstance(info.value, LLMTaskGraphError) and str(info.value) == "`missing.json` does not exist"


@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resume"])
def test_a_run_refused_before_it_starts_exits_2_in_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, resume: bool
) -> None:
    # No flag takes a value the run options refuse (argparse checks them all), so hand the run a bad backend.
    if resume:
        assert run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline", "-q")[0] == 0
        kept = (project / "t.json").read_bytes()
    monkeypatch.setattr(cli_module, "_make_llm", lambda choice: 42)
    code, out, err = run_cli(capsys, "run", "graphs:build", "-o", "t.json", "-q", *(["--resume"] if resume else []))
    assert code == 2 and out == "", err
    line = err.strip().splitlines()[-1]  # (a resumed run first says where it resumes from)
    assert line.startswith("llmtaskgraph: error: `llm` must be an LLM backend (AnthropicLLM(), ") and line.endswith("got int 42")
    assert "Traceback" not in err and "trace saved" not in err
    if resume:
        assert (project / "t.json").read_bytes() == kept and len(calls(project)) == 6  # the first run's only
    else:
        assert calls(project) == [] and not (project / "t.json").exists()


def test_an_unknown_task_in_the_run_options_exits_2_and_saves_nothing(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI has no break/resample flag naming tasks; this stands in for one.
    run = TaskGraph.run
    monkeypatch.setattr(TaskGraph, "run", lambda self, registry, **o: run(self, registry, break_before=["ask_agian"], **o))
    code, _, err = run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline", "-q")
    assert code == 2 and "Traceback" not in err
    assert err == "llmtaskgraph: error: no task `ask_agian` in this graph; did you mean `ask_again`? " \
        "(tasks inside sub-graphs are named `outer > inner`)\n"
    assert calls(project) == [] and not (project / "t.json").exists()


# -- where the trace goes: checked before anything runs, never overwritten by accident ----------------
def unwritable_folder(project: Path) -> Path:
    """A folder this process cannot create files in (root ignores permissions, but not sysfs)."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = project / "locked"
    folder.mkdir(mode=0o555)
    return folder


@pytest.mark.parametrize(("where", "message"), [
    ("nofolder/t.json", "cannot save the trace to `nofolder/t.json`: the folder `nofolder` does not exist"),
    ("graphs.py/t.json", "cannot save the trace to `graphs.py/t.json`: `graphs.py` is not a folder"),
    (".", "cannot save the trace to `.`: it is a folder; give a file name, e.g. `trace.json`"),
    ("fifo", "cannot save the trace to `fifo`: it is not a regular file"),
    ("<unwritable>", "cannot write in the folder"),
])
def test_run_checks_where_the_trace_goes_before_running_anything(
    project: Path, capsys: pytest.CaptureFixture[str], where: str, message: str
) -> None:
    os.mkfifo(project / "fifo")
    if where == "<unwritable>":
        where = str(unwritable_folder(project) / "t.json")
    code, _out, err = run_cli(capsys, "run", "graphs:build", "-o", where, "--llm", "offline", "-q")
    assert code == 2 and err.startswith("llmtaskgraph: error: ") and message in err, err
    assert calls(project) == []  # not one task ran (nor LLM call was paid for) before the check
    assert (project / "fifo").exists() and not (project / "fifo").is_file()


def test_a_second_run_refuses_to_overwrite_the_trace_and_says_what_to_pass(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "break").touch()
    assert run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline", "-q")[0] == 1
    before, first = (project / "t.json").read_bytes(), calls(project)

    code, _out, err = run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline", "-q")
    assert code == 2
    assert err == ("llmtaskgraph: error: `t.json` already holds a trace (3 done, 1 failed); pass --resume to continue "
                   "from it (completed work is not repeated) or --fresh to start over (overwriting it), "
                   "or -o another file\n")
    assert calls(project) == first and (project / "t.json").read_bytes() == before  # nothing ran, nothing lost

    code, _out, err = run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline", "-q", "--fresh")
    assert code == 1, err
    assert sorted(calls(project)[len(first):]) == sorted(first)  # started over: everything ran again
    assert TaskGraph.load(project / "t.json").tasks["check"].status == "failed"


def test_resume_and_fresh_together_are_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "graphs:build", "--resume", "--fresh"])
    assert exited.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "`t.json` exists and is not a trace (invalid trace: `t.json` is not valid JSON: Expecting value"),
    ('{"format": "llmtaskgraph/2"}', "`t.json` exists and is not a trace (`t.json`: invalid trace at `tasks`: required"),
])
def test_a_file_that_is_not_a_trace_is_not_overwritten_either(
    project: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    (project / "t.json").write_text(content)
    code, _out, err = run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline", "-q")
    assert code == 2 and message in err and "pass --fresh to overwrite it" in err, err
    assert (project / "t.json").read_text() == content and calls(project) == []
    code, _out, err = run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline", "-q", "--resume")
    assert code == 2 and "cannot resume: " in err and calls(project) == []
    assert run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline", "-q", "--fresh")[0] == 0
    assert TaskGraph.load(project / "t.json").tasks["check"].status == "done"


def test_an_empty_file_is_overwritten_and_resume_without_a_trace_starts_one(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "empty.json").touch()  # what `mktemp` leaves
    code, _out, err = run_cli(capsys, "run", "graphs:build", "-o", "empty.json", "--llm", "offline", "-q")
    assert code == 0, err
    code, _out, err = run_cli(capsys, "run", "graphs:build", "-o", "new.json", "--llm", "offline", "-q", "--resume")
    assert code == 0 and "no trace at new.json yet: starting a new one" in err
    assert len(TaskGraph.load(project / "new.json").tasks) == 4


def test_resume_refuses_a_trace_of_another_graph_unless_fresh(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline", "-q")[0] == 0
    first = calls(project)
    code, _out, err = run_cli(capsys, "run", "graphs:build_changed", "-o", "t.json", "--llm", "offline", "-q", "--resume")
    assert code == 2
    assert ("`graphs:build_changed` builds another graph than the one saved in `t.json`: task `extra` is not in the "
            "trace; pass --fresh to start over") in err
    assert calls(project) == first
    code, _out, err = run_cli(capsys, "run", "graphs:build_changed", "-o", "t.json", "--llm", "offline", "-q", "--fresh")
    assert code == 0, err
    assert list(TaskGraph.load(project / "t.json").tasks) == ["load", "ask", "ask_again", "check", "extra"]


def test_resume_keeps_tasks_added_at_run_time_and_repeats_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "run", "graphs:planner", "-o", "p.json", "-q")[0] == 0
    assert sorted(calls(project)) == ["shout", "shout", "shout", "spawn", "split"]
    code, _out, err = run_cli(capsys, "run", "graphs:planner", "-o", "p.json", "-q", "--resume")
    assert code == 0, err
    assert "resuming from p.json (5 tasks)" in err and "plan: 0 of 5 task(s) will run" in err
    assert len(calls(project)) == 5  # nothing ran again

    code, _out, err = run_cli(capsys, "run", "graphs:planner", "-o", "p.json", "-q", "--resume", "--input", '"a b d"')
    assert code == 0, err
    assert "\n  split " in err and "\n  spawn " in err  # the plan names what the new input runs again
    graph = TaskGraph.load(project / "p.json")
    assert [t.output for t in graph.tasks.values()] == [["a", "b", "d"], 3, "A", "B", "D"]
    assert sorted(calls(project)[5:]) == ["shout", "spawn", "split"]  # `a` and `b` were kept


def test_resume_says_when_the_trace_keeps_another_input_than_the_code_sets(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run_cli(capsys, "run", "graphs:build", "-o", "t.json", "-q", "--llm", "offline",
                              "--input", '{"topic": "dogs"}')
    assert code == 0, err
    code, _out, err = run_cli(capsys, "run", "graphs:build", "-o", "t.json", "-q", "--llm", "offline", "--resume")
    assert code == 0, err
    assert "note: the graph input in the trace differs from the one `graphs:build` sets; the trace's is kept" in err
    assert TaskGraph.load(project / "t.json").graph_input == {"topic": "dogs"}


def test_a_long_plan_is_cut_when_resuming(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "wide.py").write_text(textwrap.dedent('''
        from llmtaskgraph import PythonTask, TaskGraph
        def build():
            graph = TaskGraph(1)
            for i in range(30):
                graph.add_task(PythonTask("f", id=f"t{i:02}"))
            return graph, {"f": lambda ctx: ctx.graph_input}
    '''))
    assert run_cli(capsys, "run", "wide:build", "-o", "w.json", "-q")[0] == 0
    code, _out, err = run_cli(capsys, "run", "wide:build", "-o", "w.json", "-q", "--resume", "--input", "2")
    assert code == 0, err
    assert "plan: 30 of 30 task(s) will run, 0 LLM call(s)\n  t00 " in err and "\n  t19 " in err and "t20" not in err
    assert "  … and 10 more (`llmtaskgraph plan wide:build w.json` lists them all)" in err
    code, out, _ = run_cli(capsys, "plan", "wide:build", "w.json", "--input", "3")
    assert code == 0 and len(out.splitlines()) == 31


# -- plan -------------------------------------------------------------------------------------------
def test_plan_says_what_a_run_would_do_and_runs_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "plan", "graphs:build", "--llm", "offline")
    assert code == 0, err
    assert out.startswith("plan: 4 of 4 task(s) will run")
    assert [line.split()[0] for line in out.splitlines()[1:5]] == ["load", "ask", "ask_again", "check"]
    assert calls(project) == []

    (project / "break").touch()
    run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline", "-q")
    ran = calls(project)
    code, out, err = run_cli(capsys, "plan", "graphs:build", "t.json", "--llm", "offline")
    assert code == 0 and out.startswith("plan: 1 of 4 task(s) will run, 0 LLM call(s)\n  check  "), out
    assert calls(project) == ran

    code, out, _ = run_cli(capsys, "plan", "graphs:build", "t.json", "--llm", "offline", "--input", '{"topic": "dogs"}')
    assert code == 0 and out.startswith("plan: 4 of 4 task(s) will run")
    assert TaskGraph.load(project / "t.json").graph_input == {"topic": "cats"}  # planning saves nothing

    code, out, err = run_cli(capsys, "plan", "graphs:build_changed", "t.json", "--llm", "offline")
    assert code == 0 and out.startswith("plan: 1 of 4 task(s) will run")
    assert "note: `graphs:build_changed` builds another graph than the one in the trace (task `extra` is not in" in err


@pytest.mark.parametrize(("args", "message"), [
    (["plan", "graphs:build", "missing.json"], "`missing.json` does not exist"),
    (["plan", "graphs:missing_functions"], "`ask` is missing (needed by `ask`, `ask_again`)"),
    (["plan", "graphs:build", "--input", "NaN"], "--input holds NaN"),
])
def test_plan_errors_are_one_line(project: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _out, err = run_cli(capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err and calls(project) == [], err


# -- input and hostile values ------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "message"), [
    ("NaN", "--input holds NaN, which is not JSON (a trace could not save it); use null or a string"),
    ('{"x": [Infinity]}', "--input holds Infinity, which is not JSON"),
    ("-Infinity", "--input holds -Infinity, which is not JSON"),
    ('"\\ud800"', "--input is not JSON a trace can hold: `input` contains a lone surrogate"),
    ('{"a": "ok", "b": ["\\udfff x"]}', '`input["b"][0]` contains a lone surrogate'),
    ('"\udcff"', "`input` contains a lone surrogate"),  # a byte that is not UTF-8 on the command line
    ("1" * 5000, "--input cannot be read: Exceeds the limit"),
    ("1" * 4000, "--input is not JSON a trace can hold: `input` is an integer too long for JSON text"),
    ("[" * 100_000, "--input is nested too deeply"),
])
def test_input_that_a_trace_cannot_hold_is_refused_before_running(
    project: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    code, _, err = run_cli(capsys, "run", "graphs:build", "-o", "t.json", "--llm", "offline", f"--input={value}")
    assert code == 2 and message in err and "Traceback" not in err, err
    assert calls(project) == [] and not (project / "t.json").exists()


def test_the_progress_line_cannot_be_driven_by_task_ids() -> None:
    from llmtaskgraph.run.progress import ProgressCounter, TerminalDisplay

    counter = ProgressCounter(total=2, done=1, failed=1, failures=["\x1b[2J\x1b[31mboom\nline"])
    stream = io.StringIO()
    TerminalDisplay(stream).update(counter, final=True)
    shown = stream.getvalue()
    assert shown == "\r1/2 tasks done · 1 failed (\\x1b[2J\\x1b[31mboom\\nline) · 0 LLM calls\n"
