"""Bounded drawing: any graph draws in bounded time, ``dot`` never outlives its budget or its caller.

The slow ``dot`` here is a stand-in on the PATH that records its pid and sleeps, so the checks are
about what happens to that process (killed, waited for), never about how long anything took.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from core_helpers import dense_graph
from jupyter_helpers import planner_graph

from llmtaskgraph.errors import DrawingError
from llmtaskgraph.views.dot import run_dot
from llmtaskgraph.views.layout import layered_svg
from llmtaskgraph.views.render import MIN_SCALE, STATUS_COLOURS, Limits, drawing, graph_html, sized_svg

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def slow_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `dot` that writes its pid to the returned file and then sleeps for ten minutes."""
    pid_file = tmp_path / "dot.pid"
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}\nexec sleep 600\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    return pid_file


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_for(path: Path, bound: float = 30) -> None:
    deadline = time.monotonic() + bound  # a bound on waiting, not a claim about speed
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_a_dense_graph_draws_its_transitive_reduction_within_the_edge_limit():
    graph = dense_graph()
    draw = drawing(graph)
    edges = draw.dot.count(" -> ")
    assert edges == 300 == Limits().max_edges
    assert "1,117 dependency edges are not drawn: each is implied by a longer path" in draw.notes[0]
    assert "28 more dependency edges are not drawn (the drawing stops at 300 edges" in draw.notes[1]
    assert "mclimit=" in draw.dot  # dot spends less effort on crossings in dense drawings
    html_text = graph_html(graph)
    assert html_text.count('class="node"') == 150 and "implied by a longer path" in html_text


def test_small_graphs_keep_every_edge_and_the_default_layout_effort():
    graph, _registry, _llm = planner_graph()
    draw = drawing(graph)
    assert not draw.notes and "mclimit" not in draw.dot
    assert draw.dot.count(" -> ") == 6  # plan->spawn, plan->subgraph, spawn->report, subgraph->report, 2 inner


def test_dot_past_its_budget_is_killed_and_the_python_layout_is_drawn(slow_dot: Path):
    graph, _registry, _llm = planner_graph()
    html_text = graph_html(graph, Limits(dot_seconds=0.5))
    pid = int(slow_dot.read_text())
    assert gone(pid)  # killed and waited for before graph_html returned
    assert "graphviz took more than 0.5 s to lay this graph out: it is drawn with a simpler layout" in html_text
    svg = html_text[html_text.index("<svg"):html_text.index("</svg>") + 6]
    root = ET.fromstring(svg)
    nodes = {g.attrib["id"]: g for g in root.iter(f"{SVG}g") if g.attrib.get("class") == "node" and "id" in g.attrib}
    assert set(nodes) == {f"task:{p}" for p in ("plan", "spawn", "subgraph", "subgraph > double", "subgraph > inc", "report")}
    assert nodes["task:plan"].find(f"{SVG}title").text == "n1"  # the DOT name, as graphviz writes it
    assert nodes["task:plan"].find(f".//{SVG}path").attrib["fill"] == STATUS_COLOURS["pending"]


def test_ctrl_c_while_dot_runs_kills_it(slow_dot: Path):
    def interrupt_once_dot_runs() -> None:
        wait_for(slow_dot)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_dot_runs, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_dot("digraph { a -> b }", seconds=600)
    assert gone(int(slow_dot.read_text()))


def test_a_report_stopped_with_sigterm_leaves_no_dot_running(slow_dot: Path, tmp_path: Path):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from jupyter_helpers import planner_graph\n"
        "from llmtaskgraph.views.report import render_report\n"
        "render_report(planner_graph()[0])\n"
    )
    report = subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).parent)], env=os.environ.copy())
    try:
        wait_for(slow_dot)
        report.send_signal(signal.SIGTERM)
        assert report.wait(timeout=60) == -signal.SIGTERM  # it still dies of the signal, as the sender meant
    finally:
        if report.poll() is None:
            report.kill()
    pid = int(slow_dot.read_text())
    assert gone(pid), "the report left `dot` running"


def test_run_dot_raises_a_drawing_error_on_timeout_and_reaps_the_process(slow_dot: Path):
    with pytest.raises(DrawingError, match=r"more than 0\.2 s"):
        run_dot("digraph { a }", seconds=0.2)
    assert gone(int(slow_dot.read_text()))


def test_the_python_layout_places_every_node_below_its_dependencies():
    graph = dense_graph(40, 4)
    draw = drawing(graph)
    root = ET.fromstring(layered_svg(draw.nodes, draw.edges))
    ys = {}
    for g in root.iter(f"{SVG}g"):
        if g.attrib.get("class") == "node":
            ys[g.attrib["id"][5:]] = float(g.find(f".//{SVG}text").attrib["y"])
    for tid, task in graph.tasks.items():
        assert all(ys[dep] < ys[tid] for dep in task.all_deps()), tid


def test_inline_drawings_fit_the_cell_but_never_shrink_labels_below_a_readable_size():
    graph, _registry, _llm = planner_graph()
    html_text = graph_html(graph)
    tag = re.search(r"<svg [^>]*>", html_text).group(0)
    assert 'width="' not in tag.split("style=")[0]  # the fixed width graphviz wrote is gone
    natural = float(re.search(r'viewBox="[\d.]+ [\d.]+ ([\d.]+)', tag).group(1)) * 4 / 3
    assert f"max-width:{natural:.0f}px" in tag and f"min-width:{natural * MIN_SCALE:.0f}px" in tag
    assert '<div class="ltg-canvas">' in html_text  # which scrolls when the cell is narrower than that
    assert sized_svg("<svg viewBox='0 0 1 1'></svg>") == "<svg viewBox='0 0 1 1'></svg>"  # unknown size: as it is
