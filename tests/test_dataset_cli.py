"""``llmtaskgraph dataset run | plan | show | compare``: what they print and their exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from llmtaskgraph import DatasetRun
from llmtaskgraph.cli import main

GRAPHS = '''
from pathlib import Path
from llmtaskgraph import LLMTask, PythonTask, TaskGraph

HERE = Path(__file__).parent
PROMPT = "Label this review"


def log(name):
    with (HERE / "calls.log").open("a") as f:
        f.write(name + "\\n")


def clean(ctx):
    log("clean")
    return ctx.graph_input["text"].strip()


def ask(ctx, text):
    return f"{PROMPT}: {text}"


def parse(ctx, reply):
    log("parse")
    return reply.split("] ", 1)[-1]  # the offline backend echoes the prompt after its label


def result(ctx, text, label):
    if (HERE / "interrupt").exists() and "stop" in text:
        raise KeyboardInterrupt
    if "broken" in text:
        raise ValueError("a broken review")
    return {"label": label, "length": len(text)}


def build():
    graph = TaskGraph()
    c = graph.add_task(PythonTask("clean"))
    label = graph.add_task(LLMTask("ask", "parse", c, name="label"))
    graph.add_output_task(PythonTask("result", c, label))
    return graph, {"clean": clean, "ask": ask, "parse": parse, "result": result}


def score(ctx, case_input, output):
    return -len(output["label"])
'''

REVIEWS = [{"id": "a", "text": "fine"}, {"id": "b", "text": "broken"}, {"id": "c", "text": "stop here"}]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "graphs.py").write_text(GRAPHS)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in REVIEWS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "graphs", raising=False)
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def calls(project: Path) -> list[str]:
    log = project / "calls.log"
    return log.read_text().split() if log.exists() else []


def test_run_exits_1_when_a_case_failed_and_show_lists_the_cases(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "dataset", "run", "graphs.py:build", "in.jsonl", "-o", "runs/v1", "--ids", "id",
                         "--llm", "offline")
    assert code == 1, err
    assert out.splitlines()[:4] == [
        "CASE  STATUS  LLM CALLS  OUTPUT OR ERROR",
        'a     done            1  {"label": "Label this review: fine", "length": 4}',
        "b     failed          1  result: ValueError in run: a broken review",
        'c     done            1  {"label": "Label this review: stop here", "length": 9}',
    ]
    assert "dataset run saved to runs/v1" in err and sorted(calls(project)) == ["clean"] * 3 + ["parse"] * 3

    code, shown, _ = cli(capsys, "dataset", "show", "runs/v1")
    assert code == 0 and shown == out


def test_run_refuses_to_replace_a_run_and_resume_repeats_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli(capsys, "dataset", "run", "graphs.py:build", "in.jsonl", "-o", "runs/v1", "--ids", "id", "--llm", "offline", "-q")
    code, _, err = cli(capsys, "dataset", "run", "graphs.py:build", "in.jsonl", "-o", "runs/v1", "--llm", "offline")
    assert code == 2 and "`runs/v1` already holds a dataset run (3 case(s): 2 done, 1 failed;" in err
    assert "pass --resume to continue it" in err

    before = calls(project)
    code, out, err = cli(capsys, "dataset", "run", "graphs.py:build", "in.jsonl", "-o", "runs/v1", "--ids", "id",
                         "--llm", "offline", "--resume", "-q")
    assert code == 1 and out == ""
    assert err.startswith("dataset plan: 1 of 3 case(s) will run: 1 task(s), 0 LLM call(s)\n"
                          "  1 task(s): failed last time (ValueError in run)\ncases: b\n")
    assert calls(project) == before, "resuming repeated finished work"


def test_plan_and_compare_after_a_prompt_change(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli(capsys, "dataset", "run", "graphs.py:build", "in.jsonl", "-o", "runs/v1", "--ids", "id", "--llm", "offline", "-q")
    code, out, _ = cli(capsys, "dataset", "compare", "runs/v1", "runs/v1")
    assert (code, out) == (0, "compare: 3 case(s); 0 output(s) changed\n")

    (project / "graphs.py").write_text(GRAPHS.replace('PROMPT = "Label this review"', 'PROMPT = "Label this review!"'))
    sys.modules.pop("graphs", None)
    code, out, _ = cli(capsys, "dataset", "plan", "graphs.py:build", "runs/v1", "--llm", "offline")
    assert code == 0 and out.splitlines()[0] == (
        "dataset plan: 3 of 3 case(s) will run: 6 task(s), at most 3 LLM call(s) (0 certain), cost $0 to $0")

    v2 = DatasetRun.load(project / "runs/v1").copy(project / "runs/v2")
    assert v2.path == project / "runs/v2"
    code, _, err = cli(capsys, "dataset", "run", "graphs.py:build", "in.jsonl", "-o", "runs/v2", "--ids", "id",
                       "--llm", "offline", "--resume", "-q")
    assert code == 1, err
    code, out, _ = cli(capsys, "dataset", "compare", "runs/v1", "runs/v2", "--score", "graphs.py:score")
    assert code == 1
    assert out.splitlines() == [  # b failed again, but the label it computed first changed
        "compare: 3 case(s); 2 output(s) changed (2 worse); 1 more with the same output but other task outputs "
        "changed; mean score -25.5 -> -26.5",
        "worse `a`  score -23 -> -24",
        '    output: {"label": "Label this review: fine", "length": 4} -> {"label": "Label this review!: fine", "length": 4}',
        "worse `c`  score -28 -> -29",
        '    output: {"label": "Label this review: stop here", "length": 9} -> '
        '{"label": "Label this review!: stop here", "length": 9}',
    ]


def test_ctrl_c_exits_130_and_resume_finishes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "interrupt").touch()
    code, _, err = cli(capsys, "dataset", "run", "graphs.py:build", "in.jsonl", "-o", "runs/v1", "--ids", "id",
                       "--llm", "offline", "-q", "--max-cases", "1")
    assert code == 130 and "run again with --resume to continue" in err
    assert [c.status for c in DatasetRun.load(project / "runs/v1")] == ["done", "failed", "pending"]
    (project / "interrupt").unlink()
    code, _, _ = cli(capsys, "dataset", "run", "graphs.py:build", "in.jsonl", "-o", "runs/v1", "--ids", "id",
                     "--llm", "offline", "-q", "--resume")
    assert code == 1 and [c.status for c in DatasetRun.load(project / "runs/v1")] == ["done", "failed", "done"]
    assert sorted(calls(project)) == ["clean"] * 3 + ["parse"] * 3


@pytest.mark.parametrize(("args", "message"), [
    (["dataset", "show", "nowhere"], "`nowhere` is not a dataset run folder"),
    (["dataset", "show", "in.jsonl"], "`in.jsonl` is not a dataset run folder"),
    (["dataset", "compare", "nowhere", "nowhere"], "`nowhere` is not a dataset run folder"),
    (["dataset", "run", "graphs.py:build", "missing.jsonl", "-o", "out", "--llm", "offline"],
     "the dataset inputs file `missing.jsonl` does not exist"),
    (["dataset", "run", "graphs.py:build", "in.jsonl", "-o", "graphs.py", "--llm", "offline"],
     "`graphs.py` exists and is not a dataset run folder"),
    (["dataset", "run", "graphs.py:build", "in.jsonl", "-o", "out", "--ids", "name", "--llm", "offline"],
     "input 0 has no key `name`"),
])
def test_usage_errors_exit_2_with_one_line(project: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                           message: str) -> None:
    code, out, err = cli(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("llmtaskgraph: error: ") and message in err and "Traceback" not in err
