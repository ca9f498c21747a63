"""A small name -> object registry, the one style every extension point of the library uses.

Each registry (objectives, representations, presets, networks, augmentations, mixings, skip
connections, evaluation protocols and their augmentations) is a :class:`Registry` exposed through
three module-level functions of the same shape: ``register_<kind>``, ``get_<kind>(name)`` and
``list_<kind>s()``. Unknown names raise the same error everywhere (:meth:`Registry.unknown_name_error`):
it lists the available names and says how to register a new one.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """Raised for an unknown or already registered name; the message names the fix.

    A ``KeyError`` whose message prints as written (a plain ``KeyError`` prints its repr).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Maps names to classes or values; unknown names raise an error listing the known ones.

    Args:
        kind: what the registry holds, used in error messages (e.g. ``"objective"``).
        register_with: how a new entry is added, quoted in the unknown-name error
            (e.g. ``"@register_objective(name)"``).
        error: the exception type of unknown and duplicate names; a :class:`RegistryError` subclass,
            so every registry's errors are ``KeyError``\\ s (subclasses may add a domain error type).
        case_sensitive: when ``False``, names are stored and looked up lower-cased.
    """

    def __init__(self, kind: str, register_with: str, error: type[RegistryError] = RegistryError,
                 case_sensitive: bool = True) -> None:
        self.kind = kind
        self.register_with = register_with
        self.error = error
        self.case_sensitive = case_sensitive
        self._items: dict[str, T] = {}

    def key(self, name: str) -> str:
        """The stored form of ``name`` (lower-cased when the registry is case-insensitive).

        Args:
            name: a name as given by the caller.

        Returns:
            The registry key.
        """
        return name if self.case_sensitive else name.lower()

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding an entry under ``name`` (classes also get a ``name`` attribute).

        Args:
            name: the registry key.

        Returns:
            The decorator, which returns the entry unchanged.
        """

        def decorator(item: T) -> T:
            self.add(name, item)
            if isinstance(item, type):
                item.name = self.key(name)
            return item

        return decorator

    def add(self, name: str, item: T) -> None:
        """Adds an entry under ``name``.

        Args:
            name: the registry key.
            item: the class or value to store.

        Raises:
            RegistryError: (the registry's ``error`` type) when ``name`` is already registered.
        """
        key = self.key(name)
        if key in self._items:
            raise self.error(f"A {self.kind} named {key!r} is already registered; pick another name.")
        self._items[key] = item

    def get(self, name: str) -> T:
        """Returns the entry registered under ``name``.

        Args:
            name: a name from :meth:`names`.

        Returns:
            The registered class or value.

        Raises:
            RegistryError: (the registry's ``error`` type) for an unknown name; see
                :meth:`unknown_name_error`.
        """
        key = self.key(name)
        if key not in self._items:
            raise self.unknown_name_error(name)
        return self._items[key]

    def unknown_name_error(self, name: object) -> RegistryError:
        """The error for a name that is not registered, worded the same by every registry.

        The message reads ``Unknown <kind> '<name>'; available: [...]. Register a new one with
        <register_with>.``

        Args:
            name: the name that was asked for.

        Returns:
            An instance of the registry's ``error`` type, for the caller to raise.
        """
        return self.error(f"Unknown {self.kind} {name!r}; available: {self.names()}. "
                          f"Register a new one with {self.register_with}.")

    def names(self) -> list[str]:
        """Lists the registered names.

        Returns:
            The names, sorted.
        """
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.key(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
