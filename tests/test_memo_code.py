"""Code versions: what changes a function's version, what does not, and what a code edit re-runs."""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from core_helpers import CountingRegistry

from llmtaskgraph import FunctionRegistry, LLMTask, OfflineLLM, PythonTask, ScriptedLLM, TaskGraph
from llmtaskgraph.memo.code import CodeVersions, code_version

FIXTURE = Path(__file__).parent / "fixtures" / "trace_v1.json"


def cell(source: str) -> dict[str, Any]:
    """Run ``source`` as a notebook cell would (its own globals) and return those globals."""
    namespace: dict[str, Any] = {}
    exec(compile(source, "/tmp/ipykernel_1/cell.py", "exec"), namespace)
    return namespace


def test_same_code_same_version_and_any_code_change_changes_it():
    a = cell("def f(ctx, x):\n    return x + 1\n")["f"]
    b = cell("def f(ctx, x):\n    # a comment, and the function defined again\n    return x + 1\n")["f"]
    c = cell("def f(ctx, x):\n    return x + 2\n")["f"]
    d = cell("def f(ctx, y):\n    return y.upper()\n")["f"]
    assert code_version(a) == code_version(b)
    assert len({code_version(a), code_version(c), code_version(d)}) == 3


def test_docstrings_and_line_numbers_do_not_count_but_defaults_do():
    a = cell("def f(ctx, x=1):\n    return x\n")["f"]
    b = cell('\n\n\ndef f(ctx, x=1):\n    """Says what f does."""\n    return x\n')["f"]
    c = cell("def f(ctx, x=2):\n    return x\n")["f"]
    assert code_version(a) == code_version(b) != code_version(c)


def test_module_data_it_reads_counts_transitively_through_same_module_functions():
    ns = cell(
        "PROMPT = 'Rate {x} from 1 to 5.'\n"
        "UNUSED = 1\n"
        "def render(x):\n    return PROMPT.format(x=x)\n"
        "def fmt(ctx, x):\n    return render(x)\n"
    )
    before = code_version(ns["fmt"])
    ns["UNUSED"] = 2  # not read: no change
    assert code_version(ns["fmt"]) == before
    ns["PROMPT"] = "Rate {x} from 1 to 10."  # read by a function it calls: a change
    assert code_version(ns["fmt"]) != before


def test_nested_functions_lambdas_and_closures_count():
    a = cell("def f(ctx, xs):\n    return sorted(xs, key=lambda x: -x)\n")["f"]
    b = cell("def f(ctx, xs):\n    return sorted(xs, key=lambda x: x)\n")["f"]
    assert code_version(a) != code_version(b)
    make = cell("def make(n):\n    def f(ctx):\n        return n\n    return f\n")["make"]
    assert code_version(make(1)) != code_version(make(2))
    assert code_version(functools.partial(a, None)) != code_version(functools.partial(a, 1))


def test_mutable_state_that_is_not_plain_data_does_not_change_the_version():
    ns = cell("import collections\nCALLS = collections.Counter()\ndef f(ctx):\n    CALLS['f'] += 1\n    return 1\n")
    before = code_version(ns["f"])
    ns["f"](None)
    assert code_version(ns["f"]) == before


def test_library_code_is_named_not_hashed():
    assert code_version(json.dumps) == code_version(json.dumps)
    assert code_version(functools.partial(json.dumps, indent=2)) != code_version(functools.partial(json.dumps, indent=4))


def test_a_pinned_version_replaces_the_code_hash():
    registry = FunctionRegistry()
    ns1 = cell("def parse(ctx, text):\n    return text\n")
    ns2 = cell("def parse(ctx, text):\n    return text  # reformatted\n\n")
    registry.register(version="v1")(ns1["parse"])
    assert CodeVersions(registry)("parse") == "pinned:v1"
    registry.register("parse", version="v1")(ns2["parse"])
    assert CodeVersions(registry)("parse") == "pinned:v1"
    assert registry.merge({}).pinned_version("parse") == "v1"
    registry.add("parse", ns2["parse"])  # unpinned again
    assert CodeVersions(registry)("parse") == code_version(ns2["parse"])


def llm_graph() -> tuple[TaskGraph, dict[str, Any], ScriptedLLM]:
    graph = TaskGraph({"topic": "owls"})
    topic = graph.add_task(PythonTask("topic", id="topic"))
    ask = graph.add_task(LLMTask("fmt", "parse", topic, id="ask"))
    graph.add_output_task(PythonTask("shout", ask, id="shout"))
    functions = cell(
        "def topic(ctx):\n    return ctx.graph_input['topic']\n"
        "def fmt(ctx, topic):\n    return f'Tell me about {topic}.'\n"
        "def parse(ctx, text):\n    return text.strip()\n"
        "def shout(ctx, text):\n    return text.upper()\n"
    )
    return graph, functions, ScriptedLLM(lambda prompt: f"A fact about {prompt}")


