"""Dataclass configs <-> YAML <-> command-line overrides.

Each config is a dataclass whose fields carry ``metadata={"help": ...}``. Values are layered:
field defaults, then a YAML file (``--config file.yaml``), then ``--field-name value`` flags.
Every value goes through one converter, so a bad value from YAML or the command line gives the
same one-line ``MroError`` naming the field.

Per-field rules live in the field's ``metadata`` and are checked once, by :class:`Config` (the
base of every config dataclass) when an instance is made, whether from flags, YAML or Python:
floats must be finite, whole numbers must fit in 64 bits, seeds lie in ``[0, 2**32)``,
``"choices"`` (a tuple, or a function returning the names of a registry) lists the allowed
values, ``"min"``/``"max"`` (inclusive) and ``"gt"``/``"lt"`` (strict) bound a number; every item
of a list field is checked. A config's own ``__post_init__`` calls ``super().__post_init__()``
first and keeps only the rules that relate several fields.

Written by hand (about 100 lines) because
transformers' ``HfArgumentParser`` does not layer YAML under command-line flags nor report bad
values in one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from mro.errors import MroError
from mro.io import read_text

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
            if isinstance(value, (bool, list, dict)) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            out = int(str(value).strip()) if isinstance(value, str) else int(value)
            if not -INT_LIMIT <= out < INT_LIMIT:
                raise MroError(f"config field {name!r} is too large: {value!r} does not fit in 64 bits")
            return out
        if tp is float:
            if isinstance(value, (bool, list, dict)):
                raise ValueError
            out = float(value)
            if not math.isfinite(out):
                raise MroError(f"config field {name!r} must be a finite number, got {value!r}")
            return out
        if tp is str:
            if isinstance(value, (list, dict)):
                raise ValueError
            return str(value)
    except (ValueError, TypeError, OverflowError):
        kind = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}[tp]
        raise MroError(f"config field {name!r} must be {kind}, got {value!r}") from None
    return value


#: whole numbers must lie in ``[-INT_LIMIT, INT_LIMIT)`` (what torch and numpy hold)
INT_LIMIT = 2 ** 63
#: seeds lie in ``[0, SEED_LIMIT)`` (what every generator takes, with room for derived seeds)
SEED_LIMIT = 2 ** 32


_BOUNDS = {"min", "max", "gt", "lt"}


def field_choices(metadata) -> tuple | None:
    """The allowed values of a field from its ``metadata["choices"]`` (a tuple, or a function
    returning the names of a registry), or None when any value goes."""
    choices = (metadata or {}).get("choices")
    return tuple(choices() if callable(choices) else choices) if choices is not None else None


def check_range(name: str, value: Any, metadata) -> None:
    """A field's value against its ``metadata``: ``choices``, bounds (``min``, ``max``, ``gt``,
    ``lt``); every item of a list; a field named ``seed`` or ``*_seed`` lies in ``[0, 2**32)``
    unless its metadata says otherwise. One-line ``MroError`` naming the field."""
    meta = dict(metadata or {})
    items = value if isinstance(value, (list, tuple)) else [value]
    choices = field_choices(meta)
    if choices is not None:
        for v in items:
            if v not in choices:
                raise MroError(f"unknown {name} {v!r}; choose from {', '.join(map(str, choices))}")
    if (name == "seed" or name.endswith("_seed")) and not (_BOUNDS & set(meta)):
        meta.update(min=0, max=SEED_LIMIT - 1)
    if not _BOUNDS & set(meta):
        return
    for v in items:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if "min" in meta and v < meta["min"]:
            raise MroError(f"{name} must be >= {meta['min']}, got {v}")
        if "max" in meta and v > meta["max"]:
            raise MroError(f"{name} must be <= {meta['max']}, got {v}")
        if "gt" in meta and not v > meta["gt"]:
            raise MroError(f"{name} must be > {meta['gt']}, got {v}")
        if "lt" in meta and not v < meta["lt"]:
            raise MroError(f"{name} must be < {meta['lt']}, got {v}")


def check_fields(cfg) -> None:
    """Check every field of a config instance against its metadata (what :class:`Config` runs
    when an instance is made, so configs built in Python get the same checks as ones built from
    flags)."""
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name, None)
        if v is None:
            continue
        for item in v if isinstance(v, (list, tuple)) else [v]:
            if isinstance(item, float) and not math.isfinite(item):
                raise MroError(f"{f.name} must be a finite number, got {item}")
        check_range(f.name, v, f.metadata)


class Config:
    """Base of every config dataclass: each field is checked against its ``metadata`` once, when
    the instance is made (see the module docstring). A subclass's ``__post_init__`` calls
    ``super().__post_init__()`` first and adds only rules that relate several fields."""

    def __post_init__(self):
        check_fields(self)


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
        if isinstance(default, (list, tuple)):
            default = ",".join(map(str, default))
        choices = field_choices(f.metadata)
        if choices is not None and " | ".join(map(str, choices)) not in help_text:
            help_text = f"{help_text} ({' | '.join(map(str, choices))})"
        if "default" not in help_text:  # a help text that explains its default says it once
            help_text = f"{help_text} (default: {default})"
        help_text = help_text.replace("%", "%%")
        # a bare boolean flag (``--resume``) means true; ``--resume false`` still works
        flag_kwargs = {"nargs": "?", "const": "true"} if f.type in (bool, "bool") else {}
        parser.add_argument(_flag(f.name), dest=f.name, default=argparse.SUPPRESS, metavar="V",
                            help=help_text, **flag_kwargs)


def build(cls, values: dict | None = None, config_file: str | None = None):
    """Instantiate ``cls`` from YAML values under explicit ``values`` (e.g. parsed flags)."""
    merged: dict[str, Any] = {}
    if config_file:
        path = Path(config_file)
        text = read_text(path, "config file")
        try:
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise MroError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise MroError(f"config file {path} must hold a mapping of field names to values")
        merged.update(loaded)
    merged.update(values or {})
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(str(k) for k in set(merged) - known)
    if unknown:
        raise MroError(f"unknown config field {unknown[0]!r} for {cls.__name__}; known: {', '.join(sorted(known))}")
    meta = {f.name: f.metadata for f in dataclasses.fields(cls)}
    values = {k: convert(k, hints[k], v) for k, v in merged.items()}
    if not issubclass(cls, Config):  # a Config checks its fields itself when it is made
        for k, v in values.items():
            if v is not None:
                check_range(k, v, meta[k])
    return cls(**values)


def from_args(cls, args: argparse.Namespace):
    """Build ``cls`` from a namespace filled by :func:`add_arguments`."""
    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in names}
    return build(cls, given, getattr(args, "config", None))


def to_dict(cfg) -> dict:
    """A config as plain data (for result records and YAML)."""
    return dataclasses.asdict(cfg)


def changed_fields(old: dict, new: dict, cls) -> list[str]:
    """Names whose values differ between two saved records of ``cls`` (sorted); a field missing
    from ``old`` (added to ``cls`` since that record was written) is unchanged while ``new`` holds
    its default, so runs recorded before a new field existed still resume."""
    defaults = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = f.default_factory()
    diff = []
    for k in sorted(set(old) | set(new)):
        if k not in old and k in defaults and new.get(k) == defaults[k]:
            continue
        if old.get(k) != new.get(k):
            diff.append(k)
    return diff


def parse_options(text: str) -> dict:
    """``"a=1,b=true"`` -> ``{"a": 1, "b": True}`` (values read as YAML scalars)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise MroError(f"task option {part!r} is not of the form key=value")
        k, v = part.split("=", 1)
        try:
            out[k.strip()] = yaml.safe_load(v)
        except yaml.YAMLError:
            raise MroError(f"task option {part!r} has a value that cannot be read") from None
    return out
