"""The error hierarchy: every error llmtaskgraph defines derives from LLMTaskGraphError, and errors.py draws them all."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import llmtaskgraph
from llmtaskgraph import LLMTaskGraphError
from llmtaskgraph import errors as errors_module
from llmtaskgraph.llm import PromptError
from llmtaskgraph.llm.base import build_request


def package_exceptions() -> dict[str, type[BaseException]]:
    """``module.Name`` -> every exception class defined in the package (private ones excluded)."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(llmtaskgraph.__path__, "llmtaskgraph."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                # A private class (the scheduler's _StageError) never reaches the caller: it is unwrapped first.
                if not name.startswith("_"):
                    found[f"{module.__name__}.{name}"] = obj
    return found


def test_every_error_the_package_defines_derives_from_the_root() -> None:
    found = package_exceptions()
    assert {"llmtaskgraph.errors.TaskGraphError", "llmtaskgraph.errors.PromptError"} <= set(found)
    unrooted = {name for name, cls in found.items() if not issubclass(cls, LLMTaskGraphError)}
    assert not unrooted, sorted(unrooted)


def test_the_hierarchy_drawn_in_errors_py_names_every_class() -> None:
    tree = errors_module.__doc__ or ""
    rooted = [cls.__name__ for cls in package_exceptions().values() if issubclass(cls, LLMTaskGraphError)]
    assert "SubgraphFailed" in rooted
    drawn = re.findall(r"^\s+(?:[│ ]*[├└]── )?(\w+)", tree.split("::", 1)[1], re.M)
    assert drawn[0] == "LLMTaskGraphError"
    assert sorted(set(rooted) - set(drawn)) == []


def test_a_prompt_error_is_an_llmtaskgraph_error_and_still_a_type_error() -> None:
    with pytest.raises(PromptError) as info:
        build_request(None, {})
    assert isinstance(info.value, LLMTaskGraphError) and isinstance(info.value, TypeError)
    assert str(info.value) == (
        "expected a str, a list of messages or a dict of Messages API arguments, got None (does the formatter `return` its prompt?)"
    )
    assert llmtaskgraph.llm.base.PromptError is PromptError is errors_module.PromptError
