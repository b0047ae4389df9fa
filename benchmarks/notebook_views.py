"""Figures for the notebook front end (issue 11): time to draw a dense graph, lag of the live view.

A measurement, not a test: ``python -m benchmarks.notebook_views`` (``--skip-before`` leaves out the
20-100 s drawing of the old pipeline; ``--skip-browser`` the JupyterLab part).

1. **Dense graph**: 150 tasks with about ten dependencies each, drawn as the notebook draws it
   (``graph_html``), and as the previous pipeline did (every edge, ``dot`` at full effort, no bound).
2. **Live lag**: JupyterLab in headless chromium runs a chain of tasks that take 3 s each from the
   editor (Replay) and from a plain ``graph.run`` with its progress bar. The kernel writes each run
   event's time; the browser records when each node's colour, the status line and the progress bar
   changed (same machine, same wall clock). The lag is browser time minus event time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from core_helpers import dense_graph  # noqa: E402  (the test helpers are on the path only now)


def measure_dense(before: bool) -> None:
    from llmtaskgraph.views.render import Limits, drawing, graph_html

    graph = dense_graph()
    edges = sum(len(set(t.all_deps())) for t in graph.tasks.values())
    times = []
    for _ in range(3):
        started = time.monotonic()
        html = graph_html(graph)
        times.append(time.monotonic() - started)
    notes = drawing(graph).notes
    print(f"dense graph: 150 tasks, {edges} dependency edges")
    drawn = html.count('class="edge"')
    print(f"  now:    graph_html {min(times):.2f} s (best of 3; {max(times):.2f} s worst), {drawn} edges drawn")
    for note in notes:
        print(f"          note: {note}")
    if before:
        old = drawing(graph, Limits(max_edges=10**9)).dot.replace(" mclimit=0.2 nslimit=3 nslimit1=3 searchsize=10", "")
        started = time.monotonic()
        subprocess.run(["dot", "-Tsvg"], input=old, capture_output=True, text=True, check=True, timeout=600)
        print(f"  before: every edge, dot at full effort: {time.monotonic() - started:.1f} s")


LIVE_CELLS = [
    """\
import json, time
from llmtaskgraph import PythonTask, TaskGraph
EVENTS = []
def note(event):
    EVENTS.append([event.kind, event.path, event.time])
    if event.kind == "run_finished":
        json.dump(EVENTS, open("events-editor.json", "w"))
def slow(ctx, *deps):
    time.sleep(3)
    return 1
def chain(n):
    graph = TaskGraph()
    prev = None
    for i in range(n):
        prev = graph.add_task(PythonTask("slow", *([prev] if prev else []), id=f"s{i}"))
    return graph
graph = chain(4)
editor = graph.editor({"slow": slow}, on_event=note)
editor""",
    """\
EVENTS.clear()
g2 = chain(4)
g2.run({"slow": slow}, on_event=note, progress=True)
json.dump(EVENTS, open("events-bar.json", "w"))""",
]

OBSERVE_JS = """
() => {
  window.__seen = [];
  const root = document;
  const log = (what, value) => window.__seen.push([what, value, Date.now()]);
  new MutationObserver((records) => {
    for (const r of records) {
      const t = r.target;
      if (r.type === 'attributes' && t.closest && t.closest('.ltg-view')) {
        const g = t.closest('g.node');
        if (g) log('fill:' + g.id.slice(5), t.getAttribute('fill'));
      } else {
        const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
        if (el && el.closest && el.closest('.ltg-status')) log('status', el.closest('.ltg-status').innerText);
        if (el && el.closest && el.closest('.widget-hbox') && !el.closest('.ltg-editor')) {
          const box = el.closest('.widget-hbox');
          log('bar', box.innerText);
        }
      }
    }
  }).observe(root.body, {subtree: true, attributes: true, attributeFilter: ['fill'], childList: true, characterData: true});
}
"""


def lags(events: list[list[object]], seen: list[list[object]], kinds: dict[str, str], what: str) -> list[float]:
    """For each event of ``kinds`` (kind -> expected shown value prefix), the delay until ``what`` showed it."""
    out = []
    for kind, path, when in events:
        if kind not in kinds:
            continue
        key = what.replace("{path}", str(path))
        expected = kinds[kind].replace("{path}", str(path))
        shown = [t for w, v, t in seen if w == key and str(v).startswith(expected) and t / 1000 >= float(when) - 0.05]
        if shown:
            out.append(min(shown) / 1000 - float(when))
    return out


def measure_live() -> None:
    from jupyter_helpers import CHROMIUM, CHROMIUM_ARGS, jupyterlab, open_and_run_all, run_all, write_notebook
    from playwright.sync_api import sync_playwright

    from llmtaskgraph.views.common import STATUS_COLOURS

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_notebook(root / "lag.ipynb", LIVE_CELLS[:1])
        write_notebook(root / "bar.ipynb", LIVE_CELLS)
        with jupyterlab(root) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            open_and_run_all(page, url.format(notebook="lag.ipynb"))
            page.wait_for_selector(".ltg-editor .ltg-view svg g.node", timeout=120_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
            page.evaluate(OBSERVE_JS)
            page.click(".ltg-editor button.ltg-replay")
            page.wait_for_function("() => document.querySelector('.ltg-editor .ltg-message').innerText.includes('replayed')",
                                   timeout=120_000)
            seen = page.evaluate("() => window.__seen")
            events = json.loads((root / "events-editor.json").read_text())
            node = lags(events, seen, {"task_started": STATUS_COLOURS["running"], "task_finished": STATUS_COLOURS["done"]},
                        "fill:{path}")
            status = lags(events, seen, {"task_finished": ""}, "status")
            report("editor view: node colour after task_started/finished", node)
            report("editor status line after any change", status)

            page2 = browser.new_page(viewport={"width": 1280, "height": 900})
            page2.goto(url.format(notebook="bar.ipynb"))
            page2.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
            page2.evaluate(OBSERVE_JS)
            run_all(page2)
            page2.wait_for_function("() => document.querySelectorAll('.jp-Cell .jp-InputPrompt')[1].innerText.includes('[2]')",
                                    timeout=180_000)
            seen2 = page2.evaluate("() => window.__seen || []")
            events2 = json.loads((root / "events-bar.json").read_text())
            done_counts = []
            finished = 0
            for kind, _path, when in events2:
                if kind == "task_finished":
                    finished += 1
                    done_counts.append(["task_finished", f"{finished}/4 tasks done", when])
            bar = [min(t for w, v, t in seen2 if w == "bar" and expected in str(v)) / 1000 - float(when)
                   for _, expected, when in done_counts if any(w == "bar" and expected in str(v) for w, v, _ in seen2)]
            report("progress bar text after task_finished", bar)
            browser.close()


def report(what: str, values: list[float]) -> None:
    if not values:
        print(f"  {what}: no changes observed")
        return
    print(f"  {what}: n={len(values)}, median {statistics.median(values) * 1000:.0f} ms, "
          f"max {max(values) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-before", action="store_true")
    parser.add_argument("--skip-browser", action="store_true")
    args = parser.parse_args()
    measure_dense(not args.skip_before)
    if not args.skip_browser:
        measure_live()


if __name__ == "__main__":
    main()
