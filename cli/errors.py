"""Exit codes and the one-line error of every command (commands import this, not the group).

Exit codes: 0 success; 1 a failure at run time (for example a diverged training run); 2 bad
usage or input (nothing was written); 3 finished, but some inputs were unreadable (listed);
130 interrupted (finished work is kept: rerun to resume).
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_SKIPPED", "EXIT_USAGE", "fail"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SKIPPED = 3
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print a one-line error and exit."""
    click.echo(f"Error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)
