"""Typed configs: dataclasses filled from a YAML recipe, then `--set key=value` overrides, then CLI flags.

Recipes are data, never code: values are parsed with `yaml.safe_load`. Unknown keys are errors, so a typo
in a recipe fails at once instead of silently training with a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def parse_overrides(pairs: list[str] | tuple[str, ...] | None) -> dict[str, Any]:
    """`["epochs=3", "windows=[brain,bone]"]` -> `{"epochs": 3, "windows": ["brain", "bone"]}`."""
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"bad override {pair!r}: expected key=value")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return out


def read_recipe(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe must be a mapping of key: value, got {type(data).__name__}")
    return data


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Light coercion for values from YAML / the command line (tuples from lists, floats from ints)."""
    if value is None:
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _coerce(name, value, non_none[0])
        return value
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        inner = args[0] if args else Any
        return tuple(_coerce(name, v, inner) for v in items)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is str and not isinstance(value, str):
        return str(value)
    if annotation in (int, float, bool) and not isinstance(value, annotation):
        raise ValueError(f"config key {name!r}: expected {annotation.__name__}, got {value!r}")
    return value


def build_config(cls: type[T], *layers: dict[str, Any]) -> T:
    """Merge dict layers (later wins; None values in a layer mean 'not given') into dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            key = key.replace("-", "_")
            if key not in names:
                raise ValueError(f"unknown config key {key!r} for {cls.__name__}; valid keys: {', '.join(sorted(names))}")
            if value is not None:
                merged[key] = _coerce(key, value, hints[key])
    return cls(**merged)


def load_config(cls: type[T], recipe: str | Path | None = None, overrides=None, **flags: Any) -> T:
    """Recipe file < `--set` overrides < explicit CLI flags (None = flag not given)."""
    return build_config(cls, read_recipe(recipe), parse_overrides(overrides), flags)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, YAML/JSON-friendly dict (tuples become lists, paths strings)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}
