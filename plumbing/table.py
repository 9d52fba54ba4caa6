"""Typed, strict reading of TOML tables: unknown keys, wrong types and impossible values are errors.

Each ``Table`` knows where it came from (``"sidecar.toml [wait]"``), so every error names the file and key.
Both daemons build their configuration with it, once, at start-up.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from .duration import parse_duration
from .errors import ConfigError

__all__ = ["Table", "load_toml"]

T = TypeVar("T")


def load_toml(path: Path) -> dict[str, Any]:
    """Read and parse a TOML file; any failure is a ConfigError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror or exc}.") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Config file {path} is not UTF-8 text.") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Config file {path} is not valid TOML: {exc}.") from exc


class Table:
    """One TOML table being read; call ``done()`` at the end to reject keys nobody asked for."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self._data = dict(data)
        self._seen: set[str] = set()
        self.where = where

    def error(self, key: str, problem: str) -> ConfigError:
        """Return a ConfigError for one key of this table."""
        return ConfigError(f"{self.where}: key '{key}' {problem}.")

    def _get(self, key: str, kind: type[T] | tuple[type, ...], kind_name: str) -> T | None:
        self._seen.add(key)
        if key not in self._data:
            return None
        value = self._data[key]
        # bool is an int in Python; a TOML `true` must not pass as a number.
        if isinstance(value, bool) and kind is not bool:
            raise self.error(key, f"must be {kind_name}, not a boolean")
        if not isinstance(value, kind):
            raise self.error(key, f"must be {kind_name}, not {type(value).__name__} {value!r}")
        return value  # type: ignore[return-value]

    def string(self, key: str, default: str | None = None) -> str | None:
        """Return a string value, or the default when absent."""
        value = self._get(key, str, "a string")
        return default if value is None else value

    def boolean(self, key: str, default: bool) -> bool:
        """Return a boolean value, or the default when absent."""
        value = self._get(key, bool, "true or false")
        return default if value is None else value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        """Return an integer within [low, high], or the default when absent."""
        value = self._get(key, int, "a whole number")
        if value is None:
            return default
        if not low <= value <= high:
            raise self.error(key, f"must be between {low} and {high}, not {value}")
        return value

    def duration(self, key: str, default: float) -> float:
        """Return a duration in seconds, written like '500ms' or '10s'."""
        value = self._get(key, str, "a duration string such as '10s'")
        if value is None:
            return default
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(key, f"is invalid: {exc}") from None

    def strings(self, key: str, default: tuple[str, ...] | None = None) -> tuple[str, ...] | None:
        """Return a list of strings as a tuple, or the default when absent."""
        value = self._get(key, list, "a list of strings")
        if value is None:
            return default
        if not all(isinstance(item, str) for item in value):
            raise self.error(key, "must be a list of strings")
        return tuple(value)

    def path(self, key: str, base: Path, default: str | None = None) -> Path | None:
        """Return a path, relative paths taken from ``base`` (the config file's folder)."""
        value = self.string(key, default)
        if value is None:
            return None
        if not value:
            raise self.error(key, "must not be empty")
        return (base / value).expanduser() if not Path(value).is_absolute() else Path(value)

    def table(self, key: str) -> Table:
        """Return a sub-table (empty when absent)."""
        value = self._get(key, dict, "a table")
        return Table(value or {}, f"{self.where} [{key}]" if "[" not in self.where else f"{self.where}.{key}")

    def tables(self, key: str) -> list[Table]:
        """Return an array of tables, such as ``[[template]]``."""
        value = self._get(key, list, "an array of tables")
        if value is None:
            return []
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.error(key, "must be an array of tables ([[...]])")
            out.append(Table(item, f"{self.where.split(' [')[0]} [[{key}]] #{i + 1}"))
        return out

    def raw(self, key: str) -> Any:
        """Return a value of any type as it is, marking the key as known."""
        self._seen.add(key)
        return self._data.get(key)

    def done(self) -> None:
        """Raise a ConfigError for the first key nobody asked for (likely a typo)."""
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            raise ConfigError(f"{self.where}: unknown key '{unknown[0]}'.")
