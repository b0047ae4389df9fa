"""Code versions: a stable hash of what a registry function would do, so editing it re-runs its stages.

A function's version covers its bytecode, constants and names (nested functions and lambdas
included), its defaults, the values its closure holds, and what it reads from its own module that
is plain data (``PROMPT = "..."`` in another notebook cell) or another function of that module,
transitively. Code from the standard library, site-packages and llmtaskgraph itself is named, not
hashed: it changes with an upgrade, not with a notebook edit. A version pinned by hand
(``FunctionRegistry.register(version="v2")``) replaces the hash, so reformatting re-runs nothing.

Bytecode differs between Python minor versions, so moving a trace to another Python re-runs
unpinned stages whose code hashes changed (an LLM is still only called when its request changed).
"""

from __future__ import annotations

import dis
import functools
import hashlib
import os
import sys
import sysconfig
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["CodeVersions", "code_version"]

_PLAIN = frozenset({str, int, float, bool, bytes, type(None), complex})
_MAX_ITEMS = 10_000
"""Bigger collections in module globals are summarised by their length and type, not hashed in full."""


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.add(str(Path(__file__).resolve().parents[1]))  # llmtaskgraph itself
    roots.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return tuple(sorted(os.path.join(str(Path(r).resolve()), "") for r in roots))


_LIBRARY_ROOTS = _library_roots()


def _is_library(code: types.CodeType) -> bool:
    filename = code.co_filename
    if filename.startswith("<") and not filename.startswith("<ipython-input"):
        return filename in ("<frozen>",) or filename.startswith("<frozen ")
    try:
        resolved = str(Path(filename).resolve())
    except (OSError, ValueError):
        return False
    return resolved.startswith(_LIBRARY_ROOTS)


class _Hasher:
    """Walks one function and what it reaches; ``seen`` stops cycles (mutually recursive functions)."""

    def __init__(self) -> None:
        self.h = hashlib.blake2b(digest_size=16)
        self.seen: set[int] = set()

    def feed(self, *parts: object) -> None:
        for part in parts:
            self.h.update(repr(part).encode("utf-8", "backslashreplace"))
            self.h.update(b"\x00")

    def callable(self, fn: Any) -> None:
        if id(fn) in self.seen:
            self.feed("seen", getattr(fn, "__qualname__", type(fn).__name__))
            return
        self.seen.add(id(fn))
        if isinstance(fn, functools.partial):
            self.feed("partial")
            self.callable(fn.func)
            self.value(fn.args, {})
            self.value(fn.keywords, {})
            return
        if isinstance(fn, types.MethodType):
            self.feed("method")
            self.callable(fn.__func__)
            return
        wrapped = getattr(fn, "__wrapped__", None)
        if isinstance(fn, types.FunctionType):
            self.function(fn)
            if wrapped is not None:
                self.callable(wrapped)
            return
        if wrapped is not None:
            self.callable(wrapped)
            return
        call = next((vars(k)["__call__"] for k in type(fn).__mro__ if "__call__" in vars(k)), None)
        if isinstance(call, types.FunctionType):  # a callable object: its class's __call__ and its plain state
            self.feed("object", type(fn).__qualname__)
            self.function(call)
            self.value(getattr(fn, "__dict__", {}), {})
            return
        self.feed("opaque", getattr(fn, "__module__", None), getattr(fn, "__qualname__", type(fn).__qualname__))

    def function(self, fn: types.FunctionType) -> None:
        code = fn.__code__
        if _is_library(code):
            self.feed("library", fn.__module__, fn.__qualname__)
            return
        self.code(code, fn.__doc__)
        self.value(fn.__defaults__, fn.__globals__)
        self.value(fn.__kwdefaults__, fn.__globals__)
        state = _state_names(code)
        for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=True):
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell (a name assigned after the function was made)
                continue
            self.value(content, fn.__globals__, name in state)
        for name in sorted(_global_names(code)):
            if name in fn.__globals__:
                self.feed("global", name)
                self.value(fn.__globals__[name], fn.__globals__, name in state)

    def code(self, code: types.CodeType, doc: str | None = None) -> None:
        consts = code.co_consts
        if doc is not None and consts and consts[0] == doc:  # a docstring edit changes nothing that runs
            consts = (None, *consts[1:])  # (where a function without one holds None)
        self.feed(code.co_code, code.co_names, code.co_varnames, code.co_argcount, code.co_kwonlyargcount, code.co_flags)
        for const in consts:
            if isinstance(const, types.CodeType):
                self.code(const)
            else:
                self.feed(type(const).__name__, const)

    def value(self, value: Any, module_globals: Mapping[str, Any], state: bool = False) -> None:
        """Plain data in full; functions of the same module by their code; anything else by its type only.

        ``state``: the function changes this container itself (appends to it, stores into it): it is
        the function's state, not its input, so only its type counts.
        """
        kind = type(value)
        if kind in _PLAIN:
            self.feed(kind.__name__, value)
        elif state and kind in (list, set, dict):
            self.feed("state", kind.__name__)
        elif kind in (list, tuple, set, frozenset, dict):  # exactly these: a Counter or a cache class is state
            if len(value) > _MAX_ITEMS or id(value) in self.seen:
                self.feed(kind.__name__, len(value))
                return
            self.seen.add(id(value))
            self.feed(kind.__name__, len(value))
            if kind is dict:
                for k, v in value.items():
                    self.value(k, module_globals)
                    self.value(v, module_globals)
            else:
                for item in sorted(value, key=repr) if kind in (set, frozenset) else value:
                    self.value(item, module_globals)
        elif isinstance(value, types.FunctionType):
            if value.__globals__ is module_globals or not _is_library(value.__code__):
                self.callable(value)
            else:
                self.feed("library", value.__module__, value.__qualname__)
        elif isinstance(value, (functools.partial, types.MethodType)):
            self.callable(value)
        elif isinstance(value, types.ModuleType):
            self.feed("module", value.__name__)
        else:  # classes, clients, models: named, never walked (their state is not what a notebook edits)
            kind = value if isinstance(value, type) else type(value)
            self.feed("other", getattr(kind, "__module__", ""), getattr(kind, "__qualname__", ""))


