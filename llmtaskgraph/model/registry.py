"""The function registry: where task code lives, keyed by the names the graph stores.

Any ``Mapping[str, Callable]`` works (a plain dict, as in the seed example); :class:`FunctionRegistry`
adds a ``register`` decorator, validation and merging. Looking a name up is the only thing a trace
can make llmtaskgraph do: names from JSON are never imported, evaluated or resolved as attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar, overload

from ..errors import GraphValidationError, MissingFunctionError

F = TypeVar("F", bound=Callable[..., Any])
Registry = Mapping[str, Callable[..., Any]]


class FunctionRegistry(Mapping[str, Callable[..., Any]]):
    """A mapping from name to function, with a decorator to fill it.

    >>> registry = FunctionRegistry()
    >>> @registry.register
    ... def greet(ctx, who):
    ...     return f"hello {who}"
    >>> "greet" in registry
    True
    """

    def __init__(self, functions: Mapping[str, Callable[..., Any]] | None = None, /, **more: Callable[..., Any]) -> None:
        self._functions: dict[str, Callable[..., Any]] = {}
        self._versions: dict[str, str] = {}
        for name, fn in {**(functions or {}), **more}.items():
            self.add(name, fn)

    @overload
    def register(self, fn: F, /) -> F: ...
    @overload
    def register(self, name: str | None = None, /, *, version: str | None = None) -> Callable[[F], F]: ...
    def register(self, fn_or_name: Any = None, /, *, version: str | None = None) -> Any:
        """Decorator: ``@registry.register`` (uses ``fn.__name__``), ``@registry.register("name")``, and
        either with ``version="v2"`` to pin the function's code version by hand.

        Without a pinned version, editing the function (or the plain data and same-module functions
        it reads) re-runs the stages that call it (see :mod:`llmtaskgraph.memo.code`). A pinned version
        changes only when you change it, so reformatting or refactoring re-runs nothing.
        """
        if callable(fn_or_name) and not isinstance(fn_or_name, str):
            self.add(fn_or_name.__name__, fn_or_name)
            return fn_or_name

        def decorate(fn: F) -> F:
            self.add(fn_or_name if fn_or_name is not None else fn.__name__, fn, version=version)
            return fn

        return decorate

    def add(self, name: str, fn: Callable[..., Any], *, version: str | None = None) -> None:
        """Register ``fn`` as ``name`` (replacing what was there), optionally with a pinned ``version``."""
        if not isinstance(name, str) or not name:
            raise GraphValidationError(f"registry names must be non-empty strings, got {name!r}")
        if not callable(fn):
            raise GraphValidationError(f"registry entry `{name}` must be callable, got {type(fn).__name__}")
        if version is not None and (not isinstance(version, str) or not version):
            raise GraphValidationError(f"the version of registry entry `{name}` must be a non-empty string, got {version!r}")
        self._functions[name] = fn
        if version is None:
            self._versions.pop(name, None)
        else:
            self._versions[name] = version

    def pinned_version(self, name: str) -> str | None:
        """The version pinned for ``name`` with ``register(version=...)``, or None (computed from the code)."""
        return self._versions.get(name)

    def merge(self, *others: Mapping[str, Callable[..., Any]]) -> FunctionRegistry:
        """A new registry with this one's functions, then each of ``others`` (later ones win); pinned versions
        go with their functions."""
        merged = FunctionRegistry()
        for source in (self, *others):
            pinned = getattr(source, "pinned_version", None)
            for name, fn in source.items():
                merged.add(name, fn, version=pinned(name) if pinned is not None else None)
        return merged

    def __or__(self, other: Mapping[str, Callable[..., Any]]) -> FunctionRegistry:
        return self.merge(other)

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return self._functions[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._functions)

    def __len__(self) -> int:
        return len(self._functions)

    def __repr__(self) -> str:
        return f"FunctionRegistry({sorted(self._functions)})"


BUILTINS: dict[str, Callable[..., Any]] = {}
"""Functions llmtaskgraph itself provides under reserved ``llmtaskgraph.*`` names (the turns of a tool
loop): found whatever the registry holds, so a graph that uses them needs nothing registered."""


def lookup(registry: Registry, name: str) -> Callable[..., Any] | None:
    """The callable registered as ``name`` (or built in), or None. Only ``registry[name]`` is ever used."""
    if name.startswith("llmtaskgraph.") and name in BUILTINS:
        return BUILTINS[name]
    try:
        fn = registry[name]
    except (KeyError, TypeError):
        return None
    return fn if callable(fn) else None


def check_registry(registry: Registry, needs: Mapping[str, list[str]]) -> None:
    """Raise :class:`MissingFunctionError` listing every needed name that is absent or not callable."""
    if not isinstance(registry, Mapping):
        raise GraphValidationError(
            f"the registry must be a mapping from name to function (a dict works), got {type(registry).__name__}")
    problems = {name: tasks for name, tasks in needs.items() if lookup(registry, name) is None}
    if problems:
        not_callable = {name: type(registry[name]).__name__ for name in problems if _has(registry, name)}
        raise MissingFunctionError(problems, not_callable)


def _has(registry: Registry, name: str) -> bool:
    try:
        return name in registry
    except TypeError:
        return False
