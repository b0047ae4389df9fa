"""Graphs shared by the Jupyter-layer tests (render, widgets, progress): small, offline, varied."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core_helpers import CountingRegistry

from llmtaskgraph import LLMTask, PythonTask, ScriptedLLM, TaskGraph, TaskGraphTask


def planner_graph() -> tuple[TaskGraph, CountingRegistry, ScriptedLLM]:
    """An LLM plans steps, a task spawns one child per step, a sub-graph works on the plan's size.

    Task ids: ``plan`` (LLM), ``spawn`` (adds ``spawn/<step>``), ``subgraph`` (> ``double``, ``inc``),
    ``report`` (joins spawn and subgraph).
    """
    sub = TaskGraph()
    double = sub.add_task(PythonTask("double", id="double"))
    sub.add_output_task(PythonTask("inc", double, id="inc"))
    graph = TaskGraph({"topic": "cats"})
    plan = graph.add_task(LLMTask("plan_prompt", "plan_parse", id="plan"))
    spawn = graph.add_task(PythonTask("spawn", plan, id="spawn"))
    subgraph = graph.add_task(TaskGraphTask(sub, "sub_in", plan, id="subgraph", name="size twice plus one"))
    graph.add_output_task(PythonTask("report", spawn, subgraph, id="report"))

    def spawn_fn(ctx: Any, steps: list[str]) -> int:
        for step in steps:
            ctx.add_task(PythonTask("work", key=step))
        return len(steps)

    registry = CountingRegistry({
        "plan_prompt": lambda ctx: f"Plan steps about {ctx.graph_input['topic']}",
        "plan_parse": lambda ctx, text: json.loads(text),
        "spawn": spawn_fn,
        "work": lambda ctx: "worked",
        "sub_in": lambda ctx, steps: len(steps),
        "double": lambda ctx: ctx.graph_input * 2,
        "inc": lambda ctx, x: x + 1,
        "report": lambda ctx, n, size: f"{n} steps, size {size}",
    })
    return graph, registry, ScriptedLLM({"Plan steps": '["a", "b", "c"]'})


def chain_graph(n: int) -> tuple[TaskGraph, dict[str, Any]]:
    """``n`` PythonTasks in a chain, each adding one to the previous output."""
    graph = TaskGraph()
    prev = graph.add_task(PythonTask("start", id="t0"))
    for i in range(1, n):
        prev = graph.add_task(PythonTask("inc", prev, id=f"t{i}"))
    return graph, {"start": lambda ctx: 0, "inc": lambda ctx, x: x + 1}


# -- real front ends: a JupyterLab server and Debian's chromium (never `playwright install`) -----------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def jupyterlab(root: Path, theme: str = "JupyterLab Light") -> Iterator[str]:
    """JupyterLab serving ``root`` on 127.0.0.1 with a token, its settings and workspaces in ``root``
    (so the theme and a quiet news/update check are this server's own); yields the base URL with the
    token. Stopped, with its kernels, afterwards."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    settings = root / ".lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    (settings / "themes.jupyterlab-settings").write_text(json.dumps({"theme": theme}))
    port, token = free_port(), "llmtaskgraph-test"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "JUPYTERLAB_SETTINGS_DIR": str(root / ".lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / ".lab-workspaces"),
        "JUPYTER_CONFIG_DIR": str(root / ".jupyter-config"),
        # the kernel imports this checkout, as the test process does
        "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH")) if p),
    }
    log_path = root / "jupyterlab.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--ServerApp.port={port}",
             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120  # a bound on waiting, not a speed claim
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"JupyterLab did not start; its log:\n{log_path.read_text()}") from None
                    time.sleep(0.2)
            yield f"{url}/lab/tree/{{notebook}}?token={token}&reset"
        finally:
            os.killpg(server.pid, signal.SIGTERM)  # the server and the kernels it started, nothing else
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook of code cells (for the browser tests' own scenarios)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def open_and_run_all(page: Any, url: str) -> None:
    """Open a notebook in JupyterLab and run every cell from the Run menu, as a person would."""
    page.goto(url)
    run_all(page)


def run_all(page: Any) -> None:
    """Run every cell of the notebook open in ``page`` from the Run menu, once its kernel is idle."""
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook", timeout=120_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    page.click(".jp-NotebookPanel .jp-Cell .jp-InputPrompt >> nth=0")  # the notebook is the current widget
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    # (the menu greys the item out until the notebook is current: click it once it is enabled)
    page.click(".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel:text-is('Run All Cells')", timeout=120_000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell .jp-InputPrompt:has-text('[*]'), "
                           ".jp-NotebookPanel .jp-Cell .jp-InputPrompt:has-text('[1]')", timeout=120_000)


def switch_theme(page: Any, theme: str) -> None:
    """Settings > Theme > ``theme`` from the menu; returns once JupyterLab applied it."""
    page.click(".lm-MenuBar-itemLabel:text-is('Settings')")
    page.hover(".lm-Menu-itemLabel:text-is('Theme')")
    page.click(f".lm-Menu-itemLabel:text-is('{theme}')")
    light = "false" if "Dark" in theme else "true"
    page.wait_for_selector(f"body[data-jp-theme-light='{light}']", state="attached", timeout=60_000)
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)


CONTRAST_JS = """
(el) => {
  // WCAG 2 contrast ratio of an element's text colour against the first opaque background behind it.
  const rgba = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  let node = el, bg = null;
  while (node && node.nodeType === 1) {
    const c = rgba(getComputedStyle(node).backgroundColor);
    if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) { bg = c; break; }
    node = node.parentElement;
  }
  bg = bg || [255, 255, 255];
  const fg = rgba(getComputedStyle(el).color);
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return {ratio: (a + 0.05) / (b + 0.05), fg: getComputedStyle(el).color, bg: 'rgb(' + bg.slice(0, 3).join(',') + ')'};
}
"""
