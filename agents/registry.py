"""A name -> entry table for every extension point of the package (estimators, weightings,
algorithms, backends, ...), in the manner of Gymnasium's ``register`` and verl's registries.

Built-in entries and a researcher's plug-ins register the same way; a name registered twice is
an error, and looking up an unknown name is a one-line error that lists the registered ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

Entry = TypeVar("Entry")


class Registry(Generic[Entry]):
    """A name -> entry table whose errors say what it holds (``what``: e.g. "advantage estimator")."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, entry: Entry) -> Entry:
        """Register ``entry`` under ``name``; a name already taken is a ``ValueError``."""
        if not isinstance(name, str) or not name or "@" in name or "," in name:
            raise ValueError(
                f"a {self.what} name must be a non-empty string without '@' or ',', got {name!r}"
            )
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is already registered; choose another name")
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.what} {name!r}; registered: {', '.join(self._entries)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def decorator(self, name: str, wrap: Callable[[Callable], Entry] = lambda fn: fn) -> Callable:
        """A decorator that registers ``wrap(fn)`` under ``name`` and returns ``fn`` unchanged."""

        def register(fn: Callable) -> Callable:
            self.add(name, wrap(fn))
            return fn

        return register
