"""The notebook front end where people work: JupyterLab 4 in headless chromium, light and dark.

A JupyterLab server from this environment serves copies of the tutorials; the test opens one, runs
it from the Run menu as a person would, and checks what the issue saw broken: task cards aligned
and boxed despite JupyterLab's table and ``pre`` rules, drawings no wider than their cell, a click
on a node selecting its task, an edit replayed turning nodes done, readable text in the dark theme,
and a running task's node changing colour in place while the kernel stays free. Waits are on
conditions (``wait_for_function``), never fixed sleeps. Screenshots are kept in the test's
temporary folder. Chromium is Debian's; Playwright only drives it and never downloads a browser.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CONTRAST_JS,
    jupyterlab,
    open_and_run_all,
    run_all,
    switch_theme,
    write_notebook,
)
from playwright.sync_api import sync_playwright

from llmtaskgraph.views.common import STATUS_COLOURS

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "notebooks" / "02_edit_and_replay.ipynb"
WAIT = 60_000
"""Milliseconds any one condition may take to come true (a bound, on a loaded machine)."""


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jupyterlab")


@pytest.fixture(scope="module")
def lab(lab_root: Path) -> Iterator[str]:
    with jupyterlab(lab_root) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def fill(page: Any, path: str) -> str | None:
    """Fill colour of the node of task ``path`` in the editor's interactive view."""
    return page.eval_on_selector(f'.ltg-editor .ltg-view g[id="task:{path}"] path',  # type: ignore[no-any-return]
                                 "e => e.getAttribute('fill')")


def wait_fill(page: Any, path: str, colour: str) -> None:
    page.wait_for_function(
        "([path, colour]) => { const e = document.querySelector(`.ltg-editor .ltg-view g[id=\"task:${path}\"] path`);"
        " return e !== null && e.getAttribute('fill') === colour; }",
        arg=[path, colour], timeout=WAIT)


def wait_picked(page: Any, path: str) -> None:
    # (the dropdown's options read `path · status`, with no-break spaces)
    page.wait_for_function("p => { const s = document.querySelector('.ltg-editor .ltg-picker select');"
                           " return s.selectedIndex >= 0 &&"
                           " s.options[s.selectedIndex].textContent.replace(/\u00a0/g, ' ').startsWith(p + ' · '); }",
                           arg=path, timeout=WAIT)


def style(page: Any, selector: str, prop: str) -> str:
    return page.eval_on_selector(selector, f"e => getComputedStyle(e).{prop}")  # type: ignore[no-any-return]