def test_a_changed_parser_reparses_the_stored_reply_without_calling_the_llm():
    graph, fns, llm = llm_graph()
    registry = CountingRegistry(fns)
    graph.run(registry, llm=llm)
    registry.take()
    registry.add("parse", cell("def parse(ctx, text):\n    return text.strip().rstrip('.')\n")["parse"])
    plan = graph.plan(registry, llm=llm)
    assert plan.will_run == ["ask", "shout"] and plan.llm_calls == 0
    assert plan.reasons["ask"] == ["code of `parse` changed"]
    assert plan.reasons["shout"] == ["output of `ask` may change (it runs first)"]
    graph.run(registry, llm=llm)
    assert registry.take() == {"parse": 1, "shout": 1}
    assert graph.last_run is not None and graph.last_run.llm_calls == 0


def test_a_changed_formatter_calls_the_llm_only_if_the_request_changed():
    graph, fns, llm = llm_graph()
    registry = CountingRegistry(fns)
    graph.run(registry, llm=llm)
    registry.take()
    # same request, other code: the formatter runs, the call and everything after are reused
    registry.add("fmt", cell("def fmt(ctx, topic):\n    return 'Tell me about ' + topic + '.'\n")["fmt"])
    assert graph.plan(registry, llm=llm).llm_calls == 1 and graph.plan(registry, llm=llm).llm_calls_certain == 0
    graph.run(registry, llm=llm)
    assert registry.take() == {"fmt": 1}
    assert graph.last_run is not None and graph.last_run.llm_calls == 0
    # another request: one call, then the parser and its descendants
    registry.add("fmt", cell("def fmt(ctx, topic):\n    return f'Tell me about {topic}!'\n")["fmt"])
    graph.run(registry, llm=llm)
    assert registry.take() == {"fmt": 1, "parse": 1, "shout": 1}
    assert graph.last_run is not None and graph.last_run.llm_calls == 1


def test_a_changed_python_task_reruns_and_only_descendants_whose_inputs_changed_follow():
    graph, fns, llm = llm_graph()
    registry = CountingRegistry(fns)
    graph.run(registry, llm=llm)
    registry.take()
    registry.add("topic", cell("def topic(ctx):\n    return str(ctx.graph_input['topic'])\n")["topic"])
    graph.run(registry, llm=llm)  # same output: the cascade stops
    assert registry.take() == {"topic": 1}
    registry.add("topic", cell("def topic(ctx):\n    return ctx.graph_input['topic'].title()\n")["topic"])
    graph.run(registry, llm=llm)
    assert registry.take() == {"topic": 1, "fmt": 1, "parse": 1, "shout": 1}


def test_a_plain_dict_registry_gets_code_versions_too():
    graph, fns, llm = llm_graph()
    registry = dict(fns)
    graph.run(registry, llm=llm)
    registry["shout"] = cell("def shout(ctx, text):\n    return text.lower()\n")["shout"]
    assert graph.plan(registry, llm=llm).will_run == ["shout"]
    assert graph.run(registry, llm=llm) == graph.tasks["ask"].output.lower()


def test_a_pinned_version_makes_a_reformat_rerun_nothing_and_a_new_pin_rerun_it():
    graph, fns, llm = llm_graph()
    registry = CountingRegistry()
    for name, fn in fns.items():
        if callable(fn):
            registry.add(name, fn, version="v1" if name == "parse" else None)
    graph.run(registry, llm=llm)
    registry.take()
    registry.add("parse", cell("def parse(ctx, text):\n    return text.strip()  # same, reformatted\n")["parse"], version="v1")
    graph.run(registry, llm=llm)
    assert registry.take() == {}
    registry.add("parse", fns["parse"], version="v2")
    graph.run(registry, llm=llm)
    assert registry.take() == {"parse": 1}


def test_a_trace_saved_before_code_versions_adopts_them_once_and_says_so():
    from test_serialization import V1_REGISTRY as registry

    graph = TaskGraph.load(FIXTURE)
    plan = graph.plan(registry, llm=OfflineLLM())
    assert plan.will_run == [] and plan.llm_calls == 0
    assert any("no code version" in note for note in plan.notes)
    with pytest.warns(UserWarning, match="saved before code versions"):
        graph.run(registry, llm=OfflineLLM())
    assert graph.last_run is not None and graph.last_run.executed == [] and graph.last_run.adopted_versions > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # adopted once: the second run says nothing
        graph.run(registry, llm=OfflineLLM())
    assert graph.last_run.adopted_versions == 0


def test_a_list_or_dict_the_function_changes_itself_is_its_state_not_its_input():
    ns = cell(
        "LOG = []\nSEEN = {}\nEXAMPLES = ['a: 1']\n"
        "def f(ctx, x):\n    LOG.append(x)\n    SEEN[x] = 1\n    return EXAMPLES[0] + x\n"
    )
    made = cell("def make():\n    calls = []\n    def g(ctx):\n        calls.append(1)\n        return 1\n    return g\n")
    g = made["make"]()
    before, before_g = code_version(ns["f"]), code_version(g)
    ns["f"](None, "y")
    g(None)
    assert (code_version(ns["f"]), code_version(g)) == (before, before_g)
    ns["EXAMPLES"].append("b: 2")  # data it only reads: an input
    assert code_version(ns["f"]) != before


def test_attribute_names_are_not_read_as_module_globals():
    ns = cell("items = [1, 2]\ndef f(ctx, d):\n    return list(d.items())\n")
    before = code_version(ns["f"])
    ns["items"] = [3]
    assert code_version(ns["f"]) == before
