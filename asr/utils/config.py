"""Typed configs from plain dicts: unknown keys and wrong types are errors, not surprises."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from asr.utils.errors import ConfigError


def _check_type(value: Any, annotation: Any) -> bool:
    """True when ``value`` fits the (simple) type annotation of a config field."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_check_type(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(annotation)
        return isinstance(value, (list, tuple)) and all(_check_type(v, item_type) for v in value)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def dataclass_from_dict(cls: type, data: dict[str, Any], where: str):
    """Build ``cls`` from ``data``; unknown keys and wrong types raise ConfigError naming ``where``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r} (known keys: {', '.join(sorted(known))})")
        if not _check_type(value, hints[key]):
            raise ConfigError(f"{where}.{key}: expected {hints[key]}, got {value!r}")
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None


def to_plain_dict(config: Any) -> dict[str, Any]:
    """A (nested) dataclass as plain dicts and lists, for saving next to a model."""

    def plain(value):
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def dump_toml(config: Any) -> str:
    """Render a dataclass of dataclasses as TOML tables (the subset configs use)."""
    lines = []
    for section, values in to_plain_dict(config).items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if value is None:
                continue  # TOML has no null: an absent key means the default
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
