"""Typed, frozen settings read from the environment once at start-up.

Each service declares one frozen dataclass whose fields carry their environment variable
in ``metadata={"env": "NAME", "help": "..."}``; ``load(SettingsClass)`` reads them all,
converts each to the field's type and stops start-up with a message naming the variable
when a value is missing or invalid. Nothing else in a service reads ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


def env_field(env: str, default: Any = dataclasses.MISSING, help: str = "") -> Any:  # noqa: A002
    """Declare a settings field bound to environment variable ``env``."""
    metadata = {"env": env, "help": help}
    if isinstance(default, list | dict | set):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _convert(raw: str, kind: Any, env: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if raw == "":
            return None
        return _convert(raw, args[0], env)
    if origin in (tuple, list):
        (item,) = typing.get_args(kind)[:1] or (str,)
        items = [part.strip() for part in raw.split(",") if part.strip()]
        return origin(_convert(part, item, env) for part in items)
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind in (int, float, str):
            return kind(raw)
    except ValueError:
        raise SettingsError(f"{env}={raw!r} is not a valid {kind.__name__}") from None
    raise TypeError(f"unsupported settings type {kind!r} for {env}")


def load(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """Build ``cls`` from the environment (or ``environ``)."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        env = field.metadata.get("env")
        if env is None:
            continue
        if env in environ:
            values[field.name] = _convert(environ[env], hints[field.name], env)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise SettingsError(f"{env} is required: {field.metadata.get('help', field.name)}")
    try:
        settings = cls(**values)
    except SettingsError:
        raise
    except (TypeError, ValueError) as exc:
        raise SettingsError(str(exc)) from None
    validate = getattr(settings, "validate", None)
    if callable(validate):
        validate()
    return settings


def describe(cls: type) -> list[tuple[str, str, str]]:
    """(env var, default, help) rows for a service README's settings table."""
    rows = []
    for field in dataclasses.fields(cls):
        if "env" not in field.metadata:
            continue
        if field.default is not dataclasses.MISSING:
            default = repr(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            default = repr(field.default_factory())
        else:
            default = "(required)"
        rows.append((field.metadata["env"], default, field.metadata.get("help", "")))
    return rows
