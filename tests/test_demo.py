"""The demo: the README's first command runs it; it must work offline and replay for free."""

import json
import subprocess
import sys

from llmtaskgraph import TaskGraph
from llmtaskgraph.demo import build_graph, main, registry


def test_demo_runs_offline_prints_output_and_writes_a_replayable_trace(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    trace = tmp_path / "trace.json"
    assert main(["--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "dynamic tasks: plan/aspect0, plan/aspect1, plan/aspect2, plan/join" in out
    assert "headline: [offline reply" in out
    assert "replayed the trace: 0 tasks executed, 12 reused, 0 LLM calls" in out
    data = json.loads(trace.read_text())
    graph = TaskGraph.from_json(data)
    assert graph.tasks["review"].subgraph.tasks["critique"].status == "done"
    assert graph.tasks["plan/aspect1"].inputs == {"subject": "intelligence of octopuses"}


def test_demo_graph_has_parallel_branches_a_dynamic_task_and_a_subgraph():
    graph = build_graph("otters", ("diet",))
    graph.run(registry, progress=False)
    kinds = {type(t).__name__ for t in graph.tasks.values()}
    assert kinds == {"PythonTask", "LLMTask", "TaskGraphTask"}
    assert graph.tasks["plan"].record.children == ["plan/aspect0", "plan/join"]
    # headline and list_aspects do not depend on each other: they are parallel branches
    assert not graph.tasks["headline"].deps and not graph.tasks["list_aspects"].deps


def test_demo_module_runs_as_a_script(tmp_path):
    env_free = {k: v for k, v in __import__("os").environ.items() if k != "ANTHROPIC_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "llmtaskgraph.demo", "--trace", str(tmp_path / "t.json")],
        capture_output=True, text=True, env=env_free, check=True,
    )
    assert "no ANTHROPIC_API_KEY set" in result.stdout  # one line of ordinary output
    assert (tmp_path / "t.json").exists()
