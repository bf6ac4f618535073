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
from pathlib import Path
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


# Where the options of every flow command are kept, so that ``--help`` and refusals of bad
# options need no flow imported (a flow imports Prefect, MLflow and more: 2 s or so). Written by
# ``python -m modelops.cli.write_options`` from the flows themselves; a test fails when it is stale,
# and a command that runs its flow parses again with the live options if they differ.
STORED_OPTIONS = Path(__file__).with_name("flow_options.json")


def option_specs(command: FlowCommand, flow: Any) -> list[dict[str, Any]]:
    """The argparse arguments of a flow command, as JSON-able dicts (see :func:`add_options`):
    one per flow parameter, positionals first, in their order."""
    params = _flow_parameters(flow)
    order = {name: i for i, name in enumerate(command.positionals)}
    params.sort(key=lambda p: order.get(p[0], len(order)))  # positionals first, in their order
    specs = []
    for name, param, doc in params:
        base, _optional = _unwrap(param.annotation)
        required = param.default is inspect.Parameter.empty
        default = command.defaults.get(name, None if required else param.default)
        shown = (
            ""
            if required or default in (None, "", {}, [])
            else (f" (default: {_shown_default(default)})")
        )
        spec: dict[str, Any] = {"name": name, "help": (doc or "").replace("%", "%%") + shown}
        origin = typing.get_origin(base)
        if origin is typing.Literal:
            spec["choices"] = [("false" if c is False else str(c)) for c in typing.get_args(base)]
        elif base is bool:
            spec["kind"] = "bool"
        elif base in (int, float, str):
            spec["kind"] = base.__name__
        elif _is_str_dict(base):
            spec["kind"] = "key=value"
        else:
            spec["kind"] = "json"
        if name in command.positionals:
            spec["positional"] = True
            if not required:
                spec["default"] = _jsonable(default)
        else:
            spec["flags"] = command.flags.get(name, ["--" + name.replace("_", "-")])
            if name in command.defaults:
                spec["default"] = _jsonable(command.defaults[name])
        specs.append(spec)
    return specs


def _jsonable(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


_TYPES: dict[str, Any] = {"int": int, "float": float, "str": str, "json": _parse_value}


def add_options(parser: argparse.ArgumentParser, specs: list[dict[str, Any]]) -> None:
    """Add the arguments :func:`option_specs` describes to ``parser``."""
    for spec in specs:
        kwargs: dict[str, Any] = {"help": spec["help"]}
        kind = spec.get("kind")
        if "choices" in spec:
            kwargs.update(choices=spec["choices"], metavar="{" + ",".join(spec["choices"]) + "}")
        elif kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif kind == "key=value":
            kwargs.update(action="append", metavar="KEY=VALUE")
        else:
            kwargs["type"] = _TYPES[str(kind)]
            if kind == "json":
                kwargs["metavar"] = "JSON"
        if spec.get("positional"):
            if "default" in spec:
                kwargs.update(nargs="?", default=spec["default"])
            parser.add_argument(spec["name"], **kwargs)
        else:
            kwargs.update(dest=spec["name"], default=spec.get("default", argparse.SUPPRESS))
            parser.add_argument(*spec["flags"], **kwargs)


def stored_options() -> dict[str, list[dict[str, Any]]]:
    """Every flow command's arguments as last written by :func:`write_stored_options`."""
    try:
        return dict(json.loads(STORED_OPTIONS.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}  # not written yet: each command builds its options from its flow


def write_stored_options(commands: Sequence[FlowCommand]) -> None:
    """Write :data:`STORED_OPTIONS` from the flows (imports every flow)."""
    specs = {command.name: option_specs(command, command.load()) for command in commands}
    STORED_OPTIONS.write_text(json.dumps(specs, indent=1, sort_keys=True) + "\n", encoding="utf-8")


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
