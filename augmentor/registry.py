"""Name -> class registries (timm's ``register_model``/``create_model``/``list_models`` pattern).

Ops, containers and policies are created by name from configs; an unknown name raises with the
closest registered names, and registering a name twice raises.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Registry:
    """A named collection of classes, created by name.

    Example:
        >>> reg = Registry("op")
        >>> @reg.register("noop")
        ... class NoOp:
        ...     pass
        >>> reg.get("noop") is NoOp
        True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def deco(cls: type[T]) -> type[T]:
            if name in self._entries:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered "
                    f"(by {self._entries[name].__module__}.{self._entries[name].__qualname__})"
                )
            self._entries[name] = cls
            cls.name = name  # type: ignore[attr-defined]
            return cls

        return deco

    def get(self, name: str) -> type:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self._entries, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (see augmentor.list_ops())"

    def list(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def items(self) -> list[tuple[str, Any]]:
        return sorted(self._entries.items())


OPS = Registry("op")


def register_op(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator that registers an op (or container / policy) under ``name``."""
    return OPS.register(name)


def list_ops(pattern: str = "*") -> list[str]:
    """Names of the registered ops, containers and policies, optionally filtered by a glob."""
    return OPS.list(pattern)
