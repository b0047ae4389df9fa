"""Hostile text in every field of a trace stays text: in the HTML report, the notebook HTML, the SVG and DOT.

Each string of the corpus goes into task ids, names, registry names, params, the graph input,
prompts, replies, outputs and error messages. The outputs are then *parsed* (HTML with the
standard library's parser, the SVG as XML, the DOT source by graphviz itself) and the checks are
structural: no element, attribute, node or edge exists that the library did not write, and every
hostile string reads back exactly as text.
"""

from __future__ import annotations

import html
import json
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import pytest

from llmtaskgraph import LLMTask, PythonTask, ScriptedLLM, TaskGraph, TaskGraphError, TaskGraphTask
from llmtaskgraph.views.render import graph_html, task_html, to_dot, to_svg
from llmtaskgraph.views.report import render_report

CORPUS = [
    '"><script>alert(1)</script>',
    "' onmouseover='alert(2)' x='",
    '" onerror="alert(3)',
    "</pre></details></div><img src=x onerror=alert(4)>",
    "</svg><svg onload=alert(5)>",
    "</title></g></svg><script>alert(6)</script>",
    "<!-- ]]> --><![CDATA[ x ]]>",
    "&lt;b&gt; &amp; &#60;script&#62;",
    "javascript:alert(7)",
    '"]; injected [label="evil" URL="javascript:alert(8)"]; x [label="',
    "} digraph evil { a -> b",
    "\\N \\G \\E \\T \\H \\L \\l \\r \\",
    "<<TABLE><TR><TD>html label</TD></TR></TABLE>>",
    "line one\nline two\r\n\ttab",
    "\u202eright-to-left \u200b zero width \U0001f600",
    "\x1b[31m ansi \x07 bell",
]
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h4", "table", "tr", "td", "th", "div",
                "span", "b", "code", "pre", "details", "summary", "p", "script", "svg", "g", "text", "rect", "path",
                "polygon", "ellipse", "a", "polyline", "br", "tbody"}


class Structure(HTMLParser):
    """Collects the tags, attributes and text of an HTML document the way a browser tokenizes it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)


def parse(html_text: str) -> Structure:
    structure = Structure()
    structure.feed(html_text)
    structure.close()
    return structure


def hostile_graph(text: str) -> TaskGraph:
    """Every user- or model-controlled field holds ``text`` (ids are made unique with a suffix)."""
    inner = TaskGraph()
    inner.add_task(PythonTask(f"echo{text}", id=f"{text} inner", name=text))
    graph = TaskGraph({text: [text]})
    ask = graph.add_task(LLMTask(f"fmt{text}", f"parse{text}", id=f"{text} ask", name=text, params={"system": text}))
    sub = graph.add_task(TaskGraphTask(inner, f"in{text}", ask, id=f"{text} sub", name=text))
    graph.add_task(PythonTask(f"fail{text}", sub, id=f"{text} fail", name=text))
    graph.add_task(PythonTask(f"echo{text}", sub, id=f"{text} blocked"))
    registry: dict[str, Any] = {
        f"fmt{text}": lambda ctx: [{"role": "user", "content": text}],
        f"parse{text}": lambda ctx, reply: {text: reply},
        f"in{text}": lambda ctx, x: x,
        f"echo{text}": lambda ctx, *x: [text, *x],
        f"fail{text}": lambda ctx, x: (_ for _ in ()).throw(ValueError(text)),
    }
    with pytest.raises(TaskGraphError):
        graph.run(registry, llm=ScriptedLLM(lambda prompt: text + prompt), progress=False)
    return graph


@pytest.fixture(scope="module", params=range(len(CORPUS)), ids=[f"corpus{i}" for i in range(len(CORPUS))])
def case(request: pytest.FixtureRequest) -> tuple[str, TaskGraph]:
    text = CORPUS[request.param]
    return text, hostile_graph(text)


def check_html(html_text: str, text: str, own_scripts: int = 0) -> Structure:
    doc = parse(html_text)
    assert set(doc.tags) <= ALLOWED_TAGS, set(doc.tags) - ALLOWED_TAGS
    assert doc.tags.count("script") == own_scripts
    names = {name for name, _ in doc.attrs}
    assert not {n for n in names if n.startswith("on")}, "an event-handler attribute appeared"
    assert not [v for n, v in doc.attrs if n in ("href", "src", "xlink:href") and v and "javascript" in v.lower()]
    return doc


def test_the_html_report_keeps_hostile_text_as_text(case: tuple[str, TaskGraph]) -> None:
    text, graph = case
    page = render_report(graph, title=text)
    doc = check_html(page, text, own_scripts=1)
    visible = "".join(doc.text)
    assert text.split("\n")[0].strip() in visible  # shown as text, e.g. in the task cards' <pre> blocks
    assert doc.attrs.count(("data-path", f"{text} ask")) == 2  # the timeline bar and the details entry
    csp = [v for n, v in doc.attrs if n == "content" and v and "script-src" in v]
    assert ("http-equiv", "Content-Security-Policy") in doc.attrs and "script-src 'sha256-" in csp[0]


def test_notebook_html_keeps_hostile_text_as_text(case: tuple[str, TaskGraph]) -> None:
    text, graph = case
    check_html(graph_html(graph), text)
    for path in (f"{text} ask", f"{text} sub", f"{text} fail", f"{text} blocked", f"{text} sub > {text} inner"):
        check_html(task_html(graph.find(path)), text)


def test_svg_is_well_formed_and_has_one_node_per_task(case: tuple[str, TaskGraph]) -> None:
    text, graph = case
    root = ET.fromstring(to_svg(graph))
    ns = "{http://www.w3.org/2000/svg}"
    assert not [e for e in root.iter() if e.tag in (f"{ns}script", f"{ns}foreignObject")]
    assert not [k for e in root.iter() for k in e.attrib if k.lower().startswith("on")]
    node_ids = [e.attrib["id"] for e in root.iter(f"{ns}g") if e.attrib.get("class") == "node"]
    assert sorted(map(_norm, node_ids)) == expected_ids(text)


def _norm(text: str) -> str:
    """Task ids as graphviz writes them back, compared loosely: it drops control characters, writes a
    newline as ``\\n`` and a second space as a no-break space, and keeps DOT's doubled backslashes."""
    text = text.replace("\\\\", "\\").replace("\\n", " ").replace("\n", " ").replace("\xa0", " ")
    return " ".join("".join(ch for ch in text if ch >= " ").split())


