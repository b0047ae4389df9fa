"""The editor in a real browser: Voilà serves the edit-and-replay tutorial, headless chromium clicks Replay.

This is the check that the widgets work where people use them (a front end rendering the widget
models), which the Python-side widget tests cannot see. Chromium is Debian's (`/usr/bin/chromium`,
installed by scripts/bootstrap.sh); Playwright only drives it and never downloads a browser.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmtaskgraph.views.render import STATUS_COLOURS

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "02_edit_and_replay.ipynb"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def voila_url(tmp_path: Path) -> Iterator[str]:
    """Voilà serving the notebook on 127.0.0.1; stopped (with its kernel) after the test."""
    port = _free_port()
    log = (tmp_path / "voila.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "voila", str(NOTEBOOK), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
         "--show_tracebacks=True"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Voilà did not start; its log:\n{(tmp_path / 'voila.log').read_text()}") from None
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the kernel it started, nothing else
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def _fill(page, task_id: str) -> str:
    """Fill colour of the node drawn for ``task_id`` in the editor's graph view."""
    return page.eval_on_selector(f'.ltg-editor .ltg-view g[id="task:{task_id}"] path', "e => e.getAttribute('fill')")


def test_clicking_replay_in_the_browser_reruns_the_edited_tasks_and_redraws_the_graph(voila_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1200})
            page.goto(voila_url, wait_until="domcontentloaded")
            page.wait_for_selector(".ltg-editor .ltg-view svg", timeout=60_000)
            # The notebook edited the reply of `rate`, so it and `tally` wait to run again (stale).
            assert _fill(page, "pick") == STATUS_COLOURS["done"]
            assert _fill(page, "rate") == STATUS_COLOURS["stale"]
            assert _fill(page, "tally") == STATUS_COLOURS["stale"]
            page.locator(".ltg-editor").screenshot(path=str(tmp_path / "editor-before-replay.png"))

            page.locator("button.ltg-replay").click()
            page.wait_for_function(
                "done => document.querySelector('.ltg-editor .ltg-view g[id=\"task:tally\"] path')"
                ".getAttribute('fill') === done",
                arg=STATUS_COLOURS["done"], timeout=30_000,
            )
            assert _fill(page, "rate") == STATUS_COLOURS["done"]
            # the live drawing may turn green a moment before the run's end updates the status line
            final = "3 done · last run: 2 executed, 1 reused, 0 LLM calls"
            page.wait_for_function(
                "text => document.querySelector('.ltg-editor .ltg-status').innerText === text", arg=final, timeout=30_000)
            assert page.inner_text(".ltg-editor .ltg-status") == final
            assert "replayed: 3/3 tasks done" in page.inner_text(".ltg-editor")
            shot = tmp_path / "editor-after-replay.png"
            page.locator(".ltg-editor").screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            print(f"screenshot: {shot}")
        finally:
            browser.close()