def test_the_edit_and_replay_tutorial_in_jupyterlab_light_and_dark(lab: str, lab_root: Path, browser: Any,
                                                                    tmp_path: Path) -> None:
    notebook = json.loads(TUTORIAL.read_text())
    # the tutorial, plus one cell showing a task card (an LLM task: prompt, reply, output boxes)
    notebook["cells"].append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                              "source": ['graph.tasks["rate"]']})
    (lab_root / "tutorial.ipynb").write_text(json.dumps(notebook))
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    try:
        open_and_run_all(page, lab.format(notebook="tutorial.ipynb"))
        page.wait_for_selector(".ltg-editor .ltg-view svg g.node", timeout=WAIT)
        card = ".jp-OutputArea-output:not(:has(.ltg-editor)) .ltg-task"
        page.wait_for_selector(card, timeout=WAIT)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=WAIT)

        # Task cards: left-aligned cells, texts in boxes (JupyterLab right-aligns td and strips pre).
        for cell in ("td", "th"):
            assert style(page, f"{card} table {cell}", "textAlign") == "left"
        assert style(page, f"{card} pre", "backgroundColor") not in ("rgba(0, 0, 0, 0)", "transparent")
        assert style(page, f"{card} pre", "borderTopWidth") == "1px"
        assert style(page, f"{card} pre", "textAlign") == "left"
        assert "monospace" in style(page, f"{card} pre", "fontFamily").lower() or \
            "mono" in style(page, f"{card} pre", "fontFamily").lower()

        # Drawings fit their cell: the inline one and the editor's; the editor never scrolls sideways.
        inline = page.eval_on_selector(".jp-OutputArea-output .ltg-graph",
                                       "e => [e.querySelector('svg').getBoundingClientRect().width, e.clientWidth]")
        assert 0 < inline[0] <= inline[1]
        editor = page.eval_on_selector(
            ".ltg-editor", "e => [e.querySelector('.ltg-view svg').getBoundingClientRect().width, e.clientWidth,"
                           " e.scrollWidth, e.closest('.jp-OutputArea-output').clientWidth]")
        assert 0 < editor[0] <= editor[1] <= editor[3] and editor[2] <= editor[1] + 1

        # Clicking a node selects its task in the editor.
        page.click('.ltg-editor .ltg-view g[id="task:pick"]')
        wait_picked(page, "pick")
        assert "python: pick_reviews" in page.inner_text(".ltg-editor .ltg-detail")
        page.click('.ltg-editor .ltg-view g[id="task:rate"]')
        wait_picked(page, "rate")

        # Edit the reply, apply, replay: the nodes turn done.
        assert fill(page, "tally") == STATUS_COLOURS["stale"]
        page.fill(".ltg-editor .ltg-field-reply textarea", '["positive", "positive", "negative"]')
        page.click(".ltg-editor button.ltg-apply")
        page.wait_for_function("() => document.querySelector('.ltg-editor .ltg-message').innerText"
                               ".includes('edited the reply of `rate`')", timeout=WAIT)
        assert "Replay will run 2 task(s): `rate`, `tally`" in page.inner_text(".ltg-editor .ltg-message")
        page.click(".ltg-editor button.ltg-replay")
        wait_fill(page, "tally", STATUS_COLOURS["done"])
        wait_fill(page, "rate", STATUS_COLOURS["done"])
        page.wait_for_function("() => document.querySelector('.ltg-editor .ltg-status').innerText"
                               ".startsWith('3 done · last run: 2 executed, 1 reused')", timeout=WAIT)
        page.wait_for_function("() => document.querySelector('.ltg-editor .ltg-message').innerText"
                               ".includes('replayed: 3/3 tasks done')", timeout=WAIT)
        page.screenshot(path=str(tmp_path / "jupyterlab-light.png"), full_page=True)
        page.locator(".ltg-editor").screenshot(path=str(tmp_path / "editor-light.png"))

        # Dark theme: every text box and note readable (WCAG contrast of at least 4.5).
        switch_theme(page, "JupyterLab Dark")
        checked = {
            "editor text box": ".ltg-editor .ltg-field-reply textarea",
            "editor card box": ".ltg-editor .ltg-detail pre",
            "editor message": ".ltg-editor .ltg-message pre",
            "status line": ".ltg-editor .ltg-status",
            "legend": ".ltg-editor .ltg-gv-legend",
            "card box": f"{card} pre",
            "card heading": f"{card} th",
            "inline legend": ".jp-OutputArea-output .ltg-graph .ltg-legend",
        }
        ratios = {name: page.eval_on_selector(selector, CONTRAST_JS) for name, selector in checked.items()}
        page.screenshot(path=str(tmp_path / "jupyterlab-dark.png"), full_page=True)
        page.locator(".ltg-editor").screenshot(path=str(tmp_path / "editor-dark.png"))
        low = {name: r for name, r in ratios.items() if r["ratio"] < 4.5}
        assert not low, f"text too faint in the dark theme: {low}"
        assert ratios["editor card box"]["bg"] != "rgb(255,255,255)"  # the boxes follow the theme
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
        raise
    finally:
        page.close()
    assert problems == []
    print(f"screenshots: {tmp_path}")


LIVE_CELLS = [
    """\
import time
from pathlib import Path
from llmtaskgraph import PythonTask, TaskGraph

FLAG = Path("release.flag")
FLAG.unlink(missing_ok=True)

def slow(ctx):  # runs until the test creates the flag file (bounded)
    deadline = time.monotonic() + 120
    while not FLAG.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return "slow done"

graph = TaskGraph()
first = graph.add_task(PythonTask("slow", id="first"))
graph.add_task(PythonTask("after", first, id="second"))
editor = graph.editor({"slow": slow, "after": lambda ctx, x: x + "!"})
editor""",
]


