"""The one JSON converter: numpy values, arrays, paths and tuples to plain JSON.

`jsonable` is the ``default`` hook of ``json.dumps``; `dumps` writes strict JSON (no
NaN or Infinity literals: non-finite numbers become the strings ``"nan"``, ``"inf"``,
``"-inf"``) and `plain` returns the converted object itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def jsonable(o: object) -> Any:
    """``json.dumps`` default for numpy scalars and arrays, paths and sets; else TypeError."""
    if hasattr(o, "item") and getattr(o, "ndim", 0) == 0:
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, set | frozenset):
        return sorted(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def lenient(o: object) -> Any:
    """`jsonable`, with anything it cannot convert written as its text (record details)."""
    try:
        return jsonable(o)
    except TypeError:
        return str(o)


def finite(value: Any) -> Any:
    """`value` with containers copied to dicts/lists, numpy values made plain and every
    non-finite float replaced by its text."""
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    elif hasattr(value, "tolist"):
        return finite(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return value


def dumps(obj: Any, *, indent: int | None = 2, strict: bool = True, default=jsonable, sort_keys: bool = False) -> str:
    """JSON text; ``strict`` replaces non-finite numbers by text (see module docs)."""
    return json.dumps(finite(obj) if strict else obj, indent=indent, allow_nan=not strict, default=default,
                      ensure_ascii=False, sort_keys=sort_keys)


def plain(obj: Any, default=lenient) -> Any:
    """`obj` as plain JSON data (what ``json.loads(json.dumps(obj))`` would give)."""
    return json.loads(json.dumps(obj, default=default))
