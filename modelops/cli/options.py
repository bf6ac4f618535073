"""Command-line options from a flow's signature: the flow command spec, option building from
parameters and their docstrings, and coercion of the parsed values into flow parameters."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FlowCommand:
    """A command that runs a flow: its options come from the flow's parameters."""

    name: str
    flow: str  # "module:function"
    help: str
    positionals: Sequence[str] = ()  # parameters given as positional arguments, in order
    flags: dict[str, list[str]] = field(default_factory=dict)  # parameter -> option strings
    defaults: dict[str, Any] = field(default_factory=dict)  # this command's own defaults
    show: Callable[[Any], str] = str  # what to print when the flow completes
    # What the flow will import, imported while Prefect's temporary server starts (if one is
    # needed): "module" or "module:function" to call.
    warm: Sequence[str] = ()

    def load(self) -> Any:
        """The Prefect flow object."""
        module, attr = self.flow.split(":")
        return getattr(importlib.import_module(module), attr)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``Annotated`` and ``None``; whether None was allowed."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _unwrap(rest[0])[0], len(rest) < len(args)
    return annotation, False


def _is_str_dict(annotation: Any) -> bool:
    return typing.get_origin(annotation) is dict and typing.get_args(annotation) == (str, str)


def _parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses as JSON, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _key_values(name: str, items: list[str]) -> Any:
    """``--tag k=v --tag k2=v2`` (or one JSON object) as a dict."""
    from modelops.errors import ConfigurationError

    if len(items) == 1 and items[0].lstrip().startswith("{"):
        return _parse_value(items[0])
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"--{name.replace('_', '-')}: {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def arg_docs(docstring: str | None) -> dict[str, str]:
    """The descriptions in a Google-style ``Args:`` section, by parameter name."""
    docs: dict[str, str] = {}
    section = re.split(r"^Args:\s*$", inspect.cleandoc(docstring or ""), maxsplit=1, flags=re.M)
    if len(section) < 2:
        return docs
    name, indent = None, 0
    for line in section[1].splitlines():
        entry = re.match(r"^\s{2,8}(\w+)(?: \([^)]*\))?:\s*(.*)$", line)
        if entry and (name is None or len(line) - len(line.lstrip()) <= indent):
            name, indent = entry[1], len(line) - len(line.lstrip())
            docs[name] = entry[2].strip()
        elif name and line.strip() and len(line) - len(line.lstrip()) > indent:
            docs[name] += " " + line.strip()
        elif re.match(r"^\s*\w+:\s*$", line) or (line.strip() and not line.startswith(" ")):
            break  # the next section (Returns:, Raises:) or the end of Args
    return docs


def _flow_parameters(flow: Any) -> list[tuple[str, inspect.Parameter, str]]:
    """(name, parameter, description) for each parameter of a flow, from its signature and
    its docstring's ``Args:`` section (the same source Prefect's UI form uses)."""
    signature = inspect.signature(flow.fn, eval_str=True)
    docs = arg_docs(inspect.getdoc(flow.fn))
    return [(name, p, docs.get(name, "")) for name, p in signature.parameters.items()]


def _shown_default(default: Any) -> str:
    if hasattr(default, "model_dump"):
        return json.dumps(default.model_dump(mode="json"))
    if isinstance(default, dict | list):
        return json.dumps(default)
    return repr(default)


def add_flow_options(parser: argparse.ArgumentParser, command: FlowCommand, flow: Any) -> None:
    params = _flow_parameters(flow)
    order = {name: i for i, name in enumerate(command.positionals)}
    params.sort(key=lambda p: order.get(p[0], len(order)))  # positionals first, in their order
    for name, param, doc in params:
        base, _optional = _unwrap(param.annotation)
        required = param.default is inspect.Parameter.empty
        default = command.defaults.get(name, None if required else param.default)
        shown = (
            ""
            if required or default in (None, "", {}, [])
            else (f" (default: {_shown_default(default)})")
        )
        help_text = (doc or "").replace("%", "%%") + shown
        kwargs: dict[str, Any] = {
            "help": help_text,
            "dest": name,
            "default": command.defaults.get(name, argparse.SUPPRESS),
        }
        origin = typing.get_origin(base)
        if origin is typing.Literal:
            choices = [("false" if c is False else str(c)) for c in typing.get_args(base)]
            kwargs.update(choices=choices, metavar="{" + ",".join(choices) + "}")
        elif base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif base in (int, float, str):
            kwargs["type"] = base
        elif _is_str_dict(base):
            kwargs.update(action="append", metavar="KEY=VALUE")
        else:
            kwargs.update(type=_parse_value, metavar="JSON")
        if name in command.positionals:
            kwargs.pop("dest")
            if not required:
                kwargs.update(nargs="?", default=default)
            parser.add_argument(name, **kwargs)
            continue
        flags = command.flags.get(name, ["--" + name.replace("_", "-")])
        parser.add_argument(*flags, **kwargs)


def coerce(flow: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Turn parsed options into flow parameters and validate them now, before any run starts.

    Raises:
        ConfigurationError: one line per invalid parameter.
    """
    from pydantic import TypeAdapter, ValidationError

    from modelops.errors import ConfigurationError
    from modelops.params import describe_validation_error

    params = {name: p for name, p, _ in _flow_parameters(flow)}
    out: dict[str, Any] = {}
    problems = []
    for name, value in values.items():
        annotation = params[name].annotation
        base, _ = _unwrap(annotation)
        if typing.get_origin(base) is typing.Literal and value in ("false", False):
            value = False
        elif _is_str_dict(base) and isinstance(value, list):
            value = _key_values(name, value)
        try:
            out[name] = TypeAdapter(annotation).validate_python(value)
        except ValidationError as exc:
            flag = "--" + name.replace("_", "-")
            problems.append(f"{flag}: {describe_validation_error(exc).split(': ', 1)[-1]}")
    if problems:
        raise ConfigurationError("; ".join(problems))
    model = getattr(flow.fn, "__params_model__", None)
    if model is not None:  # cross-field rules (e.g. deploy needs promote_to=production)
        try:
            model.model_validate(out)
        except ValidationError as exc:
            raise ConfigurationError(describe_validation_error(exc)) from None
    return out