def test_a_running_task_changes_colour_in_place_while_the_kernel_stays_free(lab: str, lab_root: Path,
                                                                           browser: Any, tmp_path: Path) -> None:
    write_notebook(lab_root / "live.ipynb", LIVE_CELLS)
    flag = lab_root / "release.flag"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        open_and_run_all(page, lab.format(notebook="live.ipynb"))
        page.wait_for_selector(".ltg-editor .ltg-view svg g.node", timeout=WAIT)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=WAIT)
        assert fill(page, "first") == STATUS_COLOURS["pending"]
        page.eval_on_selector(".ltg-editor .ltg-view svg", "e => { e.dataset.mark = 'the same drawing'; }")
        page.click(".ltg-editor button.ltg-replay")
        wait_fill(page, "first", STATUS_COLOURS["running"])
        assert page.eval_on_selector('.ltg-editor .ltg-view g[id="task:first"]',
                                     "e => e.classList.contains('ltg-gv-running')")
        # the run goes on in the background: the kernel is idle, so Stop could be clicked
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=WAIT)
        assert not page.is_disabled(".ltg-editor button.ltg-stop")
        page.wait_for_function("() => document.querySelector('.ltg-editor .ltg-status').innerText"
                               ".startsWith('running: 0/2 tasks done')", timeout=WAIT)
        # hovering says what the task is doing; the zoom buttons scale the drawing
        page.hover('.ltg-editor .ltg-view g[id="task:first"]')
        page.wait_for_selector(".ltg-editor .ltg-gv-tip:not([hidden])", timeout=WAIT)
        assert page.inner_text(".ltg-editor .ltg-gv-tip").startswith("first\nrunning\npython: slow")
        page.screenshot(path=str(tmp_path / "running.png"))
        width = float(page.get_attribute(".ltg-editor .ltg-view svg", "width") or 0)
        page.click(".ltg-editor .ltg-gv-zoom-in")
        assert float(page.get_attribute(".ltg-editor .ltg-view svg", "width") or 0) == pytest.approx(width * 1.25)
        page.click(".ltg-editor .ltg-gv-fit")
        assert float(page.get_attribute(".ltg-editor .ltg-view svg", "width") or 0) == pytest.approx(width)
        flag.write_text("go")
        wait_fill(page, "second", STATUS_COLOURS["done"])
        assert fill(page, "first") == STATUS_COLOURS["done"]
        # recoloured in place: the SVG element is the one drawn before the run (no new layout)
        assert page.eval_on_selector(".ltg-editor .ltg-view svg", "e => e.dataset.mark") == "the same drawing"
        page.wait_for_function("() => document.querySelector('.ltg-editor .ltg-message').innerText"
                               ".includes('replayed: 2/2 tasks done')", timeout=WAIT)
        assert page.is_disabled(".ltg-editor button.ltg-stop")
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
        raise
    finally:
        page.close()
        flag.unlink(missing_ok=True)


FAN_OUT = """\
from llmtaskgraph import PythonTask, TaskGraph

def fan(ctx):
    for i in range(20):
        ctx.add_task(PythonTask("leaf", key=f"a fairly long child name {i}"))

wide = TaskGraph()
wide.add_task(PythonTask("fan", id="fan"))
wide.run({"fan": fan, "leaf": lambda ctx: 1}, progress=False)
wide"""

ALL_CELLS_RAN = ("() => { const p = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')];"
                 " return p.length > 0 && p.every((e) => /\\[\\d+\\]/.test(e.textContent)); }")
CHECK_TUTORIAL_JS = """
() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const cells = [...panel.querySelectorAll('.ltg-root .ltg-table td, .ltg-root .ltg-table th')];
  const drawings = [...panel.querySelectorAll('.jp-OutputArea-output .ltg-graph svg')].map((svg) => {
    const box = svg.viewBox.baseVal;
    const out = svg.closest('.jp-OutputArea-output');
    return {width: svg.getBoundingClientRect().width, cell: out.clientWidth, natural: box.width * 4 / 3,
            canvas: svg.closest('.ltg-canvas').getBoundingClientRect().width,
            scrolls: svg.closest('.ltg-canvas').scrollWidth > svg.closest('.ltg-canvas').clientWidth};
  });
  return {
    cells: cells.length,
    notLeft: cells.filter((c) => getComputedStyle(c).textAlign !== 'left').length,
    drawings,
    tracebacks: [...panel.querySelectorAll('pre.ltg-traceback')].map((p) => getComputedStyle(p).whiteSpace),
    errors: panel.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').length,
  };
}
"""


