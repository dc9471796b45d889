"""The strict spec-file base: frozen pydantic models read from YAML, errors naming the key.

Every spec the user writes (generator spec, trial design, credibility plan, study,
treatment effect) is a `Strict` model: unknown keys are errors, values are frozen. A
top-level file is a `SpecFile`: read with `from_yaml`, its problems listed one line
each as ``file: key.path: what was expected``, and identified by `hash`, the SHA-256 of
its canonical JSON form.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import SpecError


class Strict(BaseModel):
    """Frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SpecFile(Strict):
    """A top-level spec: read from YAML with errors naming file and key path, hashed."""

    _kind: ClassVar[str] = "spec"
    _error: ClassVar[type[SpecError]] = SpecError

    def hash(self) -> str:
        """SHA-256 of the canonical JSON form: the identity of what was specified."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None):
        source = source or f"<{cls._kind}>"
        if not isinstance(data, dict):
            raise cls._error(f"{source}: a {cls._kind} is a YAML mapping, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise cls._error(format_validation_error(err, source)) from err

    @classmethod
    def from_yaml(cls, path: str | Path):
        return cls.from_dict(read_yaml(path, cls._error), source=str(path))


#: a YAML document may expand (aliases followed) to at most this many values: an alias
#: bomb ("billion laughs") is a few hundred bytes that expand to 10^9 values
MAX_YAML_VALUES = 1_000_000


def _expanded(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values ``node`` holds with every alias followed (each shared node counted per use)."""
    key = id(node)
    if key not in memo:
        memo[key] = 1  # a recursive alias counts once instead of looping
        children = [x for kv in node.value for x in kv] if isinstance(node, yaml.MappingNode) else (
            node.value if isinstance(node, yaml.SequenceNode) else [])
        memo[key] = 1 + sum(_expanded(c, memo) for c in children)
    return memo[key]


def load_yaml(text: str | bytes, source: str, error: type[SpecError] = SpecError) -> Any:
    """The data of a YAML document: safe loader (no tags executed: ``!!python/...`` is an error),
    at most `MAX_YAML_VALUES` values after aliases, or `error` naming the source."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and _expanded(node, {}) > MAX_YAML_VALUES:
            raise error(f"{source}: expands to more than {MAX_YAML_VALUES:,} values through aliases "
                        "(an alias bomb?); refused")
        return yaml.safe_load(text)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise error(f"{source}: not valid YAML ({err})") from err
    except RecursionError:
        raise error(f"{source}: nested too deeply to be a spec") from None


def read_yaml(path: str | Path, error: type[SpecError] = SpecError) -> Any:
    """A YAML file's data (`load_yaml`), or `error` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    try:
        text = path.read_bytes()
    except OSError as err:
        raise error(f"{path}: not readable ({err.strerror})") from None
    return load_yaml(text, str(path), error)


def format_validation_error(err: ValidationError, source: str, kind: str = "spec") -> str:
    """One line per problem: file, key path, what was expected."""
    lines = [f"{source}: {err.error_count()} problem(s) in the {kind}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not part of the schema; check its spelling)"
        else:
            msg = e["msg"]
        lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)
