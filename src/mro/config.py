"""Dataclass configs <-> YAML <-> command-line overrides.

Each config is a dataclass whose fields carry ``metadata={"help": ...}``. Values are layered:
field defaults, then a YAML file (``--config file.yaml``), then ``--field-name value`` flags.
Every value goes through one converter, so a bad value from YAML or the command line gives the
same one-line ``MroError`` naming the field. Written by hand (about 100 lines) because
transformers' ``HfArgumentParser`` does not layer YAML under command-line flags nor report bad
values in one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from mro.errors import MroError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unwrap_optional(tp) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def convert(name: str, tp, value: Any) -> Any:
    """Turn a YAML or command-line value into the field's type (one-line error otherwise)."""
    tp, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise MroError(f"config field {name!r} may not be empty")
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1] or (str,)
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            items = [items]
        out = [convert(name, item, v.strip() if isinstance(v, str) else v) for v in items if v != ""]
        return tuple(out) if origin is tuple else out
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            s = str(value).lower()
            if s in _TRUE | _FALSE:
                return s in _TRUE
            raise ValueError
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(str(value)) if isinstance(value, str) else int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            return str(value)
    except ValueError:
        kind = {bool: "true or false", int: "a whole number", float: "a number"}[tp]
        raise MroError(f"config field {name!r} must be {kind}, got {value!r}") from None
    return value


def add_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """One ``--field-name`` flag per field (plus ``--config``), defaults left to :func:`build`."""
    parser.add_argument("--config", default=None, help="YAML file with field values (flags override it)")
    own = getattr(cls, "__annotations__", {})
    ordered = sorted(dataclasses.fields(cls), key=lambda f: f.name not in own)  # the verb's own fields first
    for f in ordered:
        if not f.init:
            continue
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        parser.add_argument(_flag(f.name), dest=f.name, default=argparse.SUPPRESS, metavar="V",
                            help=f"{help_text} (default: {default})")


def build(cls, values: dict | None = None, config_file: str | None = None):
    """Instantiate ``cls`` from YAML values under explicit ``values`` (e.g. parsed flags)."""
    merged: dict[str, Any] = {}
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise MroError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise MroError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise MroError(f"config file {path} must hold a mapping of field names to values")
        merged.update(loaded)
    merged.update(values or {})
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise MroError(f"unknown config field {unknown[0]!r} for {cls.__name__}; known: {', '.join(sorted(known))}")
    return cls(**{k: convert(k, hints[k], v) for k, v in merged.items()})


def from_args(cls, args: argparse.Namespace):
    """Build ``cls`` from a namespace filled by :func:`add_arguments`."""
    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in names}
    return build(cls, given, getattr(args, "config", None))


def to_dict(cfg) -> dict:
    """A config as plain data (for result records and YAML)."""
    return dataclasses.asdict(cfg)
