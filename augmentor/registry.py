"""One ``Registry`` type for everything created by name (timm's ``register_model`` /
``create_model`` / ``list_models`` idiom): ops, presets, datasets, generators, backbones.

Every registry behaves the same: registering a name twice raises; an unknown name raises
:class:`UnknownNameError` (a ``KeyError`` and a ``ValueError``) with the closest names and the
``list_*`` function that lists them all; ``list(pattern)`` returns sorted names; each entry may
carry a one-line description. Importing this module imports nothing heavy.
"""

from __future__ import annotations

import builtins
import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["OPS", "Registry", "UnknownNameError", "list_ops", "register_op"]

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """A name no registry entry has; the message lists the closest names.

    Both a ``KeyError`` (a failed lookup) and a ``ValueError`` (bad user input), so callers
    that handle either keep working. ``str()`` is the plain message (not ``KeyError``'s repr).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """A named collection, created by name.

    Args:
        kind: what an entry is ("op", "backbone"...), used in messages.
        lister: the public function that lists the names, named in the unknown-name message.
        error: the exception an unknown name raises (a subclass of :class:`UnknownNameError`,
            for a package's own error type).

    Example:
        >>> reg: Registry[type] = Registry("thing", "list_things()")
        >>> @reg.register("noop", "does nothing")
        ... class NoOp:
        ...     pass
        >>> reg.get("noop") is NoOp, reg.list(), reg.describe("noop")
        (True, ['noop'], 'does nothing')
        >>> try:
        ...     reg.get("nop")
        ... except KeyError as e:
        ...     print(e)
        unknown thing 'nop'; did you mean 'noop'? (see list_things())
    """

    def __init__(
        self,
        kind: str,
        lister: str | None = None,
        error: type[UnknownNameError] = UnknownNameError,
    ) -> None:
        self.kind = kind
        self.lister = lister
        self.error = error
        self._entries: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}

    def register(self, name: str, description: str | None = None) -> Callable[[T], T]:
        """Decorator adding ``obj`` under ``name`` (classes also get ``obj.name = name``)."""

        def deco(obj: T) -> T:
            self.add(name, obj, description)
            if isinstance(obj, type):
                obj.name = name  # type: ignore[attr-defined]
            return obj

        return deco

    def add(self, name: str, obj: T, description: str | None = None) -> None:
        if name in self._entries:
            prev: Any = self._entries[name]
            where = f"{getattr(prev, '__module__', '?')}.{getattr(prev, '__qualname__', prev)}"
            raise ValueError(f"{self.kind} {name!r} is already registered (by {where})")
        self._entries[name] = obj
        doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
        self._descriptions[name] = description or (doc[0] if doc else "")

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.error(self.unknown_message(name)) from None

    def unknown_message(self, name: Any, extra: str = "") -> str:
        close = difflib.get_close_matches(str(name), self._entries, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        where = "; ".join(w for w in (f"see {self.lister}" if self.lister else "", extra) if w)
        return f"unknown {self.kind} {name!r}{hint}" + (f" ({where})" if where else "")

    def list(self, pattern: str = "*") -> builtins.list[str]:
        """The registered names matching a glob, sorted."""
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def describe(self, name: str) -> str:
        """The entry's one-line description."""
        self.get(name)
        return self._descriptions[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def items(self) -> builtins.list[tuple[str, T]]:
        return sorted(self._entries.items())


# ops, containers and policies: classes with the duck-typed kernel interface of Op
OPS: Registry[Any] = Registry("op", "augmentor.list_ops()")


def register_op(name: str) -> Callable[[Any], Any]:
    """Class decorator that registers an op (or container / policy) under ``name``."""
    return OPS.register(name)


def list_ops(pattern: str = "*") -> list[str]:
    """Names of the registered ops, containers and policies, optionally filtered by a glob."""
    return OPS.list(pattern)
