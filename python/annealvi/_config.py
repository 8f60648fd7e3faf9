"""Configuration sources for :func:`annealvi.train` and :func:`annealvi.sweep`.

A configuration is a ``dict`` (nested like the TOML file), a path to a TOML file
(``str`` or ``os.PathLike``) or a TOML string. Overrides are keyword arguments whose
names are dotted paths written with ``__`` (``target__d=64`` sets ``target.d``) or
nested dicts (``target={"d": 64}``). Values are numbers, strings, booleans, lists and dicts
(numpy scalars and arrays included); ``float("inf")`` and ``float("nan")`` are passed as such
(TOML's ``inf`` and ``nan``), so the validation judges them. Parsing and validation happen in
the Rust library, so errors are the CLI's: a ``ValueError`` naming the field and its valid
range.
"""

import os
from typing import Any, Dict, Mapping, Tuple, Union

ConfigSource = Union[Mapping[str, Any], str, "os.PathLike[str]", None]


def _plain(v: Any) -> Any:
    """numpy scalars and arrays as plain Python values; mappings as dicts, tuples as lists."""
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def source(config: ConfigSource) -> Tuple[str, Any]:
    """(kind, source) for the native loader: kind is "dict" (source a dict of plain values),
    "path" or "toml" (source a string)."""
    if config is None:
        return "dict", {}
    if isinstance(config, Mapping):
        return "dict", _plain(config)
    if isinstance(config, os.PathLike):
        return "path", os.fspath(config)
    if isinstance(config, str):
        stripped = config.strip()
        looks_like_toml = "\n" in stripped or "=" in stripped or stripped.startswith("[")
        if stripped == "":
            return "toml", ""
        if not looks_like_toml or os.path.isfile(config):
            return "path", config
        return "toml", config
    raise TypeError(
        "config must be a dict, a path to a TOML file or a TOML string, not %s"
        % type(config).__name__
    )


def _flatten(prefix: str, value: Any, out: Dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(prefix + "." + str(k) if prefix else str(k), v, out)
    else:
        out[prefix] = _plain(value)


def overrides(kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """Keyword overrides as a dict of dotted keys and plain values."""
    out: Dict[str, Any] = {}
    for k, v in kwargs.items():
        _flatten(k.replace("__", "."), v, out)
    return out
