"""What every Lightning run of this project shares: one trainer factory (loggers, precision,
devices), a ``fit`` that gives Ctrl-C back to the caller, and the library versions written
beside each result.

Used by generator training (:mod:`augmentor.generators.fit`) and by fine-tuning
(:mod:`transfer.finetuning`). Lightning is imported when a trainer is built, not at import.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_trainer", "default_precision", "fit", "versions"]


def default_precision() -> str:
    """bf16 (else 16-bit) mixed precision on a GPU, full precision on the CPU."""
    import torch

    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def build_trainer(
    out: str | Path,
    *,
    stage: str | None = None,
    devices: Any = "auto",
    num_nodes: int = 1,
    precision: str | None = None,
    strategy: Any = "auto",
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    **kwargs: Any,
) -> Any:
    """A ``lightning.Trainer`` writing CSV and TensorBoard logs under ``out/logs``.

    Args:
        stage: the run's stage name (``probe``, ``finetune``): CSV logs go to
            ``logs/<stage>/metrics.csv`` and TensorBoard's to ``logs/tensorboard/<stage>``;
            None writes ``logs/metrics.csv`` and ``logs/tensorboard``.
        precision: None = :func:`default_precision`.
        kwargs: any other ``Trainer`` argument (``max_epochs``, ``max_steps``...).
    """
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    logs = str(Path(out) / "logs")
    loggers = [
        CSVLogger(logs, name=stage or "", version=""),
        TensorBoardLogger(logs, name="tensorboard", version=stage or ""),
    ]
    return L.Trainer(
        accelerator="auto",
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=precision or default_precision(),  # type: ignore[arg-type]  # a str Literal
        logger=loggers,
        callbacks=list(callbacks),
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(out),
        **kwargs,
    )


def fit(
    trainer: Any, *args: Any, resume_hint: str, quiet: Sequence[str] = (), **kwargs: Any
) -> None:
    """``trainer.fit(*args, **kwargs)``, with two things Lightning does not do for a library.

    Args:
        resume_hint: what an interrupted caller should do, put in the KeyboardInterrupt.
        quiet: regexes of warning messages to silence during the fit (Lightning 2.6 trips over
            torch's own pytree deprecation, for one; nothing for users to act on).
    """
    import signal
    import warnings

    try:
        with warnings.catch_warnings():
            for pattern in (".*LeafSpec.*", *quiet):
                warnings.filterwarnings("ignore", message=pattern)
            trainer.fit(*args, **kwargs)
    except SystemExit as e:
        # On Ctrl-C Lightning shuts down, ignores SIGINT from then on and calls sys.exit(1):
        # a library must not end the caller's process, so give back a KeyboardInterrupt.
        if isinstance(e.__context__, KeyboardInterrupt):
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt(f"interrupted; {resume_hint}") from None
        raise


def versions(packages: Sequence[str]) -> dict[str, str]:
    """Python's version and each installed package's ("not installed" otherwise)."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out
