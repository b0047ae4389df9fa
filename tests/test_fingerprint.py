"""Fingerprints are stable across versions; ``check_json`` accepts exactly what can be saved and loaded."""

from __future__ import annotations

import inspect
import json
import math
import random
import re
from pathlib import Path
from typing import Any

import pytest

from llmtaskgraph import PythonTask, TaskGraph, fingerprint
from llmtaskgraph.errors import OutputNotJSONError
from llmtaskgraph.fingerprint import MAX_DEPTH, canonical, check_json, digest


@pytest.mark.parametrize(("value", "text", "expected"), [
    (None, "null", "941dffce4e4308ceb33e87326003257d"),
    (True, "true", "b30ee95ec6cda01eb712d912431fe867"),
    (0, "0", "1240a4684403b160e6597a653a88f56c"),
    (-1.5, "-1.5", "870e1276d23d4200eecb338dbc99a658"),
    ('é\n"x"', '"é\\n\\"x\\""', "537cfa1e46806b21e7fd8d8d9e783b4b"),
    (["a", 1, None], '["a",1,null]', "fc64438b1d02ead43476828cf1c13e2d"),
    ({"b": [1.5, None, True, "é"], "a": ("x", 2)}, '{"a":["x",2],"b":[1.5,null,true,"é"]}', "bff85f2453d0b1636f519e2fec3c9cec"),
    (("run", "fn", "0" * 32), f'["run","fn","{"0" * 32}"]', "b49d03c20385707dc66202e5411c51fa"),
    ({"z": {"y": [{}, []]}, "\u2028": "\x00"}, '{"z":{"y":[{},[]]},"\u2028":"\\u0000"}', "da07a7e363208aba61ab95f11a5aef1b"),
])
def test_fingerprints_are_those_earlier_versions_stored(value: Any, text: str, expected: str) -> None:
    """Saved traces hold these digests: a different encoding would make every stored result run again."""
    assert canonical(value) == text
    assert digest(value) == expected


def test_the_encoder_uses_only_the_public_json_api() -> None:
    assert "c_make_encoder" not in inspect.getsource(fingerprint)


def nested(depth: int, inner: Any = "bottom") -> Any:
    value = inner
    for _ in range(depth):
        value = [value]
    return value


def test_a_shared_value_is_as_deep_as_its_deepest_place() -> None:
    """Checked once where it is shallow, a shared list is still written at each place it appears."""
    shared = nested(200)  # 200 lists: fine on its own, and where it first appears
    value = [nested(100, shared), shared]  # the walk meets it at depth 1 first, then at depth 101
    with pytest.raises(OutputNotJSONError, match=re.escape(f"`output{'[0]' * MAX_DEPTH}` is nested more than {MAX_DEPTH}")):
        check_json(value, "f")
    check_json([nested(50, shared), shared], "f")  # 1 + 50 + 200 levels: within the limit


def test_values_built_from_shared_parts_are_checked_in_time_linear_in_their_parts() -> None:
    value: Any = ["leaf"]
    for _ in range(40):  # 2**40 paths
        value = [value, value]
    check_json(value, "f")
    for _ in range(MAX_DEPTH):
        value = [value, value]
    with pytest.raises(OutputNotJSONError, match="nested more than"):
        check_json(value, "f")


def candidates() -> list[Any]:
    """Plain and odd values, deep ones, values sharing parts at several depths, random ones."""
    shared = nested(120)
    values: list[Any] = [
        None, 0, 10**3800, 10**3900, 10**5000, math.nan, -math.inf, 1e308, "\ud800", "é", {"k": "\udfff"},
        nested(MAX_DEPTH - 1), nested(MAX_DEPTH), nested(MAX_DEPTH + 1), [shared, nested(100, shared)],
        [nested(100, shared), shared], [nested(135, shared), shared], [nested(136, shared), shared],
        {"a": shared, "b": {"c": nested(130, shared)}}, {"a": nested(140, shared), "b": shared}, ("x",), {1: "x"},
    ]
    rng = random.Random(7)
    parts: list[Any] = ["x", 1, 2.5, None, True, "é", nested(60), shared]
    for _ in range(300):
        kind = rng.random()
        if kind < 0.4:
            part: Any = [rng.choice(parts) for _ in range(rng.randint(0, 3))]
        elif kind < 0.8:
            part = {f"k{i}": rng.choice(parts) for i in range(rng.randint(0, 3))}
        else:
            part = nested(rng.randint(1, 40), rng.choice(parts))
        parts.append(part)
        values.append(part)
    return values


def test_everything_check_json_accepts_saves_and_loads_back(tmp_path: Path) -> None:
    accepted = refused = 0
    for i, value in enumerate(candidates()):
        try:
            check_json(value, "f")
        except OutputNotJSONError:
            refused += 1
            continue
        accepted += 1
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
        assert json.loads(text) == value
        graph = TaskGraph(value)
        graph.add_task(PythonTask("f")).record.output = value
        path = tmp_path / f"{i}.json"
        graph.save(path)
        loaded = TaskGraph.load(path)
        assert loaded.graph_input == value and loaded.tasks["f"].output == value
    assert accepted > 250 and refused >= 10
