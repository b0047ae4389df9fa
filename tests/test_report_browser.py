"""The HTML report in a real browser (Debian's headless chromium through the pip ``playwright`` package).

It must open offline with no console errors, fetch nothing, show the graph and the timeline, and
open a task's details when its node or its timeline bar is clicked. A screenshot is saved in the
test's temporary folder. Never run ``playwright install``: the system chromium is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from llmtaskgraph import LLMTask, OfflineLLM, PythonTask, TaskGraph, TaskGraphError, TaskGraphTask
from llmtaskgraph.trace.summary import task_rows, totals
from llmtaskgraph.views.report import render_report

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
HOSTILE = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
ODD_ID = "two  spaces\nand a\ttab"  # graphviz rewrites such characters in the SVG node id


def traced_graph() -> TaskGraph:
    """Three LLM calls that overlap in time, a sub-graph, tasks added at run time and one failure."""
    inner = TaskGraph()
    inner.add_task(PythonTask("shout", id="shout"))
    graph = TaskGraph("cats")
    topic = graph.add_task(PythonTask("topic", id="topic"))
    asks = [graph.add_task(LLMTask("ask", "parse", topic, id=f"ask{i}", params={"temperature": i})) for i in range(3)]
    graph.add_task(TaskGraphTask(inner, "sub_input", asks[0], id="sub"))
    graph.add_task(PythonTask("spawn", *asks, id="spawn", name=HOSTILE))
    graph.add_task(PythonTask("explode", asks[1], id="explode"))
    graph.add_task(PythonTask("shout", id=ODD_ID))

    def spawn(ctx: Any, *replies: str) -> int:
        for i, _ in enumerate(replies):
            ctx.add_task(PythonTask("shout", key=f"c{i}"))
        return len(replies)

    def explode(ctx: Any, reply: str) -> None:
        raise RuntimeError("the parser met a reply it did not expect")

    registry = {
        "topic": lambda ctx: ctx.graph_input, "ask": lambda ctx, t: f"Tell me about {t}",
        "parse": lambda ctx, text: text, "sub_input": lambda ctx, x: x, "shout": lambda ctx: "!",
        "spawn": spawn, "explode": explode,
    }
    with pytest.raises(TaskGraphError):
        graph.run(registry, llm=OfflineLLM(latency=0.2), progress=False)
    return graph


def test_the_report_opens_offline_without_errors_and_shows_the_graph_and_task_details(tmp_path: Path) -> None:
    graph = traced_graph()
    report = tmp_path / "report.html"
    report.write_text(render_report(graph, title="browser check"), encoding="utf-8")
    rows = task_rows(graph)
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1600})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri())
            page.wait_for_load_state("load")

            assert page.locator("#graph svg").is_visible()
            drawn = page.locator('#graph g.node[id^="task:"]')
            assert drawn.count() == len(rows)  # every task is drawn, sub-graph and run-time children included
            assert page.locator("#timeline polyline.running").count() == 1  # how many ran at once, over time
            bars = page.locator("#timeline rect.bar")
            assert bars.count() == len(rows)
            spans = {bars.nth(i).get_attribute("data-path"): bars.nth(i).bounding_box() for i in range(bars.count())}
            asks = [spans[f"ask{i}"] for i in range(3)]
            assert all(b is not None for b in asks)
            # The three calls ran at the same time, so their bars overlap on the time axis.
            left = max(b["x"] for b in asks if b)
            right = min(b["x"] + b["width"] for b in asks if b)
            assert right > left
            sums = totals(graph, rows)
            assert page.locator("#total-most").inner_text() == str(sums.max_concurrency) and sums.max_concurrency >= 3
            assert page.locator("#total-tokens").inner_text() == f"{sums.usage.input_tokens} in, {sums.usage.output_tokens} out"

            details = page.locator('details[data-path="explode"]')
            assert not details.evaluate("d => d.open")
            page.locator('#graph g.node[id="task:explode"]').click()
            assert details.evaluate("d => d.open")
            assert "the parser met a reply it did not expect" in details.inner_text()

            page.locator('#timeline rect.bar[data-path="ask2"]').click()
            ask2 = page.locator('details[data-path="ask2"]')
            assert ask2.evaluate("d => d.open") and "Tell me about cats" in ask2.inner_text()
            assert page.locator("details.selected").count() == 1

            hostile = page.locator('details[data-path="spawn"]')
            hostile.locator("summary").click()
            assert HOSTILE in hostile.inner_text()  # shown as text, not run
            odd = page.locator('details[data-path="two  spaces\\a and a\\9 tab"]')
            assert odd.count() == 1 and not odd.evaluate("d => d.open")
            page.locator('#graph g.node[id^="task:two"]').click()
            assert odd.evaluate("d => d.open")
            page.locator('#graph g.node[id="task:explode"]').click()
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert requests == [report.as_uri()]  # nothing but the file itself
    assert (tmp_path / "report.png").stat().st_size > 10_000
