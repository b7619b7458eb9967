"""Typed reads from the configuration's mappings, with errors that name the full key path.

Every value read from the file goes through a :class:`Section`, so each refusal says where it
is (``clients[2].scopes: ...``) and a key nobody read is refused as unknown, never ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ConfigError(Exception):
    """The configuration is unusable; the message names the key and what was expected."""


class Section:
    """Typed reads from one mapping of the YAML file; every error names the full key path."""

    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path or 'top level'}: expected a mapping, got {kind(data)}")
        self.data = data
        self.path = path
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def raw(self, name: str) -> Any:
        self.seen.add(name)
        return self.data.get(name)

    def section(self, name: str) -> Section:
        return Section(self.raw(name), self.key(name))

    def string(
        self, name: str, default: str | None = None, *, required: bool = False
    ) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                raise ConfigError(f"{self.key(name)}: required, expected a string")
            return default
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.key(name)}: expected a non-empty string, got {kind(value)}")
        return value

    def choice(self, name: str, choices: Sequence[str], default: str | None = None) -> str:
        value = self.string(name, default, required=default is None)
        if value is None or value not in choices:
            raise ConfigError(
                f"{self.key(name)}: expected one of {', '.join(choices)}; got {value!r}"
            )
        return value

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(
                f"{self.key(name)}: expected a whole number from {low} to {high}, got {value!r}"
            )
        return value

    def seconds(self, name: str, default: float, *, low: float, high: float) -> float:
        """A duration in seconds, whole or fractional (``0.5``)."""
        value = self.raw(name)
        if value is None:
            return default
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not low <= value <= high:
            raise ConfigError(
                f"{self.key(name)}: expected a number of seconds from {low:g} to {high:g}, "
                f"got {value!r}"
            )
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: expected true or false, got {value!r}")
        return value

    def strings(self, name: str, default: Sequence[str] = ()) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return tuple(default)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{self.key(name)}: expected a list of strings")
        if len(set(value)) != len(value):
            raise ConfigError(f"{self.key(name)}: lists a value twice")
        return tuple(value)

    def done(self) -> None:
        unknown = sorted(str(k) for k in self.data if k not in self.seen)
        if unknown:
            expected = ", ".join(sorted(self.seen))
            raise ConfigError(f"{self.key(unknown[0])}: unknown key (expected one of: {expected})")


def kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