@pytest.mark.timeout(400)
def test_every_tutorial_looks_right_in_jupyterlab_light_and_dark(lab: str, lab_root: Path, browser: Any,
                                                               tmp_path: Path) -> None:
    names = sorted(p.name for p in (ROOT / "notebooks").glob("0*.ipynb") if not p.name.startswith("02_"))
    assert {"01_first_graph.ipynb", "03_dynamic_graphs.ipynb", "04_debugging.ipynb"} <= set(names)
    for name in names:
        notebook = json.loads((ROOT / "notebooks" / name).read_text())
        if name.startswith("03_"):  # plus a wide fan-out, which must not shrink to unreadable labels
            notebook["cells"].append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                                      "source": [FAN_OUT]})
        (lab_root / name).write_text(json.dumps(notebook))
        if (ROOT / "notebooks" / "data").is_dir() and not (lab_root / "data").exists():
            shutil.copytree(ROOT / "notebooks" / "data", lab_root / "data")
    found: dict[str, Any] = {}
    for name in names:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        try:
            page.goto(lab.format(notebook=name))
            page.wait_for_selector(".jp-NotebookPanel", timeout=WAIT)
            ensure_theme(page, "JupyterLab Light")
            run_all(page)
            page.wait_for_function(ALL_CELLS_RAN, timeout=WAIT)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=WAIT)
            found[name] = page.evaluate(CHECK_TUTORIAL_JS)
            page.screenshot(path=str(tmp_path / f"{name}-light.png"), full_page=True)
            if name == "04_debugging.ipynb":
                kept = page
        except Exception:
            page.screenshot(path=str(tmp_path / f"{name}-failed.png"), full_page=True)
            raise
        finally:
            if name != "04_debugging.ipynb":  # (kept open: its failed task's card is checked in the dark theme)
                page.close()
    page = kept
    try:
        for name, seen in found.items():
            assert seen["errors"] == 0, name
            assert seen["cells"] == 0 or seen["notLeft"] == 0, (name, seen)
            for drawing in seen["drawings"]:
                assert drawing["canvas"] <= drawing["cell"] + 1, (name, drawing)  # never wider than the cell
                assert drawing["width"] <= drawing["cell"] + 1 or drawing["scrolls"], (name, drawing)
                # fits the cell down to 70% of its natural size (10 pt labels above 9 px), then scrolls
                assert drawing["width"] >= min(drawing["natural"], drawing["cell"]) * 0.69 - 1, (name, drawing)
        assert any(seen["cells"] for seen in found.values())
        assert found["04_debugging.ipynb"]["tracebacks"] and set(found["04_debugging.ipynb"]["tracebacks"]) == {"pre"}
        wide = found["03_dynamic_graphs.ipynb"]["drawings"][-1]
        assert wide["natural"] > wide["cell"] and wide["scrolls"]  # the fan-out scrolls instead of shrinking

        ensure_theme(page, "JupyterLab Dark")
        texts = page.eval_on_selector_all(
            ".jp-NotebookPanel:not(.lm-mod-hidden) :is(.ltg-root pre, .ltg-root th, .ltg-root td, .ltg-note)",
            f"els => els.slice(0, 60).map({CONTRAST_JS.strip()})")
        page.locator(".ltg-task").last.scroll_into_view_if_needed()  # the failed task's card, traceback closed
        page.screenshot(path=str(tmp_path / "04_debugging.ipynb-dark.png"), full_page=True)
        assert texts and min(t["ratio"] for t in texts) >= 4.5, [t for t in texts if t["ratio"] < 4.5]
    finally:
        page.close()


def ensure_theme(page: Any, theme: str) -> None:
    light = page.get_attribute("body", "data-jp-theme-light")
    if (light == "true") != ("Light" in theme):
        switch_theme(page, theme)


def test_binder_pins_the_jupyterlab_these_tests_run_against() -> None:
    import jupyterlab

    pinned = (ROOT / "binder" / "requirements.txt").read_text()
    assert f"jupyterlab=={jupyterlab.__version__}\n" in pinned
