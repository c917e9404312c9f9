"""One progress bar on stderr, opened once a job knows its size."""

from __future__ import annotations

import sys
from typing import Any

import click

__all__ = ["Progress"]


class Progress:
    """A click progress bar, opened once the job knows its size (its ``on_start`` hook)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None

    def on_start(self, todo: int, done: int) -> None:
        if done:
            click.echo(f"Resuming: {done} images already written.", err=True)
        self.bar = click.progressbar(
            length=todo, label=self.label, file=sys.stderr, show_pos=True, show_eta=True
        )
        self.bar.__enter__()

    def update(self, n: int) -> None:
        self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
