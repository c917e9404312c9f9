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

__all__ = [
    "CheckpointError",
    "DivergenceError",
    "build_trainer",
    "ddp_strategy",
    "default_precision",
    "fit",
    "is_global_zero",
    "load_checkpoint_file",
    "read_metric_rows",
    "save_checkpoint_file",
    "versions",
]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read safely; the message names the file."""


class DivergenceError(RuntimeError):
    """Training diverged (a non-finite or exploding loss or weight); the message names the
    step, what was kept, and the option to lower."""


def save_checkpoint_file(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Write a checkpoint atomically in its own directory (a temporary name there, fsync,
    rename): a kill or a full disk never leaves a truncated file under the final name.

    Lightning's own writer stages the file in the system's temporary directory and moves it,
    which copies across file systems and can leave a truncated ``last.ckpt`` behind.
    """
    import errno
    import io

    import torch

    from augmentor.io import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise CheckpointError(
                f"no space left on the device to write {str(path)!r} ({len(buf.getvalue()) >> 20}"
                " MiB); the previous checkpoint is kept: free some space and resume"
            ) from None
        raise CheckpointError(f"cannot write {str(path)!r}: {e.strerror}") from None


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` whatever the environment says (torch
    honours an explicit True over ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``): a checkpoint that
    would need to run code is refused in one line, never unpickled."""
    import pickle
    import warnings

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}")
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols: the error says it
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        import re

        # name what the file would have imported, never torch's advice to load it unsafely
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" (it would import {found.group(1)})" if found else ""
        raise CheckpointError(
            f"{str(path)!r} holds more than tensors and plain data{what}; it was not loaded. "
            "Start over (--overwrite) if it is not a checkpoint of this project"
        ) from None
    except Exception as e:  # truncated or not a torch file at all
        raise CheckpointError(
            f"{str(path)!r} is not a readable checkpoint ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:160] if str(e) else ''}); delete it to start over"
        ) from None
    if not isinstance(obj, dict) or "state_dict" not in obj:
        raise CheckpointError(f"{str(path)!r} is not a Lightning checkpoint (no state_dict)")
    return obj


def _checkpoint_io() -> Any:
    """Lightning's checkpoint I/O with the two functions above (defined on first use, so this
    module imports no Lightning)."""
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(
            self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
        ) -> None:
            save_checkpoint_file(checkpoint, path)

        def load_checkpoint(
            self, path: Any, map_location: Any = None, weights_only: Any = None
        ) -> dict[str, Any]:
            return load_checkpoint_file(path)

    return AtomicCheckpointIO()


def default_precision() -> str:
    """bf16 (else 16-bit) mixed precision on a GPU, full precision on the CPU."""
    import torch

    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def _stderr_bar() -> Any:
    """Lightning's tqdm bar on stderr: its default, stdout, mixes the bar with the results a
    script may read from stdout. Its ``init_*_tqdm`` methods read ``sys.stdout`` when called,
    so each runs with stdout pointed at stderr."""
    import contextlib
    import sys

    from lightning.pytorch.callbacks import TQDMProgressBar

    class StderrProgressBar(TQDMProgressBar):
        def init_sanity_tqdm(self) -> Any:
            with contextlib.redirect_stdout(sys.stderr):
                return super().init_sanity_tqdm()

        def init_train_tqdm(self) -> Any:
            with contextlib.redirect_stdout(sys.stderr):
                return super().init_train_tqdm()

        def init_validation_tqdm(self) -> Any:
            with contextlib.redirect_stdout(sys.stderr):
                return super().init_validation_tqdm()

        def init_predict_tqdm(self) -> Any:
            with contextlib.redirect_stdout(sys.stderr):
                return super().init_predict_tqdm()

        def init_test_tqdm(self) -> Any:
            with contextlib.redirect_stdout(sys.stderr):
                return super().init_test_tqdm()

    return StderrProgressBar()


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
    resume: bool = False,
    **kwargs: Any,
) -> Any:
    """A ``lightning.Trainer`` writing CSV and TensorBoard logs under ``out/logs``.

    Args:
        stage: the run's stage name (``probe``, ``finetune``): CSV logs go to
            ``logs/<stage>/metrics.csv`` and TensorBoard's to ``logs/tensorboard/<stage>``;
            None writes ``logs/metrics.csv`` and ``logs/tensorboard``.
        precision: None = :func:`default_precision`.
        resume: keep the CSV metrics of the interrupted run (Lightning's CSV logger deletes an
            existing ``metrics.csv``): they move to ``metrics.<n>.csv``, which
            :func:`read_metric_rows` reads back in order.
        kwargs: any other ``Trainer`` argument (``max_epochs``, ``max_steps``...).
    """
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    check_devices(devices)
    _one_console()

    logs = str(Path(out) / "logs")
    if resume and is_global_zero():
        _keep_metrics(Path(logs) / (stage or ""))
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
        callbacks=[*callbacks, *([_stderr_bar()] if progress else [])],
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(out),
        plugins=[_checkpoint_io()],
        **kwargs,
    )


def check_devices(devices: Any) -> None:
    """A clear ValueError for a ``devices`` value this machine cannot honour (Lightning raises a
    TypeError from deep inside instead): device indices or ``-1`` need GPUs, and an index must
    name one that exists. A count on a CPU-only machine means that many processes.

    Example:
        >>> check_devices("auto"), check_devices(2)
        (None, None)
    """
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if devices == "auto" or (isinstance(devices, int) and devices >= 1):
        return
    if not gpus and (devices == -1 or isinstance(devices, (list, tuple))):
        raise ValueError(
            f"--devices {devices}: device indices and -1 name GPUs, and this machine has none; "
            "give a count (CPU processes) or auto"
        )
    if isinstance(devices, (list, tuple)) and max(devices) >= gpus:
        raise ValueError(f"--devices {devices}: this machine has {gpus} GPUs (0..{gpus - 1})")


def is_global_zero() -> bool:
    """Whether this process is rank 0 of a multi-process run (or the only process): the one
    that writes outputs and prints. Lightning's launcher sets these variables in its workers."""
    import os

    return all(os.environ.get(v, "0") == "0" for v in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def ddp_strategy(devices: Any, num_nodes: int = 1, find_unused: bool = False) -> Any:
    """``"auto"`` for one device; for several, Lightning's DDP (gloo on CPU, NCCL on GPUs) with
    ``find_unused_parameters`` where a step leaves some parameters without gradient (the GAN's
    alternating steps, gradual unfreezing)."""
    import torch

    if devices == "auto":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 1
    elif isinstance(devices, (list, tuple)):
        count = len(devices)
    else:
        count = int(devices)
    if count * num_nodes <= 1:
        return "auto"
    from lightning.pytorch.strategies import DDPStrategy

    return DDPStrategy(find_unused_parameters=find_unused)


def _keep_metrics(folder: Path) -> None:
    current = folder / "metrics.csv"
    if current.is_file():
        n = 1 + len(list(folder.glob("metrics.*.csv")))
        current.rename(folder / f"metrics.{n}.csv")


def read_metric_rows(folder: str | Path) -> list[dict[str, str]]:
    """The rows of a run's CSV metrics, the interrupted parts first (``metrics.1.csv``, ...,
    ``metrics.csv``); a row logged again after a resume replaces the earlier one."""
    import csv

    folder = Path(folder)
    parts = sorted(folder.glob("metrics.*.csv"), key=lambda p: int(p.suffixes[0][1:]))
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for path in [*parts, folder / "metrics.csv"]:
        if path.is_file():
            with path.open(newline="") as f:
                for row in csv.DictReader(f):
                    key = (row.get("epoch") or "", row.get("step") or "")
                    rows[key] = {**rows.get(key, {}), **{k: v for k, v in row.items() if v}}
    return list(rows.values())


class _NoAdverts:
    """A logging filter: Lightning 2.6 advertises a cloud logging service on every Trainer."""

    def filter(self, record: Any) -> bool:
        return "💡 Tip:" not in str(record.msg)


def _one_console() -> None:
    """``import lightning`` adds a console handler to its logger, and its records also reach
    the application's handlers: every line printed twice. When the application configured
    logging (its root logger has handlers), Lightning's own console handler is removed, so each
    record is handled once, at the application's level."""
    import logging

    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoAdverts) for f in rank_zero.filters):
        rank_zero.addFilter(_NoAdverts())
    if logging.getLogger().handlers:
        lightning_logger = logging.getLogger("lightning")
        for handler in list(lightning_logger.handlers):
            if type(handler) is logging.StreamHandler:
                lightning_logger.removeHandler(handler)


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

    if kwargs.get("ckpt_path") is not None:
        load_checkpoint_file(kwargs["ckpt_path"])  # a clear error before Lightning starts
        kwargs["weights_only"] = True
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
