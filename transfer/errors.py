"""The errors of :mod:`transfer`. Each is a ``ValueError`` whose message says what is wrong and
names the argument, file, class or count; the CLI prints it as one line."""

from __future__ import annotations

__all__ = ["BackboneError", "DataError", "RunError"]


class DataError(ValueError):
    """A dataset or setting that cannot be used as asked; the message names the folder, class,
    count or option."""


class BackboneError(ValueError):
    """A backbone name, weight file or weight source that cannot be used; the message says why."""


class RunError(ValueError):
    """A run directory that is missing a file or does not match itself."""
