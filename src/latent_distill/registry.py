"""A small name -> object registry, shared by objectives, representations and presets."""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to classes or values; unknown names raise a ``KeyError`` listing the known ones.

    Args:
        kind: what the registry holds, used in error messages (e.g. ``"objective"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding an entry under ``name`` (classes also get a ``name`` attribute)."""

        def decorator(item: T) -> T:
            self.add(name, item)
            if isinstance(item, type):
                item.name = name
            return item

        return decorator

    def add(self, name: str, item: T) -> None:
        if name in self._items:
            raise KeyError(f"A {self.kind} named {name!r} is already registered; pick another name.")
        self._items[name] = item

    def get(self, name: str) -> T:
        if name not in self._items:
            raise KeyError(f"Unknown {self.kind} {name!r}; available: {self.names()}.")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
