"""JSON schemas: the output schema of a structured-output LLMTask, and the input schema of a tool.

An ``output_schema`` is a JSON schema (a dict) or, when pydantic is installed, a pydantic model
class; either way the task stores the JSON schema, so the graph still saves as JSON. It is sent as
``output_config.format`` (the Messages API's structured outputs) and the parsed output is checked
against it with ``jsonschema`` (imported when first needed).

A tool's input schema comes from its function's signature and type hints (``str``, ``int``,
``float``, ``bool``, ``list[...]``, ``dict``, ``Literal[...]``, ``X | None``, pydantic models), and
its description from the docstring; a tool given as a dict (``{"name", "description",
"input_schema"}``) states them itself.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import GraphValidationError, OutputSchemaError

__all__ = ["as_json_schema", "check_output", "tool_definition"]


def as_json_schema(schema: Any, label: str) -> dict[str, Any]:
    """The JSON schema of ``output_schema=`` (a dict, or a pydantic model class), checked to be a valid schema."""
    result: Any = None
    if isinstance(schema, Mapping):
        result = dict(schema)
    elif isinstance(schema, type) and callable(getattr(schema, "model_json_schema", None)):
        try:
            result = getattr(schema, "model_json_schema")()  # noqa: B009  (a pydantic model class)
        except Exception as exc:  # e.g. pydantic.BaseModel itself
            raise GraphValidationError(f"task `{label}`: `output_schema` {schema.__name__} gives no JSON schema ({exc})") from None
    if not isinstance(result, dict):
        raise GraphValidationError(
            f"task `{label}`: `output_schema` must be a JSON schema (a dict) or a pydantic model class, got {type(schema).__name__}")
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - checked when the output is (with a message saying what to install)
        return result
    try:
        jsonschema.validators.validator_for(result).check_schema(result)
    except jsonschema.SchemaError as exc:
        where = "".join(f"[{p!r}]" for p in exc.absolute_path)
        raise GraphValidationError(f"task `{label}`: `output_schema{where}` is not a valid JSON schema: {exc.message}") from None
    return result


def check_output(value: Any, schema: dict[str, Any], task_id: str) -> None:
    """Raise :class:`OutputSchemaError` when ``value`` does not match ``schema``, naming where."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema comes with the `structured` extra (and with Jupyter)
        raise OutputSchemaError(
            f"task `{task_id}` has an `output_schema`, and checking it needs jsonschema: pip install 'llmtaskgraph[structured]'"
        ) from None
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "output" + "".join(f"[{p!r}]" for p in first.absolute_path)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise OutputSchemaError(
            f"the output of task `{task_id}` does not match its `output_schema`: `{where}`: {first.message}{more}; "
            "fix the parser (the reply is kept, so no call is made) or the schema"
        )


def tool_definition(tool: str | Mapping[str, Any], fn: Callable[..., Any] | None) -> dict[str, Any]:
    """The Messages API ``tools`` entry for ``tool`` (a registry name, or a dict that gives the schema)."""
    if isinstance(tool, Mapping):
        out = {"name": tool["name"], "input_schema": dict(tool.get("input_schema") or _signature_schema(fn, tool["name"]))}
        description = tool.get("description") or _description(fn)
        if description:
            out["description"] = description
        return out
    out = {"name": tool, "input_schema": _signature_schema(fn, tool)}
    description = _description(fn)
    if description:
        out["description"] = description
    return out


def _description(fn: Callable[..., Any] | None) -> str:
    doc = inspect.getdoc(fn) if fn is not None else None
    return doc.split("\n\n")[0].strip() if doc else ""


def _signature_schema(fn: Callable[..., Any] | None, name: str) -> dict[str, Any]:
    """An object schema of ``fn``'s parameters after the context: hinted types, defaults not required."""
    if fn is None:
        raise GraphValidationError(f"tool `{name}` is not in the registry")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise GraphValidationError(f"tool `{name}`: cannot read its signature ({exc}); give its `input_schema`") from None
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # hints naming what cannot be imported here: fall back to unhinted
        hints = {}
    params = list(sig.parameters.values())[1:]  # the first is the TaskContext
    properties: dict[str, Any] = {}
    required: list[str] = []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            if p.kind is p.POSITIONAL_ONLY:
                raise GraphValidationError(f"tool `{name}`: parameter `{p.name}` is positional-only; tools are called with keywords")
            continue
        properties[p.name] = _type_schema(hints.get(p.name, p.annotation))
        if p.default is p.empty:
            required.append(p.name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


_SIMPLE: dict[Any, dict[str, Any]] = {
    str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"}, bool: {"type": "boolean"},
    dict: {"type": "object"}, list: {"type": "array"}, type(None): {"type": "null"},
}


def _type_schema(hint: Any) -> dict[str, Any]:
    if hint is inspect.Parameter.empty or hint is Any:
        return {}
    if hint in _SIMPLE:
        return dict(_SIMPLE[hint])
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        options = [_type_schema(a) for a in args]
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin in (list, tuple, set, frozenset):
        return {"type": "array", "items": _type_schema(args[0])} if args else {"type": "array"}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1])} if len(args) == 2 else {"type": "object"}
    to_schema = getattr(hint, "model_json_schema", None)
    if isinstance(hint, type) and callable(to_schema):
        result = to_schema()
        return result if isinstance(result, dict) else {}
    return {}
