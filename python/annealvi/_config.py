"""Configuration sources for :func:`annealvi.train` and :func:`annealvi.sweep`.

A configuration is a ``dict`` (nested like the TOML file), a path to a TOML file
(``str`` or ``os.PathLike``) or a TOML string. Overrides are keyword arguments whose
names are dotted paths written with ``__`` (``target__d=64`` sets ``target.d``) or
nested dicts (``target={"d": 64}``, merged into the table). Values are numbers, strings,
booleans, lists and dicts (numpy scalars and arrays included); ``float("inf")`` and
``float("nan")`` are passed as such (TOML's ``inf`` and ``nan``), so the validation judges them.
A :class:`~annealvi.schedule.Schedule` (any object with a ``to_config()`` method) stands for
its table and replaces the whole table it is given for (``schedule=exponential(0.05, 400)``);
an :class:`~annealvi.Target` given as ``target=`` is a user-defined target (see
:func:`split_target`), while a dict given as ``target=`` is the ``[target]`` table. Parsing and
validation happen in the Rust library, so errors are the CLI's: a ``ValueError`` naming the
field and its valid range.
"""

import os
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from ._target import Target

ConfigSource = Union[Mapping[str, Any], str, "os.PathLike[str]", None]


def _is_table_object(v: Any) -> bool:
    """Whether ``v`` stands for a whole configuration table (a Schedule: ``to_config()``)."""
    return not isinstance(v, Mapping) and callable(getattr(v, "to_config", None))


def _plain(v: Any) -> Any:
    """numpy scalars and arrays as plain Python values; mappings as dicts, tuples as lists;
    a Schedule as its table."""
    if _is_table_object(v):
        return _plain(v.to_config())
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
    if _is_table_object(value):
        # a whole table: it replaces the one in the configuration (no stale fields)
        _drop(out, prefix)
        out[prefix] = _plain(value)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(prefix + "." + str(k) if prefix else str(k), v, out)
    else:
        out[prefix] = _plain(value)


def _drop(out: Dict[str, Any], key: str) -> None:
    """Removes ``key`` and every key below it (``key.…``) from ``out``."""
    for k in [k for k in out if k == key or k.startswith(key + ".")]:
        del out[k]


def overrides(kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """Keyword overrides as a dict of dotted keys and plain values (a Schedule's table as a
    dict value, which replaces the table)."""
    out: Dict[str, Any] = {}
    for k, v in kwargs.items():
        _flatten(k.replace("__", "."), v, out)
    return out


def merge(base: Mapping[str, Any], new: Mapping[str, Any]) -> Dict[str, Any]:
    """Dotted overrides ``new`` applied after ``base`` (both as :func:`overrides` returns
    them): a key of ``new`` drops the same key and the keys below it from ``base``, so that
    the native loader, which applies them in order, sees the later value last."""
    out = dict(base)
    for k, v in new.items():
        _drop(out, k)
        out[k] = v
    return out


def split_target(config: ConfigSource, settings: Mapping[str, Any],
                 user_target: Optional[Target] = None
                 ) -> Tuple[ConfigSource, Dict[str, Any], Optional[Target]]:
    """Separates a user-defined target from a configuration and its keyword settings.

    ``target=`` means two things: a :class:`~annealvi.Target` instance is a user-defined
    target (trained against instead of the configured one), anything else (a dict,
    ``target__d=…``) sets the ``[target]`` table. A Target may also be the ``"target"`` entry
    of a dict configuration, or come as ``user_target=`` (the older keyword; in ``settings``
    or as the argument). Returns
    (configuration without it, settings without it, the target or None); two different
    targets are refused.
    """
    settings = dict(settings)
    if "user_target" in settings:
        if user_target is not None:
            raise TypeError("user_target given twice")
        user_target = settings.pop("user_target")
    found = []
    if user_target is not None:
        if not isinstance(user_target, Target):
            raise TypeError(
                "user_target must be an annealvi.Target (Target.from_callable(fn, dim))")
        found.append(user_target)
    if isinstance(settings.get("target"), Target):
        found.append(settings.pop("target"))
    if isinstance(config, Mapping) and isinstance(config.get("target"), Target):
        found.append(config["target"])
        config = {k: v for k, v in config.items() if k != "target"}
    if any(t is not found[0] for t in found[1:]):
        raise ValueError("invalid value for `target`: two different user targets were given "
                         "(as target= and user_target= or in the configuration); give one")
    return config, settings, (found[0] if found else None)
