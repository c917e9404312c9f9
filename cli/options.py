"""Options shared by commands, and the pipeline they resolve to."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click


class LazyChoice(click.Choice):
    """A ``click.Choice`` whose choices come from a registry when first needed (parsing, or a
    command's ``--help``), so that importing the CLI imports no library.

    Example:
        >>> LazyChoice(lambda: ["a", "b"], extra=["none"]).choices
        ['a', 'b', 'none']
    """

    def __init__(self, load: Callable[[], Sequence[str]], extra: Sequence[str] = ()) -> None:
        self._load, self._extra = load, list(extra)
        self._choices: list[str] | None = None
        self.case_sensitive = True

    @property  # type: ignore[override]  # click declares a plain attribute; computed here
    def choices(self) -> Sequence[Any]:
        if self._choices is None:
            self._choices = [*self._load(), *self._extra]
        return self._choices

    @choices.setter
    def choices(self, value: Sequence[Any]) -> None:
        self._choices = list(value)


def _preset_names() -> list[str]:
    from augmentor import list_presets

    return list_presets()


def preset_choice(extra: Sequence[str] = ()) -> LazyChoice:
    """``--preset``'s choices: the preset registry (plus ``extra`` words such as ``none``)."""
    return LazyChoice(_preset_names, extra)


def refuse_inside(out: Path | None, hint: str, **inputs: Path | None) -> None:
    """A click error when the output ``out`` is, or is inside, one of the ``inputs`` folders
    (name -> path): the next run on that input would find the output among its images."""
    if out is None:
        return
    where = out.resolve()
    for name, folder in inputs.items():
        if folder is None:
            continue
        root = folder.resolve()
        if where == root or root in where.parents:
            raise click.BadParameter(
                f"{str(out)!r} is inside {name} {str(folder)!r}; choose a folder outside it",
                param_hint=hint,
            )


def given(name: str) -> bool:
    """Whether the option ``name`` was set on the command line or from the environment."""
    from click.core import ParameterSource

    source = click.get_current_context().get_parameter_source(name)
    return source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def _parse_devices(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    if value == "auto":
        return value
    try:
        parsed = [int(d) for d in value.split(",")] if "," in value else int(value)
    except ValueError:
        raise click.BadParameter(f"expected auto, a count or a list, got {value!r}") from None
    if isinstance(parsed, int) and parsed < 1 and parsed != -1:
        raise click.BadParameter(f"a count must be >= 1 (or -1: every GPU), got {parsed}")
    if isinstance(parsed, list) and (min(parsed) < 0 or len(set(parsed)) != len(parsed)):
        raise click.BadParameter(f"device indices must be distinct and >= 0, got {value!r}")
    return parsed


class CropPct(click.FloatRange):
    """``--crop-pct``: a share of the short side in ``transfer.config.CROP_PCT`` (click's own
    range check), or ``backbone`` (None) for the backbone's own crop."""

    name = "float"

    def __init__(self) -> None:
        from transfer.config import CROP_PCT

        super().__init__(*CROP_PCT, min_open=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.strip().lower() == "backbone":
            return None
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as e:
            self.fail(f"{e.message} Or 'backbone' for the backbone's own crop.", param, ctx)


def devices_option(f: Any) -> Any:
    """``--devices``: Lightning's ``auto``, a count, or a list of device indices."""
    return click.option(
        "--devices",
        default="auto",
        show_default=True,
        callback=_parse_devices,
        help="Lightning devices: auto, a count, or a list like 0,1.",
    )(f)


def pipeline_options(default_preset: str = "medium") -> Any:
    def deco(f: Any) -> Any:
        f = click.option(
            "--seed",
            type=click.IntRange(min=0),
            default=None,
            help="Pipeline seed (default: the pipeline file's, or 0).",
        )(f)
        f = click.option(
            "--pipeline",
            "pipeline_file",
            type=click.Path(path_type=Path),
            help="A pipeline YAML/JSON file (see `augment ops`).",
        )(f)
        f = click.option(
            "--preset",
            type=preset_choice(),
            default=None,
            help=f"A named pipeline [default: {default_preset}].",
        )(f)
        return f

    return deco


def resolve_pipeline(
    preset: str | None, pipeline_file: Path | None, seed: int | None, default_preset: str = "medium"
) -> Any:
    """Build the pipeline from --preset / --pipeline / --seed, or raise click.BadParameter."""
    from augmentor import Pipeline
    from augmentor import preset as make_preset

    if preset is not None and pipeline_file is not None:
        raise click.UsageError("--preset and --pipeline are mutually exclusive")
    if pipeline_file is not None:
        if not pipeline_file.is_file():
            raise click.BadParameter(
                f"{str(pipeline_file)!r} is not a file", param_hint="'--pipeline'"
            )
        try:
            pipe = Pipeline.load(pipeline_file)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="'--pipeline'") from None
        if seed is not None:
            pipe.seed = seed
        return pipe
    return make_preset(preset or default_preset, seed=seed or 0)


def network_options(default: Callable[[str], Any]) -> list[Any]:
    """``--backbone``, ``--weights``, ``--no-pretrained``, ``--image-size`` and ``--crop-pct``:
    the network and its input, for ``finetune``, ``compare`` and ``tune`` (``default`` reads
    the library config's own defaults)."""
    return [
        click.option(
            "--backbone",
            default=default("backbone"),
            show_default=True,
            help="A registered name, timm/<model> or torchvision/<model>.",
        ),
        click.option(
            "--weights",
            type=click.Path(path_type=Path),
            default=None,
            help="A local state_dict file (safetensors or torch.save) for the backbone.",
        ),
        click.option("--no-pretrained", is_flag=True, help="Random init instead of pretrained."),
        click.option(
            "--image-size",
            type=click.IntRange(min=8),
            default=None,
            help="Network input size [default: the backbone's].",
        ),
        click.option(
            "--crop-pct",
            type=CropPct(),
            default=default("crop_pct"),
            help="Share of the short side the centre crop keeps (timm's crop_pct; 1.0 keeps "
            "it all), or 'backbone' for the backbone's own crop (the Lite family's ImageNet "
            f"0.875) [default: {default('crop_pct')}].",
        ),
    ]


def apply(options: Sequence[Any]) -> Callable[[Any], Any]:
    """A decorator that adds ``options`` to a command, listed in ``--help`` in their order
    (as if each were stacked above the function, the first on top)."""

    def deco(f: Any) -> Any:
        for option in reversed(options):
            f = option(f)
        return f

    return deco
