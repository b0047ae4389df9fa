"""API keys stay secret: checked where they enter, and masked in every error a trace stores.

The leak this guards against: a key read from a file ends with a newline, the HTTP layer refuses the
header with ``Illegal header value b'Bearer sk-ant-...\\n'``, and that message (key included) landed in
the task's error, its traceback, the ``TaskGraphError`` and every view of the trace.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_API_KEY
from fake_messages_api import FakeMessagesAPI

from llmtaskgraph import LLMTask, PythonTask, RunOptionsError, TaskGraph, TaskGraphError
from llmtaskgraph.llm import AnthropicLLM
from llmtaskgraph.llm.secrets import MASK, clean_key, redact, remember
from llmtaskgraph.views.render import to_html

REGISTRY: dict[str, Callable[..., Any]] = {"ask": lambda ctx: "hi", "keep": lambda ctx, text: text}


def one_task() -> tuple[TaskGraph, LLMTask]:
    graph = TaskGraph()
    return graph, graph.add_task(LLMTask("ask", "keep", id="ask"))


# -- keys where they enter ---------------------------------------------------------------------------------
@pytest.mark.parametrize("padding", ["\n", "\r\n", " ", "\t \n"])
def test_a_key_read_from_a_file_works_without_its_line_end(
        fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM], tmp_path: Path, padding: str) -> None:
    (tmp_path / "key.txt").write_text(TEST_API_KEY + padding)
    graph, _ = one_task()
    assert graph.run(REGISTRY, llm=make_llm(api_key=(tmp_path / "key.txt").read_text())) == "echo: hi"
    assert fake_api.requests[0].api_key == TEST_API_KEY


def test_a_key_with_a_line_end_in_the_environment_works_too(
        fake_api: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_API_KEY + "\n")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_api.url)
    graph, _ = one_task()
    assert graph.run(REGISTRY, llm=AnthropicLLM()) == "echo: hi"
    assert fake_api.requests[0].api_key == TEST_API_KEY


@pytest.mark.parametrize(("inside", "what"), [
    ("\n", "U+000A (a control character)"), ("\x07", "U+0007 (a control character)"), (" ", "U+0020 (SPACE)"),
    ("é", "U+00E9 (LATIN SMALL LETTER E WITH ACUTE)"),
])
def test_a_key_with_a_bad_character_inside_is_refused_without_quoting_it(
        monkeypatch: pytest.MonkeyPatch, inside: str, what: str) -> None:
    key = TEST_API_KEY[:10] + inside + TEST_API_KEY[10:]
    with pytest.raises(RunOptionsError) as info:
        AnthropicLLM(api_key=key)
    assert str(info.value) == (f"the key from `api_key=` has {what} at character 11 of {len(key)}: a key is one line "
                               "of printable ASCII; check the file or variable it was read from")
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    with pytest.raises(RunOptionsError, match=r"^the key from ANTHROPIC_API_KEY has ") as env:
        AnthropicLLM()
    for text in (str(info.value), repr(info.value), str(env.value)):
        assert TEST_API_KEY[:10] not in text and TEST_API_KEY[10:] not in text


def test_an_auth_token_is_checked_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "tok-abc\x01def")
    with pytest.raises(RunOptionsError, match=r"^the key from ANTHROPIC_AUTH_TOKEN has U\+0001 "):
        AnthropicLLM()


# -- redaction -------------------------------------------------------------------------------------------
def test_redact_masks_key_shapes_and_remembered_keys_but_not_words() -> None:
    remember("my-proxy-token-1234")
    text = ("a sk-ant-api03-AbC_dEf-123456 b; sk-proj-abcdefghijklmnopqrstuvwxyz0123; b'Bearer sk-ant-x1y2z3w4\\n'; "
            "my-proxy-token-1234; task-abcdefghijklmnopqrstuvwxyz; desk-ant-whatever; sk-short")
    assert redact(text) == (f"a {MASK} b; {MASK}; b'Bearer {MASK}\\n'; {MASK}; task-abcdefghijklmnopqrstuvwxyz; "
                            "desk-ant-whatever; sk-short")
    assert redact("") == "" and redact("nothing here") == "nothing here"


def test_clean_key_strips_and_remembers() -> None:
    assert clean_key("  abc-defghijk-9 \n", "a file") == "abc-defghijk-9"
    assert redact("key abc-defghijk-9 used") == f"key {MASK} used"


# -- the leak, end to end -----------------------------------------------------------------------------------
def seen_everywhere(graph: TaskGraph, error: TaskGraphError, tmp_path: Path) -> str:
    """Every place a key could surface: the raised error, the saved trace, each task's error, views."""
    graph.save(tmp_path / "trace.json")
    seen = [str(error), repr(error), (tmp_path / "trace.json").read_text(), json.dumps(graph.to_json()),
            json.dumps(graph._repr_mimebundle_()), to_html(graph)]
    for task in graph.tasks.values():
        seen += [repr(task), json.dumps(task._repr_mimebundle_()), to_html(task)]
        if task.error is not None:
            seen += [task.error.message, task.error.traceback]
    return "\n".join(seen)


def test_a_key_quoted_by_the_http_layer_is_masked_in_the_trace_errors_and_views(
        fake_api: FakeMessagesAPI, make_llm: Callable[..., AnthropicLLM], tmp_path: Path) -> None:
    """A header read from a file with its newline (here through ``default_headers``, which the SDK
    sends as given): the HTTP layer refuses it in a message that quotes the value."""
    graph, task = one_task()
    llm = make_llm(max_retries=0, default_headers={"x-api-key": TEST_API_KEY + "\n"})
    with pytest.raises(TaskGraphError) as info:
        graph.run(REGISTRY, llm=llm)
    assert task.error is not None and task.error.message.startswith(f"connection error talking to {fake_api.url}: ")
    assert MASK in task.error.message  # the HTTP layer did quote it
    text = seen_everywhere(graph, info.value, tmp_path)
    assert TEST_API_KEY not in text and TEST_API_KEY[-12:] not in text


def test_a_key_in_any_task_error_is_masked(tmp_path: Path) -> None:
    """Not only LLM calls: a registry function whose error (or traceback) quotes a key."""

    def leaky(ctx: Any) -> None:
        key = TEST_API_KEY
        raise RuntimeError(f"could not authenticate with {key}")

    graph = TaskGraph()
    task = graph.add_task(PythonTask("leaky", id="leaky"))
    with pytest.raises(TaskGraphError) as info:
        graph.run({"leaky": leaky})
    assert task.error is not None and task.error.message == f"could not authenticate with {MASK}"
    assert 'raise RuntimeError(f"could not authenticate with {key}")' in task.error.traceback
    assert str(info.value).count(MASK) == 1
    text = seen_everywhere(graph, info.value, tmp_path)
    assert TEST_API_KEY not in text and TEST_API_KEY[-12:] not in text