_MUTATORS = frozenset({
    "append", "extend", "insert", "pop", "remove", "clear", "update", "setdefault", "add", "discard", "popitem",
    "sort", "reverse", "__setitem__", "__delitem__",
})
_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_DEREF", "LOAD_NAME", "LOAD_CLASSDEREF"})


def _state_names(code: types.CodeType) -> set[str]:
    """Module or closure names the code changes in place: ``log.append(x)``, ``cache[k] = v``, ``n[k] += 1``.

    Read from the bytecode: a name loaded right before a mutating method, or loaded on a line that
    stores into a subscript. (An approximation: it only decides whether a list, dict or set read by
    the function is hashed as its input or named as its state.)
    """
    names: set[str] = set()
    line_loads: list[str] = []
    previous = None
    for ins in dis.get_instructions(code):
        if ins.starts_line is not None:
            line_loads = []
        if ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and ins.argval in _MUTATORS and previous is not None \
                and previous.opname in _LOADS:
            names.add(str(previous.argval))
        if ins.opname in _LOADS:
            line_loads.append(str(ins.argval))
        elif ins.opname in ("STORE_SUBSCR", "DELETE_SUBSCR"):
            names.update(line_loads)
        previous = ins
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _state_names(const)
    return names


def _global_names(code: types.CodeType) -> set[str]:
    """Names the code (and the code nested in it) loads from its module (not attribute names: ``d.items()``
    reads no global ``items``)."""
    names = {str(ins.argval) for ins in dis.get_instructions(code) if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def code_version(fn: Callable[..., Any]) -> str:
    """The version of ``fn``: a 32-hex hash of its code and what it reads (see the module docstring)."""
    hasher = _Hasher()
    try:
        hasher.callable(fn)
    except RecursionError:  # absurdly deep data in a global: fall back to the code alone
        hasher = _Hasher()
        hasher.feed("shallow", getattr(fn, "__qualname__", None), getattr(getattr(fn, "__code__", None), "co_code", None))
    return hasher.h.hexdigest()


class CodeVersions:
    """The versions of one registry's functions, computed once per run or plan (they may change between)."""

    def __init__(self, registry: Mapping[str, Callable[..., Any]] | None) -> None:
        self.registry = registry
        self._cache: dict[str, str | None] = {}

    def __call__(self, name: str) -> str | None:
        """The version of the function registered as ``name``; None when unknown (no registry, missing name)."""
        try:
            return self._cache[name]
        except KeyError:
            pass
        version = None
        if self.registry is not None:
            pinned = getattr(self.registry, "pinned_version", None)
            version = pinned(name) if pinned is not None else None
            if version is None:
                from ..model.registry import lookup

                fn = lookup(self.registry, name)
                version = None if fn is None else code_version(fn)
            else:
                version = f"pinned:{version}"
        self._cache[name] = version
        return version
