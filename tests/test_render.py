"""Drawing graphs and tasks: SVG with status colours, clusters, escaping, big graphs, no `dot`."""

from __future__ import annotations

import re
import shutil
import time

import pytest
from jupyter_helpers import chain_graph, planner_graph

from llmtaskgraph import LLMTask, PythonTask, ScriptedLLM, TaskGraph, TaskGraphError, TaskGraphTask
from llmtaskgraph.views.common import CELL
from llmtaskgraph.views.render import STATUS_COLOURS, Limits, graph_html, task_html, to_dot, to_html, to_svg

HOSTILE = '<script>alert("x")</script></svg><b>&amp;\\N "quoted"'


def _svg_text(svg: str) -> list[str]:
    """The visible text lines of an SVG, unescaped the way a browser would show them."""
    import html

    return [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", svg)]


def _node_fill(html_text: str, path: str) -> str:
    """Fill colour of the drawn node of task ``path``."""
    import html

    block = re.search(rf'<g id="task:{re.escape(html.escape(path, quote=False))}" class="node">(.*?)</g>', html_text, re.S)
    assert block, f"no node for {path}"
    return re.search(r'fill="([^"]+)"', block.group(1)).group(1)


def test_graph_svg_shows_status_colours_clusters_and_who_added_each_task():
    graph, registry, llm = planner_graph()
    before = graph._repr_mimebundle_()["text/html"]
    assert _node_fill(before, "plan") == STATUS_COLOURS["pending"]
    graph.run(registry, llm=llm, progress=False)
    after = graph._repr_mimebundle_()["text/html"]
    assert _node_fill(after, "plan") == STATUS_COLOURS["done"]
    assert _node_fill(after, "subgraph > inc") == STATUS_COLOURS["done"]  # inner tasks are drawn
    dot = to_dot(graph)
    cluster = dot[dot.index("subgraph cluster_"):]
    cluster = cluster[: cluster.index("\n}")]
    assert 'id="task:subgraph > double"' in cluster and 'id="task:subgraph > inc"' in cluster
    assert 'id="task:spawn/b"' not in cluster
    texts = _svg_text(after)
    assert "done · added by spawn" in texts  # dynamic children say who created them
    assert "size twice plus one" in texts and "id: subgraph" in texts  # readable name, then the id
    # the creator -> child edges are drawn dashed, apart from data edges
    assert len(re.findall(r'-> n\d+ \[style=dashed color="#1565c0"', dot)) == 3


def test_failed_and_blocked_tasks_are_coloured_and_explained():
    graph = TaskGraph()
    bad = graph.add_task(PythonTask("bad", id="bad"))
    graph.add_task(PythonTask("after", bad, id="after"))
    with pytest.raises(TaskGraphError):
        graph.run({"bad": lambda ctx: 1 / 0, "after": lambda ctx, x: x}, progress=False)
    html_text = graph_html(graph)
    assert _node_fill(html_text, "bad") == STATUS_COLOURS["failed"]
    assert _node_fill(html_text, "after") == STATUS_COLOURS["blocked"]
    assert "ZeroDivisionError: division by zero" in html_text  # in the node's tooltip
    card = task_html(graph.tasks["bad"])
    assert "error in run" in card and "ZeroDivisionError: division by zero" in card
    assert "<summary>traceback</summary>" in card and "1 / 0" in card


def test_llm_task_card_shows_prompt_reply_output_tokens_and_latency():
    graph, registry, llm = planner_graph()
    graph.run(registry, llm=llm, progress=False)
    card = graph.tasks["plan"]._repr_mimebundle_()["text/html"]
    assert '<pre class="ltg-pre">Plan steps about cats</pre>' in card
    assert '<pre class="ltg-pre">[&quot;a&quot;, &quot;b&quot;, &quot;c&quot;]</pre>' in card  # the reply, escaped
    assert "input 4 tokens · output 13 tokens · model scripted" in card
    assert 'latency <span class="ltg-time">0.00 s</span>' in card
    assert re.search(rf'<th{CELL}>time</th><td{CELL}><span class="ltg-time">\d+\.\d\d s</span>', card)
    assert graph.tasks["plan"]._repr_mimebundle_()["text/plain"] == "<LLMTask 'plan' done>"


def test_user_and_model_text_is_escaped_everywhere():
    graph = TaskGraph()
    ask = graph.add_task(LLMTask("fmt", "parse", id="ask", name=HOSTILE))
    graph.add_task(PythonTask("echo", ask, id="echo"))
    llm = ScriptedLLM(lambda prompt: HOSTILE)
    graph.run({"fmt": lambda ctx: HOSTILE, "parse": lambda ctx, t: t, "echo": lambda ctx, t: t}, llm=llm, progress=False)
    for html_text in (graph_html(graph), task_html(graph.tasks["ask"]), task_html(graph.tasks["echo"])):
        assert "<script" not in html_text
        assert "<b>&amp;" not in html_text
        assert html_text.count("</svg>") == html_text.count("<svg")  # only our own SVG element closes
    card = task_html(graph.tasks["ask"])
    assert card.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;/svg&gt;") == 4  # name, prompt, reply, output
    # DOT escaping: the drawn label reads exactly like the name, backslash, quotes and entities included
    tricky = 'a "q" \\N &amp; {x} <b>'
    graph.tasks["echo"].name = tricky
    assert tricky in _svg_text(to_svg(graph))
    assert _svg_text(to_svg(graph))[0] == HOSTILE[:39] + "…"  # long names are shortened visibly


def test_a_reply_closing_the_svg_cannot_end_the_drawing_early():
    graph = TaskGraph()
    graph.add_task(PythonTask("f", id="f"))
    graph.run({"f": lambda ctx: "</svg><script>alert(1)</script>"}, progress=False)
    html_text = graph_html(graph)
    assert html_text.count("</svg>") == 1 and "<script>alert" not in html_text
    assert "&lt;/svg&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html_text  # shown in the tooltip as text


def test_huge_outputs_are_truncated_visibly():
    graph = TaskGraph()
    graph.add_task(PythonTask("big", id="big"))
    graph.run({"big": lambda ctx: "x" * 100_000}, progress=False)
    card = task_html(graph.tasks["big"])
    assert "[truncated: 96,000 more characters not shown]" in card
    assert len(card) < 10_000
    assert "[truncated: 99,000 more characters not shown]" in task_html(graph.tasks["big"], Limits(max_chars=1000))
    assert len(graph_html(graph)) < 20_000  # the tooltip is cut too


def test_a_graph_of_1200_chained_tasks_draws_a_part_and_says_what_was_left_out():
    graph, registry = chain_graph(1200)
    graph.run(registry, progress=False)
    started = time.monotonic()
    html_text = graph_html(graph)
    took = time.monotonic() - started
    assert html_text.count('class="node"') == 151  # 150 tasks and one summary node
    assert "1,050 tasks are not drawn (the drawing stops at 150 tasks" in html_text
    assert "… 1,050 more tasks" in "".join(_svg_text(html_text))
    assert took < 30  # a generous bound: this is about not hanging, not speed


def test_many_children_of_one_creator_are_summarized_and_failures_are_always_drawn():
    graph = TaskGraph()

    def fan_out(ctx):
        for i in range(1000):
            ctx.add_task(PythonTask("leaf", key=f"k{i}"))
        return 1000

    graph.add_task(PythonTask("fan_out", id="fan"))
    with pytest.raises(TaskGraphError):
        graph.run({"fan_out": fan_out, "leaf": lambda ctx: 1 / 0 if ctx.task.id == "fan/k700" else 1}, progress=False)
    html_text = graph_html(graph)
    texts = "\n".join(_svg_text(html_text))
    assert "… 987 more tasks" in texts and "added by fan" in texts and "(987 done)" in texts
    assert _node_fill(html_text, "fan/k700") == STATUS_COLOURS["failed"]  # drawn although past the cap
    assert "987 of the tasks added by `fan` are summarized in one node" in html_text


def test_big_sub_graphs_are_collapsed_into_one_node():
    sub, sub_registry = chain_graph(60)
    graph = TaskGraph()
    graph.add_task(TaskGraphTask(sub, "nothing", id="inner"))
    graph.run({**sub_registry, "nothing": lambda ctx: None}, progress=False)
    html_text = graph_html(graph)
    assert "subgraph cluster_" not in to_dot(graph)
    assert "60 inner tasks (60 done)" in _svg_text(html_text)
    assert "sub-graph `inner` (60 tasks) is drawn as one node; display `graph.find(&#x27;inner&#x27;).subgraph`" in html_text
    assert "subgraph cluster_" in to_dot(graph, Limits(max_subgraph=100))


def test_without_the_dot_program_the_graph_renders_as_a_table_that_says_how_to_install_graphviz(monkeypatch, tmp_path):
    graph, registry, llm = planner_graph()
    graph.run(registry, llm=llm, progress=False)
    assert shutil.which("dot") is not None
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: `dot` cannot be found
    assert shutil.which("dot") is None
    bundle = graph._repr_mimebundle_()
    html_text = bundle["text/html"]
    assert "<svg" not in html_text
    assert "apt-get install graphviz" in html_text and "pip install &#x27;llmtaskgraph[jupyter]&#x27;" not in html_text
    assert "pip install 'llmtaskgraph[jupyter]'" in html_text
    assert f"<td{CELL}>subgraph &gt; inc</td>" in html_text  # sub-graph tasks are listed with their path
    assert f'background:{STATUS_COLOURS["done"]}' in html_text
    assert to_html(graph) == html_text


def test_fallback_table_escapes_and_caps_too(monkeypatch, tmp_path):
    graph, _registry = chain_graph(300)
    graph.add_task(PythonTask("inc", "t299", id=HOSTILE))
    monkeypatch.setenv("PATH", str(tmp_path))
    html_text = graph_html(graph)
    assert "151 more tasks not listed" in html_text
    graph2 = TaskGraph()
    graph2.add_task(PythonTask("f", id=HOSTILE))
    assert "<script" not in graph_html(graph2) and "&lt;script&gt;" in graph_html(graph2)


def test_without_the_graphviz_package_the_graph_is_still_drawn_by_the_dot_program(monkeypatch):
    import sys

    graph, _registry = chain_graph(3)
    monkeypatch.setitem(sys.modules, "graphviz", None)  # `import graphviz` now raises ImportError
    html_text = graph._repr_mimebundle_()["text/html"]
    assert "<svg" in html_text and _node_fill(html_text, "t2") == STATUS_COLOURS["pending"]


def test_the_core_imports_and_runs_without_loading_graphviz_or_widgets():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from llmtaskgraph import PythonTask, TaskGraph\n"
        "graph = TaskGraph()\n"
        "graph.add_task(PythonTask('f'))\n"
        "graph.run({'f': lambda ctx: 1}, progress=False)\n"
        "print(sorted(m for m in ('graphviz', 'ipywidgets', 'IPython', 'tqdm') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"


def _hand_edited_trace() -> TaskGraph:
    """A run graph saved, its JSON edited by hand with numbers `TaskGraph.load` accepts but no float holds
    (and times out of order), and loaded back: `ask` (LLM), `late` and `mixed` (python)."""
    import json

    graph = TaskGraph()
    graph.add_task(LLMTask("fmt", "parse", id="ask"))
    graph.add_task(PythonTask("f", id="late"))
    graph.add_task(PythonTask("f", id="mixed"))
    graph.run({"fmt": lambda ctx: "hi", "parse": lambda ctx, t: t, "f": lambda ctx: 1}, llm=ScriptedLLM(lambda p: "ok"),
              progress=False)
    data = json.loads(json.dumps(graph.to_json()))
    ask, late, mixed = data["tasks"]
    ask["response"].update(latency=10**400, retries=10**3000, model=10**3000)
    ask["response"]["usage"].update(input_tokens=10**3000, output_tokens=1234567)
    ask["started_at"], ask["finished_at"] = 10**400, 1.5  # record.duration would raise OverflowError
    late["started_at"], late["finished_at"] = 10.0, 5.0  # finished before it started
    mixed["started_at"], mixed["finished_at"] = 1e308, 10**400 + 1
    return TaskGraph.from_json(json.loads(json.dumps(data)))


def test_a_task_card_shows_numbers_no_float_holds_short_and_unusable_times_as_unknown():
    graph = _hand_edited_trace()
    card = graph.tasks["ask"]._repr_mimebundle_()["text/html"]
    assert "input 1.00e+3000 tokens · output 1,234,567 tokens · model 1.00e+3000" in card
    assert "1.00e+3000 retries" in card
    assert 'latency <span class="ltg-time">?</span> (out of order or out of range)' in card
    assert f'<th{CELL}>time</th><td{CELL}><span class="ltg-time">?</span> (out of order or out of range)' in card
    assert len(card) < 5_000  # no 3000-digit number
    for tid in ("late", "mixed"):
        card = graph.tasks[tid]._repr_mimebundle_()["text/html"]
        assert f'<th{CELL}>time</th><td{CELL}><span class="ltg-time">?</span>' in card, tid


def test_a_graph_holding_numbers_no_float_holds_still_draws(monkeypatch, tmp_path):
    graph = _hand_edited_trace()
    bundle = graph._repr_mimebundle_()
    assert "<svg" in bundle["text/html"] and bundle["text/plain"] == "<TaskGraph 3 tasks: 3 done>"
    assert graph.usage().calls == 1 and graph.usage().llm_seconds == 0.0
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot`: the table instead
    assert "ltg-fallback" in graph._repr_mimebundle_()["text/html"]