def expected_ids(text: str) -> list[str]:
    paths = [f"{text} {s}" for s in ("ask", "blocked", "fail", "sub")] + [f"{text} sub > {text} inner"]
    return sorted(_norm(f"task:{p}") for p in paths)


def test_dot_source_parsed_by_graphviz_has_exactly_our_nodes_and_edges(case: tuple[str, TaskGraph]) -> None:
    text, graph = case
    parsed = subprocess.run(["dot", "-Tjson0"], input=to_dot(graph), capture_output=True, text=True, check=True)
    data = json.loads(parsed.stdout)
    nodes = [o for o in data.get("objects", []) if "nodes" not in o]  # clusters list their nodes; tasks do not
    clusters = [o for o in data.get("objects", []) if "nodes" in o]
    assert [o["name"] for o in nodes] == ["n1", "n2", "n3", "n4", "n5"] and len(clusters) == 1
    assert len(data.get("edges", [])) == 4  # ask -> sub, sub -> fail, sub -> blocked, sub .. its inner task
    written = {"name", "label", "fillcolor", "fontcolor", "tooltip", "id", "color", "penwidth", "style", "shape", "_gvid",
               "fontname", "fontsize", "height", "width", "pos", "bb", "lp", "xlp"}
    assert not {k for o in nodes for k in o} - written, "an attribute appeared that render.py does not write"
    assert sorted(_norm(html.unescape(o["id"])) for o in nodes) == expected_ids(text)


def test_the_simpler_layout_keeps_hostile_text_as_text_with_exact_ids(case: tuple[str, TaskGraph]) -> None:
    from llmtaskgraph.views.layout import layered_svg
    from llmtaskgraph.views.render import drawing

    text, graph = case
    draw = drawing(graph)
    root = ET.fromstring(layered_svg(draw.nodes, draw.edges))  # well-formed XML whatever the text
    ns = "{http://www.w3.org/2000/svg}"
    assert not [e for e in root.iter() if e.tag in (f"{ns}script", f"{ns}foreignObject")]
    assert not [k for e in root.iter() for k in e.attrib if k.lower().startswith("on")]
    ids = sorted(e.attrib["id"] for e in root.iter(f"{ns}g") if e.attrib.get("class") == "node")
    # no layout program in between: the ids are the task paths exactly
    paths = [f"{text} {s}" for s in ("ask", "blocked", "fail", "sub")] + [f"{text} sub > {text} inner"]
    assert ids == sorted("task:" + "".join(ch for ch in p if ch >= " " or ch in "\t\n\r") for p in paths)
