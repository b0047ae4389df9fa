"""Dataset inputs (lists, JSONL, JSON, CSV files), case ids, and the file name of each case's trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmtaskgraph import DatasetError
from llmtaskgraph.dataset.inputs import case_file_name, case_ids, read_inputs


def test_a_list_is_taken_as_it_is_and_checked() -> None:
    assert read_inputs([{"a": 1}, "text", None, [1, 2]]) == [{"a": 1}, "text", None, [1, 2]]
    assert read_inputs(x for x in (1, 2)) == [1, 2]
    with pytest.raises(DatasetError, match=r"input 1 cannot be a graph input: `input` is a tuple"):
        read_inputs([1, (1, 2)])
    with pytest.raises(DatasetError, match="wrap a single input in a list"):
        read_inputs({"text": "one"})  # type: ignore[arg-type]


def test_a_jsonl_file_gives_one_input_per_line_and_names_a_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "in.jsonl"
    good.write_text('{"text": "a"}\n\n  \n"b"\n[1, 2.5]\n', encoding="utf-8")
    assert read_inputs(good) == [{"text": "a"}, "b", [1, 2.5]]
    assert read_inputs(str(good)) == read_inputs(good)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"text": NaN}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"`.*bad.jsonl` line 2 holds NaN, which is not JSON"):
        read_inputs(bad)
    bad.write_text('{"text": "a"}\n\n{"text": \n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"`.*bad.jsonl` line 3 is not valid JSON"):
        read_inputs(bad)


def test_json_and_csv_files(tmp_path: Path) -> None:
    array = tmp_path / "in.json"
    array.write_text('[{"text": "a"}, 2]', encoding="utf-8")
    assert read_inputs(array) == [{"text": "a"}, 2]
    array.write_text('{"text": "a"}', encoding="utf-8")
    with pytest.raises(DatasetError, match="must hold a JSON array of inputs, got a dict"):
        read_inputs(array)
    table = tmp_path / "in.csv"
    table.write_text('\ufeffid,text\nr1,"Great, really"\nr2,Bad\n', encoding="utf-8")  # a spreadsheet's BOM
    assert read_inputs(table) == [{"id": "r1", "text": "Great, really"}, {"id": "r2", "text": "Bad"}]
    table.write_text("id,text\nr1,ok\nr2\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"line 3: the row has another number of fields than the header"):
        read_inputs(table)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("in.txt", "x", r"give a .jsonl, .json or .csv file"),
    ("missing.jsonl", None, r"`.*missing.jsonl` does not exist"),
    ("latin.jsonl", b"\xe9t\xe9\n", r"is not UTF-8 text"),
])
def test_files_that_cannot_be_read_are_named(tmp_path: Path, name: str, content: Any, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_inputs(path)


def test_case_ids_by_position_key_or_function() -> None:
    inputs = [{"id": "a", "n": 1}, {"id": 7, "n": 2}]
    assert case_ids(inputs, None) == ["0", "1"]
    assert case_ids(inputs, "id") == ["a", "7"]
    assert case_ids(inputs, lambda x: f"n{x['n']}") == ["n1", "n2"]
    with pytest.raises(DatasetError, match=r"input 1 has no key `id`"):
        case_ids([{"id": "a"}, {"name": "b"}], "id")
    with pytest.raises(DatasetError, match=r"case ids must be unique; these name more than one input: `a`"):
        case_ids([{"id": "a"}, {"id": "a"}], "id")
    with pytest.raises(DatasetError, match=r"the case id of input 0 must be a string or a whole number, got True"):
        case_ids([{"id": True}], "id")
    with pytest.raises(DatasetError, match=r"must be printable text"):
        case_ids([{"id": "a\nb"}], "id")


def test_case_file_names_are_safe_whatever_the_id() -> None:
    assert case_file_name("r1") == "r1.json"
    assert case_file_name("0") == "0.json"
    unsafe = ["../etc/passwd", "R1", "a/b", "..", "case-0123456789abcdef", "é"]
    names = [case_file_name(i) for i in unsafe]
    assert all(n.startswith("case-") and "/" not in n and n.endswith(".json") for n in names)
    assert len(set(names)) == len(unsafe) and case_file_name("R1") != case_file_name("r1")
