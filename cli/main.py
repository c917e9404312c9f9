"""``augment``: the command group.

Subcommands are imported only when invoked (click's lazy-loading pattern), and nothing here
imports torch, so ``augment --help`` is instant. Errors are one line: ``Error: ...`` with exit
code 2 for bad usage or input, 1 for a failure at run time, 3 for a run that finished but
skipped unreadable inputs, 130 when interrupted (:mod:`cli.errors`).
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import sys
from pathlib import Path

import click

from cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, fail

COMMANDS = {
    "generate": ("cli.generate", "generate", "Write augmented copies of an image folder."),
    "sample": ("cli.sample", "sample", "Write synthetic images from a saved generator."),
    "preview": ("cli.preview", "preview", "Write a PNG grid of originals beside augmented ones."),
    "data": ("cli.data", "data", "Export the bundled and offline datasets as image folders."),
    "ops": ("cli.ops", "ops", "List the augmentation ops, containers, policies and presets."),
    "demo": ("cli.demo", "demo", "Run the end-to-end demo on the bundled data."),
    "finetune": ("cli.finetune", "finetune", "Fine-tune a pretrained backbone on an image folder."),
    "predict": ("cli.predict", "predict", "Classify images with a fine-tuned run."),
    "evaluate": ("cli.evaluate", "evaluate", "Report a fine-tuned run on a labelled folder."),
    "audit": ("cli.audit", "audit", "Find duplicates, leaks and likely label errors in a folder."),
    "compare": ("cli.compare", "compare", "Did augmentation help? Paired repeated-split test."),
    "tune": ("cli.tune", "tune", "Find the augmentation that suits a folder, within a budget."),
    "backbones": ("cli.backbones", "backbones", "List the registered backbones."),
    "quality": ("cli.quality", "quality", "KID, FID and memorisation of a saved generator."),
    "train": ("cli.train", "train", "Train a GAN, VAE or diffusion generator on an image folder."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="smallaug", prog_name="augment")
@click.option("-v", "--verbose", count=True, help="Log more (-vv for debug).")
def cli(verbose: int) -> None:
    """Augmentation and transfer learning for small image datasets."""
    import logging

    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Lightning raises its own loggers to INFO when it is imported (its device banner, a
    # logging-service tip) and they propagate here: the handler's own level keeps them out
    # unless -v, and they are printed once.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)


# Errors of the machine at run time (exit 1); any other OSError is a bad path given (exit 2).
RUNTIME_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM}


def os_error_exit(e: OSError, argv: list[str]) -> int:
    """The exit code of an OSError that reached the command line: 1 (run time) for a full or
    failing disk, and for a file missing from a folder that exists when it is not a path the
    user gave (it vanished while the command ran: an input deleted, a cache cleared); 2 for
    every other cause (a path given that does not exist or sits under a missing folder, a
    folder that cannot be written)."""
    if e.errno in RUNTIME_ERRNOS:
        return EXIT_FAILED
    if e.errno == errno.ENOENT and e.filename is not None:
        missing = Path(os.fsdecode(e.filename)).absolute()
        given = {Path(a).absolute() for a in argv if not a.startswith("-")}
        if missing not in given and missing.parent.is_dir():
            return EXIT_FAILED
    return EXIT_USAGE


def os_error_line(e: OSError) -> str:
    """``'/a/b': Not a directory`` from an OSError: the path (both, for a rename) and the cause."""
    cause = e.strerror or type(e).__name__
    if e.errno == errno.ENOSPC:
        cause += " (free some space, then rerun the same command to resume)"
    if e.filename2 is not None:
        return f"{str(e.filename)!r} -> {str(e.filename2)!r}: {cause}"
    if e.filename is not None:
        return f"{str(e.filename)!r}: {cause}"
    return cause


def main(argv: list[str] | None = None) -> None:
    try:
        rv = cli.main(args=argv, prog_name="augment", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as e:
        msg = e.format_message().replace("\n", " ")
        if isinstance(e, click.UsageError) and e.ctx is not None:
            msg = f"{msg} (see '{e.ctx.command_path} --help')"
        click.echo(f"Error: {msg}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except OSError as e:
        # An output path under a file, an unwritable folder, a full disk: one line naming the
        # path and the cause (-vv shows the traceback). Nothing half-written stays: every
        # writer in this package writes to a temporary and renames.
        if logging.getLogger().getEffectiveLevel() < logging.INFO:
            raise
        fail(os_error_line(e), os_error_exit(e, sys.argv[1:] if argv is None else argv))
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
