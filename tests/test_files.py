"""The one atomic writer (llmtaskgraph/files.py)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from llmtaskgraph.files import write_json_atomically, write_text_atomically


def test_a_write_replaces_the_file_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "t.json"
    write_json_atomically(target, {"a": "é", "n": [1, 2]})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": "é", "n": [1, 2]}
    write_text_atomically(target, "second")
    assert target.read_text(encoding="utf-8") == "second" and os.listdir(tmp_path) == ["t.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "t.json"
    write_text_atomically(target, "old")
    with pytest.raises(ValueError):
        write_json_atomically(target, {"x": float("nan")})
    assert target.read_text(encoding="utf-8") == "old" and os.listdir(tmp_path) == ["t.json"]


def test_files_get_the_mode_open_would_give_them(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        write_text_atomically(tmp_path / "t", "x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "t").stat().st_mode) == 0o644 or os.name != "posix"
