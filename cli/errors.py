"""Exit codes and the one-line error of every command (commands import this, not the group).

Exit codes: 0 success; 1 a failure at run time (a diverged training run, a full disk, a file
that vanished while the command ran); 2 bad usage or input (nothing was written); 3 finished,
but some inputs were unreadable (listed); 130 interrupted (finished work is kept: rerun to
resume).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import NoReturn

import click

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_SKIPPED",
    "EXIT_USAGE",
    "fail",
    "list_skipped",
]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SKIPPED = 3
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print a one-line error and exit. A library field the message starts with (``minutes
    must be ...``) is named as the command's option (``'--minutes' must be ...``)."""
    click.echo(f"Error: {as_options(' '.join(str(message).split()))}", err=True)
    sys.exit(code)


def list_skipped(skipped: Iterable[tuple[str, str]]) -> int:
    """Print each unreadable input (path, why) the same way in every command; the exit code:
    :data:`EXIT_SKIPPED` if there was any, else 0."""
    count = 0
    for path, reason in skipped:
        click.echo(f"  skipped {path}: {reason}")
        count += 1
    return EXIT_SKIPPED if count else 0


_FIELD = re.compile(r"^([a-z][a-z0-9_]*)(\[\d+\])? must ")


def as_options(message: str) -> str:
    """``per_class must be ...`` -> ``'--per-class' must be ...`` when the running command has
    an option of that name (the library checks the value; the user typed the option)."""
    ctx = click.get_current_context(silent=True)
    m = _FIELD.match(message)
    if ctx is None or m is None:
        return message
    for param in ctx.command.params:
        if isinstance(param, click.Option) and param.name == m.group(1):
            flag = max(param.opts, key=len)
            rest = message[m.end() :].replace(" or None,", ",")
            return f"'{flag}'{m.group(2) or ''} must {rest}"
    return message
